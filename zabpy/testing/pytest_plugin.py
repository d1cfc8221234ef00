"""pytest plugin (registered as the `zabpy` entry point): a `zabpy_server`
fixture giving each test module a real zabpy server on a free port."""

from __future__ import annotations

import pytest

from .server import ZabpyServer


@pytest.fixture
def zabpy_server():
    """A fresh in-process zabpy server for one test; ``.hosts`` for kazoo."""
    with ZabpyServer() as server:
        yield server
