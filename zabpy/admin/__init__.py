"""zabpy.admin: the operations surface of a server.

Four-letter words (``fourletter``), the HTTP AdminServer (``http``), metrics
and the Prometheus endpoint (``metrics``), all formatting the facts of one
command table (``commands``); ``service`` starts and stops them with the
runtime.
"""

from .commands import COMMANDS, AdminContext, QuorumView, lookup, run_command
from .fourletter import FourLetterContext, render_four_letter_word
from .http import AdminServer, to_jackson_json
from .metrics import PROMETHEUS_PROVIDER, MetricsServer, ServerMetrics, build_registry
from .service import OperationsServices

__all__ = ["COMMANDS", "AdminContext", "QuorumView", "lookup", "run_command",
           "FourLetterContext", "render_four_letter_word", "AdminServer", "to_jackson_json",
           "PROMETHEUS_PROVIDER", "MetricsServer", "ServerMetrics", "build_registry",
           "OperationsServices"]
