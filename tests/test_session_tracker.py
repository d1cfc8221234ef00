"""Session ids, passwords and expiry buckets (zookeeper-facts.md 1.2, 1.10)."""

from zabpy.session import SessionTracker, initial_session_id, session_password


def test_password_matches_java_random():
    # Golden values printed by java.util.Random(id ^ 0xB3415C00).nextBytes(16)
    # on OpenJDK 17 (a mixed ensemble must compute the same bytes).
    assert session_password(72057594037927937).hex() == "054cc74a37327db215e702e20c73f005"
    assert session_password(-8070450532247928831).hex() == "054cc74a37327db215e702e20c73f005"


def test_session_id_has_server_id_in_top_byte():
    sid = initial_session_id(7, 1_700_000_000_000)
    assert (sid >> 56) & 0xFF == 7
    assert initial_session_id(0, 0) == 0


def test_ids_increment():
    t = SessionTracker(1, 100, 5000)
    a, b = t.next_session_id(), t.next_session_id()
    assert b == a + 1


def test_expiry_in_tick_buckets():
    t = SessionTracker(1, 100, 0)
    t.add(1, 1000, now_ms=0)        # deadline rounded up to the next tick: 1100
    assert t.expired(1099) == []
    assert t.expired(1100) == [1]
    assert t.expired(5000) == []    # each session expires once


def test_touch_moves_the_deadline_and_closing_blocks_touch():
    t = SessionTracker(1, 100, 0)
    t.add(1, 1000, 0)
    t.touch(1, 900)
    assert t.expired(1100) == []
    assert t.expired(2000) == [1]
    assert t.touch(1, 2000) is False  # closing: no more touches
