"""CPU instructions per replayed txn when a server restores its logs, counted
by valgrind (callgrind): steady on a loaded machine, where seconds are not.

The data directories are bench.scale_data's ``--log`` form: an empty
snapshot.0 and one log holding a session's creates of bench.scale's tree
(znodes of 100 bytes, 1,000 per parent). Each source tree given (``--trees``;
a zabpy checkout each, put first on PYTHONPATH) restores a directory of N
and one of 2N creates, in fresh processes under callgrind; instructions per
txn = (I(2N) - I(N)) / N, which cancels start-up and imports. ``--general``
also measures the last tree with the fast path off (``fast_replay=False``).
Wall and CPU seconds of one restore of ``--time`` znodes (no valgrind) are
printed too, for what they are worth on a shared machine.

    python -m bench.replay                               # this checkout, N=20000
    python -m bench.replay --trees /work/main,. --general --n 20000   # before, after
    python -m bench.replay --time 1000000 --trees /work/main,.

(bench.startup --log-znodes measures a whole server's restart against Java.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _run(data_dir: str, general: bool) -> None:
    """One restore of ``data_dir`` (a copy: a restore may write to it)."""
    from zabpy.storage.recovery import restore
    from zabpy.tree.datatree import DataTree

    v = os.path.join(data_dir, "version-2")
    tree = DataTree()
    t0, c0 = time.perf_counter(), time.process_time()
    res = restore(v, v, tree, fast_replay=False) if general else restore(v, v, tree)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"replayed {res.replayed} txns, {len(tree.nodes)} znodes: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU", flush=True)


def _child(tree: str, data_dir: str, general: bool, valgrind_out: str | None) -> str:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.path.abspath(tree))
    cmd = [sys.executable, os.path.abspath(__file__), "--run", data_dir]
    if general:
        cmd.append("--general")
    if valgrind_out:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind_out}"] + cmd
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr


def _copy(src: str, dst: str) -> str:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _instructions(tree: str, data_dir: str, general: bool, tmp: str) -> int:
    out = _child(tree, _copy(data_dir, os.path.join(tmp, "run")), general,
                 os.path.join(tmp, "callgrind.out"))
    m = re.search(r"Collected : (\d+)", out)
    if m is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{out[-2000:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="creates in the short log (20000)")
    ap.add_argument("--trees", default=ROOT, help="comma-separated zabpy checkouts to measure")
    ap.add_argument("--general", action="store_true",
                    help="also the last tree with fast_replay=False")
    ap.add_argument("--time", type=int, metavar="N",
                    help="instead: wall and CPU seconds of one restore of N creates per tree")
    ap.add_argument("--run", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        _run(args.run, args.general)
        return 0
    sys.path.insert(0, ROOT)
    from bench.scale_data import build_logdir

    trees = [(t, False) for t in args.trees.split(",") if t]
    if args.general:
        trees.append((trees[-1][0], True))
    with tempfile.TemporaryDirectory(prefix="zabpy-replay-") as tmp:
        if args.time:
            build_logdir(os.path.join(tmp, "t"), args.time)
            for tree, general in trees:
                out = _child(tree, _copy(os.path.join(tmp, "t"), os.path.join(tmp, "run")),
                             general, None)
                print(f"{tree}{' (general path)' if general else ''}: {out.strip()}", flush=True)
            return 0
        build_logdir(os.path.join(tmp, "n1"), args.n)
        build_logdir(os.path.join(tmp, "n2"), 2 * args.n)
        print(f"log replay of N={args.n:,} and {2 * args.n:,} creates; instructions per txn",
              flush=True)
        for tree, general in trees:
            i1 = _instructions(tree, os.path.join(tmp, "n1"), general, tmp)
            i2 = _instructions(tree, os.path.join(tmp, "n2"), general, tmp)
            label = tree + (" (fast_replay=False)" if general else "")
            print(f"{label:<50} {(i2 - i1) / args.n:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
