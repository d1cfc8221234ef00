"""Quorum verifiers: which sets of servers make a quorum.

Two kinds exist, as in ZooKeeper's ``flexible`` package:

* ``MajorityQuorum`` (QuorumMaj): a set of voters is a quorum when it holds
  more than half of the voters. Every voter weighs 1.
* ``HierarchicalQuorum`` (QuorumHierarchical): voters are split into groups
  and each voter has a weight (default 1; 0 makes a voter that never leads
  and never counts). A group is *won* when the weights of its members in the
  set exceed half of the group's total weight (integer halves, as Java's long
  division); the set is a quorum when it wins more than half of the groups
  that have a non-zero total weight.

* ``OracleMajority`` (QuorumOracleMaj, zoo.cfg ``oraclePath``): a majority,
  except that with exactly two voters a set without a majority is a quorum
  when the oracle says so and the oracle is needed (see the class).

Observers are members that never vote. Both verifiers carry the config
``version`` and the per-server spec text (``host:quorumPort:electionPort:role;
clientAddr``) so they can render the config text that every version-2
notification carries. ``quorum_from_config`` builds one from zoo.cfg-style
``server.N`` / ``group.N`` / ``weight.N`` / ``version`` keys.

Verifiers are immutable, but for the oracle's two inputs (what its file
says, which the runtime reads and feeds in, and whether the leader still
has a follower); sids are ints, held in sorted tuples so iteration
order never depends on hashing.
"""

from __future__ import annotations

from typing import Iterable, Mapping

__all__ = ["QuorumVerifier", "MajorityQuorum", "HierarchicalQuorum", "OracleMajority",
           "quorum_from_config", "role_of_spec", "member_order", "chm_order"]


def _java_hash(text: str) -> int:
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h


def _spread(h: int) -> int:
    return (h ^ (h >> 16)) & 0x7FFFFFFF


def chm_order(keys: list[str]) -> list[str]:
    """Iteration order of a ConcurrentHashMap(8) after putting ``keys`` in order."""
    n, threshold, count = 16, 12, 0
    table: list[list[str]] = [[] for _ in range(n)]
    for key in keys:
        bin_ = table[_spread(_java_hash(key)) & (n - 1)]
        if key in bin_:
            continue
        bin_.append(key)
        count += 1
        if count < threshold:
            continue
        grown: list[list[str]] = [[] for _ in range(2 * n)]
        for i, nodes in enumerate(table):
            if not nodes:
                continue
            bits = [_spread(_java_hash(k)) & n for k in nodes]
            last_run = len(nodes) - 1          # the tail that stays together, kept in order
            while last_run > 0 and bits[last_run - 1] == bits[-1]:
                last_run -= 1
            low = list(nodes[last_run:]) if bits[-1] == 0 else []
            high = list(nodes[last_run:]) if bits[-1] else []
            for k, bit in zip(nodes[:last_run], bits[:last_run]):
                (high if bit else low).insert(0, k)   # the rest, prepended one by one
            grown[i], grown[i + n] = low, high
        table, n = grown, 2 * n
        threshold = n - (n >> 2)
    return [k for nodes in table for k in nodes]


def member_order(sids: Iterable[int]) -> list[int]:
    """The order Java lists members in (QuorumMaj.toString): a config parsed
    from text puts its ``server.N`` keys in a ``Properties`` (a
    ConcurrentHashMap) and then, in that map's order, into a
    ``HashMap<Long, _>`` of 16 buckets, which it iterates. Ascending for sids
    below 16; checked against Java for larger ones."""
    ordered = sorted(set(sids))
    keys = chm_order([f"server.{sid}" for sid in ordered] + ["version"])
    position = {int(k[7:]): i for i, k in enumerate(keys) if k.startswith("server.")}
    cap = 16
    while len(ordered) > cap * 3 // 4:
        cap *= 2

    def bucket(sid: int) -> int:
        h = (sid ^ (sid >> 32)) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (cap - 1)
    return sorted(ordered, key=lambda s: (bucket(s), position[s]))


def role_of_spec(spec: str) -> str:
    """``participant`` or ``observer`` from a ``server.N`` value (default participant)."""
    head = spec.split(";", 1)[0].strip()
    last = head.rsplit(":", 1)[-1].strip().lower()
    return "observer" if last == "observer" else "participant"


class QuorumVerifier:
    """Common surface: voters, observers, weight, contains_quorum, config text."""

    def __init__(self, voters: Iterable[int], observers: Iterable[int], version: int,
                 specs: Mapping[int, str] | None) -> None:
        self.voters: tuple[int, ...] = tuple(sorted(set(voters)))
        self.observers: tuple[int, ...] = tuple(sorted(set(observers)))
        assert not set(self.voters) & set(self.observers), "a server is voter and observer"
        assert self.voters, "a quorum needs at least one voter"
        self.version = version
        self._specs = dict(specs or {})

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.voters + self.observers))

    def is_voter(self, sid: int) -> bool:
        return sid in self.voters

    def weight(self, sid: int) -> int:
        return 1 if sid in self.voters else 0

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        raise NotImplementedError

    # The two-voter oracle's state (``OracleMajority``); plain verifiers have none.
    oracle_path: str | None = None
    oracle = False
    need_oracle = False

    def update_need_oracle(self, followers: Iterable[int]) -> bool:
        """A leader's followers changed (QuorumVerifier.updateNeedOracle); only
        ``OracleMajority`` cares. True when the oracle is now needed."""
        return False

    def spec(self, sid: int) -> str:
        role = "observer" if sid in self.observers else "participant"
        return self._specs.get(sid, f"0.0.0.0:0:0:{role}")

    def same_members(self, other: "QuorumVerifier") -> bool:
        """QuorumMaj.equals: the same servers with the same addresses and roles."""
        return (self.voters == other.voters and self.observers == other.observers
                and all(self.spec(s) == other.spec(s) for s in self.members))

    def _server_lines(self) -> list[str]:
        lines = []
        for sid in member_order(self.members):
            role = "observer" if sid in self.observers else "participant"
            lines.append(f"server.{sid}={self._specs.get(sid, f'0.0.0.0:0:0:{role}')}")
        return lines

    def _extra_lines(self) -> list[str]:
        return []

    def to_config_text(self) -> str:
        """The text ZooKeeper's QuorumVerifier.toString() gives (notification config)."""
        return "\n".join(self._server_lines() + self._extra_lines() + [f"version={self.version:x}"])


class MajorityQuorum(QuorumVerifier):
    """More than half of the voters."""

    def __init__(self, voters: Iterable[int], observers: Iterable[int] = (), version: int = 0,
                 specs: Mapping[int, str] | None = None) -> None:
        super().__init__(voters, observers, version, specs)
        self._half = len(self.voters) // 2

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        voters = self.voters
        return len({s for s in sids if s in voters}) > self._half

    def __repr__(self) -> str:
        return f"MajorityQuorum(voters={self.voters}, observers={self.observers})"


class OracleMajority(MajorityQuorum):
    """QuorumOracleMaj: a two-voter ensemble that survives the loss of one voter.

    With more than two voters it is a plain majority. With two, a set that
    is not a majority is still a quorum when the oracle is *needed* and
    *says yes*: ``need_oracle`` starts True and a leader sets it to "I have
    no follower" whenever its followers change and whenever it finds itself
    without a quorum; ``oracle`` is the first character of the oracle file
    being '1' (a missing or unreadable file says no), which the runtime
    reads and hands in through ``set_oracle`` (cores never read files).
    Unlike ZooKeeper, an empty set is never a quorum (see contains_quorum).
    Election (FLE) and the leader (epoch, NEWLEADER acks, commits, staying
    leader) all ask ``contains_quorum``, so all of them follow the oracle.
    """

    def __init__(self, voters: Iterable[int], observers: Iterable[int] = (), version: int = 0,
                 specs: Mapping[int, str] | None = None, oracle_path: str = "") -> None:
        super().__init__(voters, observers, version, specs)
        self.oracle_path = oracle_path
        self.oracle = False
        self.need_oracle = True

    def set_oracle(self, says_yes: bool) -> None:
        self.oracle = says_yes

    def update_need_oracle(self, followers: Iterable[int]) -> bool:
        self.need_oracle = not any(True for _ in followers) and len(self.voters) == 2
        return self.need_oracle

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        sids = [s for s in sids if s in self.voters]
        majority = super().contains_quorum(sids)
        if majority or len(self.voters) > 2:
            return majority
        # The oracle stands in for the other voter, never for both: ZooKeeper
        # asks it for an empty set too, and so commits a proposal that not
        # even the leader has logged yet (revalidateOutstandingProp).
        return bool(sids) and self.need_oracle and self.oracle

    def __repr__(self) -> str:
        return f"OracleMajority(voters={self.voters}, observers={self.observers})"


class HierarchicalQuorum(QuorumVerifier):
    """A majority of (non-empty-weight) groups, each won by a weighted majority."""

    def __init__(self, groups: Mapping[int, Iterable[int]], weights: Mapping[int, int] | None = None,
                 observers: Iterable[int] = (), version: int = 0,
                 specs: Mapping[int, str] | None = None) -> None:
        self._group_of: dict[int, int] = {}
        for gid in sorted(groups):
            for sid in sorted(groups[gid]):
                assert sid not in self._group_of, f"server {sid} is in two groups"
                self._group_of[sid] = gid
        super().__init__(self._group_of, observers, version, specs)
        self._weights = {sid: int((weights or {}).get(sid, 1)) for sid in self.voters}
        assert all(w >= 0 for w in self._weights.values()), "negative weight"
        self._group_weight: dict[int, int] = {}
        for sid in self.voters:
            gid = self._group_of[sid]
            self._group_weight[gid] = self._group_weight.get(gid, 0) + self._weights[sid]
        self._groups_counted = sum(1 for w in self._group_weight.values() if w > 0)

    def weight(self, sid: int) -> int:
        return self._weights.get(sid, 0)

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        won: dict[int, int] = {}
        for sid in sorted(set(sids)):
            gid = self._group_of.get(sid)
            if gid is not None:
                won[gid] = won.get(gid, 0) + self._weights[sid]
        groups = sum(1 for gid, w in won.items() if w > self._group_weight[gid] // 2)
        return groups > self._groups_counted // 2

    def _extra_lines(self) -> list[str]:
        by_group: dict[int, list[int]] = {}
        for sid in self.voters:
            by_group.setdefault(self._group_of[sid], []).append(sid)
        lines = [f"group.{gid}=" + ":".join(map(str, by_group[gid])) for gid in sorted(by_group)]
        return lines + [f"weight.{sid}={self._weights[sid]}" for sid in self.voters]

    def __repr__(self) -> str:
        return f"HierarchicalQuorum(groups={self._group_of}, weights={self._weights})"


def quorum_from_config(props: Mapping[str, str], oracle_path: str | None = None) -> QuorumVerifier:
    """Build a verifier from ``server.N``, ``group.N``, ``weight.N``, ``version`` keys.

    With ``oracle_path`` (zoo.cfg ``oraclePath``) it is an ``OracleMajority``,
    whatever the groups say, as in ZooKeeper's QuorumPeerConfig.

    Raises ``ValueError`` for a malformed key or value (a configuration error).
    """
    specs: dict[int, str] = {}
    groups: dict[int, list[int]] = {}
    weights: dict[int, int] = {}
    version = 0
    for key in sorted(props):
        value = props[key].strip()
        if key.startswith("server."):
            specs[int(key[len("server."):])] = value
        elif key.startswith("group."):
            groups[int(key[len("group."):])] = [int(s) for s in value.split(":")]
        elif key.startswith("weight."):
            weights[int(key[len("weight."):])] = int(value)
        elif key == "version":
            version = int(value, 16)
    voters = [sid for sid in sorted(specs) if role_of_spec(specs[sid]) == "participant"]
    observers = [sid for sid in sorted(specs) if role_of_spec(specs[sid]) == "observer"]
    if oracle_path is not None:
        return OracleMajority(voters, observers, version, specs, oracle_path)
    if not groups:
        return MajorityQuorum(voters, observers, version, specs)
    grouped = {sid for members in groups.values() for sid in members}
    missing = [sid for sid in voters if sid not in grouped]
    if missing:
        raise ValueError(f"servers {missing} are not in a group")
    return HierarchicalQuorum(groups, weights, observers, version, specs)
