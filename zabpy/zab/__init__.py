"""ZAB: discovery, synchronization (DIFF/TRUNC/SNAP) and broadcast, as sans-IO cores.

``Leader`` and ``Learner`` (follower or observer) are the two roles;
``Peer`` is the LOOKING → LEADING/FOLLOWING/OBSERVING loop around them and
Fast Leader Election; ``ready`` defines the output contract (``ZabReady``,
``Persist`` with its ``then``); ``packets`` the quorum packets and their
stream codec. ``zabpy.runtime.quorum_transport`` carries the packets over
TCP and ``zabpy.sim.replica_sim`` drives the same cores, inside whole replicas, deterministically.
See docs/zab.md.
"""

from .follower import Learner
from .history import History
from .leader import Leader, ZabTimers
from .packets import (PROTOCOL_VERSION, PacketDecoder, PacketType, counter_of, encode_packet,
                      epoch_of, load_snapshot_bytes, make_zxid, snapshot_bytes)
from .peer import Peer, PeerLog, PeerReady
from .ready import ForwardedRequest, Outbox, Persist, Phase, Snapshot, ZabReady

__all__ = ["Learner", "History", "Leader", "ZabTimers", "PROTOCOL_VERSION", "PacketDecoder",
           "PacketType", "counter_of", "encode_packet", "epoch_of", "load_snapshot_bytes",
           "make_zxid", "snapshot_bytes", "Peer", "PeerLog", "PeerReady", "ForwardedRequest",
           "Outbox", "Persist", "Phase", "Snapshot", "ZabReady"]
