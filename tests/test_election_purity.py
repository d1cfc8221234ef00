"""The election core is sans-IO (DESIGN.md): no asyncio, socket, time, random, os, threading."""

import ast
import pathlib

import zabpy.election

FORBIDDEN = {"asyncio", "socket", "time", "random", "os", "threading", "selectors", "subprocess"}


def test_election_core_imports_no_io():
    root = pathlib.Path(zabpy.election.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for top in ast.walk(tree) if isinstance(top, ast.If)
                       and getattr(top.test, "id", "") == "TYPE_CHECKING"
                       for stmt in top.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module.split(".")[0]]
            bad = FORBIDDEN.intersection(names)
            assert not bad, f"{path.name} imports {bad}"
