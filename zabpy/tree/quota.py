"""Quotas, kept as ZooKeeper 3.8's DataTree, StatsTrack and ZooKeeperServer
keep them.

State: the quota'd paths (ZooKeeper's ``pTrie``, a ``PathTrie``). A path is
quota'd once a ``zookeeper_limits`` node is created under
``/zookeeper/quota<path>``; deleting such a node unmarks the path (quotas
nested below it stay). A snapshot load rebuilds the trie from the limits nodes that are
leaves, recounting each quota's usage (``setupQuota``).

Usage lives in the data of ``/zookeeper/quota<path>/zookeeper_stats``
(StatsTrack text, ``count=N,bytes=M``). ZooKeeper changes it in place, never
through a txn of its own, so the stats node's stat (mzxid, version, mtime)
only moves when a client writes it; its dataLength follows the data:

- creating a ``zookeeper_stats`` node recounts the quota'd subtree (the
  quota'd node itself included; 0 and 0 when it does not exist) and writes
  the result over the data the client gave (``updateQuotaForPath``);
- creating, deleting or setting the data of a node adds (+1, +len),
  (-1, -len) or (0, new len - old len) to the stats of the deepest quota'd
  path at or above it (``getMaxPrefixWithQuota``; a quota on '/' counts
  nothing).

Limits live in ``zookeeper_limits`` in the same text: ``count`` and ``bytes``
are soft limits, ``countHardLimit`` and ``byteHardLimit`` hard ones (zkCli's
setquota writes all four, -1 meaning none). ``check_quota`` is
ZooKeeperServer.checkQuota: with ``zookeeper.enforceQuota`` on, prep checks a
create or setData against the *applied* usage; going past a soft limit only
logs, past a hard limit fails the request with QUOTAEXCEEDED.
"""

from __future__ import annotations

import re

__all__ = ["QuotaIndex", "QUOTA_ROOT", "LIMIT_NODE", "STAT_NODE", "stats_path", "limits_path",
           "parse_stats", "stats_text", "quota_stats_data", "StatsError", "check_quota",
           "QuotaCheck", "top_namespace", "quota_gauges", "QUOTA_GAUGE_SETS"]

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"
_LIMIT_SUFFIX = "/" + LIMIT_NODE
_SEPARATORS = re.compile(r"[,;]+")
_NUMBER = re.compile(r"[+-]?\d+")  # Long.parseLong (Character.digit takes any Nd digit)
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_BLANK = "".join(chr(c) for c in range(33))  # what Java's String.trim() strips


class StatsError(ValueError):
    """Text StatsTrack cannot parse (ZooKeeper throws a RuntimeException)."""


def trim_quota_path(parent: str) -> str:
    """Quotas.trimQuotaPath: the quota'd path a node under the quota tree
    names ('' for the quota root itself)."""
    return parent[len(QUOTA_ROOT):]


def stats_path(quota_path: str) -> str:
    return f"{QUOTA_ROOT}{quota_path}/{STAT_NODE}"


def limits_path(quota_path: str) -> str:
    return f"{QUOTA_ROOT}{quota_path}/{LIMIT_NODE}"


def _java_split(text: str, sep) -> list[str]:
    """String.split: trailing empty strings dropped."""
    parts = sep.split(text) if isinstance(sep, re.Pattern) else text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_stats(data: bytes | None) -> dict[str, int]:
    """StatsTrack(byte[]): ``k=v`` pairs split on runs of ',' and ';', an
    empty value meaning -1, a later key winning. Raises StatsError where
    ZooKeeper throws (null data, a pair without a value, a bad number)."""
    if data is None:
        raise StatsError("no data")
    text = data.decode("utf-8", "replace")
    stats: dict[str, int] = {}
    if not text:
        return stats
    for pair in _java_split(text, _SEPARATORS):
        kv = _java_split(pair, "=")
        if len(kv) < 2:
            raise StatsError(f"no value in {pair!r}")
        value = kv[1]
        if value == "":
            stats[kv[0]] = -1
            continue
        if not _NUMBER.fullmatch(value) or not _LONG_MIN <= int(value) <= _LONG_MAX:
            raise StatsError(f"not a long: {value!r}")
        stats[kv[0]] = int(value)
    return stats


def stats_text(stats: dict[str, int]) -> bytes:
    """StatsTrack.toString: count and bytes first (-1 when absent), then an
    '=' and the other keys sorted as Java sorts strings, each as ';k=v'."""
    extra = sorted((k for k in stats if k not in ("count", "bytes")),
                   key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    if extra:
        text += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return text.encode()


def quota_stats_data(data: bytes | None, count_diff: int, bytes_diff: int) -> bytes | None:
    """updateQuotaStat: the stats text with the differences added; None
    where ZooKeeper's apply would throw. Java's server then stops (its
    commit thread dies on the exception); we leave the data as it is."""
    try:
        stats = parse_stats(data)
    except StatsError:
        return None
    stats["count"] = stats.get("count", -1) + count_diff
    stats["bytes"] = stats.get("bytes", -1) + bytes_diff
    return stats_text(stats)


def _components(path: str) -> list[str]:
    """PathTrie.split: the parts of a path, blank ones (after trim) dropped."""
    return [p for p in path.split("/") if p.strip(_BLANK)]


class _TrieNode:
    __slots__ = ("children", "quota")

    def __init__(self) -> None:
        self.children: dict[str, _TrieNode] = {}
        self.quota = False


class QuotaIndex:
    """The quota'd paths, a trie with PathTrie's semantics."""

    def __init__(self) -> None:
        self.root = _TrieNode()
        # the first level of the trie: empty while no path is quota'd (the
        # tree's hot paths test it without a call)
        self.top = self.root.children

    def __bool__(self) -> bool:
        return bool(self.top)

    def add(self, quota_path: str) -> None:
        if not quota_path:
            return  # PathTrie refuses '' (ZooKeeper throws mid-apply)
        node = self.root
        for part in _components(quota_path):
            node = node.children.setdefault(part, _TrieNode())
        node.quota = True

    def remove(self, quota_path: str) -> None:
        if not quota_path:
            return
        parts = _components(quota_path)
        if not parts:
            return
        node, parent = self.root, self.root
        for part in parts:
            child = node.children.get(part)
            if child is None:
                return
            parent, node = node, child
        node.quota = False
        if not node.children:  # a node with quotas below it stays, as a path
            del parent.children[parts[-1]]

    def paths(self) -> list[str]:
        """Every quota'd path, sorted (for tests and tools)."""
        out: list[str] = []
        stack = [("", self.root)]
        while stack:
            prefix, node = stack.pop()
            for name, child in node.children.items():
                p = f"{prefix}/{name}"
                if child.quota:
                    out.append(p)
                stack.append((p, child))
        return sorted(out)

    def node_added(self, parent: str, name: str) -> str | None:
        """A node was created. Returns the quota'd path to recount when it is
        a stats node."""
        if not parent.startswith(QUOTA_ROOT):
            return None
        if name == LIMIT_NODE:
            self.add(trim_quota_path(parent))
        elif name == STAT_NODE:
            return trim_quota_path(parent)
        return None

    def node_removed(self, parent: str, name: str) -> None:
        if name == LIMIT_NODE and parent.startswith(QUOTA_ROOT):
            self.remove(trim_quota_path(parent))

    def max_prefix(self, path: str) -> str | None:
        """The deepest quota'd path at or above ``path``; never '/'."""
        node: _TrieNode | None = self.root
        deepest: list[str] | None = None
        walked: list[str] = []
        for part in _components(path):
            assert node is not None
            node = node.children.get(part)
            if node is None:
                break
            walked.append(part)
            if node.quota:
                deepest = list(walked)
        if not deepest:
            return None
        return "/" + "/".join(deepest)


def limit_leaf_quota_path(path: str) -> str | None:
    """setupQuota's reading of a leaf node under /zookeeper/quota: the
    quota'd path when it ends in /zookeeper_limits (cut at the first
    occurrence, as ZooKeeper cuts it)."""
    if not path.endswith(_LIMIT_SUFFIX):
        return None
    return path[len(QUOTA_ROOT): path.index(_LIMIT_SUFFIX)]


def top_namespace(path: str) -> str | None:
    """PathUtils.getTopNamespace: the first name of a path."""
    parts = _java_split(path, "/")
    return parts[1] if len(parts) > 1 else None


# ZooKeeper's per-namespace quota gauge sets, in the order its mntr lists them.
QUOTA_GAUGE_SETS = ("quota_bytes_limit_per_namespace", "quota_count_usage_per_namespace",
                    "quota_count_limit_per_namespace", "quota_bytes_usage_per_namespace")


def quota_gauges(nodes: dict) -> dict[str, dict[str, int]]:
    """QuotaMetricsUtils: for each gauge set, namespace -> the sum over the
    leaves of the quota tree of the limits (hard when set, else soft) or the
    usage. ``nodes``: the tree's path -> node map."""
    out: dict[str, dict[str, int]] = {name: {} for name in QUOTA_GAUGE_SETS}
    if QUOTA_ROOT not in nodes:
        return out
    stack = [QUOTA_ROOT]
    while stack:
        path = stack.pop()
        node = nodes[path]
        if node.children:
            stack.extend(f"{path}/{c}" for c in node.children)
            continue
        limits = path.endswith(_LIMIT_SUFFIX)
        if not limits and not path.endswith("/" + STAT_NODE):
            continue
        ns = top_namespace(trim_quota_path(path))
        if ns is None or node.data is None:
            continue
        try:
            st = parse_stats(node.data)
        except StatsError:
            continue  # ZooKeeper's gauge throws; the scrape goes on without it
        count, size = st.get("count", -1), st.get("bytes", -1)
        if limits:
            hard_count, hard_bytes = st.get("countHardLimit", -1), st.get("byteHardLimit", -1)
            pairs = (("quota_count_limit_per_namespace", hard_count if hard_count > -1 else count),
                     ("quota_bytes_limit_per_namespace", hard_bytes if hard_bytes > -1 else size))
        else:
            pairs = (("quota_count_usage_per_namespace", count),
                     ("quota_bytes_usage_per_namespace", size))
        for name, value in pairs:
            out[name][ns] = out[name].get(ns, 0) + value
    return out


class QuotaCheck:
    """What check_quota found: ``messages`` for the log (ZooKeeper's
    "Quota exceeded: ..." text), ``exceeded`` True when a hard limit fails
    the request."""

    __slots__ = ("messages", "exceeded")

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.exceeded = False


def check_quota(prefix: str, limits: bytes | None, stats: bytes | None,
                bytes_diff: int, count_diff: int) -> QuotaCheck:
    """ZooKeeperServer.checkQuota for the quota at ``prefix``, given the data
    of its limits and stats nodes (None: the node is missing, nothing is
    checked). Raises StatsError where ZooKeeper throws (bad limits or stats
    text, which it answers with MARSHALLINGERROR)."""
    out = QuotaCheck()
    if limits is None:
        return out
    lim = parse_stats(limits)
    count_soft, count_hard = lim.get("count", -1), lim.get("countHardLimit", -1)
    bytes_soft, bytes_hard = lim.get("bytes", -1), lim.get("byteHardLimit", -1)
    check_count = count_diff != 0 and (count_soft > -1 or count_hard > -1)
    check_bytes = bytes_diff != 0 and (bytes_soft > -1 or bytes_hard > -1)
    if not (check_count or check_bytes) or stats is None:
        return out
    cur = parse_stats(stats)
    for check, key, diff, hard, soft, what in (
            (check_count, "count", count_diff, count_hard, count_soft, "Count"),
            (check_bytes, "bytes", bytes_diff, bytes_hard, bytes_soft, "Byte")):
        if not check:
            continue
        new = cur.get(key, -1) + diff
        limit = hard if hard > -1 else soft
        if new > limit:
            kind = "hard" if hard > -1 else "soft"
            out.messages.append(f"Quota exceeded: {prefix} [current {key}={new}, "
                                f"{kind}{what}Limit={limit}]")
            if hard > -1:
                out.exceeded = True
                return out
    return out
