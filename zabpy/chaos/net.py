"""The test network: one Linux network namespace per server, each with a
veth pair whose other end sits on a bridge in a namespace of its own (where
the clients and the harness live). Addresses come from 198.18.0.0/15 (RFC
2544, reserved for network tests) and no namespace has a default route, so
nothing leaves the bridge.

Faults are made with what this kernel offers: a link set down (a node cut
off from everyone), blackhole routes per peer (a partition between two
groups, or loss one way only: the route drops what one side sends), and a
``tbf`` rate limit (a slow link), and random loss by nftables (``numgen
random mod 100 < P drop``: on the member's input, and on the bridge's
forward and input hooks for what the member sends). ``tc netem`` (latency,
loss, reordering) is used for slow links when the kernel has it;
``Network.netem`` says whether it does (this test machine's kernel has no
netem, no sch_prio and no tc actions). Latency, jitter, reordering and
duplication come instead from a userspace verdict loop (netq.py) that
iptables' NFQUEUE target feeds, one loop per delayed member or link:
``Network.delay``.

Every name starts with ``PREFIX`` and the creating process id, so that a run
removes what it made, and the leftovers of a run that died (its pid gone)
are found and removed by the next one.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys

from .netq import rules as _netq_rules

__all__ = ["Network", "PREFIX", "why_not_runnable", "cleanup_leftovers", "enter_netns"]

PREFIX = "zchaos"
SUBNET = "198.18.0"
CLIENT_HOST = 100          # the bridge namespace's address: 198.18.0.100
CLONE_NEWNET = 0x40000000
NETQ_START_TIMEOUT_S = 10   # a verdict loop binds its queue in milliseconds


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _nft(ns: str, *commands: str, check: bool = True) -> None:
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input="\n".join(commands),
                       capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"nft in {ns}: {r.stderr.strip()}")


def why_not_runnable() -> str | None:
    """Why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "the fault harness needs root (network namespaces, veths, tc)"
    for tool in ("ip", "tc"):
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}"],
                          capture_output=True).returncode:
            return f"the fault harness needs the '{tool}' command (iproute2)"
    probe = f"{PREFIX}probe{os.getpid()}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_processes(ns: str) -> None:
    r = _ip("netns", "pids", ns, check=False)
    for pid in r.stdout.split():
        if int(pid) == os.getpid():
            continue  # the harness itself lives in the bridge namespace
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def cleanup_leftovers() -> list[str]:
    """Remove the namespaces (and so their links and processes) of harness
    runs whose process is gone. Returns the names removed."""
    removed = []
    out = _ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{PREFIX}(\d+)-", name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_ns_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def enter_netns(name: str) -> None:
    """Move this process's calling thread (and the threads it starts later)
    into namespace ``name``. Call it before any other thread starts."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Network:
    """A bridge namespace and ``size`` server namespaces, sids 1..size.

    Server ``sid`` has address 198.18.0.<sid>; the bridge namespace (the
    clients') 198.18.0.100. ``close()`` removes everything, and is safe to
    call twice or after a failed ``create()``."""

    def __init__(self, sids: list[int], tag: str | None = None):
        self.sids = list(sids)
        self.tag = f"{PREFIX}{os.getpid()}-{tag or 'run'}"
        self.bridge_ns = f"{self.tag}-br"
        self.created: list[str] = []
        self.blackholes: set[tuple[int, int]] = set()   # (from sid, to sid)
        self.down: set[int] = set()
        self.shaped: set[int] = set()
        self.lossy: set[int] = set()
        self.netem: bool | None = None
        # Verdict loops (netq.py) holding packets: one per delayed member or
        # link, with its rules; ``background`` ones stay through ``heal()``.
        self.queues: list[_Delay] = []
        self.released: list[_Delay] = []     # stopped, with what each did (for tests)
        self._next_queue = 0

    def ns(self, sid: int) -> str:
        return f"{self.tag}-s{sid}"

    @staticmethod
    def addr(sid: int) -> str:
        return f"{SUBNET}.{sid}"

    @property
    def client_addr(self) -> str:
        return f"{SUBNET}.{CLIENT_HOST}"

    def create(self) -> None:
        br = self.bridge_ns
        _ip("netns", "add", br)
        self.created.append(br)
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "addr", "add", f"{self.client_addr}/24", "dev", "br0")
        _ip("-n", br, "link", "set", "br0", "up")
        for sid in self.sids:
            ns = self.ns(sid)
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Created inside the namespaces, so deleting a namespace deletes its end.
            _ip("-n", br, "link", "add", f"p{sid}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", br, "link", "set", f"p{sid}", "master", "br0")
            _ip("-n", br, "link", "set", f"p{sid}", "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(sid)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        self.netem = self._probe_netem()

    def _probe_netem(self) -> bool:
        ns = self.ns(self.sids[0])
        r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root",
                            "netem", "delay", "1ms"], capture_output=True, text=True)
        if r.returncode == 0:
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root"],
                           capture_output=True)
        return r.returncode == 0

    def close(self) -> None:
        for q in list(self.queues):
            self._undelay(q)
        for ns in reversed(self.created):
            _kill_ns_processes(ns)
            _ip("netns", "del", ns, check=False)
        self.created.clear()

    def exists(self) -> list[str]:
        """The namespaces of this network still present (for tests)."""
        out = _ip("netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0].startswith(self.tag)]

    # ---- faults ------------------------------------------------------------------

    def link_down(self, sid: int) -> None:
        _ip("-n", self.ns(sid), "link", "set", "eth0", "down")
        self.down.add(sid)

    def link_up(self, sid: int) -> None:
        _ip("-n", self.ns(sid), "link", "set", "eth0", "up")
        self.down.discard(sid)

    def drop(self, src: int, dst: int) -> None:
        """Packets from ``src`` to ``dst`` are dropped (one way)."""
        if (src, dst) not in self.blackholes:
            _ip("-n", self.ns(src), "route", "add", "blackhole", f"{self.addr(dst)}/32")
            self.blackholes.add((src, dst))

    def partition(self, *groups) -> None:
        """No traffic between members of different groups (both ways); a
        member in no group keeps every link (a bridge between groups)."""
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                for x in a:
                    for y in b:
                        self.drop(x, y)
                        self.drop(y, x)

    def slow(self, sid: int, delay_ms: int, loss_pct: int) -> str:
        """Latency and loss with netem where the kernel has it, else a tight
        rate limit (tbf) as the nearest thing: returns what was applied."""
        ns = self.ns(sid)
        if self.netem:
            cmd = ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay",
                   f"{delay_ms}ms", f"{delay_ms // 2}ms", "loss", f"{loss_pct}%"]
            what = f"netem delay {delay_ms}ms loss {loss_pct}%"
        else:
            cmd = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "256kbit",
                   "burst", "4kb", "latency", f"{max(delay_ms, 50)}ms"]
            what = f"tbf 256kbit latency {max(delay_ms, 50)}ms (no netem here)"
        # Both ways: on the server's end, and on the bridge's port towards it.
        subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)
        cmd[cmd.index("eth0")] = f"p{sid}"
        subprocess.run(["ip", "netns", "exec", self.bridge_ns, *cmd], check=True,
                       capture_output=True)
        self.shaped.add(sid)
        return what + ", both ways"

    def lose(self, sid: int, pct: int) -> str:
        """Drop ``pct`` % of the packets to and from ``sid`` at random (nft)."""
        if shutil.which("nft") is None:
            return "skipped: no nft command (nftables)"
        rule = f"numgen random mod 100 < {pct} drop"
        _nft(self.ns(sid), f"add table inet {PREFIX}",
             f"add chain inet {PREFIX} cin {{ type filter hook input priority 0 ; }}",
             f"add rule inet {PREFIX} cin iifname eth0 {rule}")
        t = f"{PREFIX}s{sid}"
        _nft(self.bridge_ns, f"add table bridge {t}",
             f"add chain bridge {t} cfwd {{ type filter hook forward priority 0 ; }}",
             f"add chain bridge {t} cin {{ type filter hook input priority 0 ; }}",
             f"add rule bridge {t} cfwd iifname p{sid} {rule}",
             f"add rule bridge {t} cin iifname p{sid} {rule}")
        self.lossy.add(sid)
        return f"nft drops {pct}% of its packets, both ways"

    def delay(self, sid: int, delay_ms: float, jitter_ms: float = 0.0, reorder_pct: float = 0,
              duplicate_pct: float = 0, loss_pct: float = 0, peer: int | None = None,
              seed: int = 0, background: bool = False) -> str:
        """Hold ``sid``'s packets (both ways; only those with ``peer`` when
        given) ``delay_ms`` +- ``jitter_ms`` each way, send ``reorder_pct`` %
        at once (ahead of those held), ``duplicate_pct`` % twice, drop
        ``loss_pct`` %. Returns what was applied (or why it was skipped).
        A ``background`` delay stays until ``undelay_all`` or ``close``."""
        ipt = iptables_command()
        if ipt is None:
            return "skipped: no iptables command (apt-get install iptables)"
        self._next_queue += 1
        qnum = self._next_queue
        ns = self.ns(sid)
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "zabpy.chaos.netq",
               "--queue", str(qnum), "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
               "--reorder", str(reorder_pct / 100), "--duplicate", str(duplicate_pct / 100),
               "--loss", str(loss_pct / 100), "--seed", str(seed)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        # a loop stuck waiting for the kernel's ack must fail the run, not hang it
        ready, _, _ = select.select([proc.stdout], [], [], NETQ_START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else "(no answer in time)\n"
        if line.strip() != "ready":
            proc.kill()
            rest = proc.communicate()[0]
            raise RuntimeError(f"netq in {ns} did not start: {line}{rest}".strip())
        q = _Delay(sid, peer, qnum, proc, ipt, _netq_rules(
            qnum, self.addr(peer) if peer is not None else None,
            "mangle" if background else "filter"), background)
        self.queues.append(q)
        for rule in q.rules:
            subprocess.run(["ip", "netns", "exec", ns, ipt, *rule[:2], "-A", *rule[2:]],
                           check=True, capture_output=True)
        what = f"netq delay {delay_ms:g}ms"
        what += f" +-{jitter_ms:g}ms" if jitter_ms else ""
        what += f" reorder {reorder_pct:g}%" if reorder_pct else ""
        what += f" duplicate {duplicate_pct:g}%" if duplicate_pct else ""
        what += f" loss {loss_pct:g}%" if loss_pct else ""
        return what + (f", link with {peer}" if peer is not None else "") + ", each way"

    def _undelay(self, q: _Delay) -> None:
        for rule in q.rules:
            subprocess.run(["ip", "netns", "exec", self.ns(q.sid), q.iptables, *rule[:2], "-D",
                            *rule[2:]],
                           capture_output=True)
        if q.proc.poll() is None:
            q.proc.terminate()
        try:
            q.output = q.proc.communicate(timeout=10)[0].strip()
        except subprocess.TimeoutExpired:
            q.proc.kill()
            q.output = q.proc.communicate()[0].strip()
        last = q.output.splitlines()[-1] if q.output else ""
        q.counts = last if last.startswith("accepted ") else ""
        self.queues.remove(q)
        self.released.append(q)

    def undelay_all(self, background: bool = False) -> None:
        """Stop the delays made by faults (and the background ones too when
        ``background``)."""
        for q in list(self.queues):
            if background or not q.background:
                self._undelay(q)

    def heal(self) -> None:
        self.undelay_all()
        for sid in sorted(self.lossy):
            _nft(self.ns(sid), f"delete table inet {PREFIX}", check=False)
            _nft(self.bridge_ns, f"delete table bridge {PREFIX}s{sid}", check=False)
        self.lossy.clear()
        for src, dst in sorted(self.blackholes):
            _ip("-n", self.ns(src), "route", "del", "blackhole", f"{self.addr(dst)}/32",
                check=False)
        self.blackholes.clear()
        for sid in sorted(self.down):
            self.link_up(sid)
        for sid in sorted(self.shaped):
            for ns, dev in ((self.ns(sid), "eth0"), (self.bridge_ns, f"p{sid}")):
                subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev,
                                "root"], capture_output=True)
        self.shaped.clear()


class _Delay:
    """One running verdict loop and the iptables rules that feed it."""

    def __init__(self, sid, peer, queue, proc, iptables, rules, background):
        self.sid, self.peer, self.queue, self.proc = sid, peer, queue, proc
        self.iptables, self.rules, self.background = iptables, rules, background
        self.counts = ""      # the loop's last line: "accepted N dropped N ..."
        self.output = ""


def iptables_command() -> str | None:
    """An iptables that can add the NFQUEUE rules: the default (nft-backed,
    through the kernel's xtables compat) or the legacy one."""
    for name in ("iptables", "iptables-legacy"):
        path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                      else None)
        if path:
            return path
    return None
