"""A broken invariant stops the server (runtime/fatal.py; STYLE.md "A broken
invariant stops the process"; TigerBeetle's assertions, raft's ``Panicf``).

ZooKeeper's counterpart is ``ServiceUtils.requestSystemExit`` after an
unexpected exception in a critical thread (ZooKeeperCriticalThread): the
process ends instead of serving from a state that may be wrong. Each test
plants an ``assert False, "planted"`` in one callback path and checks the
outcomes: one CRITICAL line naming it, no more serving, and (for the
``zabpy server`` process) a non-zero exit status, ``FATAL_EXIT_CODE``.

The fault is planted by monkeypatching in the test (or in the child process
through ``python -c``), never by a hook in production code.
"""

import asyncio
import logging
import socket
import struct
import subprocess
import sys
import textwrap

import pytest
from rawclient import RawClient

from zabpy.election import Notification, ServerState
from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.runtime.election_transport import ElectionTransport
from zabpy.runtime.fatal import FATAL_EXIT_CODE, fail_stop, install_fail_stop_handler
from zabpy.runtime.quorum_transport import QuorumTransport
from zabpy.testing.server import ZabpyServer, free_port, free_ports, four_letter_word, wait_for
from zabpy.zab import packets as P
from zabpy.zab.packets import PacketType

# The child: the normal CLI, with one core method broken first.
_PLANTED_SERVER = textwrap.dedent("""
    import sys
    from zabpy.server.standalone import StandaloneServer

    def request(self, *args, **kwargs):
        assert False, "planted"

    StandaloneServer.request = request
    from zabpy.cli.main import main
    sys.exit(main(["server", sys.argv[1]]))
""")


def _critical_lines(text: str) -> list[str]:
    # The log4j layout names CRITICAL "FATAL" (runtime/logging.py).
    return [line for line in text.splitlines() if " - FATAL " in line]


def _can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_cli_server_exits_70_after_an_assertion_in_a_client_callback(tmp_path):
    """data_received -> request -> AssertionError: one FATAL line, exit 70."""
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=200\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                   "admin.enableServer=false\n4lw.commands.whitelist=*\n")
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", _PLANTED_SERVER, str(cfg)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving():
            assert proc.poll() is None, log_path.read_text()
            try:
                return "Mode:" in four_letter_word("127.0.0.1", port, "srvr", 1)
            except OSError:
                return False
        wait_for(serving, 30, what="the planted server")
        client = RawClient(port)
        client.handshake()
        client.send(OpCode.exists, R.ExistsRequest("/", False))
        assert client.closed_by_server()  # no reply: the transport was aborted
        client.close()
        assert proc.wait(30) == FATAL_EXIT_CODE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    fatal = _critical_lines(text)
    assert len(fatal) == 1, text
    assert "invariant broken in client data_received: AssertionError: planted" in fatal[0]
    assert "Traceback" in text  # in the same record, after the one line


@pytest.fixture
def server():
    with ZabpyServer() as zk:
        yield zk


def _wait_broken(zk: ZabpyServer) -> str:
    wait_for(lambda: zk.runtime.fatal.is_set(), 10, what="the fail-stop")
    return zk.runtime.broken


def test_call_soon_flush_assertion_halts_an_in_process_server(server, caplog):
    """The call_soon flush breaks: the runtime stops serving and sets
    ``fatal``; the test process (the owner of the thread) lives on."""
    caplog.set_level(logging.DEBUG, logger="zabpy")
    client = RawClient(server.port)
    client.handshake()
    rt = server.runtime

    class BrokenReady:
        """The core, but its ``ready`` breaks (a proxy: the compiled build's
        core takes no attribute set on it)."""
        def __init__(self, core):
            self._core = core

        def ready(self):
            assert False, "planted"

        def __getattr__(self, name):
            return getattr(self._core, name)

    def plant():
        rt.server = BrokenReady(rt.server)
        rt._schedule_flush()
    server.call(plant)
    assert _wait_broken(server) == "call_soon flush: AssertionError: planted"
    assert client.closed_by_server()
    client.close()
    assert not _can_connect(server.port)  # the listener is closed
    fatal = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(fatal) == 1
    assert fatal[0].getMessage() == ("invariant broken in call_soon flush: "
                                     "AssertionError: planted")
    assert fatal[0].exc_info is not None


def test_an_unguarded_callback_is_caught_by_the_loop_handler(server, caplog):
    """The backstop: an exception reaching asyncio's exception handler from
    a callback nobody guarded is fatal as well."""
    def unguarded():
        assert False, "planted"
    server.call(lambda: asyncio.get_running_loop().call_soon(unguarded))
    assert "AssertionError: planted" in _wait_broken(server)
    assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 1


def test_a_second_break_logs_no_second_critical_line(caplog):
    class Runtime:
        def __init__(self):
            self.fatal = asyncio.Event()
            self.broken = None
            self.halts = 0

        def halt(self):
            self.halts += 1
    rt = Runtime()
    fail_stop(rt, AssertionError("first"), "here")
    fail_stop(rt, AssertionError("echo"), "there")
    assert rt.fatal.is_set() and rt.halts == 1
    assert rt.broken == "here: AssertionError: first"
    assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 1


# ---- the quorum transport: the core's assertion is not a closed link ----

class _FakeRuntime:
    def __init__(self):
        self.fatal = asyncio.Event()
        self.broken = None

    def halt(self):
        pass


async def _quorum_case(payloads: list[bytes], on_packet):
    """Send each payload once the previous one reached ``on_packet``; then
    read until the leader side closes the link."""
    rt = _FakeRuntime()
    restore = install_fail_stop_handler(asyncio.get_running_loop(), rt)
    arrived = asyncio.Event()

    def on_packet_then_signal(sid, pkt):
        try:
            on_packet(sid, pkt)
        finally:
            arrived.set()
    qt = QuorumTransport(on_packet_then_signal, lambda sid: None)
    try:
        port = await qt.listen("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i, data in enumerate(payloads):
            if i:
                await arrived.wait()
                arrived.clear()
            writer.write(data)
            await writer.drain()
        await reader.read()  # the leader side closes the link either way
        writer.close()
        return rt
    finally:
        await qt.aclose()
        restore()


def _learner_info_bytes(sid: int) -> bytes:
    return P.encode_packet(P.learner_info(PacketType.FOLLOWERINFO, sid, 0, 0))


def test_quorum_on_packet_assertion_fail_stops(caplog):
    def on_packet(sid, pkt):
        assert False, "planted"
    rt = asyncio.run(_quorum_case([_learner_info_bytes(2)], on_packet))
    assert rt.broken == "quorum link from server 2: AssertionError: planted"


def test_quorum_undecodable_frame_is_one_warning_naming_the_peer(caplog):
    caplog.set_level(logging.INFO, logger="zabpy.quorum")
    seen = []
    # QuorumPacket(type, zxid, data): a data length beyond any limit
    garbage = struct.pack(">iqi", PacketType.PING, 0, 2**31 - 1)
    rt = asyncio.run(_quorum_case([_learner_info_bytes(2), garbage],
                                  lambda sid, pkt: seen.append(sid)))
    assert rt.broken is None and seen == [2]
    lines = [r.getMessage() for r in caplog.records if r.name == "zabpy.quorum"]
    assert len(lines) == 1 and lines[0].startswith("Closing quorum link from server 2 ")
    assert "undecodable packet" in lines[0]


# ---- the election transport: a link task's own bug is not a lost link ----

async def _election_case():
    rt = _FakeRuntime()
    restore = install_fail_stop_handler(asyncio.get_running_loop(), rt)
    p1, p2 = free_ports(2)
    peers = {1: ("127.0.0.1", p1), 2: ("127.0.0.1", p2)}
    t1, t2 = ElectionTransport(1, peers, redial_ms=20), ElectionTransport(2, peers, redial_ms=20)

    def broken_deliver(sid, n):
        assert False, "planted"
    t1._deliver = broken_deliver
    try:
        async with asyncio.TaskGroup() as tg:
            for t in (t1, t2):
                tg.create_task(t.run())
                await t.wait_started()
            t2.send(1, Notification(ServerState.LOOKING, 2, 0, 1, 0))
            await asyncio.wait_for(rt.fatal.wait(), 10)
            t1.close()
            t2.close()
    finally:
        restore()
    return rt


def test_election_link_assertion_fail_stops():
    rt = asyncio.run(_election_case())
    assert rt.broken == "election link to 2 (read): AssertionError: planted"
