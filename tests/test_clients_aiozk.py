"""One more ecosystem client: aiozk (PyPI), an asyncio ZooKeeper client
written apart from kazoo, with its own framing and recipes.

One scenario (create modes, versions and their errors, ACLs, a transaction
that commits and one that fails, a data and a child watch fired from another
session, Lock and Counter recipes under contention from three sessions,
LeaderElection handover on resign) prints a transcript; it must be the same
on a fresh Java ZooKeeper and a fresh zabpy, and the recipes' invariants
(counter exact, one lock holder, leadership in volunteering order) must hold.
"""

from __future__ import annotations

import asyncio

import pytest

from clients_common import assert_same, fresh_java, fresh_zabpy, missing

aiozk = pytest.importorskip("aiozk", reason="aiozk is a test dependency (pip install -e '.[test]')")

WAIT_S = 30


async def _client(hosts: str):
    zk = aiozk.ZKClient(hosts, session_timeout=10)
    await asyncio.wait_for(zk.start(), WAIT_S)
    return zk


def _err(e: BaseException) -> str:
    return type(e).__name__


async def scenario(hosts: str) -> list[str]:
    out: list[str] = []
    a, b = await _client(hosts), await _client(hosts)
    try:
        await a.create("/az", b"v0")
        try:
            await a.create("/az", b"again")
        except Exception as e:  # noqa: BLE001 - the error's kind is the result
            out.append(f"create twice: {_err(e)}")
        for _ in range(3):
            out.append("seq " + await a.create("/az/s-", b"", sequential=True))
        out.append("eph " + await a.create("/az/eph", b"e", ephemeral=True))
        out.append("cont " + await a.create("/az/cont", container=True))
        data, stat = await a.get("/az")
        out.append(f"get {data!r} version={stat.version} children={stat.num_children}")
        stat = await a.set("/az", b"v1", 0)
        out.append(f"set v0 -> version={stat.version} length={stat.data_length}")
        for what, call in (("set stale", a.set("/az", b"v2", 0)),
                           ("delete non-empty", a.delete("/az")),
                           ("get missing", a.get("/az/missing")),
                           ("child of ephemeral", a.create("/az/eph/x")),
                           ("no parent", a.create("/az/none/x"))):
            try:
                await call
                out.append(f"{what}: ok")
            except Exception as e:  # noqa: BLE001
                out.append(f"{what}: {_err(e)}")
        out.append(f"exists missing: {await a.exists('/az/missing')}")
        out.append(f"children {sorted(await a.get_children('/az'))}")

        # ACLs
        await a.create("/az/ro", b"r", acl=[aiozk.ACL.make("world", "anyone", read=True)])
        try:
            await b.set_data("/az/ro", b"w", force=True)
            out.append("set read-only: ok")
        except Exception as e:  # noqa: BLE001
            out.append(f"set read-only: {_err(e)}")
        acl = await a.get_acl("/az/ro")
        out.append(f"acl {[(x.id.scheme, x.id.id, x.perms) for x in acl]}")

        # transactions
        txn = a.begin_transaction()
        txn.create("/az/t1", b"x")
        txn.set_data("/az/t1", b"y", version=0)
        txn.check_version("/az", 1)
        res = await txn.commit()
        out.append(f"txn ok {bool(res)} created={sorted(res.created)} "
                   f"updated={sorted(res.updated)} checked={sorted(res.checked)}")
        txn = a.begin_transaction()
        txn.create("/az/t2", b"x")
        txn.check_version("/az", 99)
        try:
            res = await txn.commit()
            out.append(f"txn failing {bool(res)} created={sorted(res.created)}")
        except Exception as e:  # noqa: BLE001
            out.append(f"txn failing: {_err(e)}")
        out.append(f"t2 after failed txn: {await a.exists('/az/t2')}")

        # watches fired by another session
        changed = a.wait_for_events([aiozk.WatchEvent.DATA_CHANGED], "/az/t1")
        await a.get("/az/t1", watch=True)
        kids = a.wait_for_events([aiozk.WatchEvent.CHILDREN_CHANGED], "/az")
        await a.get_children("/az", watch=True)
        await b.set_data("/az/t1", b"z", force=True)
        await asyncio.wait_for(changed, WAIT_S)
        out.append("data watch fired")
        await b.create("/az/k")
        await asyncio.wait_for(kids, WAIT_S)
        out.append("child watch fired")

        out.extend(await contention(hosts))
    finally:
        await a.close()
        await b.close()
    return out


async def contention(hosts: str) -> list[str]:
    out: list[str] = []
    clients = [await _client(hosts) for _ in range(3)]
    try:
        await clients[0].create("/az/counter", b"0")
        holders, max_holders = 0, 0

        async def worker(zk):
            nonlocal holders, max_holders
            lock = zk.recipes.Lock("/az/lock")
            for _ in range(10):
                await lock.acquire(timeout=WAIT_S)
                try:
                    holders += 1
                    max_holders = max(max_holders, holders)
                    data, stat = await zk.get("/az/counter")
                    await asyncio.sleep(0)  # let the other workers run while the lock is held
                    await zk.set("/az/counter", str(int(data) + 1).encode(), stat.version)
                    holders -= 1
                finally:
                    await lock.release()

        await asyncio.wait_for(asyncio.gather(*(worker(zk) for zk in clients)), 120)
        data, _ = await clients[0].get("/az/counter")
        out.append(f"lock: counter={data.decode()} max holders={max_holders}")

        counters = [zk.recipes.Counter("/az/count", default=0) for zk in clients]
        for c in counters:
            await c.start()

        async def incr(c):
            for _ in range(10):
                await c.incr()

        await asyncio.wait_for(asyncio.gather(*(incr(c) for c in counters)), 120)
        out.append(f"counter: {await counters[0].get_value()}")

        elections = [zk.recipes.LeaderElection("/az/election") for zk in clients]
        for e in elections:
            await e.volunteer()
        order = []
        for _ in range(3):
            done, _pending = await asyncio.wait(
                [asyncio.create_task(e.wait_for_leadership()) for e in elections
                 if elections.index(e) not in order], timeout=WAIT_S,
                return_when=asyncio.FIRST_COMPLETED)
            assert done, "no leader"
            leader = next(i for i, e in enumerate(elections) if e.has_leadership
                          and i not in order)
            order.append(leader)
            await elections[leader].resign()
        out.append(f"election: leadership order {order}")
    finally:
        for zk in clients:
            await zk.close()
    return out


def test_aiozk_scenario_identical_on_java_and_zabpy():
    missing((), "zookeeper")
    with fresh_java() as java:
        java_out = asyncio.run(scenario(java.hosts))
    with fresh_zabpy() as zabpy:
        zabpy_out = asyncio.run(scenario(zabpy.hosts))
    for line in ("create twice: NodeExists", "set stale: BadVersion", "set read-only: NoAuth",
                 "data watch fired", "child watch fired", "lock: counter=30 max holders=1",
                 "counter: 30", "election: leadership order [0, 1, 2]"):
        assert line in java_out, f"{line!r} missing from Java's transcript: {java_out}"
    assert_same(zabpy_out, java_out, "aiozk")
