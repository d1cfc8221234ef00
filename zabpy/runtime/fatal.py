"""Fail-stop: a broken invariant stops the server, from any callback.

Theory of operation
-------------------
An ``AssertionError`` (or any exception we did not plan for) means our own
state may be wrong. The server must not answer one more client after that:
like TigerBeetle's assertions and raft's ``Panicf``, it stops. asyncio does
the opposite by default: an exception raised in a protocol callback or a
``call_soon`` callback is logged by the loop and the loop goes on serving.

Three entry points, one outcome:

* ``fail_stop(runtime, exc, where)`` is the outcome. It logs one CRITICAL
  line, ``invariant broken in <where>: <Type>: <message>``, with the
  traceback in the same record (the log4j layout prints the level as
  FATAL), then ``runtime.halt()`` (stop listening, abort every client
  transport so no reply queued after the break leaves, cancel the
  runtime's tasks) and sets ``runtime.fatal``. Only the first call logs at
  CRITICAL; later ones (the echoes of the same break) log at DEBUG.
* ``fail_stop_guard(where)`` decorates a callback that asyncio calls
  (``data_received``, a ``call_soon`` target): an exception out of it goes to
  ``fail_stop`` instead of asyncio's logger; once halted, the callback is
  not run at all. ``guard_task(runtime, coro, where)`` does the same for a
  task's coroutine.
* ``install_fail_stop_handler(loop, runtime)`` is the backstop: every
  exception that still reaches the loop's exception handler (a callback we
  did not guard, or ``escalate`` below) is fatal, except an ``OSError``,
  which is IO failing (``accept()`` out of file descriptors, a TLS
  handshake), not our state. Contexts without an exception go to the
  previous handler.

Code that does not own a runtime (the quorum and election transports) calls
``escalate(exc, where)``: it hands the exception to the running loop's
handler, which is fatal once a runtime installed its handler, and logged by
asyncio's default handler in a test that runs a transport alone.

What "stop" means depends on who owns the process: ``zabpy server`` waits on
``runtime.fatal`` and exits with ``FATAL_EXIT_CODE`` (70, sysexits.h
EX_SOFTWARE); an in-process server of the test suite only stops serving and
leaves its ``fatal`` flag set, so the test process lives on.

The runtime side of the contract (``FailStoppable``): a ``fatal``
``asyncio.Event``, a ``broken`` attribute (None until an invariant broke,
then ``"<where>: <Type>: <message>"``) and a synchronous, idempotent
``halt()``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, Protocol

__all__ = ["FATAL_EXIT_CODE", "FailStoppable", "fail_stop", "fail_stop_guard", "guard_task",
           "install_fail_stop_handler", "escalate"]

log = logging.getLogger("zabpy.server")

# sysexits.h EX_SOFTWARE, "an internal software error has been detected":
# distinct from 1 (could not start) and 2 (bad configuration).
FATAL_EXIT_CODE = 70


class FailStoppable(Protocol):
    fatal: asyncio.Event
    broken: str | None

    def halt(self) -> None: ...


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (the traceback has the rest)."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def fail_stop(runtime: FailStoppable, exc: BaseException, where: str) -> None:
    """Log one CRITICAL line naming the broken invariant, stop serving at
    once, and set ``runtime.fatal``. Safe to call again (logs at DEBUG)."""
    if runtime.broken is not None:
        log.debug("after the fail-stop (%s), also in %s: %s", runtime.broken, where,
                  describe(exc), exc_info=exc)
        return
    runtime.broken = f"{where}: {describe(exc)}"
    log.critical("invariant broken in %s: %s", where, describe(exc), exc_info=exc)
    try:
        runtime.halt()
    finally:
        runtime.fatal.set()


def fail_stop_guard(where: str, runtime_of: Callable[[Any], FailStoppable] = lambda self: self):
    """Decorate a method that asyncio calls back: an exception out of it
    fail-stops ``runtime_of(self)``; after a fail-stop the method is skipped
    (a halted server must not touch its possibly wrong state again)."""
    def wrap(fn):
        @functools.wraps(fn)
        def guarded(self, *args):
            runtime = runtime_of(self)
            if runtime.broken is not None:
                return None
            try:
                return fn(self, *args)
            except Exception as exc:  # noqa: BLE001 - the fail-stop boundary
                fail_stop(runtime, exc, where)
                return None
        return guarded
    return wrap


async def guard_task(runtime: FailStoppable, coro: Awaitable, where: str):
    """Run a task's coroutine; an exception out of it fail-stops ``runtime``
    (cancellation passes through)."""
    try:
        return await coro
    except Exception as exc:  # noqa: BLE001 - the fail-stop boundary
        fail_stop(runtime, exc, where)
        return None


def escalate(exc: BaseException, where: str) -> None:
    """From code without a runtime: hand ``exc`` to the running loop's
    exception handler (fatal once ``install_fail_stop_handler`` ran)."""
    asyncio.get_running_loop().call_exception_handler(
        {"message": f"invariant broken in {where}", "exception": exc, "zabpy_where": where})


def _where(context: dict) -> str:
    if "zabpy_where" in context:
        return context["zabpy_where"]
    for key in ("handle", "task", "protocol", "future"):
        if key in context:
            return f"{context.get('message', 'asyncio callback')} ({key} {context[key]!r})"
    return context.get("message", "asyncio callback")


def install_fail_stop_handler(loop: asyncio.AbstractEventLoop,
                              runtime: FailStoppable) -> Callable[[], None]:
    """Make every non-IO exception reaching ``loop``'s exception handler
    fail-stop ``runtime``. Returns a function that restores the previous
    handler (call it when the runtime stops)."""
    previous = loop.get_exception_handler()

    def pass_on(lp: asyncio.AbstractEventLoop, context: dict) -> None:
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    def handler(lp: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, Exception) and not isinstance(exc, OSError):
            fail_stop(runtime, exc, _where(context))
        else:
            pass_on(lp, context)

    loop.set_exception_handler(handler)

    def restore() -> None:
        if loop.get_exception_handler() is handler:
            loop.set_exception_handler(previous)
    return restore
