"""The side-by-side comparison's zxid naming (conftest ``Norm``): another
test's txn on one shared server must not show as a difference, while a write
that takes a zxid on one server and not on the other must."""

from tests.conftest import Norm, Reply
from zabpy.jute.constants import OpCode


def _names(norm: Norm, replies):
    return [norm.zxid(z, read=op not in (OpCode.create, OpCode.setData)) for op, z in replies]


def test_a_foreign_txn_between_our_writes_is_not_a_difference():
    # server A: our create at 11, someone's session expiry at 12, a read, our setData at 13
    a = _names(Norm(10, 1), [(OpCode.create, 11), (OpCode.getData, 12), (OpCode.setData, 13),
                             (OpCode.exists, 13)])
    b = _names(Norm(50, 1), [(OpCode.create, 51), (OpCode.getData, 51), (OpCode.setData, 52),
                             (OpCode.exists, 52)])
    assert a == b == ["+1", "+1", "+2", "+2"]


def test_a_read_before_any_write_of_ours_sees_old():
    assert Norm(10, 1).zxid(12, read=True) == Norm(50, 1).zxid(50, read=True) == "old"


def test_a_write_that_takes_a_zxid_on_one_server_only_differs():
    # a failed setData: server A logs an error txn, server B answers from its last zxid
    a = _names(Norm(10, 1), [(OpCode.create, 11), (OpCode.setData, 12)])
    b = _names(Norm(50, 1), [(OpCode.create, 51), (OpCode.setData, 51)])
    assert a != b


def test_stat_zxids_share_the_names_of_the_reply_headers():
    from zabpy.jute import records as R
    norm = Norm(10, 7)
    assert norm.reply(Reply(1, 11, 0, b"", OpCode.create))[1] == "+1"
    stat = R.Stat(11, 11, 1, 1, 0, 0, 0, 7, 0, 0, 11)
    named = dict(norm.value(stat)[1])
    assert (named["czxid"], named["mzxid"], named["pzxid"], named["ephemeralOwner"]) == \
        ("+1", "+1", "+1", "SELF")
