"""What a forked snapshot writer costs its parent, in one process, no sockets:

    python -m bench.snap_probe 1000000 nice10 idle nice10 idle

builds a tree of N znodes of 100 bytes (1,000 per parent) in memory, times
five forks of it (each child exits at once: the fork is the copy of the page
tables), then for each writer policy given (``niceN``: os.nice(N); ``idle``:
SCHED_IDLE) measures the parent's wake-up lag (how much a 1 ms sleep
overshoots) for 3 s quiet and then while a forked child writes the snapshot
(storage.files.write_snapshot_file, as the server's writer does): p99, p50
and max of each, the snapshot's time and the load average. The machine's
load is part of every number; interleave policies and repeat."""
import gc
import os
import sys
import tempfile
import time

from zabpy.tree.datatree import DataTree, DataNode
from zabpy.tree.acl import OPEN_ACL_UNSAFE
from zabpy.storage.files import write_snapshot_file

def main() -> None:
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    t = DataTree()
    t.add_restored_node("/scale", DataNode(b"", OPEN_ACL_UNSAFE))
    for i in range(N // 1000):
        b = f"/scale/b{i:04d}"
        t.add_restored_node(b, DataNode(b"", OPEN_ACL_UNSAFE))
        for j in range(1000):
            t.add_restored_node(f"{b}/n{j:04d}", DataNode(b"v" * 100, OPEN_ACL_UNSAFE))
    t.last_processed_zxid = 5
    gc.collect(); gc.freeze()
    print("rss MiB", int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20, flush=True)
    forks = []
    for _ in range(5):
        t0 = time.perf_counter(); pid = os.fork()
        if pid == 0:
            os._exit(0)
        forks.append((time.perf_counter() - t0) * 1000); os.waitpid(pid, 0)
    print("fork ms", [round(f, 1) for f in forks], flush=True)

    def lags(seconds, stop=None):
        out = []; end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic(); time.sleep(0.001); out.append((time.monotonic() - t0 - 0.001) * 1000)
            if stop is not None and stop():
                break
        return out

    def p(xs, q):
        xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))]

    d = tempfile.mkdtemp()
    for policy in sys.argv[2:]:
        quiet = lags(3)
        pid = os.fork()
        if pid == 0:
            gc.disable()
            if policy == "idle":
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            elif policy.startswith("nice"):
                os.nice(int(policy[4:]))
            write_snapshot_file(d, t, {}, 5)
            os._exit(0)
        t0 = time.monotonic()
        done = []
        def stop():
            r = os.waitpid(pid, os.WNOHANG)
            if r[0]:
                done.append(1)
            return bool(done)
        during = lags(600, stop)
        print(f"{policy}: snapshot {time.monotonic() - t0:.1f} s; lag p99 quiet {p(quiet, .99):.2f} ms, during {p(during, .99):.2f} ms (p50 {p(quiet,.5):.2f}/{p(during,.5):.2f}, max {max(quiet):.1f}/{max(during):.1f}); load {os.getloadavg()[0]:.1f}", flush=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))


if __name__ == "__main__":
    main()
