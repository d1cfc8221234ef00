"""Read-only mode and local sessions under the deterministic simulator.

``--read-only 1``: every member runs with readonlymode.enabled and the
clients ask for read-only sessions, so a member cut off by a partition or a
lost leader serves them (QuorumPeer's read-only server, after max(2 s,
tickTime) of LOOKING). ``--local-sessions 1``: localSessionsEnabled with
upgrading, so sessions cost no txn until an ephemeral create upgrades them.
Z1-Z7 and the client checks hold as in tests/test_zab_sim.py, except that
a read-only server is exempt from Z6 and its reads from the read checks: it
serves its tree as it last was, txns it logged but never saw committed
included (ZooKeeper fast-forwards its database when a role ends).
"""

import pytest

from zabpy.jute.constants import OpCode
from zabpy.sim.replica_sim import ReplicaSimOptions, ReplicaSimulation
from zabpy.zab.packets import parse_txn

REGRESSION_SEEDS = {
    (5, 12_000, 1, 0): "closeSession prep deleted a node its ephemeral had been deleted and "
                       "made again as, by another session, in txns not yet applied",
    (2, 12_000, 1, 1): "a read-only server serves txns it logged but never saw committed "
                       "(Z6 exempts it, as ZooKeeper's read-only server does the same)",
    (7, 12_000, 1, 1): "two local closeSessions answered in the same ms at the same zxid "
                       "(the sync-read check sorted records)",
}
# the CI set: short fault phases, each feature alone and both together
_MIXES = [(1, 0), (0, 1), (1, 1)]
SEEDS = [(seed, 5_000, *_MIXES[seed % 3]) for seed in range(1, 19)]


def _sim(seed: int, fault_ms: int, read_only: int, local_sessions: int) -> ReplicaSimulation:
    return ReplicaSimulation(ReplicaSimOptions(seed=seed, fault_ms=fault_ms, read_only=read_only,
                                               local_sessions=local_sessions))


@pytest.mark.parametrize("seed,fault_ms,read_only,local_sessions",
                         sorted(REGRESSION_SEEDS) + SEEDS)
def test_seed_keeps_every_invariant_and_converges(seed, fault_ms, read_only, local_sessions):
    result = _sim(seed, fault_ms, read_only, local_sessions).run()
    assert result.ok, (f"{result.message}; replay: python -m zabpy.sim --seed {seed} "
                       f"--fault-ms {fault_ms} --read-only {read_only} "
                       f"--local-sessions {local_sessions} --trace")


# Seeds whose faults leave a read-only server with every txn its clients have
# seen, so that it serves them (about one seed in seven does: a client that saw a
# newer zxid is refused, as ZooKeeper refuses it). Several, so that a change of
# timing elsewhere does not leave the property untested.
READ_ONLY_SEEDS = (2, 22, 23, 28)


def test_read_only_servers_serve_and_local_sessions_stay_local_or_upgrade():
    served = []
    for seed in READ_ONLY_SEEDS:
        sim = _sim(seed, 12_000, 1, 1)
        result = sim.run()
        assert result.ok, f"seed {seed}: {result.message}"
        assert any("serving as read-only" in line for line in result.trace), seed
        committed = [parse_txn(raw) for raw in sim.checker.committed.values()]
        created = {hdr.clientId for hdr, _ in committed if hdr.type == OpCode.createSession}
        used = {r.session_id for c in sim.clients for r in c.history
                if r.outcome == "ok" and r.err == 0}
        assert used - created, f"seed {seed}: no session stayed local"
        assert used & created, f"seed {seed}: no session was upgraded"
        served += [r for c in sim.clients for r in c.history
                   if c.connections[r.conn].read_only and r.outcome == "ok"
                   and r.err == 0 and not r.is_write]
    assert served, f"no read-only server answered a read in seeds {READ_ONLY_SEEDS}"
