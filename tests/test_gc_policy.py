"""The server's garbage-collector policy (runtime/gc_policy.py): full passes
skip what survived the last one, and nothing is leaked for good."""

from __future__ import annotations

import gc
import weakref

import pytest

from zabpy.runtime.config import load_config
from zabpy.runtime.gc_policy import YOUNG_THRESHOLD, GcPolicy


class _Node:
    def __init__(self):
        self.other = None


def _cycle():
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def policy():
    p = GcPolicy(full_sweep_interval_s=0)
    try:
        yield p
    finally:
        p.uninstall()


def test_survivors_of_a_full_pass_are_frozen_out_of_later_passes(policy):
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    keep = [_Node() for _ in range(1000)]
    policy.settle()
    frozen = gc.get_freeze_count()
    assert frozen >= len(keep)
    # a later full pass still frees new garbage cycles ...
    ref = weakref.ref(_cycle())
    gc.collect()
    assert ref() is None
    # ... and what was frozen stays frozen (out of every generation a pass scans)
    assert not any(o is keep[0] for o in gc.get_objects())
    del keep


def test_the_periodic_sweep_frees_cycles_that_died_while_frozen(policy):
    obj = _cycle()
    ref = weakref.ref(obj)
    policy.settle()  # alive now: frozen with the rest
    del obj
    gc.collect()
    assert ref() is not None, "a frozen cycle is skipped by ordinary passes"
    policy.interval_s = 0.000001
    policy.tick()
    assert ref() is None
    assert policy.full_sweeps == 1


def test_the_start_up_restore_runs_without_passes_and_is_frozen_at_once(policy):
    """``restoring``: garbage from before is collected first, no pass runs
    while the tree is built, and what was built is frozen when it ends (the
    first pass after it would otherwise scan all of it)."""
    before = weakref.ref(_cycle())
    passes = []

    def count(phase, info):
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with policy.restoring():
            assert before() is None
            passes.clear()
            built = [_Node() for _ in range(3 * YOUNG_THRESHOLD)]
            assert not gc.isenabled()
        assert passes == [] and gc.isenabled()
        assert gc.get_freeze_count() >= len(built)
        assert not any(o is built[-1] for o in gc.get_objects())
    finally:
        gc.callbacks.remove(count)


def test_uninstall_restores_the_collector():
    before = gc.get_threshold()
    p = GcPolicy()
    p.uninstall()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_sweep_interval_is_a_config_key(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\nzabpy.gcFullSweepIntervalMs=5000\n")
    assert load_config(str(cfg))[0].gc_full_sweep_interval_ms == 5000
