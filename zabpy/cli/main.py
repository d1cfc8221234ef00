"""`zabpy` command line: dispatches to one module per subcommand.

Each subcommand module exposes ``main(argv: list[str]) -> int``; importing
it lazily keeps `zabpy server` start-up free of the shell's dependencies.
"""

from __future__ import annotations

import gc
import importlib
import sys

__all__ = ["main"]

SUBCOMMANDS = {
    "server": ("zabpy.cli.server", "run a ZooKeeper-compatible server (zoo.cfg optional)"),
    "shell": ("zabpy.cli.shell", "interactive client like zkCli.sh, or one-shot commands"),
    "status": ("zabpy.cli.status", "report a server's mode like `zkServer.sh status`"),
    "purge": ("zabpy.cli.purge", "delete old snapshots and logs from a data directory"),
    "history": ("zabpy.cli.history", "who changed a znode and when (HTTP API or txn logs)"),
}


def _usage() -> str:
    lines = ["usage: zabpy <command> [args...]", "", "commands:"]
    for name, (_, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<8} {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"zabpy: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    # Importing a subcommand allocates many objects and frees almost none:
    # the collector's passes during the imports find nothing, so they are
    # left out (about 3% of a server's start-up).
    enabled = gc.isenabled()
    gc.disable()
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
    finally:
        if enabled:
            gc.enable()
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
