"""`zabpy shell` (GitHub issue #6): zkCli.sh 3.8 behaviour, driven three ways.

- pure functions of shell_text (tokenising, flags, output formats), whose
  expected strings were captured from Debian's zkCli.sh 3.8.0;
- one-shot mode through a subprocess: output and exit codes (0 ok, 1 a
  ZooKeeper error such as NoNode, 2 a usage error);
- the interactive shell through a pseudo-terminal (pexpect): create, ls, get,
  a watch firing, Tab completion of a command and of a path, history, quit.

The server is zabpy's own (zabpy.testing.ZabpyServer) when that exists and
answers, else Debian's Java ZooKeeper on a free port; the module-scoped
``zk_server`` fixture picks, and test_status.py reuses it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from zabpy.cli.shell import complete_line, execute_line, parse_args
from zabpy.cli.shell_client import ShellSession
from zabpy.cli.shell_commands import ShellContext
from zabpy.cli.shell_text import (UsageError, format_acls, format_children, format_stat,
                                  keeper_error_message, parse_acl, parse_command, tokenize,
                                  validate_path)
from zabpy.jute.constants import Err
from zabpy.jute.records import Stat
from zabpy.testing.server import free_port

JAVA_JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/zookeeper-jute.jar",
             "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"]
START_DEADLINE_S = 60.0


# ---- server fixture -------------------------------------------------------------

@dataclass
class RunningServer:
    host: str
    port: int
    kind: str  # "zabpy" or "java"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _answers_srvr(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"srvr")
            return b"Mode:" in sock.recv(4096)
    except OSError:
        return False


def _kazoo_works(port: int) -> bool:
    from kazoo.client import KazooClient
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=5.0)
    try:
        client.start(timeout=10.0)
        return "zookeeper" in client.get_children("/")
    except Exception:
        return False
    finally:
        client.stop()
        client.close()


@contextlib.contextmanager
def _zabpy_server():
    """zabpy's server, if zabpy.testing provides one and it serves kazoo."""
    try:
        from zabpy.testing import ZabpyServer  # type: ignore[attr-defined]
    except ImportError:
        yield None
        return
    try:
        manager = ZabpyServer()
        server = manager.__enter__()
    except Exception:
        yield None
        return
    try:
        port = getattr(server, "client_port", None) or server.port
        yield RunningServer("127.0.0.1", port, "zabpy") if _kazoo_works(port) else None
    finally:
        manager.__exit__(None, None, None)


@contextlib.contextmanager
def _java_server(workdir):
    if shutil.which("java") is None or not all(os.path.exists(j) for j in JAVA_JARS):
        pytest.skip("no zabpy.testing.ZabpyServer and no java + Debian zookeeper jars")
    port = free_port()
    data = workdir / "data"
    data.mkdir()
    cfg = workdir / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={data}\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
                   "admin.enableServer=false\nextendedTypesEnabled=true\n")
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", ":".join(JAVA_JARS),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not _answers_srvr(port):
            assert proc.poll() is None, (workdir / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "java ZooKeeper did not start"
            time.sleep(0.1)  # polling a condition: the port is not up yet
        yield RunningServer("127.0.0.1", port, "java")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory):
    """zabpy first; ZABPY_TEST_SERVER=java forces the reference server."""
    if os.environ.get("ZABPY_TEST_SERVER") == "java":
        with _java_server(tmp_path_factory.mktemp("zk")) as server:
            yield server
        return
    with _zabpy_server() as server:
        if server is not None:
            yield server
            return
    with _java_server(tmp_path_factory.mktemp("zk")) as server:
        yield server


def _shell(server: RunningServer, *args: str, stdin: str | None = None,
           timeout_ms: int = 10_000) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "zabpy.cli.main", "shell", "-server", server.address,
           "-timeout", str(timeout_ms), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)


# ---- pure functions (formats captured from zkCli.sh 3.8.0) -----------------------

def test_tokenize_groups_double_quotes_only():
    assert tokenize('create /a "hello world"  x') == ["create", "/a", "hello world", "x"]
    assert tokenize("set /a 'q r'") == ["set", "/a", "'q", "r'"]


def test_parse_flags_anywhere_bundled_and_valued():
    cmd = parse_command(["create", "-es", "/n", "data"])
    assert cmd.flags == {"e": True, "s": True} and cmd.args == ["/n", "data"]
    cmd = parse_command(["removewatches", "/p", "-d"])
    assert cmd.has("d") and cmd.args == ["/p"]
    cmd = parse_command(["set", "-v", "3", "/n", "--", "-1"])
    assert cmd.flags == {"v": "3"} and cmd.args == ["/n", "-1"]


@pytest.mark.parametrize("words,message", [
    (["ls"], "ls [-s] [-w] [-R] path"),
    (["ls", "-x", "/"], "Unrecognized option: -x"),
    (["bogus"], "Command not found: Command not found bogus"),
    (["create", "-t"], "Missing argument for option: t"),
])
def test_parse_usage_errors(words, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_command(words)


def test_validate_path():
    assert validate_path("/a/b") == "/a/b"
    assert validate_path("/a/", sequential=True) == "/a/"
    for bad, message in [("a", "must start with /"), ("/a/", "must not end with /"),
                         ("/a//b", "empty node name"), ("/a/../b", "relative paths")]:
        with pytest.raises(UsageError, match=message):
            validate_path(bad)


def test_format_children_and_acls():
    assert format_children(["zookeeper", "a", "e"]) == "[a, e, zookeeper]"
    assert format_children([]) == "[]"
    assert format_acls([(31, "world", "anyone")]) == "'world,'anyone\n: cdrwa"
    assert format_acls([(1, "ip", "10.0.0.1")]) == "'ip,'10.0.0.1\n: r"
    assert parse_acl("world:anyone:r,digest:u:abc=:cdrwa") == [
        (1, "world", "anyone"), (31, "digest", "u:abc=")]


def test_format_stat_matches_zkcli_lines():
    stat = Stat(czxid=3, mzxid=0x14, ctime=0, mtime=0, version=2, cversion=1, aversion=0,
                ephemeralOwner=-0x8000000000000000, dataLength=5, numChildren=1, pzxid=7)
    lines = format_stat(stat).splitlines()
    assert [line.split(" = ")[0] for line in lines] == [
        "cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion",
        "aclVersion", "ephemeralOwner", "dataLength", "numChildren"]
    assert lines[0] == "cZxid = 0x3" and lines[2] == "mZxid = 0x14"
    assert lines[8] == "ephemeralOwner = 0x8000000000000000"  # Long.toHexString
    if time.localtime(0).tm_zone == "UTC":
        assert lines[1] == "ctime = Thu Jan 01 00:00:00 UTC 1970"


def test_keeper_error_messages():
    assert keeper_error_message(Err.NONODE, "/x") == "Node does not exist: /x"
    assert keeper_error_message(Err.NODEEXISTS, "/x") == "Node already exists: /x"
    assert keeper_error_message(Err.NOTEMPTY, "/x") == "Node not empty: /x"
    assert keeper_error_message(Err.BADVERSION, "/x") == "version No is not valid : /x"
    assert keeper_error_message(Err.UNIMPLEMENTED, "/t") == "KeeperErrorCode = Unimplemented for /t"


def test_parse_args():
    assert parse_args(["--server", "h:1", "-timeout", "5", "ls", "/"]) == ("h:1", 5, ["ls", "/"])
    assert parse_args([]) == ("127.0.0.1:2181", 30_000, [])
    with pytest.raises(UsageError):
        parse_args(["-timeout", "soon"])


# ---- against a server, in process --------------------------------------------------

@pytest.fixture
def context(zk_server):
    ctx_out: list[str] = []
    ctx = ShellContext(server=zk_server.address, timeout_ms=10_000, out=ctx_out.append)
    ctx.make_session = lambda s: ShellSession(s, 10_000)
    ctx.session = ctx.make_session(zk_server.address)
    assert ctx.session.start(wait=True)
    ctx.lines = ctx_out  # type: ignore[attr-defined]
    yield ctx
    if ctx.session is not None:
        ctx.session.close()


def test_completion_of_commands_and_paths(context):
    errors: list[str] = []
    assert execute_line(context, "create /compl", errors.append) == 0
    for child in ("alpha", "alps", "beta"):
        assert execute_line(context, f"create /compl/{child}", errors.append) == 0
    assert complete_line(context, "getA") == ("getA", ["getAcl", "getAllChildrenNumber"])
    assert complete_line(context, "ls /compl/al") == (
        "/compl/al", ["/compl/alpha", "/compl/alps"])
    assert complete_line(context, "ls /comp")[1] == ["/compl"]
    assert complete_line(context, "ls x") == ("x", [])
    assert errors == []


def test_commands_in_process(context):
    errors: list[str] = []
    run = lambda line: execute_line(context, line, errors.append)  # noqa: E731
    assert run("create -e /inproc-eph") == 0
    assert run("create -s /inproc-seq- d") == 0
    assert run("create /inproc") == 0 and run("create /inproc/x") == 0
    context.lines.clear()
    assert run("getEphemerals /inproc-") == 0
    assert run("getAllChildrenNumber /inproc") == 0
    assert run("get /inproc") == 0  # created without data: zkCli prints null
    assert run("sync /inproc") == 0
    assert context.lines == ["[/inproc-eph]", "1", "null", "Sync is OK"]
    assert run("deleteall /inproc") == 0 and run("ls /inproc") == 1
    assert errors[-1] == "Node does not exist: /inproc"
    assert run("create -c -s /bad") == 2
    assert run("history") == 0
    assert context.lines[-1].endswith(" - history")


# ---- one-shot mode -----------------------------------------------------------------------

def test_one_shot_success_and_output(zk_server):
    r = _shell(zk_server, "create", "/oneshot", "some data")
    assert (r.returncode, r.stdout) == (0, "Created /oneshot\n"), r.stderr
    r = _shell(zk_server, "get", "/oneshot")
    assert (r.returncode, r.stdout) == (0, "some data\n")
    r = _shell(zk_server, "ls", "/")
    assert r.returncode == 0 and "oneshot" in r.stdout.strip()[1:-1].split(", ")
    r = _shell(zk_server, "stat", "/oneshot")
    assert r.returncode == 0 and "dataLength = 9" in r.stdout.splitlines()
    r = _shell(zk_server, "getAcl", "/oneshot")
    assert r.stdout == "'world,'anyone\n: cdrwa\n"


def test_one_shot_zookeeper_errors_exit_1(zk_server):
    r = _shell(zk_server, "get", "/no/such/node")
    assert r.returncode == 1
    assert r.stderr.strip() == "Node does not exist: /no/such/node"
    assert r.stdout == ""
    _shell(zk_server, "create", "/dup")
    r = _shell(zk_server, "create", "/dup")
    assert (r.returncode, r.stderr.strip()) == (1, "Node already exists: /dup")
    r = _shell(zk_server, "set", "-v", "42", "/dup", "x")
    assert (r.returncode, r.stderr.strip()) == (1, "version No is not valid : /dup")


def test_one_shot_usage_errors_exit_2(zk_server):
    r = _shell(zk_server, "ls")
    assert (r.returncode, r.stderr.strip()) == (2, "ls [-s] [-w] [-R] path")
    assert _shell(zk_server, "frobnicate", "/").returncode == 2
    assert _shell(zk_server, "get", "relative").returncode == 2
    bad = subprocess.run([sys.executable, "-m", "zabpy.cli.main", "shell", "-timeout", "x", "ls"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2


def test_one_shot_unreachable_server_exits_1():
    r = subprocess.run([sys.executable, "-m", "zabpy.cli.main", "shell", "-server",
                        f"127.0.0.1:{free_port()}", "-timeout", "500", "ls", "/"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Unable to connect" in r.stderr


def test_piped_lines_report_the_worst_exit(zk_server):
    r = _shell(zk_server, stdin="create /piped p\nget /piped\nget /piped-missing\n")
    assert r.returncode == 1
    assert r.stdout == "Created /piped\np\n"
    assert r.stderr.strip() == "Node does not exist: /piped-missing"


# ---- interactive, through a pseudo-terminal ------------------------------------------------

def test_interactive_shell_in_a_pty(zk_server, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    history = tmp_path / "history"
    env = dict(os.environ, ZABPY_HISTORY=str(history), PROMPT_TOOLKIT_NO_CPR="1",
               TERM="xterm", HOME=str(tmp_path))
    child = pexpect.spawn(sys.executable, ["-m", "zabpy.cli.main", "shell", "-server",
                                           zk_server.address], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    try:
        child.expect(r"\(CONNECTED\) 0\]")
        child.sendline("create /pty-node first-data")
        child.expect("Created /pty-node")
        child.sendline("ls /")
        child.expect(r"\[[^\]]*pty-node[^\]]*\]")
        child.sendline("get -w /pty-node")
        child.expect("first-data")
        child.sendline("set /pty-node second-data")
        child.expect("WatchedEvent state:SyncConnected type:NodeDataChanged path:/pty-node")
        child.sendline("create /pty-completion-target completed-ok")
        child.expect("Created /pty-completion-target")
        # Tab with one candidate inserts it; prompt_toolkit redraws only the
        # inserted tail, so wait for that before pressing Enter.
        child.send("get /pty-comp")
        child.send("\t")
        child.expect("letion-target")
        child.send("\r")
        child.expect("completed-ok")
        child.send("whoa")  # command-name completion
        child.send("\t")
        child.expect("mi")
        child.send("\r")
        child.expect("Auth scheme: User")
        child.sendline("get /pty-missing")
        child.expect("Node does not exist: /pty-missing")
        child.sendline("history")
        child.expect("0 - create /pty-node first-data")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    saved = history.read_text()
    assert "create /pty-node first-data" in saved and "get /pty-completion-target" in saved
