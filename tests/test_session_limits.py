"""Per-session limits (zabpy's own; off by default), against a real server with kazoo.

Over a limit a request gets its documented error code (QUOTAEXCEEDED for
ephemerals and watches, THROTTLEDOP for outstanding request bytes), changes
nothing, and the server writes one log line naming the session; other
sessions are not affected. See server/session_limits.py and docs/http-api.md.
"""

from __future__ import annotations

import logging
import struct

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

from zabpy.jute import records as R
from zabpy.jute.constants import Err, OpCode
from zabpy.testing import ZabpyServer
from rawclient import RawClient

OPEN = [R.ACL(31, R.Id("world", "anyone"))]

pytestmark = pytest.mark.timeout(60)


def _client(zk):
    kz = KazooClient(hosts=zk.hosts)
    kz.start()
    return kz


def _close(*clients):
    for kz in clients:
        kz.stop()
        kz.close()


def _limit_lines(caplog, session_id: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if f"Session 0x{session_id:x} is over its" in r.getMessage()]


def test_ephemerals_per_session(caplog):
    caplog.set_level(logging.INFO)
    with ZabpyServer(max_ephemerals_per_session=3) as zk:
        a, b = _client(zk), _client(zk)
        try:
            for i in range(3):
                a.create(f"/e{i}", ephemeral=True)
            with pytest.raises(QuotaExceededError):
                a.create("/e3", ephemeral=True)
            with pytest.raises(QuotaExceededError):
                a.create("/e4", ephemeral=True)
            assert a.exists("/e3") is None
            a.create("/persistent")                 # not an ephemeral: not limited
            b.create("/b0", ephemeral=True)         # another session has its own count
            a.delete("/e0")
            a.create("/e5", ephemeral=True)         # room again
            lines = _limit_lines(caplog, a.client_id[0])
            assert len(lines) == 1 and "maxEphemeralsPerSession" in lines[0]
        finally:
            _close(a, b)


def test_ephemerals_per_session_in_a_large_multi():
    """A multi too large to decode in one piece (kept as bytes and prepared
    in parts) still counts its ephemeral creates against the limit."""
    with ZabpyServer(max_ephemerals_per_session=300) as zk:
        a = _client(zk)
        try:
            a.create("/big")
            t = a.transaction()
            for i in range(400):          # about 24 KiB: past the sliced-multi size
                t.create(f"/big/n{i:04d}", b"x" * 20, ephemeral=True)
            with pytest.raises(QuotaExceededError):
                _commit_or_raise(t)
            assert a.get_children("/big") == []
            t = a.transaction()
            for i in range(300):
                t.create(f"/big/n{i:04d}", b"x" * 40, ephemeral=True)
            _commit_or_raise(t)
            assert len(a.get_children("/big")) == 300
        finally:
            _close(a)


def _commit_or_raise(t):
    results = t.commit()
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


def test_watches_per_session(caplog):
    caplog.set_level(logging.INFO)
    with ZabpyServer(max_watches_per_session=2) as zk:
        a = _client(zk)
        try:
            for p in ("/w0", "/w1", "/w2"):
                a.create(p)
            a.get("/w0", watch=lambda e: None)
            a.exists("/w1", watch=lambda e: None)
            with pytest.raises(QuotaExceededError):
                a.get_children("/w2", watch=lambda e: None)
            assert a.get("/w2")[0] == b""           # without a watch: answered
            a.set("/w0", b"fire")                   # the watch on /w0 fires and is gone
            a.sync("/")
            a.get("/w2", watch=lambda e: None)      # room again
            assert len(_limit_lines(caplog, a.client_id[0])) == 1
        finally:
            _close(a)


def test_outstanding_request_bytes_per_connection(caplog, tmp_path):
    caplog.set_level(logging.INFO)
    with ZabpyServer(max_request_bytes_per_connection=64 * 1024, data_dir=str(tmp_path)) as zk:
        c = RawClient(zk.port, timeout=30)
        try:
            c.handshake()
            assert c.call(OpCode.create, R.CreateRequest("/big", b"", OPEN, 0))[0].err == 0
            # 100 writes of 8 KiB pipelined in one send: the server reads them
            # while the first are still waiting for their fsync
            frames = b""
            for xid in range(1, 101):
                body = (R.RequestHeader(xid, OpCode.setData).to_bytes()
                        + R.SetDataRequest("/big", b"x" * 8192, -1).to_bytes())
                frames += struct.pack(">i", len(body)) + body
            c.sock.sendall(frames)
            results = []
            for xid in range(1, 101):
                hdr, _ = c.recv_reply()
                assert hdr.xid == xid
                assert hdr.err in (0, Err.THROTTLEDOP), hdr.err
                results.append("ok" if hdr.err == 0 else "throttled")
            assert "ok" in results and "throttled" in results
            assert results.index("throttled") >= 7  # what fits under 64 KiB went through
            c.xid = 200
            hdr, _ = c.call(OpCode.setData, R.SetDataRequest("/big", b"y" * 100_000, -1))
            assert hdr.err == 0                     # alone it is always taken
            assert len(_limit_lines(caplog, c.session_id)) == 1
        finally:
            c.close()


def test_limits_are_off_by_default():
    with ZabpyServer() as zk:
        a = _client(zk)
        try:
            for i in range(50):
                a.create(f"/e{i}", ephemeral=True)
                a.exists(f"/e{i}", watch=lambda e: None)
        finally:
            _close(a)


def test_limits_on_ensemble_members():
    """Every member checks the limits of the sessions connected to it, a
    follower as the leader: over a limit, the documented code and one log
    line naming the session in that member's log; the refused create took no
    zxid anywhere (every member has the same tree)."""
    from zabpy.testing import ZabpyEnsemble, wait_for

    with ZabpyEnsemble(3, extra="zabpy.maxEphemeralsPerSession=2\n"
                                "zabpy.maxWatchesPerSession=1") as ens:
        leader = ens.leader()
        for sid in (next(s for s in ens.sids if s != leader), leader):
            kz = KazooClient(hosts=ens.host(sid))
            kz.start()
            try:
                base = f"/m{sid}"
                kz.create(base)
                kz.create(f"{base}/e0", ephemeral=True)
                kz.create(f"{base}/e1", ephemeral=True)
                with pytest.raises(QuotaExceededError):
                    kz.create(f"{base}/e2", ephemeral=True)
                kz.get(f"{base}/e0", watch=lambda e: None)
                with pytest.raises(QuotaExceededError):
                    kz.get(f"{base}/e1", watch=lambda e: None)
                session = kz.client_id[0]

                def lines():
                    return [line for line in ens.log(sid).splitlines()
                            if f"Session 0x{session:x} is over its" in line]
                wait_for(lambda: len(lines()) >= 2, 10, what="a log line per limit")
                assert len(lines()) == 2, lines()
                kz.sync("/")
                for other in ens.sids:
                    c = KazooClient(hosts=ens.host(other))
                    c.start()
                    try:
                        c.sync("/")
                        assert sorted(c.get_children(base)) == ["e0", "e1"], other
                    finally:
                        c.stop()
                        c.close()
            finally:
                kz.stop()
                kz.close()
