"""Optionally builds zabpy's hottest pure cores as C extensions with mypyc.

Everything else about the package is in pyproject.toml. The build is pure
Python unless ZABPY_COMPILE=1 is set: measured with ``python -m
bench.instr``, the compiled cores save only about a tenth of the
instructions per request today (the records, their generated encoders and
the data tree stay interpreted), too little for what a second build costs.
With ZABPY_COMPILE=1 the modules ``zabpy._build.COMPILED`` are compiled;
their sources stay the plain typed Python they are, and remain the
fallback: if mypyc refuses them (a type error) or no C compiler is found,
the build says so and installs pure Python.

Next to the extensions the build records a fingerprint of each source it
compiled (zabpy/_compiled.json); at import, zabpy/_build.py runs the sources
instead of extensions that are older than them.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _warn(msg: str) -> None:
    print(f"zabpy setup: {msg}", file=sys.stderr)


# setup.py commands that build nothing (metadata, a source archive): pip and
# `python -m build` run one or two of these before the build itself, and each
# would otherwise run mypyc's whole analysis of the cores once more.
_NO_BUILD = frozenset({"egg_info", "dist_info", "sdist", "check", "clean"})


def _builds() -> bool:
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return command not in _NO_BUILD


def _extensions() -> list:
    if os.environ.get("ZABPY_COMPILE", "") in ("", "0"):
        return []   # pure Python: the default (see above)
    if not _builds():
        return []   # compiled by the build command that follows
    if os.environ.get("ZABPY_PURE", "") not in ("", "0"):
        _warn("ZABPY_PURE is set: pure-Python build")
        return []
    build = runpy.run_path(os.path.join(HERE, "zabpy", "_build.py"))
    modules = build["COMPILED"]
    paths = [os.path.relpath(build["source_path"](m, HERE), HERE) for m in modules]
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("ZABPY_COMPILE=1 needs mypyc: `pip install mypy`, then build with "
              "--no-build-isolation; pure-Python build")
        return []
    try:
        exts = mypycify(["--config-file", os.path.join(HERE, "pyproject.toml"), *paths],
                        opt_level="3")
    except (Exception, SystemExit) as e:  # mypyc exits on a type error it prints
        _warn(f"mypyc could not compile the cores ({e!r}): pure-Python build")
        return []
    for ext in exts:
        ext.optional = True   # no C compiler: skipped with a warning, pure Python runs
    hashes = {m: build["source_hash"](os.path.join(HERE, p)) for m, p in zip(modules, paths)}
    with open(os.path.join(HERE, "zabpy", build["HASHES_FILE"]), "w") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)
        f.write("\n")
    return exts


setup(ext_modules=_extensions())
