"""The switch between the compiled (mypyc) and the pure-Python cores
(zabpy/_build.py, setup.py): an extension built from an older source must
never shadow the edited source, and ZABPY_PURE=1 must run the sources.

These tests need no compiler: they plant extension files by hand in a copy
of the package, which is what a stale in-place build leaves behind."""

from __future__ import annotations

import importlib.machinery
import json
import os
import pathlib
import shutil
import subprocess
import sys

from zabpy import _build

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]


def _copy_package(tmp_path: pathlib.Path) -> pathlib.Path:
    shutil.copytree(ROOT / "zabpy", tmp_path / "zabpy",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "_compiled.json"))
    return tmp_path


def _plant_extensions(root: pathlib.Path, modules=_build.COMPILED) -> None:
    """Stand-ins for built extensions: not loadable, so importing one fails."""
    for m in modules:
        (root / pathlib.Path(*m.split("."))).with_suffix(EXT).write_bytes(b"not an extension")


def _record_hashes(root: pathlib.Path) -> None:
    hashes = {m: _build.source_hash(_build.source_path(m, str(root))) for m in _build.COMPILED}
    (root / "zabpy" / _build.HASHES_FILE).write_text(json.dumps(hashes))


def _run(root: pathlib.Path, code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "ZABPY_PURE"}
    full.update(env, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=full,
                          capture_output=True, text=True, timeout=120)


def test_no_extensions_means_nothing_to_check(tmp_path):
    root = _copy_package(tmp_path)
    assert _build.stale_sources(str(root)) is None


def test_a_build_from_these_sources_is_not_stale(tmp_path):
    root = _copy_package(tmp_path)
    _plant_extensions(root)
    _record_hashes(root)
    assert _build.stale_sources(str(root)) == []


def test_an_edited_source_makes_the_build_stale(tmp_path):
    root = _copy_package(tmp_path)
    _plant_extensions(root)
    _record_hashes(root)
    src = pathlib.Path(_build.source_path("zabpy.pipeline.prep", str(root)))
    src.write_text(src.read_text() + "\n# edited after the build\n")
    assert _build.stale_sources(str(root)) == ["zabpy.pipeline.prep"]


def test_extensions_without_a_record_are_stale(tmp_path):
    root = _copy_package(tmp_path)
    _plant_extensions(root, ["zabpy.tree.watches"])
    assert _build.stale_sources(str(root)) == list(_build.COMPILED)


def test_a_stale_extension_never_shadows_its_source(tmp_path):
    """Python's import prefers an extension beside a source; the stale one
    planted here would fail to load, so a clean import proves the sources
    ran, and one warning says why."""
    root = _copy_package(tmp_path)
    _plant_extensions(root)
    _record_hashes(root)
    src = pathlib.Path(_build.source_path("zabpy.server.standalone", str(root)))
    src.write_text(src.read_text() + "\n# edited after the build\n")
    p = _run(root, "import zabpy.server.standalone as s, zabpy._build as b, zabpy.protocol;"
                   "print(s.__file__); print(b.describe())")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].endswith(os.path.join("zabpy", "server", "standalone.py"))
    assert out[1].startswith("pure Python (stale build: zabpy.server.standalone changed")
    assert p.stderr.count("running the pure-Python cores") == 1


def test_zabpy_pure_runs_the_sources_even_of_a_current_build(tmp_path):
    root = _copy_package(tmp_path)
    _plant_extensions(root)
    _record_hashes(root)
    code = "import zabpy._build as b; print(b.describe())"
    p = _run(root, code, ZABPY_PURE="1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "pure Python (ZABPY_PURE is set)"
    assert p.stderr == ""
    # and without it, the (planted, unloadable) extensions are what Python takes
    p = _run(root, code)
    assert p.returncode != 0 and "ImportError" in p.stderr


def test_this_process_reports_its_build():
    line = _build.describe()
    if _build.compiled_modules():
        assert line.startswith("compiled (mypyc)")
    else:
        assert line.startswith("pure Python")


def test_the_instruction_harness_serves_every_workload():
    """bench/instr.py drives the standalone cores as the runtime does; each
    of its workloads must get one error-free reply per request (the count
    it reports is only worth something if the requests did their work)."""
    from bench import instr
    for workload in instr.WORKLOADS:
        assert instr.run(workload, 40, 80) == 40


def test_the_compiled_cores_type_check(tmp_path):
    """mypyc refuses a module mypy does not accept, and setup.py then installs
    pure Python with only a warning: a type error in a compiled core would
    turn the compiled build off unnoticed. The same check, with the same
    configuration, here."""
    paths = [_build.source_path(m, str(ROOT)) for m in _build.COMPILED]
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--cache-dir", str(tmp_path / "mypy-cache"), *paths],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
