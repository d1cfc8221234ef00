"""Command-line entry points: `zabpy server`, `shell`, `status`, `purge`."""

from .main import main

__all__ = ["main"]
