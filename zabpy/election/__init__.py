"""Fast Leader Election: votes and their order, notifications, quorums, the
election state machine, and the election connection manager's rules.

Everything here is sans-IO; ``zabpy.runtime.election_transport`` carries the
bytes and ``zabpy.sim`` drives the same objects deterministically.
"""

from .fle import ElectionReady, FastLeaderElection
from .quorum import (HierarchicalQuorum, MajorityQuorum, OracleMajority, QuorumVerifier,
                     quorum_from_config)
from .transport import (FrameDecoder, InitialMessage, LinkDecision, SendQueues, decide_link,
                        encode_frame, encode_initial_message, parse_initial_message)
from .votes import (NOTIFICATION_VERSION, Notification, ServerState, Vote, decode_notification,
                    encode_notification, vote_beats, votes_agree)

__all__ = ["ElectionReady", "FastLeaderElection", "HierarchicalQuorum", "MajorityQuorum",
           "OracleMajority", "QuorumVerifier", "quorum_from_config", "FrameDecoder",
           "InitialMessage", "LinkDecision", "SendQueues", "decide_link", "encode_frame",
           "encode_initial_message", "parse_initial_message", "NOTIFICATION_VERSION",
           "Notification", "ServerState", "Vote", "decode_notification", "encode_notification",
           "vote_beats", "votes_agree"]
