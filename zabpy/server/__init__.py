"""A replica: tree + sessions + pipeline as one sans-IO object."""

from .settings import ServerSettings
from .standalone import ProtocolViolation, Ready, StandaloneServer, frame
from .stats import ServerStats

__all__ = ["ServerSettings", "ProtocolViolation", "Ready", "StandaloneServer", "frame",
           "ServerStats"]

from .leader import LeaderServer  # noqa: E402
from .learner import LearnerServer  # noqa: E402

__all__ += ["LeaderServer", "LearnerServer"]
