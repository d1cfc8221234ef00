"""Command line for the ZAB simulation: ``python -m zabpy.sim --seed N`` or ``--seeds K``.

Each run prints its outcome; a failing seed prints the command that replays
it (add ``--trace`` to see every event).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from .zab_ensemble import ZabSimOptions, ZabSimulation

_KEYS = ("voters", "observers", "fault_ms", "liveness_ms")


def _overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _KEYS if getattr(args, k) is not None}


def replay_command(seed: int, overrides: dict) -> str:
    extra = "".join(f" --{k.replace('_', '-')} {v}" for k, v in overrides.items())
    return f"python -m zabpy.sim --seed {seed}{extra}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zabpy.sim", description=__doc__)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, help="run this seed (replay)")
    g.add_argument("--seeds", type=int, help="run this many random seeds")
    p.add_argument("--voters", type=int)
    p.add_argument("--observers", type=int)
    p.add_argument("--fault-ms", type=int)
    p.add_argument("--liveness-ms", type=int, help="bound on convergence after healing")
    p.add_argument("--trace", action="store_true", help="print the full trace")
    args = p.parse_args(argv)
    if args.seeds is not None:
        seeds = [random.SystemRandom().randrange(2**32) for _ in range(args.seeds)]
    else:
        seeds = [args.seed if args.seed is not None else 1]
    failed = 0
    for seed in seeds:
        started = time.monotonic()
        result = ZabSimulation(ZabSimOptions(seed=seed, **_overrides(args))).run()
        if args.trace:
            print("\n".join(result.trace))
        took = time.monotonic() - started
        status = (f"ok leader={result.leader} committed={result.committed}" if result.ok
                  else f"FAILED: {result.message}")
        print(f"seed {seed}: {status} at {result.end_ms} ms virtual ({took:.2f}s)")
        if not result.ok:
            failed += 1
            print(f"  replay: {replay_command(seed, _overrides(args))} --trace")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
