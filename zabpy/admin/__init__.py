"""zabpy.admin: the operations surface of a server.

Four-letter words (``fourletter``), the HTTP AdminServer (``http``), metrics
and the Prometheus endpoint (``metrics``), all formatting the facts of one
command table (``commands``); ``service`` starts and stops them with the
runtime.
"""

from .counters import PROMETHEUS_PROVIDER, ServerMetrics
from .service import OperationsServices

# Imported on first use only: the HTTP and Prometheus parts pull in aiohttp
# and prometheus-client, and the command table (with the four-letter words
# built on it) is not needed before the first command arrives.
_LAZY = {"AdminServer": "http", "to_jackson_json": "http", "MetricsServer": "metrics",
         "build_registry": "metrics", "COMMANDS": "commands", "AdminContext": "commands",
         "QuorumView": "commands", "lookup": "commands", "run_command": "commands",
         "FourLetterContext": "fourletter", "render_four_letter_word": "fourletter"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "AdminContext", "QuorumView", "lookup", "run_command",
           "FourLetterContext", "render_four_letter_word", "AdminServer", "to_jackson_json",
           "PROMETHEUS_PROVIDER", "MetricsServer", "ServerMetrics", "build_registry",
           "OperationsServices"]
