"""`zabpy server` as a user runs it: embedded default, zoo.cfg, bad config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from kazoo.client import KazooClient

from zabpy.testing import four_letter_word, free_port, wait_for


def _start(args, cwd=None):
    return subprocess.Popen([sys.executable, "-m", "zabpy", "server", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serving(port):
    try:
        return "Mode: standalone" in four_letter_word("127.0.0.1", port, "srvr", 1)
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the server binds (a TIME_WAIT left by an earlier run is no obstacle)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_no_config_serves_on_2181():
    if not _port_free(2181):
        pytest.skip("port 2181 is taken on this machine")
    proc = _start([])
    try:
        wait_for(lambda: _serving(2181), 20, what="zabpy on 2181")
        c = KazooClient(hosts="127.0.0.1:2181")
        c.start(timeout=10)
        assert c.create("/hello", b"world") == "/hello"
        c.stop()
    finally:
        _stop(proc)
    # SIGTERM stops it cleanly
    assert proc.returncode == 0


def test_zoo_cfg_with_java_only_keys_warns_and_serves(tmp_path):
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={tmp_path}/data\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
                   "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
    proc = _start([str(cfg)])
    try:
        wait_for(lambda: _serving(port), 20, what="zabpy on its zoo.cfg port")
    finally:
        _stop(proc)
    out = proc.stdout.read()
    assert "serverCnxnFactory" in out and "WARN" in out


def test_bad_value_names_key_and_line(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("tickTime=2000\nclientPort=notaport\n")
    proc = _start([str(cfg)])
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "clientPort" in out and ":2:" in out


def test_port_override(tmp_path):
    port = free_port()
    proc = _start(["--port", str(port)])
    try:
        wait_for(lambda: _serving(port), 20, what="zabpy on --port")
    finally:
        _stop(proc)


def test_pytest_fixture(zabpy_server):
    c = KazooClient(hosts=zabpy_server.hosts)
    c.start(timeout=10)
    c.create("/from-fixture")
    assert c.exists("/from-fixture")
    c.stop()
