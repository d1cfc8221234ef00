"""`zabpy server [zoo.cfg] [--port N] [--data-dir DIR] ...`

With no config file the server runs on an embedded default: 127.0.0.1:2181,
tickTime 2000, data in memory unless --data-dir is given. A bad config value
is reported with its key and line and the command exits with status 2.
A server that cannot start exits with 1; one that stopped because an
invariant broke (``runtime/fatal.py``: one CRITICAL line in the log) exits
with 70 (``FATAL_EXIT_CODE``, sysexits' EX_SOFTWARE).
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ..limits import FAIL_STOP_SHUTDOWN_MS
from ..runtime.config import ConfigError, default_config, load_config
from ..runtime.logging import (LOG_BACKUP_COUNT_DEFAULT, LOG_MAX_BYTES_DEFAULT, set_myid,
                               setup_logging)

# The rest of the server (asyncio, uvloop, the runtime and the cores: about
# half of the start-up) is imported by ``main`` once the client port listens.
if TYPE_CHECKING:
    import argparse
    import socket

__all__ = ["main", "build_config", "parse_args"]

GC_SETTLE_DELAY_S = 0.5  # from start() returning (listening) to the post-restore full pass


def _parser() -> argparse.ArgumentParser:
    import argparse
    p = argparse.ArgumentParser(prog="zabpy server", description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", help="zoo.cfg (ZooKeeper's format); optional")
    p.add_argument("--port", type=int, help="client port (overrides clientPort)")
    p.add_argument("--host", help="client address (overrides clientPortAddress)")
    p.add_argument("--data-dir", help="data directory (overrides dataDir)")
    p.add_argument("--tick-time", type=int, help="tickTime in ms")
    p.add_argument("--jaas", metavar="PATH",
                   help="JAAS file with the SASL Server section (java.security.auth.login.config)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARN, ERROR")
    p.add_argument("--log-file", help="also log to this file, rotated by size")
    p.add_argument("--log-max-bytes", type=int, default=LOG_MAX_BYTES_DEFAULT,
                   help="rotate the log file at this size (default 10 MiB)")
    p.add_argument("--log-backups", type=int, default=LOG_BACKUP_COUNT_DEFAULT,
                   help="rotated log files to keep (default 5)")
    return p


# What _parser() declares, for the common command lines that need no argparse:
# option -> (attribute, converter), and every attribute's default.
_OPTIONS = {"--port": ("port", int), "--host": ("host", str), "--data-dir": ("data_dir", str),
            "--tick-time": ("tick_time", int), "--jaas": ("jaas", str),
            "--log-level": ("log_level", str), "--log-file": ("log_file", str),
            "--log-max-bytes": ("log_max_bytes", int), "--log-backups": ("log_backups", int)}
_DEFAULTS = {"config": None, "port": None, "host": None, "data_dir": None, "tick_time": None,
             "jaas": None, "log_level": "INFO", "log_file": None,
             "log_max_bytes": LOG_MAX_BYTES_DEFAULT, "log_backups": LOG_BACKUP_COUNT_DEFAULT}


def _parse_plain(argv: list[str]) -> SimpleNamespace | None:
    """``argv`` as argparse would parse it with ``_parser()``, when it is at
    most one config path and options spelled out in full (``--port 2182``,
    ``--port=2182``); None for anything else (help, abbreviations, a value
    that starts with '-', a bad number, a second path), which argparse then
    parses, with its messages. Importing argparse (and gettext, and shutil
    for the help width) is about 2% of a server's start-up."""
    values = dict(_DEFAULTS)
    positional = 0
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            positional += 1
            values["config"] = arg
            continue
        name, eq, value = arg.partition("=")
        if name not in _OPTIONS:
            return None
        if not eq:
            if i == len(argv):
                return None
            value = argv[i]
            i += 1
        if value.startswith("-"):
            return None
        attr, convert = _OPTIONS[name]
        try:
            values[attr] = convert(value)
        except ValueError:
            return None
    if positional > 1:
        return None
    return SimpleNamespace(**values)


def parse_args(argv: list[str]):
    """The parsed command line (argparse only when ``_parse_plain`` declines)."""
    args = _parse_plain(argv)
    return args if args is not None else _parser().parse_args(argv)


def build_config(args: argparse.Namespace):
    warnings: list[str] = []
    if args.config:
        cfg, warnings = load_config(args.config)
    else:
        cfg = default_config()
    overrides = {}
    if args.port is not None:
        overrides["client_port"] = args.port
    if args.host:
        overrides["client_port_address"] = args.host
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
        if not cfg.data_log_dir or cfg.data_log_dir == cfg.data_dir:
            overrides["data_log_dir"] = args.data_dir
    if args.tick_time:
        overrides["tick_time_ms"] = args.tick_time
    if getattr(args, "jaas", None):
        from ..runtime.security import JAAS_KEY
        overrides["raw"] = {**cfg.raw, JAAS_KEY: args.jaas}
    if overrides:
        import dataclasses
        cfg = dataclasses.replace(cfg, **overrides)
    return cfg, warnings


async def _serve(cfg, listening: socket.socket | None = None, auth=None) -> int:
    import asyncio
    import signal

    from ..runtime.fatal import FATAL_EXIT_CODE
    from ..runtime.gc_policy import GcPolicy
    if cfg.is_standalone():
        from ..runtime.server import ServerRuntime
        rt = ServerRuntime(cfg, listening=listening, auth=auth)
    else:
        # QuorumPeerMain's choice: more than one server line means an ensemble.
        from ..runtime.ensemble import EnsembleRuntime
        rt = EnsembleRuntime(cfg)
    gc_policy = GcPolicy(cfg.gc_full_sweep_interval_ms / 1000)
    with gc_policy.restoring():
        await rt.start()
    loop = asyncio.get_running_loop()
    # The restored tree is frozen out of every later pass. The full pass that
    # precedes the freeze is not needed to serve, so it runs once the server
    # serves rather than between listening and the first request.
    settle = loop.call_later(GC_SETTLE_DELAY_S, gc_policy.settle)
    sweeper = _every(loop, 1.0, gc_policy.tick)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(rt.fatal.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for t in waits:
        t.cancel()
    sweeper.cancel()
    settle.cancel()
    if rt.broken is None:
        await rt.stop()
        return 1 if rt.fatal.is_set() else 0
    # The runtime already halted (no client is served); whatever the orderly
    # stop meets in a state that may be wrong, the exit status says "broken".
    try:
        await asyncio.wait_for(rt.stop(), FAIL_STOP_SHUTDOWN_MS / 1000)
    except Exception as e:  # noqa: BLE001 - exiting with FATAL_EXIT_CODE regardless
        logging.getLogger("zabpy.server").error("stop after the fail-stop failed: %r", e)
    return FATAL_EXIT_CODE


class _every:
    """Call ``fn`` every ``seconds`` on ``loop`` until cancelled."""

    def __init__(self, loop, seconds: float, fn) -> None:
        self._loop, self._seconds, self._fn = loop, seconds, fn
        self._handle = loop.call_later(seconds, self._fire)

    def _fire(self) -> None:
        self._fn()
        self._handle = self._loop.call_later(self._seconds, self._fire)

    def cancel(self) -> None:
        self._handle.cancel()


def _run(coro) -> int:
    """uvloop's event loop when it is installed (a dependency on Linux and
    macOS): the same asyncio API, with socket I/O done in libuv."""
    try:
        import uvloop
    except ImportError:
        import asyncio
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_file, max_bytes=args.log_max_bytes,
                      backup_count=args.log_backups)
    except (ValueError, OSError) as e:
        print(f"zabpy server: {e}", file=sys.stderr)
        return 2
    log = logging.getLogger("zabpy.server")
    try:
        cfg, warnings = build_config(args)
    except ConfigError as e:
        log.error("Invalid configuration: %s", e)
        return 2
    # A standalone server listens now (runtime/listen.py); a bind error is
    # reported where it was before, after the config's own errors.
    listening, bind_error = None, None
    if cfg.is_standalone() and cfg.client_port_address:
        from ..runtime.listen import listening_socket
        try:
            listening = listening_socket(cfg.client_port_address, cfg.client_port)
        except OSError as e:
            bind_error = e
    try:
        return _configured(cfg, warnings, log, listening, bind_error)
    finally:
        if listening is not None:
            listening.close()  # unless the runtime served it, and closed it then


def _import_server(standalone: bool) -> None:
    """Import what serving needs, with the collector off meanwhile (these
    imports free almost nothing: see cli/main.py)."""
    import gc
    import importlib
    enabled = gc.isenabled()
    gc.disable()
    try:
        importlib.import_module("asyncio")
        try:
            importlib.import_module("uvloop")
        except ImportError:
            pass
        if standalone:
            importlib.import_module("zabpy.runtime.server")
    finally:
        if enabled:
            gc.enable()


def _configured(cfg, warnings: list[str], log: logging.Logger,
                listening: socket.socket | None, bind_error: OSError | None) -> int:
    _import_server(cfg.is_standalone())
    from ..runtime.security import jaas_path, load_auth_settings
    try:
        auth = load_auth_settings(cfg)  # a bad JAAS file stops the server, as in ZooKeeper
        if not cfg.is_standalone():
            from ..runtime.quorum_security import load_quorum_security
            load_quorum_security(cfg)   # bad quorum TLS stores or JAAS sections stop it too
    except ConfigError as e:
        log.error("Invalid configuration: %s", e)
        return 2
    if not cfg.is_standalone():
        set_myid(cfg.myid)
    for w in warnings:
        log.warning("%s", w)
    if auth.sasl_mechanism is not None:
        log.info("SASL (GSSAPI, Kerberos) on: the JAAS file %s", jaas_path(cfg))
    if auth.sasl_users is not None:
        log.info("SASL (DIGEST-MD5) on: %d user(s) from the JAAS file %s",
                 len(auth.sasl_users), jaas_path(cfg))
    if bind_error is not None:
        log.error("Unable to start the server: %s", bind_error)
        return 1
    try:
        return _run(_serve(cfg, listening, auth))
    except OSError as e:
        log.error("Unable to start the server: %s", e)
        return 1
