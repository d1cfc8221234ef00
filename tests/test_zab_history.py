"""``zab.History``, the leader's committedLog and a peer's log window, against
a naive model.

ZooKeeper keeps the last ``commitLogCount`` committed proposals
(ZKDatabase.committedLog, ``minCommittedLog`` / ``maxCommittedLog``) and
chooses DIFF, TRUNC+DIFF or SNAP from them when a learner syncs (Zab paper
section 5.1, "Phase 2: Synchronization"; LearnerHandler.syncFollower). The
window must answer exactly as a plain list would, whatever mix of appends,
TRUNCs and SNAPs reached it; the model below is that plain list, with the
oldest entry dropped by ``pop(0)``.
"""

import pytest
from hypothesis import given, settings, strategies as st

from zabpy.jute import records as R
from zabpy.jute.constants import OpCode
from zabpy.zab import History


def txn(zxid):
    return (R.TxnHeader(7, zxid, zxid, 0, OpCode.setData), None)


class NaiveHistory:
    """The obvious list: O(n) per dropped entry, easy to believe."""

    def __init__(self, base_zxid, limit):
        self.limit = limit
        self.base_zxid = base_zxid
        self.txns = []

    @property
    def last_zxid(self):
        return self.txns[-1][0].zxid if self.txns else self.base_zxid

    def zxids(self):
        return [t[0].zxid for t in self.txns]

    def append(self, t):
        self.txns.append(t)
        if len(self.txns) > self.limit:
            self.base_zxid = self.txns.pop(0)[0].zxid

    def truncate(self, zxid):
        self.txns = [t for t in self.txns if t[0].zxid <= zxid]
        self.base_zxid = min(self.base_zxid, zxid)

    def reset(self, zxid):
        self.txns = []
        self.base_zxid = zxid

    def knows(self, zxid):
        return zxid == self.base_zxid or zxid in self.zxids()

    def known_at_or_below(self, zxid):
        if zxid < self.base_zxid:
            return None
        below = [z for z in self.zxids() if z <= zxid]
        return below[-1] if below else self.base_zxid

    def after(self, zxid):
        return [t for t in self.txns if t[0].zxid > zxid]


# An operation: append (gap to the next zxid), truncate at or reset to a zxid
# offset from the current last one (negative: into or below the window).
ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3)),
    st.tuples(st.just("truncate"), st.integers(-12, 2)),
    st.tuples(st.just("reset"), st.integers(-3, 5)),
), max_size=120)


def assert_same(h, model):
    assert h.base_zxid == model.base_zxid
    assert h.last_zxid == model.last_zxid
    assert len(h) == len(model.txns)
    assert list(h.entries()) == model.txns
    lo, hi = min(model.base_zxid, 0) - 2, model.last_zxid + 3
    for z in range(lo, hi):
        assert h.knows(z) == model.knows(z), z
        assert h.known_at_or_below(z) == model.known_at_or_below(z), z
        assert h.after(z) == model.after(z), z


@settings(max_examples=300, deadline=None)
@given(base=st.integers(0, 5), limit=st.integers(1, 6), initial=st.integers(0, 10), ops=ops)
def test_history_answers_as_a_plain_list(base, limit, initial, ops):
    """Every query agrees with the naive model after every operation."""
    first = [txn(base + 1 + i) for i in range(initial)]
    h = History(base, first, limit)
    model = NaiveHistory(base, limit)
    for t in first:
        model.append(t)
    assert_same(h, model)
    for op, arg in ops:
        if op == "append":
            t = txn(model.last_zxid + arg)
            h.append(t)
            model.append(t)
        elif op == "truncate":
            h.truncate(model.last_zxid + arg)
            model.truncate(model.last_zxid + arg)
        else:
            h.reset(model.last_zxid + arg)
            model.reset(model.last_zxid + arg)
        assert_same(h, model)


def test_append_keeps_the_lists_bounded():
    """The dropped prefix is reclaimed: memory stays within twice the limit
    however many txns pass through (ZAB_COMMITTED_LOG_MAX is a bound)."""
    h = History(0, (), limit=5)
    for z in range(1, 1000):
        h.append(txn(z))
        assert len(h._zxids) <= 2 * h.limit and len(h._entries) <= 2 * h.limit
    assert [t[0].zxid for t in h.entries()] == list(range(995, 1000))
    assert h.base_zxid == 994


def test_append_rejects_a_zxid_out_of_order():
    h = History(0, [txn(1), txn(2)], limit=3)
    with pytest.raises(AssertionError):
        h.append(txn(2))


def test_truncate_below_the_window_lowers_the_base():
    h = History(10, [txn(11), txn(12)], limit=3)
    h.truncate(7)
    assert (h.base_zxid, len(h), h.last_zxid) == (7, 0, 7)
