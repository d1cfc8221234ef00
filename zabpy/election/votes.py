"""Votes, their total order, and the election notification wire format.

A *vote* names a proposed leader together with the two numbers that rank it:
the leader's last logged zxid and its current epoch (``peer_epoch``). Votes
are compared by ZooKeeper's total order (FastLeaderElection's
``totalOrderPredicate``): a candidate whose quorum weight is 0 never wins;
otherwise the higher ``peer_epoch`` wins, then the higher ``zxid``, then the
higher sid. ``election_epoch`` (ZooKeeper's *logical clock*) is the round in
which the vote was cast and takes no part in the order.

A *notification* is a vote on the wire, sent over the election port. Its
payload is a hand-laid big-endian buffer (not a jute record):

    int  state            0 LOOKING, 1 FOLLOWING, 2 LEADING, 3 OBSERVING
    long leader           proposed leader sid
    long zxid             proposed leader's last logged zxid
    long election_epoch   sender's round (logical clock)
    long peer_epoch       proposed leader's current epoch     (40+ bytes)
    int  version          2 today                             (44+ bytes)
    int  config_length    version >= 2
    ...  config           QuorumVerifier text, config_length bytes

ZooKeeper 3.5+ always sends version 2 with config. Older peers sent 28 bytes
(no peer_epoch: it is derived from the zxid's high 32 bits) or 40 bytes
(version present but not read). ``decode_notification`` accepts all three and
raises ``DecodeError`` on anything else, so a malformed message is dropped by
the caller without touching the election state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

from zabpy.jute.codec import DecodeError
from zabpy.limits import ELECTION_PACKET_BYTES_MAX

__all__ = ["ServerState", "Vote", "Notification", "NOTIFICATION_VERSION", "vote_beats",
           "votes_agree", "encode_notification", "decode_notification", "epoch_of_zxid"]

# Current notification format version (FastLeaderElection.Notification.CURRENTVERSION).
NOTIFICATION_VERSION = 2
# Sentinel a non-participant (observer) sends for leader, zxid and peer_epoch.
LONG_MIN = -(2**63)

_HEAD = struct.Struct(">iqqq")        # state, leader, zxid, election_epoch: 28 bytes
_HEAD40 = struct.Struct(">iqqqqi")    # ... peer_epoch, version: 40 bytes
_V2 = struct.Struct(">iqqqqii")       # ... config_length: 44 bytes


class ServerState(IntEnum):
    """A peer's state as carried in notifications (QuorumPeer.ServerState ordinal)."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


def epoch_of_zxid(zxid: int) -> int:
    """The epoch is the zxid's high 32 bits (arithmetic shift, as Java's ``>>``)."""
    return zxid >> 32


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal for leader, cast in round ``election_epoch`` by a peer in ``state``."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: ServerState = ServerState.LOOKING

    def rank(self) -> tuple[int, int, int]:
        """The total-order key (without the weight rule)."""
        return (self.peer_epoch, self.zxid, self.leader)


def vote_beats(new: Vote, current: Vote, weight: Callable[[int], int]) -> bool:
    """True when ``new`` is strictly better than ``current`` (totalOrderPredicate).

    A candidate with weight 0 (a non-voter, or a voter given weight 0 in a
    hierarchical quorum) can never become anyone's choice, whatever its zxid.
    """
    if weight(new.leader) == 0:
        return False
    return new.rank() > current.rank()


def votes_agree(a: Vote, b: Vote) -> bool:
    """Whether two votes count as the same vote when tallying (Vote.equals).

    If either is a LOOKING vote, all four numbers must match: support counts
    only for the same proposal in the same round. Between two settled votes
    (FOLLOWING/LEADING/OBSERVING) only the leader and its epoch matter,
    because settled peers may have reached the leader in different rounds.
    """
    if a.state == ServerState.LOOKING or b.state == ServerState.LOOKING:
        return (a.leader, a.zxid, a.election_epoch, a.peer_epoch) == (
            b.leader, b.zxid, b.election_epoch, b.peer_epoch)
    return a.leader == b.leader and a.peer_epoch == b.peer_epoch


@dataclass(frozen=True, slots=True)
class Notification:
    """One election message's payload; the sender's sid comes from its link."""

    state: ServerState
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = NOTIFICATION_VERSION
    config: bytes = b""

    def vote(self) -> Vote:
        return Vote(self.leader, self.zxid, self.election_epoch, self.peer_epoch, self.state)

    @classmethod
    def of(cls, vote: Vote, state: ServerState, election_epoch: int,
           config: bytes = b"") -> "Notification":
        return cls(state, vote.leader, vote.zxid, election_epoch, vote.peer_epoch,
                   NOTIFICATION_VERSION, config)


def encode_notification(n: Notification) -> bytes:
    """Encode in the current (version 2, with config) format."""
    assert n.version == NOTIFICATION_VERSION, n.version
    assert 44 + len(n.config) <= ELECTION_PACKET_BYTES_MAX, len(n.config)
    return _V2.pack(int(n.state), n.leader, n.zxid, n.election_epoch, n.peer_epoch,
                    n.version, len(n.config)) + n.config


def _state(raw: int) -> ServerState:
    try:
        return ServerState(raw)
    except ValueError:
        raise DecodeError(f"unknown server state {raw}") from None


def decode_notification(data: bytes | bytearray | memoryview) -> Notification:
    """Decode any of the 28-byte, 40-byte and versioned (44+) forms."""
    size = len(data)
    if size < _HEAD.size or size > ELECTION_PACKET_BYTES_MAX:
        raise DecodeError(f"notification of {size} bytes")
    if size == _HEAD.size:
        state, leader, zxid, election_epoch = _HEAD.unpack_from(data)
        return Notification(_state(state), leader, zxid, election_epoch,
                            epoch_of_zxid(zxid), 0, b"")
    if size == _HEAD40.size:
        # The 3.4 form carries a version int that its readers never looked at.
        state, leader, zxid, election_epoch, peer_epoch, _ = _HEAD40.unpack_from(data)
        return Notification(_state(state), leader, zxid, election_epoch, peer_epoch, 0, b"")
    if size < _HEAD40.size:
        raise DecodeError(f"notification of {size} bytes")
    state, leader, zxid, election_epoch, peer_epoch, version = _HEAD40.unpack_from(data)
    if version <= 1:
        # Pre-reconfig formats have no config; ZooKeeper ignores what follows.
        return Notification(_state(state), leader, zxid, election_epoch, peer_epoch, version, b"")
    if size < _V2.size:
        raise DecodeError(f"version {version} notification of {size} bytes")
    config_length = _V2.unpack_from(data)[6]
    if config_length < 0 or config_length != size - _V2.size:
        raise DecodeError(f"config length {config_length} in a {size}-byte notification")
    config = bytes(data[_V2.size:])
    return Notification(_state(state), leader, zxid, election_epoch, peer_epoch, version, config)
