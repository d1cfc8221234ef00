"""Shared pieces of the mixed-ensemble and migration tests (zabpy beside Java ZooKeeper 3.8).

``ZABPY_MIXED_FULL=1`` runs the whole matrix; without it a representative
subset runs (CI). Each test prints one ``MIXED`` line with what it measured
(election times), so ``pytest -s`` shows the numbers the note reports.
"""

from __future__ import annotations

import os
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.retry import KazooRetry

from zabpy.testing import wait_for
from zabpy.testing.mixed import JAVA, MixedEnsemble, java_missing

FULL = os.environ.get("ZABPY_MIXED_FULL") == "1"

needs_java = pytest.mark.skipif(java_missing() is not None, reason=java_missing() or "")


def full_only(*values, **kw):
    """A pytest.param that runs only with ZABPY_MIXED_FULL=1."""
    return pytest.param(*values, marks=pytest.mark.skipif(
        not FULL, reason="whole mixed matrix: set ZABPY_MIXED_FULL=1"), **kw)


def kazoo(hosts: str, *, timeout: float = 10.0, randomize: bool = True) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=timeout, randomize_hosts=randomize,
                    connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(timeout=30)
    return c


def tree_of(ens: MixedEnsemble, sid: int, root: str) -> dict[str, bytes]:
    """``root``'s children and their data as member ``sid`` serves them (after a sync)."""
    c = kazoo(ens.host(sid))
    try:
        c.sync(root)
        out = {}
        for name in c.get_children(root):
            try:
                out[name] = c.get(f"{root}/{name}")[0]
            except NoAuthError:
                out[name] = b"<no read permission>"
        return out
    finally:
        c.stop()
        c.close()


def assert_members_agree(ens: MixedEnsemble, root: str, expect: dict[str, bytes] | None = None,
                         sids=None) -> dict[str, bytes]:
    """Every running member serves the same children of ``root`` (and ``expect`` if given),
    and no member counted a digest mismatch."""
    sids = ens.running() if sids is None else sids
    trees = {sid: tree_of(ens, sid, root) for sid in sids}
    first = trees[sids[0]]
    for sid, tree in trees.items():
        assert tree == first, f"member {sid} ({ens.kinds[sid]}) differs from {sids[0]}"
    if expect is not None:
        assert first == expect
    for sid in sids:
        assert ens.mntr(sid).get("zk_digest_mismatches_count", "0") == "0", sid
    return first


def elect(ens: MixedEnsemble, order: list[int]) -> float:
    """Start the members in ``order`` (each once the one before listens) and
    return the seconds from the last one listening to all serving under one leader."""
    ens.start_all(order)
    began = time.monotonic()
    ens.wait_serving()
    return time.monotonic() - began


def kinds_text(ens: MixedEnsemble) -> str:
    return "".join("j" if ens.kinds[s] == JAVA else "z" for s in ens.sids)


def report(what: str, **numbers) -> None:
    fields = " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in numbers.items())
    print(f"\nMIXED {what} {fields}", flush=True)


__all__ = ["FULL", "needs_java", "full_only", "kazoo", "tree_of", "assert_members_agree", "elect",
           "kinds_text", "report", "wait_for"]
