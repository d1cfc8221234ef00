"""Which build of the cores this process runs: compiled or pure Python.

The hottest pure cores (``COMPILED``) are plain typed Python that setup.py
also compiles with mypyc into C extensions when asked (``ZABPY_COMPILE=1
pip install -e .``; pure Python is the default build). An
extension module sits beside its ``.py`` file and Python's import prefers
it, so a source edited after the build would be shadowed by the stale
extension. ``zabpy/__init__`` calls ``choose()`` before any core is
imported; it loads the sources instead of the extensions when

- ``ZABPY_PURE=1`` is set (to run or test the pure-Python build), or
- any compiled module's source differs from the one the extensions were
  built from (a fingerprint of each is recorded in ``_compiled.json`` by the
  build); this logs one warning naming the changed file. The set is all
  or nothing: compiled modules call each other directly, not through the
  import system, so a stale one cannot be replaced alone.

Without extensions (no compiler, or a source checkout never built) nothing
changes: the sources are what Python imports anyway.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["COMPILED", "choose", "describe", "compiled_modules", "stale_sources"]

# The compiled set, in the order setup.py hands it to mypyc. zabpy.jute.codec
# and zabpy.jute.records stay pure: records and their encoders are generated
# at import from the declared fields, which mypyc cannot compile.
COMPILED = (
    "zabpy.protocol.connection",
    "zabpy.pipeline.prep",
    "zabpy.pipeline.final",
    "zabpy.server.standalone",
    "zabpy.server.sliced",
    "zabpy.server.stats",
    "zabpy.session.tracker",
    "zabpy.tree.acl",
    "zabpy.tree.paths",
    "zabpy.tree.quota",
    "zabpy.tree.watches",
)

HASHES_FILE = "_compiled.json"   # beside this file: {module: fingerprint of its source}
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_PACKAGE_DIR)

_reason = "not chosen yet"
_pure = False


def source_path(module: str, root: str = _ROOT) -> str:
    return os.path.join(root, *module.split(".")) + ".py"


def source_hash(path: str) -> str:
    """A fingerprint of a source file: CRC-32 and length (this detects an
    edit, not an attacker, and costs microseconds at start-up)."""
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    return f"{zlib.crc32(data):08x}-{len(data)}"


def _has_extension(module: str, root: str) -> bool:
    base = os.path.join(root, *module.split("."))
    return any(os.path.exists(base + suffix)
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def stale_sources(root: str = _ROOT) -> list[str] | None:
    """The compiled modules whose source is not the one their extension was
    built from (a missing record counts as changed); None if no compiled
    module has an extension beside its source."""
    if not any(_has_extension(m, root) for m in COMPILED):
        return None
    import json
    try:
        with open(os.path.join(root, "zabpy", HASHES_FILE)) as f:
            built = json.load(f)
    except (OSError, ValueError):
        built = {}
    return [m for m in COMPILED
            if not os.path.exists(source_path(m, root))
            or built.get(m) != source_hash(source_path(m, root))]


class _SourceFinder:
    """Finds the ``.py`` source of a compiled module, ahead of the extension."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        if fullname not in COMPILED:
            return None
        src = source_path(fullname)
        if not os.path.exists(src):
            return None
        loader = importlib.machinery.SourceFileLoader(fullname, src)
        return importlib.util.spec_from_file_location(fullname, src, loader=loader)


def choose() -> None:
    """Decide once, before any compiled module is imported."""
    global _reason, _pure
    if _reason != "not chosen yet":
        return
    if os.environ.get("ZABPY_PURE", "") not in ("", "0"):
        _pure, _reason = True, "ZABPY_PURE is set"
    else:
        stale = stale_sources()
        if stale is None:
            _pure, _reason = False, "no compiled modules"
        elif stale:
            _pure, _reason = True, f"stale build: {', '.join(stale)} changed since it was built"
            import logging
            logging.getLogger("zabpy").warning(
                "zabpy: %s; running the pure-Python cores (rebuild: ZABPY_COMPILE=1 pip install "
                "--no-build-isolation -e .; or set ZABPY_PURE=1 to silence this)", _reason[len("stale build: "):])
        else:
            _pure, _reason = False, "built from these sources"
    if _pure:
        sys.meta_path.insert(0, _SourceFinder)


def compiled_modules() -> list[str]:
    """The compiled modules this process has loaded as extensions."""
    out = []
    for name in COMPILED:
        mod = sys.modules.get(name)
        if mod is not None and not (getattr(mod, "__file__", "") or "").endswith(".py"):
            out.append(name)
    return out


def describe() -> str:
    """One line for logs and ``envi``: which build, and why."""
    for name in COMPILED:
        __import__(name)
    n = len(compiled_modules())
    if n:
        return f"compiled (mypyc): {n} of {len(COMPILED)} core modules"
    return f"pure Python ({_reason})"
