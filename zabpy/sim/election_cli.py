"""Command line: ``python -m zabpy.sim.election_cli --seed N`` or ``--seeds K``."""

from __future__ import annotations

import argparse
import random
import sys
import time

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
    p = argparse.ArgumentParser(prog="python -m zabpy.sim.election_cli", description=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, help="run this seed (replay)")
    g.add_argument("--seeds", type=int, help="run this many random seeds")
    p.add_argument("--voters", type=int)
    p.add_argument("--observers", type=int)
    p.add_argument("--fault-ms", type=int)
    p.add_argument("--interval-ms-max", type=int)
    p.add_argument("--liveness-ms", type=int, help="bound on convergence after healing")
    p.add_argument("--trace", action="store_true", help="print the full trace")
    args = p.parse_args(argv)
    if args.seeds is not None:
        seeds = [random.SystemRandom().randrange(2**32) for _ in range(args.seeds)]
    else:
        seeds = [args.seed if args.seed is not None else 1]
    failed = 0
    for seed in seeds:
        opts = _options(seed, args)
        started = time.monotonic()
        result = Simulation(opts).run()
        if args.trace:
            print("\n".join(result.trace))
        took = time.monotonic() - started
        status = f"ok leader={result.leader}" if result.ok else f"FAILED: {result.message}"
        print(f"seed {seed}: {status} at {result.end_ms} ms virtual ({took:.2f}s) {opts}")
        if not result.ok:
            failed += 1
            print(f"  replay: {_replay(seed, args)} --trace")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
