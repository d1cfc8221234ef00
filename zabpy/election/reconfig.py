"""Dynamic reconfig's pure rules: server specs, the next membership, config text.

ZooKeeper 3.8 keeps one membership (a ``QuorumVerifier``) per config
version; the version of a config made by the reconfig op is the zxid of
its txn. This module owns what a config *is*, with no state:

* ``normalize_spec`` reads one ``server.N`` value
  (``host:quorumPort:electionPort[:role][;[clientHost:]clientPort]``) as
  QuorumServer does and renders it as QuorumServer.toString does
  (``:participant`` made explicit, a bare client port given host
  ``0.0.0.0``, IPv6 literals written out in full and in brackets).
* ``next_quorum`` builds the membership a reconfig request asks for
  (PrepRequestProcessor's reconfig case): incremental (``joining`` /
  ``leaving`` against the last seen config, majority configs only) or
  non-incremental (``new_members``, a whole dynamic config). It raises
  ``ReconfigError`` with the error code ZooKeeper answers: BADARGUMENTS for a
  malformed spec or too few voters, MARSHALLINGERROR where Java fails on a
  number that does not parse (a ``NumberFormatException`` its prep does not
  catch).
* ``quorum_from_text`` reads config text (``/zookeeper/config``, the data of
  a reconfig txn, the config in a NEWLEADER packet or an election
  notification) back into a verifier.
* ``member_order`` is the order Java prints members in (a ``HashMap<Long,_>``:
  by bucket, then, as an approximation of insertion order, by sid).
"""

from __future__ import annotations

import ipaddress

from ..jute.constants import ERR
from .quorum import (HierarchicalQuorum, MajorityQuorum, QuorumVerifier, member_order,
                     quorum_from_config)

__all__ = ["ReconfigError", "normalize_spec", "next_quorum", "quorum_from_text", "member_order",
           "spec_client", "spec_role"]


class ReconfigError(Exception):
    """A reconfig request ZooKeeper refuses; ``code`` is the reply's error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _host_and_port(text: str) -> list[str]:
    """ConfigUtils.getHostAndPort: a bracketed IPv6 host, then ':'-separated parts."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text} starts with '[' but has no matching ']'")
        host, rest = text[1:end], text[end + 1:]
        if not rest:
            return [host]
        if not rest.startswith(":"):
            raise ValueError(f"{text} does not have : after ]")
        return [host] + rest[1:].split(":")
    return text.split(":")


def _host_text(host: str) -> str:
    """delimitedHostString: an IPv6 literal in full (Java's form) and in brackets."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6:
        return "[" + ":".join(format(int(g, 16), "x") for g in ip.exploded.split(":")) + "]"
    return host


def _port(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"bad port {text!r}")
    return int(text)


def normalize_spec(value: str) -> str:
    """One ``server.N`` value as QuorumServer.toString renders it; ValueError if malformed."""
    parts = value.split(";")
    if len(parts) > 2:
        raise ValueError(f"{value}: more than one ';'")
    server = _host_and_port(parts[0].strip())
    if "|" in parts[0] or not 3 <= len(server) <= 4:
        raise ValueError(f"{value} does not have the form server_config or "
                         "server_config;client_config")
    host, quorum_port, election_port = server[0].strip(), _port(server[1]), _port(server[2])
    role = "participant"
    if len(server) == 4:
        role = server[3].strip().lower()
        if role not in ("participant", "observer"):
            raise ValueError(f"unrecognised peer type {server[3]!r}")
    text = f"{_host_text(host)}:{quorum_port}:{election_port}:{role}"
    if len(parts) == 2:
        client = _host_and_port(parts[1].strip())
        if len(client) > 2:
            raise ValueError(f"{parts[1]} does not have the form host:port or port")
        client_host = client[0].strip() if len(client) == 2 else "0.0.0.0"
        text += f";{_host_text(client_host)}:{_port(client[-1])}"
    return text


def spec_role(spec: str) -> str:
    return spec.split(";", 1)[0].rsplit(":", 1)[-1]


def spec_client(spec: str) -> tuple[str, int] | None:
    """The client address of a normalized spec, or None."""
    if ";" not in spec:
        return None
    host, _, port = spec.split(";", 1)[1].rpartition(":")
    return host.strip("[]"), int(port)


def _normalized(specs: dict[int, str]) -> dict[int, str]:
    out = {}
    for sid, value in specs.items():
        try:
            out[sid] = normalize_spec(value)
        except ValueError:
            out[sid] = value.strip()
    return out


def quorum_from_text(text: str, oracle_path: str | None = None) -> QuorumVerifier:
    """Config text (``server.N=`` lines, maybe group/weight, ``version=<hex>``) as a verifier."""
    props: dict[str, str] = {}
    for line in text.replace(",", "\n").split("\n"):
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    qv = quorum_from_config(props, oracle_path)
    qv._specs = _normalized(qv._specs)
    return qv


def _split(text: str | None) -> list[str]:
    """StringUtils.split: comma-separated, trimmed, empty parts dropped."""
    if text is None:
        return []
    return [p.strip() for p in text.split(",") if p.strip()]


def _incremental(last: QuorumVerifier, joining: str | None, leaving: str | None,
                 version: int) -> QuorumVerifier:
    if isinstance(last, HierarchicalQuorum) or not isinstance(last, MajorityQuorum):
        raise ReconfigError(ERR.BADARGUMENTS, "Incremental reconfiguration requested but last "
                            "configuration seen has a non-majority quorum system")
    specs = {sid: last.spec(sid) for sid in last.members}
    for item in _split(leaving):
        try:
            sid = int(item)
        except ValueError:
            raise ReconfigError(ERR.MARSHALLINGERROR, f"For input string: {item!r}") from None
        specs.pop(sid, None)
    for joiner in _split(joining):
        parts = [p.strip() for p in joiner.split("=") if p.strip()]
        if len(parts) != 2:
            raise ReconfigError(ERR.BADARGUMENTS, "Wrong format of server string")
        try:
            sid = int(parts[0][parts[0].rfind(".") + 1:])
        except ValueError:
            raise ReconfigError(ERR.MARSHALLINGERROR, f"For input string: {parts[0]!r}") from None
        try:
            spec = normalize_spec(parts[1])
        except ValueError:
            raise ReconfigError(ERR.BADARGUMENTS, "Reconfiguration failed") from None
        if spec_client(spec) is None:
            raise ReconfigError(ERR.BADARGUMENTS, "Wrong format of server string - each server "
                                "should have 3 ports specified")
        specs.pop(sid, None)
        specs[sid] = spec
    voters = [s for s, v in specs.items() if spec_role(v) == "participant"]
    observers = [s for s, v in specs.items() if spec_role(v) == "observer"]
    if not voters:
        raise ReconfigError(ERR.BADARGUMENTS,
                            "Reconfig failed - new configuration must include at least 1 follower")
    return MajorityQuorum(voters, observers, version, specs)


def _whole(new_members: str, version: int, oracle_path: str | None) -> QuorumVerifier:
    try:
        qv = quorum_from_text(new_members, oracle_path)
    except (ValueError, AssertionError) as e:
        raise ReconfigError(ERR.BADARGUMENTS, str(e)) from None
    for sid in qv.members:
        try:
            normalize_spec(qv.spec(sid))
        except ValueError as e:
            raise ReconfigError(ERR.BADARGUMENTS, str(e)) from None
    qv.version = version
    return qv


def next_quorum(last: QuorumVerifier, joining: str | None, leaving: str | None,
                new_members: str | None, version: int, *,
                standalone_enabled: bool = True) -> QuorumVerifier:
    """The membership a reconfig request asks for, at ``version`` (its zxid)."""
    if new_members is not None:
        qv = _whole(new_members, version, last.oracle_path)
    else:
        qv = _incremental(last, joining, leaving, version)
    if standalone_enabled and len(qv.voters) < 2:
        raise ReconfigError(ERR.BADARGUMENTS,
                            "Reconfig failed - new configuration must include at least 2 followers")
    return qv
