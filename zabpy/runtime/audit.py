"""The audit log's writer: lines the cores mark ``audit_info``/``audit_error``
go to the logger ZooKeeper 3.8 uses, ``org.apache.zookeeper.audit.Slf4jAuditLogger``,
through a queue drained by a thread, so that formatting and file writes stay
off the event loop.

Routing: handlers an operator put on that logger (logging config) are the
ones the thread writes to; without any, the root logger's (zabpy's log).
"""

from __future__ import annotations

import logging

from ..auth.audit import AUDIT_LOGGER, event_line

__all__ = ["AuditWriter", "emit_log"]

audit_log = logging.getLogger(AUDIT_LOGGER)


def emit_log(log: logging.Logger, level: str, line: str) -> None:
    """One (level, line) pair of a core's output."""
    if level.startswith("audit_"):
        audit_log.log(logging.ERROR if level == "audit_error" else logging.INFO, line)
    else:
        getattr(log, level)("%s", line)


class AuditWriter:
    def __init__(self, server_user: str):
        self.server_user = server_user
        self._listener = None  # a logging.handlers.QueueListener while started
        self._moved: list[logging.Handler] = []
        self._queue_handler: logging.Handler | None = None

    def start(self) -> None:
        # imported here: logging.handlers (with pickle, socket and queue) is
        # needed only when the audit log is on
        import logging.handlers
        import queue

        self._moved = list(audit_log.handlers)
        targets = self._moved or list(logging.getLogger().handlers)
        for h in self._moved:
            audit_log.removeHandler(h)
        q: queue.SimpleQueue = queue.SimpleQueue()
        self._queue_handler = logging.handlers.QueueHandler(q)
        audit_log.addHandler(self._queue_handler)
        audit_log.propagate = False
        if audit_log.level == logging.NOTSET:
            audit_log.setLevel(logging.INFO)
        self._listener = logging.handlers.QueueListener(q, *targets, respect_handler_level=True)
        self._listener.start()
        self._line("success", "serverStart")

    def _line(self, result: str, op: str) -> None:
        level, text = event_line(result, user=self.server_user, operation=op)
        emit_log(audit_log, "audit_" + level, text)

    def stop(self) -> None:
        if self._listener is None:
            return
        self._line("invoked", "serverStop")
        self._listener.stop()  # drains the queue
        self._listener = None
        audit_log.removeHandler(self._queue_handler)
        for h in self._moved:
            audit_log.addHandler(h)
        audit_log.propagate = True
