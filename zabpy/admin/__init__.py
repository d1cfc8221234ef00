"""zabpy.admin: the operations surface of a server.

Four-letter words (``fourletter``), the HTTP AdminServer (``http``), metrics
and the Prometheus endpoint (``metrics``), all formatting the facts of one
command table (``commands``); ``service`` starts and stops them with the
runtime.
"""

from .commands import COMMANDS, AdminContext, QuorumView, lookup, run_command
from .counters import PROMETHEUS_PROVIDER, ServerMetrics
from .fourletter import FourLetterContext, render_four_letter_word
from .service import OperationsServices

_LAZY = {"AdminServer": "http", "to_jackson_json": "http", "MetricsServer": "metrics",
         "build_registry": "metrics"}


def __getattr__(name: str):
    # the HTTP and Prometheus parts pull in aiohttp and prometheus-client:
    # imported on first use only
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)

__all__ = ["COMMANDS", "AdminContext", "QuorumView", "lookup", "run_command",
           "FourLetterContext", "render_four_letter_word", "AdminServer", "to_jackson_json",
           "PROMETHEUS_PROVIDER", "MetricsServer", "ServerMetrics", "build_registry",
           "OperationsServices"]
