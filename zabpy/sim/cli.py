"""What both simulator command lines share: their arguments and the seed
loop that prints each outcome and, for a failure, the replay command."""

from __future__ import annotations

import argparse
import gc
import random
import time
from typing import Callable

__all__ = ["parser", "run_seeds"]


def parser(prog: str, description: str | None, extra: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, help="run this seed (replay)")
    g.add_argument("--seeds", type=int, help="run this many random seeds")
    p.add_argument("--from-seed", type=int,
                   help="with --seeds K: run seeds N..N+K-1 instead of random ones")
    p.add_argument("--voters", type=int)
    p.add_argument("--observers", type=int)
    p.add_argument("--fault-ms", type=int)
    for flag in extra:
        p.add_argument(flag, type=int)
    p.add_argument("--liveness-ms", type=int, help="bound on convergence after healing")
    p.add_argument("--trace", action="store_true", help="print the full trace")
    return p


def run_seeds(args: argparse.Namespace, run_one: Callable, describe: Callable,
              replay: Callable[[int], str]) -> int:
    """``run_one(seed)`` -> (result, suffix); ``describe(result)`` -> status text."""
    if args.seeds is not None and args.from_seed is not None:
        seeds = list(range(args.from_seed, args.from_seed + args.seeds))
    elif args.seeds is not None:
        seeds = [random.SystemRandom().randrange(2**32) for _ in range(args.seeds)]
    else:
        seeds = [args.seed if args.seed is not None else 1]
    # A seed allocates hundreds of thousands of short-lived objects (packets,
    # Readys, records), nearly all freed by reference counting; at CPython's
    # default thresholds the cyclic collector still ran some 40 times a seed
    # (about 5% of its CPU time). Collect young objects 10x less often and
    # leave what the imports made out of the passes: the run's results do not
    # depend on when garbage is collected. (Put back afterwards: a test may
    # call this in its own process.)
    saved = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    try:
        failed = _run(args, seeds, run_one, describe, replay)
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()
    if len(seeds) > 1:
        print(f"{len(seeds) - failed} of {len(seeds)} seeds ok")
    return 1 if failed else 0


def _run(args: argparse.Namespace, seeds: list[int], run_one: Callable, describe: Callable,
         replay: Callable[[int], str]) -> int:
    failed = 0
    for seed in seeds:
        started = time.monotonic()
        result, suffix = run_one(seed)
        if args.trace:
            print("\n".join(result.trace))
        took = time.monotonic() - started
        status = describe(result) if result.ok else f"FAILED: {result.message}"
        print(f"seed {seed}: {status} at {result.end_ms} ms virtual ({took:.2f}s){suffix}")
        if not result.ok:
            failed += 1
            print(f"  replay: {replay(seed)} --trace")
    return failed
