"""zabpy's dataclass methods compiled once and kept, as bytecode is.

``@dataclass`` writes the ``__init__``, ``__repr__`` and ``__eq__`` of each
class (and ``__setattr__``, ``__delattr__``, ``__hash__`` of a frozen one) as
source text and compiles that text every time the class is created: at every
start of every process. For the ~25 dataclasses a server creates before its
first request that was about 17% of all the instructions from exec to the
first served request (84 M of 515 M, callgrind), more than any module body.
The text depends only on the class declaration, so its compiled code can be
reused, as the interpreter reuses a module's bytecode from ``__pycache__``.

``install()`` (called by ``zabpy/__init__`` before any zabpy dataclass is
made) gives the ``dataclasses`` module an ``exec`` of its own, which it looks
up before the builtin one. That ``exec`` is the builtin for everything except
source text executed in a zabpy module's namespace; for that text it takes
the code object compiled from exactly that text out of the cache, or compiles
it (as the builtin would: ``compile(text, "<string>", "exec")``, no inherited
future flags, which the builtin would take from ``dataclasses`` and it has
none) and remembers it. The result is the same function either way; only
the compilation is skipped.

The cache is one file, ``__pycache__/dataclasses.<cache_tag>.bin`` beside
this module (``ZABPY_CODE_CACHE`` names another file): the interpreter's
magic number, then a marshalled ``{text: code}``. A file from another
interpreter, a short or corrupt one, or none at all is simply not used: every
text is compiled as before. Keyed by the text itself, an entry can never be
stale, only unused; at most ``CODE_CACHE_ENTRIES_MAX`` are kept (past that,
a save keeps only what its process used).

Written like bytecode: at exit, when something new was compiled, unless
``sys.dont_write_bytecode`` (``PYTHONDONTWRITEBYTECODE``) is set; through a
temporary file renamed into place, so that concurrent writers never leave a
torn file; a failure to write is ignored. ``warm()`` imports what a server
imports before it serves and writes the file whatever ``dont_write_bytecode``
says, as ``compileall`` writes bytecode (``bench.servers.ensure_zabpy_bytecode``
runs it in a fresh interpreter). Reading it trusts the file
as much as the ``.pyc`` files beside it.
"""

from __future__ import annotations

import builtins
import marshal
import os
import sys

from .limits import CODE_CACHE_ENTRIES_MAX

__all__ = ["CodeCache", "install", "DEFAULT", "default_path", "warm"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_OUR_PREFIX = __name__.partition(".")[0] + "."  # "zabpy."


def default_path() -> str:
    override = os.environ.get("ZABPY_CODE_CACHE")
    if override:
        return override
    tag = sys.implementation.cache_tag or "none"
    return os.path.join(_PACKAGE_DIR, "__pycache__", f"dataclasses.{tag}.bin")


def _magic() -> bytes:
    from importlib.util import MAGIC_NUMBER  # importlib.util is loaded by site already
    return MAGIC_NUMBER


class CodeCache:
    """Code objects of compiled source texts, loaded from and saved to ``path``."""

    def __init__(self, path: str):
        self.path = path
        self._codes: dict[str, object] | None = None  # loaded on first use
        self._used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def _load(self) -> dict[str, object]:
        codes: dict[str, object] = {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            magic = _magic()
            if data[:len(magic)] == magic:
                loaded = marshal.loads(data[len(magic):])
                if isinstance(loaded, dict):
                    codes = loaded
        except (OSError, ValueError, EOFError, TypeError):
            pass  # no cache, or not one this interpreter can use: compile as usual
        self._codes = codes
        return codes

    def code(self, text: str):
        """The code object of ``text`` (compiled now if the cache has none)."""
        codes = self._codes if self._codes is not None else self._load()
        code = codes.get(text)
        if code is None:
            code = compile(text, "<string>", "exec", dont_inherit=True)
            codes[text] = code
            self.misses += 1
            if self.misses == 1:
                import atexit
                atexit.register(self.save)
        else:
            self.hits += 1
        self._used.add(text)
        return code

    def save(self, force: bool = False) -> bool:
        """Write the cache if this process compiled anything new (and bytecode
        may be written, unless ``force``); True if it wrote the file."""
        if self._codes is None or not self.misses or (sys.dont_write_bytecode and not force):
            return False
        codes = dict(self._codes)
        if len(codes) > CODE_CACHE_ENTRIES_MAX:
            codes = {t: c for t, c in codes.items() if t in self._used}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(_magic() + marshal.dumps(codes))
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.misses = 0  # what it compiled is on disk now
        return True

    def exec(self, source, globals=None, locals=None, /, **kwargs):
        """``builtins.exec`` as ``dataclasses`` calls it, with zabpy's source
        texts compiled from the cache. Any other text is compiled here too,
        without this module's future flags (``exec`` of a string would take
        them from its caller, which is now this function: ``annotations``
        would turn a class's ``__init__`` annotations into strings)."""
        if type(source) is str:
            if (type(globals) is dict
                    and str(globals.get("__name__", "")).startswith(_OUR_PREFIX)):
                source = self.code(source)
            else:
                source = compile(source, "<string>", "exec", dont_inherit=True)
        return builtins.exec(source, globals, locals, **kwargs)


DEFAULT = CodeCache(default_path())


def install(cache: CodeCache = DEFAULT) -> None:
    """Make ``dataclasses`` compile zabpy's dataclass methods through ``cache``
    (once; leaves an ``exec`` someone else gave ``dataclasses`` alone)."""
    import dataclasses
    if "exec" not in vars(dataclasses):
        dataclasses.exec = cache.exec  # type: ignore[attr-defined]


def warm() -> int:
    """Import what ``zabpy server`` imports before it serves, serve one
    session (a ConnectRequest, then closeSession) on a server of this process
    with a temporary data directory, and write the cache; returns how many
    texts it holds. The session makes the records a first client uses
    (dataclasses made on first use) part of the cache too."""
    import asyncio
    import importlib
    import tempfile
    for module in ("zabpy.cli.main", "zabpy.cli.server", "zabpy.runtime.pause_monitor"):
        importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix="zabpy-warm-") as data:
        asyncio.run(_serve_one_session(data))
    DEFAULT.save(force=True)
    return len(DEFAULT._codes or {})


async def _serve_one_session(data_dir: str) -> None:
    import asyncio
    import struct

    from .jute import records as R
    from .runtime.config import default_config
    from .runtime.server import ServerRuntime

    cfg = default_config(client_port=0, data_dir=data_dir, data_log_dir=data_dir,
                         admin_enable_server=False)
    rt = ServerRuntime(cfg)
    await rt.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", rt.port)
        connect = R.ConnectRequest(protocolVersion=0, lastZxidSeen=0, timeOut=30_000,
                                   sessionId=0, passwd=bytes(16), readOnly=False).to_bytes()
        close = struct.pack(">ii", 1, -11)  # RequestHeader(xid 1, closeSession)
        for body in (connect, close):
            writer.write(struct.pack(">i", len(body)) + body)
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            await reader.readexactly(n)
        writer.close()
    finally:
        await rt.stop()
