"""Log setup for a zabpy server process.

Theory of operation
-------------------
Every lifecycle event is one line on the ``zabpy.*`` loggers, written where
it happens (runtime, admin, pause monitor): start, bind, AdminServer and
metrics start, election result, session expiry, a client's protocol error,
a slow fsync, stop. This module only decides where the lines go and how they
look: stderr always, plus an optional file rotated by size
(``RotatingFileHandler``: ``max_bytes`` per file, ``backup_count`` old files
kept). The layout follows ZooKeeper's log4j pattern,
``<time> [myid:<id>] - <LEVEL> [<thread>:<logger>@<line>] - <message>``, with
log4j's level names (WARN, not WARNING), so that tools reading ZooKeeper
logs read ours.

The ``myid`` field is filled by a filter on each handler (not a global
record factory), so ``set_myid`` can fill it once the config is read.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging", "set_myid", "LOG_FORMAT", "LOG_MAX_BYTES_DEFAULT",
           "LOG_BACKUP_COUNT_DEFAULT"]

LOG_FORMAT = ("%(asctime)s [myid:%(myid)s] - %(levelname)-5s "
              "[%(threadName)s:%(name)s@%(lineno)d] - %(message)s")
LOG_MAX_BYTES_DEFAULT = 10 << 20
LOG_BACKUP_COUNT_DEFAULT = 5

_LOG4J_LEVELS = {"WARNING": "WARN", "CRITICAL": "FATAL"}


class _ZooKeeperFields(logging.Filter):
    """Adds ``myid`` and renames levels as log4j does; never drops a record."""

    def __init__(self) -> None:
        super().__init__()
        self.myid = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.myid = self.myid
        record.levelname = _LOG4J_LEVELS.get(record.levelname, record.levelname)
        return True


_fields = _ZooKeeperFields()


def set_myid(myid: int | None) -> None:
    """Show this server's id in every following line (empty when standalone)."""
    _fields.myid = "" if myid is None else str(myid)


def setup_logging(level: str = "INFO", log_file: str | None = None, *,
                  max_bytes: int = LOG_MAX_BYTES_DEFAULT,
                  backup_count: int = LOG_BACKUP_COUNT_DEFAULT,
                  stream=None) -> list[logging.Handler]:
    """Configure the root logger; returns the handlers installed.

    Raises ValueError for an unknown level name and OSError when the log
    file cannot be opened.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARN or ERROR")
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file:
        from logging.handlers import RotatingFileHandler  # only for a log file
        handlers.append(RotatingFileHandler(log_file, maxBytes=max_bytes,
                                            backupCount=backup_count, encoding="utf-8"))
    formatter = logging.Formatter(LOG_FORMAT)
    for h in handlers:
        h.addFilter(_fields)
        h.setFormatter(formatter)
    logging.basicConfig(level=numeric, handlers=handlers, force=True)
    # aiohttp logs every admin/metrics request at INFO; keep its errors only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handlers
