// zabpy web console: plain JavaScript over the HTTP/JSON API (docs/http-api.md).
// No build step. State: the selected path, its stat (for version checks), and
// at most one live watch stream (EventSource) on the selected subtree.
"use strict";

const API = "/api/v1";
const state = { path: "/", stat: null, source: null, lastEventId: null };

function $(id) { return document.getElementById(id); }
function q(path) { return "?path=" + encodeURIComponent(path); }
function join(parent, name) { return parent === "/" ? "/" + name : parent + "/" + name; }

async function call(method, url, body) {
  const opts = { method, headers: {} };
  if (method !== "GET") opts.headers["Content-Type"] = "application/json";
  if (body !== undefined) opts.body = JSON.stringify(body);
  const resp = await fetch(API + url, opts);
  const data = await resp.json();
  return { status: resp.status, data };
}

function say(text, kind) {
  const m = $("node-message");
  m.textContent = text;
  m.className = "message " + (kind || "");
}

// ---- tree ------------------------------------------------------------------
function treeItem(path, name) {
  const li = document.createElement("li");
  li.dataset.path = path;
  const toggle = document.createElement("span");
  toggle.className = "toggle";
  toggle.textContent = "+";
  toggle.addEventListener("click", (e) => { e.stopPropagation(); expand(li); });
  const label = document.createElement("a");
  label.href = "#" + path;
  label.className = "node-link";
  label.textContent = name;
  label.dataset.path = path;
  label.addEventListener("click", (e) => { e.preventDefault(); select(path); expand(li, true); });
  li.append(toggle, label);
  return li;
}

async function expand(li, openOnly) {
  const path = li.dataset.path;
  let ul = li.querySelector(":scope > ul");
  if (ul && !openOnly) { ul.remove(); li.querySelector(".toggle").textContent = "+"; return; }
  const { status, data } = await call("GET", "/children" + q(path));
  if (status !== 200) { say(`${path}: ${data.error}`, "error"); return; }
  if (ul) ul.remove();
  ul = document.createElement("ul");
  for (const name of data.children) ul.append(treeItem(join(path, name), name));
  li.append(ul);
  li.querySelector(".toggle").textContent = data.children.length ? "−" : "·";
}

async function loadTree() {
  const root = $("tree");
  root.innerHTML = "";
  const li = treeItem("/", "/");
  root.append(li);
  await expand(li, true);
}

async function refreshTreeAt(parent) {
  const li = document.querySelector(`#tree li[data-path="${CSS.escape(parent)}"]`);
  if (li && li.querySelector(":scope > ul")) await expand(li, true);
}

// ---- node --------------------------------------------------------------------
async function select(path) {
  state.path = path;
  $("node-path").textContent = path;
  say("");
  await loadNode();
  if ($("watch-toggle").checked) startWatch();
}

async function loadNode() {
  const path = state.path;
  const node = await call("GET", "/node" + q(path));
  if (node.status !== 200) { say(`${path}: ${node.data.error} (${node.data.code})`, "error"); return; }
  state.stat = node.data.stat;
  $("node-data").value = node.data.data !== null ? node.data.data : "";
  $("node-data").disabled = node.data.data === null;
  if (node.data.data === null) say("binary data (base64): " + node.data.data_b64);
  $("node-version").textContent = state.stat.version;
  const stat = $("node-stat");
  stat.innerHTML = "";
  for (const [k, v] of Object.entries(state.stat)) {
    const tr = stat.insertRow();
    tr.insertCell().textContent = k;
    const cell = tr.insertCell();
    cell.textContent = v;
    cell.id = "stat-" + k;
  }
  const acl = await call("GET", "/acl" + q(path));
  const body = $("node-acl").tBodies[0];
  body.innerHTML = "";
  if (acl.status === 200) {
    for (const a of acl.data.acl) {
      const tr = body.insertRow();
      tr.insertCell().textContent = a.scheme;
      tr.insertCell().textContent = a.id;
      tr.insertCell().textContent = a.letters;
    }
  }
}

async function saveData() {
  const version = state.stat ? state.stat.version : -1;
  const r = await call("PUT", `/node${q(state.path)}&version=${version}`, { data: $("node-data").value });
  if (r.status === 200) {
    say(`saved: version ${r.data.stat.version}`, "ok");
    await loadNode();
  } else if (r.data.error === "BADVERSION") {
    say(`not saved: ${state.path} changed since it was loaded (version ${version} is stale) - reload`, "error");
  } else {
    say(`not saved: ${r.data.error} (${r.data.code})`, "error");
  }
}

async function deleteNode() {
  const version = state.stat ? state.stat.version : -1;
  const r = await call("DELETE", `/node${q(state.path)}&version=${version}`);
  if (r.status !== 200) { say(`not deleted: ${r.data.error}`, "error"); return; }
  const parent = state.path.substring(0, state.path.lastIndexOf("/")) || "/";
  await refreshTreeAt(parent);
  await select(parent);
}

async function createChild() {
  const name = $("child-name").value.trim();
  if (!name) return;
  const r = await call("POST", "/node" + q(join(state.path, name)), { data: "" });
  if (r.status !== 201) { say(`not created: ${r.data.error}`, "error"); return; }
  $("child-name").value = "";
  say(`created ${r.data.path}`, "ok");
  await refreshTreeAt(state.path);
}

// ---- live watch ----------------------------------------------------------------
function stopWatch() {
  if (state.source) { state.source.close(); state.source = null; }
  $("watch-state").textContent = "";
}

function startWatch() {
  stopWatch();
  const path = state.path;
  const src = new EventSource(`${API}/watch${q(path)}&recursive=1`);
  state.source = src;
  src.onopen = () => { $("watch-state").textContent = `watching ${path}`; $("watch-state").className = "live"; };
  src.onerror = () => { $("watch-state").textContent = `reconnecting (${path})…`; $("watch-state").className = ""; };
  src.addEventListener("gone", () => { $("watch-state").textContent = "changes were missed: reload"; src.close(); });
  src.addEventListener("change", (ev) => {
    const change = JSON.parse(ev.data);
    const log = $("watch-log");
    for (const e of change.events) {
      const li = document.createElement("li");
      li.textContent = `0x${change.zxid.toString(16)} ${change.op}: ${e.type} ${e.path}`;
      li.dataset.type = e.type;
      li.dataset.path = e.path;
      log.prepend(li);
      if (e.path === state.path && e.type === "changed") loadNode();
      if (e.type === "children") refreshTreeAt(e.path);
    }
    while (log.children.length > 200) log.lastChild.remove();
  });
}

// ---- server ------------------------------------------------------------------------
const FIGURES = ["server_state", "znode_count", "watch_count", "ephemerals_count",
  "num_alive_connections", "outstanding_requests", "avg_latency", "max_latency",
  "packets_received", "packets_sent", "approximate_data_size", "last_processed_zxid", "uptime"];

async function loadServer() {
  const { status, data } = await call("GET", "/server");
  if (status !== 200) { $("server-line").textContent = "server unavailable"; return; }
  $("server-line").textContent = `server ${data.server_id} · mode ${data.mode}`;
  $("server-line").dataset.mode = data.mode;
  const body = $("members").tBodies[0];
  body.innerHTML = "";
  for (const m of data.members) {
    const tr = body.insertRow();
    tr.insertCell().textContent = m.id + (m.me ? " (this)" : "");
    tr.insertCell().textContent = m.host;
    tr.insertCell().textContent = m.role;
    tr.className = "role-" + m.role;
  }
  const figs = $("figures");
  figs.innerHTML = "";
  const mntr = data.mntr || {}, srvr = data.srvr || {};
  for (const k of FIGURES) {
    const v = k in mntr ? mntr[k] : srvr[k];
    if (v === undefined) continue;
    const tr = figs.insertRow();
    tr.insertCell().textContent = k;
    const cell = tr.insertCell();
    cell.textContent = v;
    cell.id = "fig-" + k;
  }
}

async function whoami() {
  const { status, data } = await call("GET", "/whoami");
  if (status === 200) $("whoami").textContent = "as " + data.ids.map((i) => `${i.scheme}:${i.id}`).join(", ");
}

window.addEventListener("DOMContentLoaded", async () => {
  $("save-data").addEventListener("click", saveData);
  $("reload-node").addEventListener("click", () => { say(""); loadNode(); });
  $("delete-node").addEventListener("click", deleteNode);
  $("create-child").addEventListener("click", createChild);
  $("watch-toggle").addEventListener("change", (e) => (e.target.checked ? startWatch() : stopWatch()));
  await Promise.all([loadTree(), select("/"), loadServer(), whoami()]);
  setInterval(loadServer, 5000);
  document.body.dataset.ready = "1";
});
