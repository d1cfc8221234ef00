"""Command line: ``python -m zabpy.sim.election_cli --seed N`` or ``--seeds K``."""

from __future__ import annotations

import argparse
import sys

from .cli import parser, run_seeds
from .ensemble import SimOptions, Simulation


def _replay(seed: int, args: argparse.Namespace) -> str:
    extra = "".join(f" --{k.replace('_', '-')} {v}" for k, v in _overrides(args).items())
    return f"python -m zabpy.sim.election_cli --seed {seed}{extra}"


def _overrides(args: argparse.Namespace) -> dict:
    keys = ("voters", "observers", "fault_ms", "interval_ms_max", "liveness_ms")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _options(seed: int, args: argparse.Namespace) -> SimOptions:
    return SimOptions(seed=seed, **_overrides(args))


def main(argv: list[str] | None = None) -> int:
    args = parser("python -m zabpy.sim.election_cli", __doc__,
                  extra=("--interval-ms-max",)).parse_args(argv)

    def run_one(seed: int):
        opts = _options(seed, args)
        return Simulation(opts).run(), f" {opts}"

    return run_seeds(args, run_one, lambda r: f"ok leader={r.leader}",
                     lambda seed: _replay(seed, args))


if __name__ == "__main__":
    sys.exit(main())
