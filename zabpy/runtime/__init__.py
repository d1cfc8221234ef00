"""The asyncio shell: client listener, election and quorum transports,
timers, the fsync worker, zoo.cfg loading, TLS, logging.

``server.ServerRuntime`` runs a standalone server; ``ensemble.EnsembleRuntime``
an ensemble member (imported on demand: it pulls in the election and ZAB
cores)."""

from .config import ConfigError, ServerConfig, ServerSpec, default_config, load_config, parse_config

__all__ = ["ConfigError", "ServerConfig", "ServerSpec", "default_config", "load_config",
           "parse_config", "ServerRuntime"]


def __getattr__(name: str):
    # ServerRuntime on first use: reading a config needs none of the server
    # (`zabpy server` listens on its client port before importing it)
    if name == "ServerRuntime":
        from .server import ServerRuntime
        return ServerRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
