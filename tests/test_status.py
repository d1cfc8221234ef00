"""`zabpy status` (GitHub issue #6): the server's mode, like `zkServer.sh status`.

zkServer.sh sends ``srvr`` to the client port and prints its ``Mode:`` line;
it finds the port from zoo.cfg's clientPort, else from the client part
(``;[host:]port``) of this server's ``server.<myid>`` line. These tests run
the command against a real server (the shared ``zk_server`` fixture) and
against a fake four-letter-word responder, which can claim any mode without
building an ensemble.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from zabpy.cli import status
from zabpy.testing.server import free_port

try:  # the shared module-scoped server fixture (zabpy's, else Java's)
    from test_shell import zk_server  # noqa: F401
except ImportError:  # tests/ became a package
    from tests.test_shell import zk_server  # noqa: F401


class FakeFourLetterServer:
    """Answers every connection's first four bytes with a fixed reply, then
    closes, as a ZooKeeper client port does for a four-letter word."""

    def __init__(self, reply: str):
        self.reply = reply.encode()
        self.words: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by __exit__
            with conn:
                self.words.append(conn.recv(4))
                conn.sendall(self.reply)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # shutdown() wakes the blocked accept(); close() alone would not.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)


def _srvr_reply(mode: str) -> str:
    return ("Zookeeper version: 3.8.0, built on 2024-12-29 17:54 UTC\n"
            "Latency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\n"
            f"Outstanding: 0\nZxid: 0x0\nMode: {mode}\nNode count: 5\n")


def test_parse_mode():
    assert status.parse_mode(_srvr_reply("leader")) == "leader"
    assert status.parse_mode("srvr is not executed because it is not in the whitelist.\n") is None


@pytest.mark.parametrize("mode", ["leader", "follower", "observer", "standalone"])
def test_reports_each_mode(mode, capsys):
    with FakeFourLetterServer(_srvr_reply(mode)) as fake:
        assert status.main(["-server", f"127.0.0.1:{fake.port}"]) == 0
    assert capsys.readouterr().out == f"Mode: {mode}\n"
    assert fake.words == [b"srvr"]


def test_port_from_server_line_and_myid(tmp_path, capsys):
    """No clientPort: zkServer.sh reads server.<myid>'s ``;host:port`` part."""
    with FakeFourLetterServer(_srvr_reply("follower")) as fake:
        data = tmp_path / "data"
        data.mkdir()
        (data / "myid").write_text("2\n")
        cfg = tmp_path / "zoo.cfg"
        cfg.write_text(f"tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={data}\n"
                       f"server.1=127.0.0.1:{free_port()}:{free_port()};127.0.0.1:1\n"
                       f"server.2=127.0.0.1:{free_port()}:{free_port()};127.0.0.1:{fake.port}\n"
                       f"server.3=127.0.0.1:{free_port()}:{free_port()};127.0.0.1:3\n")
        assert status.main([str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"Client port found: {fake.port}. Client address: 127.0.0.1." in out
    assert out.endswith("Mode: follower\n")


def test_unreachable_server_exits_1(capsys):
    assert status.main(["--server", f"127.0.0.1:{free_port()}"]) == 1
    assert "It is probably not running" in capsys.readouterr().err


def test_reply_without_mode_exits_1(capsys):
    refusal = "srvr is not executed because it is not in the whitelist.\n"
    with FakeFourLetterServer(refusal) as fake:
        assert status.main(["-server", f"127.0.0.1:{fake.port}"]) == 1
    assert "not in the whitelist" in capsys.readouterr().err


def test_usage_error_exits_2():
    assert status.main(["-server"]) == 2
    assert status.main(["a", "b"]) == 2


def test_real_server_by_address_and_by_zoo_cfg(zk_server, tmp_path):
    cmd = [sys.executable, "-m", "zabpy.cli.main", "status"]
    r = subprocess.run(cmd + ["-server", zk_server.address], capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (0, "Mode: standalone\n"), r.stderr
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path}\nclientPort={zk_server.port}\n"
                   f"clientPortAddress={zk_server.host}\n")
    r = subprocess.run(cmd + [str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"Client port found: {zk_server.port}. Client address: {zk_server.host}. "
        "Client SSL: false.", "Mode: standalone"]
