"""Quota usage, kept as ZooKeeper 3.8's DataTree keeps it.

State: the set of quota'd paths (ZooKeeper's ``pTrie``). A path is quota'd
while a ``zookeeper_limits`` node exists under ``/zookeeper/quota<path>``;
the set follows creates and deletes of those nodes and is rebuilt from a
snapshot (ZooKeeper's ``setupQuota``).

Usage lives in the data of ``/zookeeper/quota<path>/zookeeper_stats`` as
``count=N,bytes=M`` (StatsTrack). ZooKeeper changes it in place, never
through a txn of its own:

- creating a ``zookeeper_stats`` node recounts the quota'd subtree (the
  node itself included) and writes the result over the data the client
  gave (``updateQuotaForPath``);
- creating, deleting or setting the data of a node adds (+1, +len),
  (-1, -len) or (0, new len - old len) to the stats of the deepest quota'd
  path at or above it (``getMaxPrefixWithQuota``; a quota on '/' counts
  nothing).

Inputs are plain paths and byte lengths; ``quota_stats_data`` is pure.
"""

from __future__ import annotations

import re

__all__ = ["QuotaIndex", "QUOTA_ROOT", "LIMIT_NODE", "STAT_NODE", "stats_path",
           "quota_stats_data"]

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_LONG = re.compile(r"[+-]?[0-9]{1,19}")


def trim_quota_path(parent: str) -> str:
    """Quotas.trimQuotaPath: the quota'd path a node under the quota tree
    names ('' for the quota root itself)."""
    return parent[len(QUOTA_ROOT):]


def stats_path(quota_path: str) -> str:
    return f"{QUOTA_ROOT}{quota_path}/{STAT_NODE}"


def _trie_key(quota_path: str) -> str:
    """The path as ZooKeeper's PathTrie stores it (empty parts dropped)."""
    return "/" + "/".join(p for p in quota_path.split("/") if p)


def quota_stats_data(data: bytes | None, count_diff: int, bytes_diff: int) -> bytes | None:
    """StatsTrack: parse ``k=v,...``, add to count and bytes (an absent one
    counts as -1, as getCount / getBytes answer), and write count and bytes
    first, then any other keys sorted in StatsTrack.toString's own layout
    (``count=1,bytes=2=;a=3;b=4``). None where ZooKeeper would throw (it
    fails the server on a null stats node: we leave the data alone)."""
    if data is None:
        return None
    stats: dict[str, int] = {}
    text = data.decode("utf-8", "replace")
    for pair in text.split(",") if text else ():
        kv = pair.split("=")
        if len(kv) < 2 or not _LONG.fullmatch(kv[1]):
            return None
        stats[kv[0]] = int(kv[1])
    count = stats.pop("count", -1) + count_diff
    size = stats.pop("bytes", -1) + bytes_diff
    extra = "=" + "".join(f";{k}={stats[k]}" for k in sorted(stats)) if stats else ""
    return f"count={count},bytes={size}{extra}".encode()


class QuotaIndex:
    def __init__(self) -> None:
        self.paths: dict[str, None] = {}

    def node_added(self, parent: str, name: str) -> str | None:
        """A node was created or restored. Returns the quota'd path to
        recount when it is a stats node."""
        if not parent.startswith(QUOTA_ROOT):
            return None
        if name == LIMIT_NODE:
            self.paths[_trie_key(trim_quota_path(parent))] = None
        elif name == STAT_NODE:
            return trim_quota_path(parent)
        return None

    def node_removed(self, parent: str, name: str) -> None:
        if name == LIMIT_NODE and parent.startswith(QUOTA_ROOT):
            self.paths.pop(_trie_key(trim_quota_path(parent)), None)

    def max_prefix(self, path: str) -> str | None:
        """The deepest quota'd path at or above ``path``; never '/'."""
        paths = self.paths
        if not paths:
            return None
        p = path
        while len(p) > 1:
            if p in paths:
                return p
            p = p[: p.rfind("/")] or "/"
        return None
