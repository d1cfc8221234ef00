"""The asyncio shell: client listener, election and quorum transports,
timers, the fsync worker, zoo.cfg loading, TLS, logging.

``server.ServerRuntime`` runs a standalone server; ``ensemble.EnsembleRuntime``
an ensemble member (imported on demand: it pulls in the election and ZAB
cores)."""

from .config import ConfigError, ServerConfig, ServerSpec, default_config, load_config, parse_config
from .server import ServerRuntime

__all__ = ["ConfigError", "ServerConfig", "ServerSpec", "default_config", "load_config",
           "parse_config", "ServerRuntime"]
