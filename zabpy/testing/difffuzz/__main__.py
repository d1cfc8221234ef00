"""python -m zabpy.testing.difffuzz: run fuzzer seeds against Java ZooKeeper."""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time

from . import DEFAULT_OPS, ops, run_seed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m zabpy.testing.difffuzz",
                                description="Differential fuzzer: zabpy against Java ZooKeeper 3.8")
    p.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    p.add_argument("--seeds", type=int, default=0, help="run seeds FROM..FROM+N-1")
    p.add_argument("--from-seed", type=int, default=0, help="first seed of --seeds")
    p.add_argument("--ops", type=int, default=DEFAULT_OPS, help="ops per seed")
    p.add_argument("-v", "--verbose", action="store_true", help="print every op")
    p.add_argument("--open", action="store_true",
                   help="also generate the open differences (ops.OPEN_DIFFERENCES)")
    p.add_argument("--stats", action="store_true", help="print what the seeds exercised")
    p.add_argument("--keep-going", action="store_true", help="run every seed even after a difference")
    a = p.parse_args(argv)
    logging.disable(logging.WARNING)   # the in-process server's client warnings
    if a.open:
        ops.AVOID_OPEN = False
    seeds = list(a.seed or []) + list(range(a.from_seed, a.from_seed + a.seeds))
    if not seeds:
        seeds = [0]
    failed = []
    stats = collections.Counter()
    t0 = time.monotonic()
    for seed in seeds:
        t = time.monotonic()
        diff = run_seed(seed, a.ops, log=print if a.verbose else None, stats=stats)
        took = time.monotonic() - t
        if diff is None:
            print(f"seed {seed}: {a.ops} ops, no difference ({took:.1f}s)", flush=True)
            continue
        print(diff.report(), flush=True)
        failed.append(seed)
        if not a.keep_going:
            break
    if a.stats:
        print("exercised: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    ran = len(seeds) if a.keep_going or not failed else seeds.index(failed[-1]) + 1
    print(f"{ran} seeds x {a.ops} ops, {len(failed)} with a difference {failed} "
          f"in {time.monotonic() - t0:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
