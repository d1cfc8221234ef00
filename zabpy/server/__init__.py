"""A replica: tree + sessions + pipeline as one sans-IO object."""

from .settings import ServerSettings
from .standalone import ProtocolViolation, Ready, StandaloneServer, frame
from .stats import ServerStats

__all__ = ["ServerSettings", "ProtocolViolation", "Ready", "StandaloneServer", "frame",
           "ServerStats"]

# The ensemble roles pull in the election and ZAB cores, which a standalone
# server never uses: imported on first use (PEP 562), off the start-up path.
_LAZY = {"LeaderServer": "leader", "LearnerServer": "learner"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ += ["LeaderServer", "LearnerServer"]
