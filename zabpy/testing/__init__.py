"""A real zabpy server for users' own tests (context manager and pytest fixture)."""

from .ensemble import ZabpyEnsemble
from .server import ZabpyServer, four_letter_word, free_port, free_ports, mntr, wait_for

__all__ = ["ZabpyEnsemble", "ZabpyServer", "four_letter_word", "free_port", "free_ports", "mntr",
           "wait_for"]
