"""Faults, scheduled from a seed. The schedule (kinds, start times, how long
each holds) is drawn up front from the seed; which member a fault hits is
drawn when it starts, since "the leader" is whoever leads then.

One fault at a time, each healed before the next: a gap, the fault held
for a few seconds, heal. ``heal_all`` undoes every kind, and the run ends
with it whatever happened.

Latency (``delay``, ``delay-link``, ``reorder``) composes with the rest in
two ways: as a scheduled fault like any other, and as a background delay
on every member's link for the whole run (``--latency``), under which the
scheduled faults come and go.

Disk faults (disk.py) may stop their member: a server whose log write
fails must stop acknowledging, and both ZooKeeper and zabpy exit. Such an
exit is expected (``Injector.may_exit``) and recorded with its exit status;
healing frees the disk and starts the member again. Any other exit fails
the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .cluster import Cluster
from .disk import MODE_EIO, MODE_SLOW, Disks, drop_caches
from .net import Network

__all__ = ["KINDS", "POWER_KINDS", "ALL_KINDS", "Fault", "schedule", "Injector"]

NET_KINDS = ("isolate-leader", "split", "bridge", "one-way", "flap", "slow", "loss")
# Latency by the NFQUEUE verdict loop (net.py, netq.py); after the kinds
# above so that the seeds drawn from those (docs/chaos-runs.md) replay with
# ``--faults`` naming the first 14 kinds.
DELAY_KINDS = ("delay", "delay-link", "reorder")
PROCESS_KINDS = ("pause", "kill", "kill-drop")
DISK_KINDS = ("disk-full", "disk-eio", "disk-slow", "disk-full-majority")
KINDS = NET_KINDS + PROCESS_KINDS + DISK_KINDS + DELAY_KINDS
# Opt-in (``--faults``): a kill -9 that also loses what was not fsynced, of
# one member or of every member at once. They need the shim's write
# tracking (disk.py), which is on only in runs that may draw them.
POWER_KINDS = ("power-loss", "power-loss-all")
ALL_KINDS = KINDS + POWER_KINDS
WARMUP_S = 2.0
FLAP_S = 0.7


@dataclass
class Fault:
    kind: str
    start: float          # planned, seconds since the run began
    hold: float
    targets: list[int] = field(default_factory=list)
    detail: str = ""
    began: float | None = None   # when it was applied
    healed: float | None = None
    exits: dict = field(default_factory=dict)   # member -> exit status, when a fault stopped it
    leader: int | None = None   # who led when it began (as srvr said)


def schedule(seed: int, duration: float, kinds=KINDS) -> list[Fault]:
    rng = random.Random(seed)
    out, t = [], WARMUP_S
    while True:
        t += rng.uniform(1.0, 3.0)
        hold = rng.uniform(2.0, 5.0)
        if t + hold > duration - 1.0:
            return out
        out.append(Fault(rng.choice(kinds), round(t, 3), round(hold, 3)))
        t += hold


class Injector:
    def __init__(self, net: Network, cluster: Cluster, seed: int, disks: Disks | None = None):
        self.net = net
        self.cluster = cluster
        self.disks = disks
        self.rng = random.Random(seed ^ 0x5EED)
        self.killed: list[int] = []
        self.flapping: int | None = None
        # Members a disk fault may stop, with that fault; kept through the
        # next fault too (a write begun on the full disk may fail just after
        # the heal: Java exits when a snapshot taken while syncing fails).
        self.may_exit: dict[int, Fault] = {}
        self._grace: dict[int, Fault] = {}
        self.current: Fault | None = None

    def _member(self, prefer_leader: bool) -> int:
        leader = self.cluster.leader() if prefer_leader else None
        return leader if leader is not None else self.rng.choice(self.net.sids)

    def apply(self, f: Fault) -> None:
        self.current = f
        f.leader = self.cluster.leader()
        if f.kind in DISK_KINDS:
            self._disk(f)
        else:
            self._net_or_process(f)

    def _disk(self, f: Fault) -> None:
        disks = self.disks
        s = self._member(self.rng.random() < 0.5)
        f.targets = [s]
        if disks is None or disks.kind == "none":
            f.detail = "skipped: data dirs not on file systems of their own"
        elif f.kind == "disk-full":
            taken = disks.fill(s)
            f.detail = f"{s}'s data file system full ({taken >> 20} MiB of ballast)"
            self.may_exit[s] = f
        elif f.kind == "disk-full-majority":
            # No quorum can log: writes must stop being acknowledged (those
            # that still fit in a log's last allocated block are logged).
            sids = sorted(self.rng.sample(self.net.sids, len(self.net.sids) // 2 + 1))
            for m in sids:
                disks.fill(m)
            f.targets, f.detail = sids, f"data file systems of {sids} full"
            self.may_exit.update((m, f) for m in sids)
        elif disks.shim is None:
            f.detail = f"skipped: {disks.shim_missing}"
        elif f.kind == "disk-eio":
            disks.set_fsync(s, MODE_EIO)
            f.detail = f"{s}'s fsync/fdatasync fail with EIO"
            self.may_exit[s] = f
        else:
            ms = self.rng.choice((100, 300, 1000, 2000))
            disks.set_fsync(s, MODE_SLOW, ms)
            f.detail = f"{s}'s fsync/fdatasync take {ms} ms more"

    def unexpected_exits(self) -> dict[int, int]:
        """Members that exited by themselves and were not allowed to; an
        allowed exit is recorded on the current fault."""
        out = {}
        for s, code in self.cluster.exited().items():
            f = self.may_exit.get(s) or self._grace.get(s)
            if f is not None:
                f.exits.setdefault(s, code)
            else:
                out[s] = code
        return out

    def restart_exited(self, start: bool = True) -> None:
        """Reap the members a disk fault was allowed to stop and that did;
        start them again now, or (``start`` false) with the other killed
        members at the heal."""
        self.unexpected_exits()       # records the allowed exits on their fault
        exited = self.cluster.exited()
        for s in sorted({**self._grace, **self.may_exit}):
            if s in exited:
                self.cluster.reap(s)
                if start:
                    self.cluster.start(s)
                else:
                    self.killed.append(s)

    def _net_or_process(self, f: Fault) -> None:
        sids = list(self.net.sids)
        if f.kind == "isolate-leader":
            s = self._member(True)
            f.targets, f.detail = [s], f"{s} cut off from everyone (link down)"
            self.net.link_down(s)
        elif f.kind == "split":
            self.rng.shuffle(sids)
            k = len(sids) // 2
            minority, majority = sorted(sids[:k]), sorted(sids[k:])
            f.targets, f.detail = minority, f"{minority} | {majority}"
            self.net.partition(minority, majority)
        elif f.kind == "bridge":
            self.rng.shuffle(sids)
            k = (len(sids) - 1) // 2
            a, b, mid = sorted(sids[:k]), sorted(sids[k:2 * k]), sids[-1]
            f.targets, f.detail = [mid], f"{a} | {b}, {mid} sees both"
            self.net.partition(a, b)
        elif f.kind == "one-way":
            s = self._member(self.rng.random() < 0.5)
            f.targets, f.detail = [s], f"{s} receives but its packets to peers are dropped"
            for o in sids:
                if o != s:
                    self.net.drop(s, o)
        elif f.kind == "flap":
            s = self._member(self.rng.random() < 0.5)
            f.targets, f.detail = [s], f"{s}'s link down/up every {FLAP_S}s"
            self.flapping = s
            self.net.link_down(s)
        elif f.kind == "pause":
            s = self._member(self.rng.random() < 0.7)
            f.targets, f.detail = [s], f"SIGSTOP {s}"
            self.cluster.pause(s)
        elif f.kind in ("kill", "kill-drop"):
            s = self._member(self.rng.random() < 0.7)
            f.targets, f.detail = [s], f"kill -9 {s}, restarted at heal"
            self.cluster.kill(s)
            self.killed.append(s)
            if f.kind == "kill-drop":
                f.detail += (", page cache dropped first" if drop_caches()
                             else ", but the page cache could not be dropped")
        elif f.kind == "power-loss":
            s = self._member(self.rng.random() < 0.5)
            f.targets = [s]
            self.cluster.kill(s)
            self.killed.append(s)
            f.detail = f"power cut on {s} (kill -9, unsynced writes lost): {self._lose(s)}"
        elif f.kind == "power-loss-all":
            up = [s for s in sids if s in self.cluster.procs]
            f.targets = up
            for s in up:
                self.cluster.kill(s)
                self.killed.append(s)
            f.detail = f"power cut on {up}: " + "; ".join(f"{s}: {self._lose(s)}" for s in up)
        elif f.kind == "slow":
            s = self._member(self.rng.random() < 0.5)
            f.targets = [s]
            f.detail = f"{s}: " + self.net.slow(s, self.rng.choice((50, 100, 200)),
                                               self.rng.choice((5, 10, 20)))
        elif f.kind == "delay":
            s = self._member(self.rng.random() < 0.5)
            ms = self.rng.choice((50, 100, 200, 400))
            f.targets = [s]
            f.detail = f"{s}: " + self.net.delay(s, ms, ms / 4, seed=self.rng.randrange(1 << 30))
        elif f.kind == "delay-link":
            # One link only, between the leader (when there is one) and
            # another member: the rest of the ensemble stays fast.
            s = self._member(True)
            o = self.rng.choice([x for x in sids if x != s])
            ms = self.rng.choice((50, 100, 200, 400))
            f.targets = [s, o]
            f.detail = f"{s}<->{o}: " + self.net.delay(s, ms, ms / 4, peer=o,
                                                      seed=self.rng.randrange(1 << 30))
        elif f.kind == "reorder":
            # Every member: jitter as wide as the delay, a quarter of the
            # packets overtaking the rest, a few duplicated.
            ms = self.rng.choice((10, 20, 40))
            f.targets = sids
            what = [self.net.delay(s, ms, ms, reorder_pct=25, duplicate_pct=2,
                                   seed=self.rng.randrange(1 << 30)) for s in sids]
            f.detail = f"all: {what[0]}"
        elif f.kind == "loss":
            s = self._member(self.rng.random() < 0.5)
            pct = self.rng.choice((10, 30, 60))
            f.targets = [s]
            f.detail = f"{s}: " + self.net.lose(s, pct)
        else:
            raise AssertionError(f.kind)

    def _lose(self, sid: int) -> str:
        d = self.disks
        if d is None or d.shim is None or not d.track:
            return "nothing lost (no write tracking: " + (
                d.shim_missing if d is not None and d.shim is None else "not enabled") + ")"
        return d.power_loss(sid)

    def tick(self) -> None:
        """Called every FLAP_S while a fault holds."""
        if self.flapping is not None:
            s = self.flapping
            (self.net.link_up if s in self.net.down else self.net.link_down)(s)

    def heal_all(self) -> None:
        self.flapping = None
        stopped = len(self.net.released)
        self.net.heal()
        counts = [q.counts for q in self.net.released[stopped:] if q.counts]
        if counts and self.current is not None:
            # What the verdict loops did, summed over the members delayed.
            total: dict[str, int] = {}
            for c in counts:
                words = c.split()
                for k, v in zip(words[::2], words[1::2]):
                    total[k] = total.get(k, 0) + int(v)
            self.current.detail += " [" + ", ".join(f"{k} {v}" for k, v in total.items()
                                                    if v) + "]"
        for s in sorted(self.cluster.paused):
            self.cluster.resume(s)
        if self.disks is not None:
            self.disks.heal()
        self.restart_exited(start=False)
        self._grace, self.may_exit = self.may_exit, {}
        for s in self.killed:
            if s not in self.cluster.procs:
                self.cluster.start(s)
        self.killed.clear()
        self.current = None
