"""The cores never import IO, clocks, randomness or threads (DESIGN.md)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "zabpy"
CORES = ["jute", "protocol", "tree", "session", "pipeline", "server", "election", "zab", "auth"]
FORBIDDEN = {"asyncio", "socket", "time", "random", "os", "threading", "subprocess", "selectors",
             "secrets", "ssl"}


def _core_files():
    for core in CORES:
        for path in sorted((ROOT / core).rglob("*.py")):
            yield path


@pytest.mark.parametrize("path", list(_core_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_no_io(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name == "random":
                continue  # allowed for the `random.Random` type only, checked below
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        # A core is handed a seeded random.Random; it never uses the module's
        # global generator.
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "random":
            assert node.attr == "Random", f"{path.name} uses random.{node.attr}"
