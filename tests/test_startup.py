"""Start-up: zabpy's dataclass methods come compiled from a cache
(zabpy/_codecache.py), and a server answers its first client without the
modules only optional services need.

The cache may change how fast a class is made, never what it is: these
tests run fresh interpreters with and without a cache file and compare what
their dataclasses do, check that a cache another interpreter wrote (or a torn
one) is not used, and that only texts run in zabpy's modules are cached."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zabpy._codecache as cc
from zabpy.testing import free_port

REPO = Path(__file__).resolve().parent.parent


def _run(code: str, cache: Path | None, *, write: bool = False) -> str:
    """Run ``code`` in a new interpreter using ``cache`` as the code cache file
    (``write``: bytecode may be written, so the cache is saved at exit)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env["ZABPY_CODE_CACHE"] = str(cache) if cache is not None else os.devnull
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONHASHSEED"] = "0"  # reprs holding sets of str are compared
    args = [sys.executable] + ([] if write else ["-B"]) + ["-c", code]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


# What the start-up dataclasses do: repr, equality, frozenness, defaults.
_PROBE = textwrap.dedent("""
    import dataclasses
    import zabpy.cli.server
    from zabpy import _codecache as cc
    from zabpy.runtime.config import default_config, ServerConfig
    from zabpy.server.settings import ServerSettings
    c = default_config()
    s = ServerSettings(server_id=3, tick_ms=2000)
    try:
        s.tick_ms = 1
        frozen = False
    except dataclasses.FrozenInstanceError:
        frozen = True
    print(repr(c), c == default_config(), c == dataclasses.replace(c, client_port=1),
          repr(s), frozen, hash(s) == hash(ServerSettings(server_id=3, tick_ms=2000)),
          ServerConfig.__init__.__annotations__, ServerSettings.__init__.__annotations__,
          ServerConfig.__init__.__defaults__ == ServerConfig().__init__.__defaults__)
    print("hits", cc.DEFAULT.hits, "misses", cc.DEFAULT.misses)
""")


def _split(out: str) -> tuple[str, int, int]:
    body, _, counts = out.rpartition("\n")
    _, hits, _, misses = counts.split()
    return body, int(hits), int(misses)


def test_a_cached_start_makes_the_same_classes_without_compiling_them(tmp_path):
    cache = tmp_path / "dc.bin"
    cold, hits0, misses0 = _split(_run(_PROBE, cache, write=True))
    assert cache.exists() and misses0 > 20 and hits0 == 0
    warm, hits1, misses1 = _split(_run(_PROBE, cache))
    assert warm == cold
    assert misses1 == 0 and hits1 == misses0
    none, hits2, misses2 = _split(_run(_PROBE, None))  # no cache at all
    assert none == cold and hits2 == 0 and misses2 == misses0
    # and as dataclasses makes them with the builtin exec (the cache not installed)
    plain = "import builtins, dataclasses\ndataclasses.exec = builtins.exec\n"
    builtin, hits3, misses3 = _split(_run(plain + _PROBE, None))
    assert builtin == cold and hits3 == misses3 == 0


def test_warm_writes_what_a_server_imports_even_without_bytecode_writing(tmp_path):
    cache = tmp_path / "dc.bin"
    out = _run("import zabpy._codecache as c; print(c.warm())", cache)  # -B: no bytecode
    assert int(out) > 20 and cache.exists()
    _, hits, misses = _split(_run(_PROBE, cache))
    assert misses == 0 and hits > 20


def test_a_cache_from_another_interpreter_or_torn_is_not_used(tmp_path):
    cache = tmp_path / "dc.bin"
    _run(_PROBE, cache, write=True)
    good = cache.read_bytes()
    for bad in (b"\0\0\0\0" + good[4:], good[: len(good) // 2], b""):
        cache.write_bytes(bad)
        body, hits, misses = _split(_run(_PROBE, cache))
        assert hits == 0 and misses > 20
        assert body == _split(_run(_PROBE, None))[0]


def test_only_texts_run_in_zabpy_modules_are_cached(tmp_path):
    cache = cc.CodeCache(str(tmp_path / "dc.bin"))
    text = "def f(x):\n return x + 1\n"
    ours: dict = {"__name__": "zabpy.example"}
    theirs: dict = {"__name__": "example"}
    cache.exec(text, ours, ours)
    cache.exec(text, theirs, theirs)
    assert ours["f"](1) == theirs["f"](1) == 2
    assert (cache.hits, cache.misses) == (0, 1)
    cache.exec(text, ours, ours)
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.code(text) == compile(text, "<string>", "exec", dont_inherit=True)


def test_save_follows_dont_write_bytecode_and_keeps_a_bounded_file(tmp_path, monkeypatch):
    path = tmp_path / "dc.bin"
    cache = cc.CodeCache(str(path))
    g: dict = {"__name__": "zabpy.example"}
    for i in range(5):
        cache.exec(f"v{i} = {i}\n", g, g)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert not cache.save() and not path.exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert cache.save() and path.exists()
    assert not cache.save()  # nothing new since
    # a later process that used only one text, over the bound: keeps just that one
    monkeypatch.setattr(cc, "CODE_CACHE_ENTRIES_MAX", 3)
    later = cc.CodeCache(str(path))
    later.exec("v9 = 9\n", g, g)
    assert later.save()
    again = cc.CodeCache(str(path))
    again.exec("v9 = 9\n", g, g)
    again.exec("v0 = 0\n", g, g)
    assert (again.hits, again.misses) == (1, 1)


def test_a_cache_that_cannot_be_written_is_left_unwritten_and_the_text_still_runs(tmp_path):
    """A package directory that cannot be written (here: its __pycache__ is a
    file, which stops root too): save reports False, leaves no temporary
    file, and what was compiled runs all the same."""
    blocker = tmp_path / "__pycache__"
    blocker.write_bytes(b"")
    cache = cc.CodeCache(str(blocker / "dc.bin"))
    g: dict = {"__name__": "zabpy.example"}
    cache.exec("v = 1\n", g, g)
    assert g["v"] == 1 and cache.misses == 1
    assert not cache.save()
    assert os.listdir(tmp_path) == ["__pycache__"] and blocker.read_bytes() == b""


def test_a_dataclass_outside_zabpy_is_made_as_without_the_cache():
    import zabpy  # installs it
    assert zabpy._codecache is cc

    @dataclasses.dataclass(frozen=True)
    class Point:  # declared with stringified annotations (this module's future import)
        x: int
        y: str = "a"

    # __init__'s annotations are the field types, not the names in its source
    # text (which the text compiled with zabpy's future flags would give)
    assert Point.__init__.__annotations__ == {"x": "int", "y": "str", "return": None}
    assert Point(1) == Point(1, "a") and repr(Point(2)) == "test_a_dataclass_outside_zabpy" \
        "_is_made_as_without_the_cache.<locals>.Point(x=2, y='a')"


def test_dataclasses_made_in_this_process_go_through_the_installed_cache():
    import zabpy  # installs it
    assert zabpy._codecache is cc
    assert dataclasses.exec == cc.DEFAULT.exec  # type: ignore[attr-defined]


# ---- what a server imports before its first client is served -----------------

_OPTIONAL = ("aiohttp", "prometheus_client", "zabpy.admin.http", "zabpy.admin.metrics",
             "zabpy.httpapi", "zabpy.runtime.ensemble", "zabpy.server.leader",
             "zabpy.election", "zabpy.zab", "zabpy.runtime.tls", "zabpy.auth.jaas",
             "zabpy.runtime.gssapi_server", "zabpy.cli.shell", "gssapi", "snappy")

_SERVE_ONCE = textwrap.dedent("""
    import os, signal, sys, threading, time
    sys.argv = ["zabpy", "server", "--port", "{port}", "--data-dir", {data!r}]
    from kazoo.client import KazooClient  # imported before the server, and never by it
    loaded_by_client = set(sys.modules)
    def first_client():
        while True:
            c = KazooClient(hosts="127.0.0.1:{port}")
            try:
                c.start(timeout=2)
                break
            except Exception:
                time.sleep(0.05)
        deadline = time.monotonic() + 60
        while not set({wait!r}) <= set(sys.modules) and time.monotonic() < deadline:
            time.sleep(0.05)  # an enabled service loads beside the serving loop
        seen = sorted(m for m in sys.modules if m not in loaded_by_client
                      and m.split(".")[0] in ("aiohttp", "prometheus_client", "zabpy",
                                               "gssapi", "snappy"))
        c.stop()
        c.close()
        print("\\n".join(seen), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=first_client, daemon=True).start()
    import runpy
    runpy.run_module("zabpy", run_name="__main__")
""")


def _modules_when_first_served(tmp_path, cfg_lines: list[str] | None = None,
                               wait: tuple[str, ...] = ()) -> set[str]:
    port = free_port()
    code = _SERVE_ONCE.format(port=port, data=str(tmp_path / "data"), wait=list(wait))
    if cfg_lines is not None:
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text("\n".join([f"clientPort={port}", f"dataDir={tmp_path / 'data'}",
                                  "clientPortAddress=127.0.0.1", *cfg_lines, ""]))
        code = code.replace('"server", "--port"', f'"server", {str(cfg)!r}, "--port"')
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, err[-3000:]
    return set(out.split())


def _optional_in(modules: set[str]) -> set[str]:
    return {m for m in modules for o in _OPTIONAL if m == o or m.startswith(o + ".")}


def test_the_first_client_is_served_without_the_optional_services_modules(tmp_path):
    mods = _modules_when_first_served(tmp_path, ["admin.enableServer=false"])
    assert "zabpy.runtime.server" in mods and "zabpy.storage.files" in mods
    assert _optional_in(mods) == set()


@pytest.mark.parametrize("line,expected", [
    ("admin.enableServer=true", {"aiohttp", "zabpy.admin.http"}),
    ("metricsProvider.className=org.apache.zookeeper.metrics.prometheus."
     "PrometheusMetricsProvider", {"prometheus_client", "zabpy.admin.metrics"}),
])
def test_an_enabled_service_does_load_its_modules(tmp_path, line, expected):
    # the check above can fail: with the service on, its modules are there
    # once the server has served (they load beside the serving loop)
    port_lines = [f"admin.serverPort={free_port()}", "admin.serverAddress=127.0.0.1",
                  f"metricsProvider.httpPort={free_port()}", "metricsProvider.httpHost=127.0.0.1"]
    if line.startswith("metrics"):
        port_lines.append("admin.enableServer=false")
    mods = _modules_when_first_served(tmp_path, [line, *port_lines], wait=tuple(expected))
    assert expected <= _optional_in(mods)


# Standard modules a server imported before it served and no longer does
# (each where it is used): checked in an interpreter without site's .pth
# hooks (python -S, site-packages on the path), whose imports would hide them.
_DEFERRED_STDLIB = ("argparse", "gettext", "shutil", "hashlib", "_hashlib", "hmac", "shlex",
                    "secrets", "getpass", "termios", "random")

_SERVE_ONCE_BARE = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}]
    sys.path += {site!r}
    import os, signal, socket, struct, threading, time
    sys.argv = ["zabpy", "server", {cfg!r}, "--port", "{port}", "--host", "127.0.0.1",
                "--data-dir", {data!r}]
    loaded_before = set(sys.modules)
    def first_client():  # a ConnectRequest by hand: the client imports nothing
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", {port}), timeout=30)
                break
            except OSError:
                time.sleep(0.02)
        body = struct.pack(">iqiqi16s?", 0, 0, 10000, 0, 16, bytes(16), False)
        c.sendall(struct.pack(">i", len(body)) + body)
        reply = c.recv(4)
        c.close()
        seen = sorted(m for m in sys.modules if m not in loaded_before)
        print(len(reply), "\\n".join(seen), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=first_client, daemon=True).start()
    import runpy
    runpy.run_module("zabpy", run_name="__main__")
""")


def test_the_first_client_is_served_without_the_deferred_standard_modules(tmp_path):
    import site
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("admin.enableServer=false\n")
    code = _SERVE_ONCE_BARE.format(repo=str(REPO), site=site.getsitepackages(), port=port,
                                   data=str(tmp_path / "data"), cfg=str(cfg))
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       timeout=120, start_new_session=True)
    assert p.returncode == 0, p.stderr[-3000:]
    answered, *mods = p.stdout.split()
    assert answered == "4"  # the reply's length prefix came: the client was served
    assert "zabpy.runtime.server" in mods and "uvloop" in mods
    # random: the txn store's jitter needs it (imported where the store is made)
    assert sorted(set(mods) & set(_DEFERRED_STDLIB)) == ["random"]
    assert _optional_in(set(mods)) == set()


# ---- path characters: ASCII checked without compiling the wide class ----------

def test_the_quick_path_check_refuses_exactly_the_characters_zookeeper_refuses():
    from zabpy.tree.paths import _bad_char, _no_bad_char, validate_path
    points = list(range(0x10000)) + [0x10000, 0x1F600, 0xE0001, 0x10FFFF]
    assert [hex(o) for o in points if _no_bad_char("/a" + chr(o)) == _bad_char(chr(o))] == []
    assert validate_path("/a\x7fb") == "invalid character @2"
    assert validate_path("/caf\u00e9/x") is None and validate_path("/\U0001F600") is not None


def test_ascii_paths_are_checked_without_the_wide_character_class():
    out = _run("from zabpy.tree import paths as p\n"
               "assert p.validate_path('/a/b-c_d.e') is None\n"
               "print(p._BAD_CHARS is None)\n"
               "p.validate_path('/caf\\u00e9')\n"
               "print(p._BAD_CHARS is None)\n", None)
    assert out.split() == ["True", "False"]


# ---- a fresh directory's snapshot.0: durable before any txn, not before listening ----

def _fresh_store(d: Path, **kw):
    from zabpy.storage import TxnStore
    from zabpy.tree.datatree import DataTree
    store = TxnStore(str(d), pre_alloc_size=4096, **kw)
    store.restore(DataTree())
    return store


def _create_txn(zxid: int):
    from zabpy.jute import records as R
    from zabpy.jute.constants import OpCode
    return (R.TxnHeader(0x1234, 1, zxid, 1_700_000_000_000, OpCode.create),
            R.CreateTxn("/a", b"x", [R.ACL(31, R.Id("world", "anyone"))], False, 1))


def test_the_empty_base_snapshot_is_synced_by_sync_base_or_the_first_flush(tmp_path):
    from zabpy.storage import datadir as D
    store = _fresh_store(tmp_path / "a")
    snap = store.unsynced_base
    assert snap is not None and D.is_valid_snapshot(snap)  # written, not yet synced
    store.sync_base()
    assert store.unsynced_base is None
    store.sync_base()  # once only
    store.close()
    store = _fresh_store(tmp_path / "b")
    assert store.unsynced_base is not None
    store.append(*_create_txn(1))
    store.flush_and_sync()
    assert store.unsynced_base is None and os.path.getsize(store.log_path) > 16
    store.close()
    # forceSync=no: written durably at once, as before (no flush would sync it)
    store = _fresh_store(tmp_path / "c", force_sync=False)
    assert store.unsynced_base is None
    store.close()


def test_no_txn_is_logged_when_its_base_snapshot_cannot_be_made_durable(tmp_path):
    from zabpy.storage import TxnStore
    from zabpy.tree.datatree import DataTree
    store = _fresh_store(tmp_path)
    os.unlink(store.unsynced_base)  # the base is gone: it cannot be synced
    store.append(*_create_txn(1))
    with pytest.raises(OSError):
        store.flush_and_sync()
    assert store.failed is not None and store.log_path is None  # no log file was begun
    assert not any(n.startswith("log.") for n in os.listdir(store.log_dir))
    store.close()
    again = TxnStore(str(tmp_path), pre_alloc_size=4096)
    assert again.restore(DataTree()) == {} and again.unsynced_base is not None  # fresh again
    again.close()


def test_a_base_purged_after_a_durable_snapshot_superseded_it_does_not_stop_the_log(tmp_path):
    from zabpy.storage.files import write_snapshot_file
    from zabpy.tree.datatree import DataTree
    store = _fresh_store(tmp_path)
    base = store.unsynced_base
    write_snapshot_file(store.snap_dir, DataTree(), {}, 0x10)  # durable, newer
    os.unlink(base)  # what purge would do once newer snapshots are kept
    store.append(*_create_txn(0x11))
    store.flush_and_sync()
    assert store.failed is None and store.unsynced_base is None
    store.close()


# ---- the command line: parsed without argparse when argparse would agree ----

def _argv_corpus():
    import itertools
    import random
    pieces = ["zoo.cfg", "/etc/z.cfg", "", "a=b", "--port", "2182", "--port=2182", "--port=",
              "--port", "x", "--host", "127.0.0.1", "--host=", "--data-dir", "/d", "--data-dir=/e",
              "--tick-time", "100", "--tick-time=-5", "--jaas", "j.conf", "--log-level", "DEBUG",
              "--log-level=WARN", "--log-file", "f.log", "--log-max-bytes", "10", "--log-backups",
              "1_0", "--log-backups= 3 ", "--po", "5", "-h", "--help", "--", "-", "-1", "--port",
              "--bogus", "1", "--host", "--log-file=-x", "--data-dir", "-d", " 7"]
    rng = random.Random(7)
    yield []
    for n in (1, 2, 3):
        yield from ([p] for p in pieces) if n == 1 else itertools.islice(
            itertools.product(pieces, repeat=n), 0, None, 7)
    for _ in range(3000):
        yield [rng.choice(pieces) for _ in range(rng.randint(1, 8))]


def test_the_plain_parse_agrees_with_argparse_wherever_it_answers(capsys):
    from zabpy.cli import server as S
    answered = 0
    for argv in _argv_corpus():
        plain = S._parse_plain(list(argv))
        if plain is None:
            continue
        answered += 1
        try:
            full = vars(S._parser().parse_args(list(argv)))
        except SystemExit:
            full = "argparse refused it"
        assert vars(plain) == full, argv
    assert answered > 1000


def test_the_usual_command_lines_need_no_argparse():
    out = _run("import sys\n"
               "from zabpy.cli import server as S\n"
               "a = S.parse_args(['/c/zoo.cfg'])\n"
               "b = S.parse_args(['--port', '2182', '--data-dir=/d', '--log-level', 'WARN'])\n"
               "print(a.config, b.port, b.data_dir, b.log_level, b.config, 'argparse' in sys.modules)\n"
               "S.parse_args(['--port=2', '--po', '3'])\n"   # an abbreviation: argparse's
               "print('argparse' in sys.modules)\n", None)
    assert out.split() == ["/c/zoo.cfg", "2182", "/d", "WARN", "None", "False", "True"]


# ---- the client port listens before the rest of the server is imported -------

def test_the_client_port_listens_before_the_runtime_is_imported():
    """As ZooKeeper binds its client port before it loads its database: a
    client that connects while the server starts is accepted by the kernel
    and served when the server is, not refused (runtime/listen.py)."""
    port = free_port()
    out = _run(textwrap.dedent(f"""
        import socket, sys
        from zabpy.cli import server as S
        def rest(cfg, warnings, log, listening, bind_error):
            c = socket.create_connection(("127.0.0.1", {port}), timeout=5)
            c.close()
            print("connected", listening.getsockname()[1], bind_error,
                  "zabpy.runtime.server" in sys.modules, "uvloop" in sys.modules)
            return 0
        S._configured = rest
        print("exit", S.main(["--port", "{port}", "--host", "127.0.0.1"]))
    """), None)
    assert out.split() == ["connected", str(port), "None", "False", "False", "exit", "0"]


def _server(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zabpy", "server", *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_a_busy_client_port_stops_the_server_after_the_config_checks(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        p = _server(tmp_path, "--port", port, "--host", "127.0.0.1")
        assert p.returncode == 1
        out = p.stdout + p.stderr
        assert "Unable to start the server: [Errno 98] error while attempting to bind on " \
               f"address ('127.0.0.1', {port}): address already in use" in out
        # a config error is still reported as one (exit 2), port or no port
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"clientPort={port}\nclientPortAddress=127.0.0.1\n"
                       f"java.security.auth.login.config={tmp_path / 'missing.jaas'}\n")
        p = _server(tmp_path, str(cfg))
        assert p.returncode == 2 and "Invalid configuration" in p.stdout + p.stderr


@pytest.mark.parametrize("env", [{}, {"USER": "alice"}, {"LOGNAME": "bob", "USER": "alice"},
                                 {"USERNAME": "carol"}, {"LNAME": "dave", "USER": ""}])
def test_the_audit_user_is_what_getpass_answers(monkeypatch, env):
    import getpass
    from zabpy.runtime.security import _server_user
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _server_user() == getpass.getuser()
