"""Loading ZooKeeper's zoo.cfg into a ServerConfig.

Theory of operation
-------------------
A zoo.cfg is a Java properties file. ZooKeeper 3.8 reads it in two layers:
QuorumPeerConfig understands a fixed set of keys (dataDir, clientPort,
tickTime, server.N, ...) and turns every other key into the JVM property
``zookeeper.<key>``, which other classes read (skipACL, snapCount,
4lw.commands.whitelist, admin.*, ...). zabpy flattens both layers into one
table, ``_KEYS``: canonical key -> (field of ServerConfig, parser). A key may
be written with or without the ``zookeeper.`` prefix; both name the same
setting. Keys outside the table (serverCnxnFactory, authProvider.N, ssl.*)
are kept in ``raw`` and reported as warnings, never errors, so that a
zoo.cfg written for the Java server (kazoo's test harness, for one) loads.

Parsing happens in three passes, so that the order of lines never matters:

1. ``_read_lines``: text -> ordered {key: (value, line)}; the last of
   duplicate keys wins, as in java.util.Properties.
2. ``_parse_values``: each known key through its parser into a field dict;
   server.N / group.G / weight.N lines into ServerSpec and quorum tables.
3. ``_resolve``: cross-key rules that need every value (session timeouts
   derive from tickTime, dataLogDir defaults to dataDir, the 4lw whitelist
   always holds srvr, minSessionTimeout <= maxSessionTimeout, a quorum needs
   initLimit and syncLimit).

``parse_config`` is pure: no file is touched. ``load_config`` adds what
needs the file system, as QuorumPeerConfig.parse does: it reads the file,
resolves a relative dataDir against the current directory, reads
dataDir/myid, merges a dynamicConfigFile, and applies the server.N line of
this server (its client address and role).

Errors: a bad value raises ConfigError whose message starts with
``<source>:<line>: <key>:`` so that an operator can find the line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

from zabpy import limits

__all__ = [
    "ConfigError",
    "ServerSpec",
    "ServerConfig",
    "FOUR_LETTER_WORDS",
    "parse_config",
    "load_config",
    "default_config",
]

# Every four-letter word ZooKeeper 3.8 knows (FourLetterCommands.cmd2String),
# in its declaration order; "*" in 4lw.commands.whitelist enables all of them.
FOUR_LETTER_WORDS = (
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk",
    "srst", "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
)

_PORT_MAX = 65535
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_MIN_SNAP_RETAIN_COUNT = 3  # PurgeTxnLog refuses to keep fewer snapshots.
_INT_RE = re.compile(r"[+-]?[0-9]+")


class ConfigError(Exception):
    """A zoo.cfg (or myid, or dynamic config) that ZooKeeper would refuse.

    The message names the file, the line and the key:
    ``zoo.cfg:7: tickTime: 'abc' is not an integer``.
    """


@dataclass
class ServerSpec:
    """One ``server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`` line."""

    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str = "participant"  # 'participant' | 'observer'
    client_host: str | None = None  # None when the line has no ';client' part
    client_port: int | None = None

    def line_value(self) -> str:
        """The value as ZooKeeper prints it in ``conf`` membership and /zookeeper/config."""
        text = f"{_bracket(self.host)}:{self.quorum_port}:{self.election_port}:{self.role}"
        if self.client_port is not None:
            text += f";{_bracket(self.client_host or '0.0.0.0')}:{self.client_port}"
        return text


def _bracket(host: str) -> str:
    # ZooKeeper's delimitedHostString: an IPv6 literal is written in brackets.
    return f"[{host}]" if ":" in host else host


@dataclass
class ServerConfig:
    """Everything the server reads from zoo.cfg, with ZooKeeper 3.8's defaults.

    ``session_timeout_ms_min``/``_max`` of -1 mean "derive from tickTime"
    (2x / 20x) and ``data_log_dir`` of None means "same as data_dir"; both
    are resolved in ``__post_init__`` so a hand-built config is consistent.
    """

    tick_time_ms: int = 3000
    data_dir: str | None = None
    data_log_dir: str | None = None
    client_port: int = 2181
    client_port_address: str = "127.0.0.1"
    client_port_listen_backlog: int = -1
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    max_client_cnxns: int = limits.MAX_CLIENT_CNXNS_DEFAULT
    sessionless_cnxn_timeout_ms: int = limits.SESSIONLESS_CNXN_TIMEOUT_MS_DEFAULT
    gc_full_sweep_interval_ms: int = 600_000
    max_queued_bytes_per_connection: int = limits.CONNECTION_QUEUED_BYTES_MAX_DEFAULT
    queued_bytes_grace_ms: int = limits.CONNECTION_QUEUED_GRACE_MS_DEFAULT
    max_cnxns: int = 0
    session_timeout_ms_min: int = -1
    session_timeout_ms_max: int = -1
    four_letter_whitelist: frozenset[str] = frozenset({"srvr"})
    extended_types_enabled: bool = False
    skip_acl: bool = False
    super_digest: str | None = None
    jute_maxbuffer: int = limits.JUTE_MAXBUFFER
    force_sync: bool = True
    snap_count: int = 100_000
    pre_alloc_size_kb: int = 65536
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval_h: int = 0
    init_limit: int | None = None
    sync_limit: int | None = None
    connect_to_learner_master_limit: int | None = None
    election_alg: int = 3
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    sync_enabled: bool = True
    quorum_listen_on_all_ips: bool = False
    observer_master_port: int | None = None
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    read_only_mode_enabled: bool = False
    peer_type: str = "participant"
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    groups: dict[int, list[int]] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    myid: int | None = None
    config_version: int = 0  # from a dynamic file name zoo.cfg.dynamic.<hex>
    dynamic_config_file: str | None = None
    admin_enable_server: bool = True
    admin_server_address: str = "0.0.0.0"
    admin_server_port: int = 8080
    admin_command_url: str = "/commands"
    metrics_provider_class: str | None = None
    metrics_http_host: str = "0.0.0.0"
    metrics_http_port: int = 7000
    digest_enabled: bool = True
    fsync_warning_threshold_ms: int = 1000
    global_outstanding_limit: int = limits.GLOBAL_OUTSTANDING_MAX
    snapshot_compression_method: str = ""  # "", "gz" or "snappy"
    snapshot_trust_empty: bool = False
    txn_log_size_limit_kb: int = -1  # <= 0: off
    snapshot_size_factor: float = limits.SNAPSHOT_SIZE_FACTOR_DEFAULT
    # zabpy's HTTP/JSON API, watch streams and web console (zabpy/httpapi)
    http_enabled: bool = False
    http_port: int | None = None        # None: on the AdminServer's port
    http_address: str | None = None     # None: admin.serverAddress
    http_tls: bool = False              # HTTPS with the ssl.keyStore/trustStore keys
    http_change_log_size: int = limits.HTTP_CHANGE_LOG_SIZE_DEFAULT
    http_sessions_max: int = limits.HTTP_SESSIONS_MAX_DEFAULT
    # zabpy's per-session limits (0: off)
    max_ephemerals_per_session: int = 0
    max_watches_per_session: int = 0
    max_request_bytes_per_connection: int = 0
    oracle_path: str | None = None      # QuorumOracleMaj's file (two-voter ensembles)
    container_check_interval_ms: int = limits.CONTAINER_CHECK_INTERVAL_MS
    container_max_per_minute: int = limits.CONTAINER_MAX_PER_MINUTE
    enforce_quota: bool = False
    source: str | None = None
    raw: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.session_timeout_ms_min == -1:
            self.session_timeout_ms_min = 2 * self.tick_time_ms
        if self.session_timeout_ms_max == -1:
            self.session_timeout_ms_max = 20 * self.tick_time_ms
        if self.data_log_dir is None:
            self.data_log_dir = self.data_dir

    def participants(self) -> list[int]:
        """Voting members, by sid."""
        return sorted(s for s, spec in self.servers.items() if spec.role == "participant")

    def is_standalone(self) -> bool:
        """True unless QuorumPeerMain would start a quorum peer.

        ZooKeeper runs a quorum when there are server.N lines and either
        standaloneEnabled=false or more than one participant; a lone
        server.N line (HBase writes one) still runs standalone.
        """
        if not self.servers:
            return True
        return self.standalone_enabled and len(self.participants()) <= 1

    def conf_lines(
        self, *, data_dir_size: int = 0, data_log_size: int = 0, client_port: int | None = None
    ) -> list[str]:
        """The body of the ``conf`` four-letter word, line by line, as 3.8 prints it.

        Captured from Debian's ZooKeeper 3.8.0 (tests/test_config.py holds the
        transcripts). Sizes are the byte totals of the files in the version-2
        directories, which only the runtime knows. A standalone server reports
        serverId=0 even with a myid file. A quorum peer adds its quorum
        settings and the membership, whose last line (``version=<hex>``) has no
        newline after it: see ``conf_text``.
        """
        port = self.client_port if client_port is None else client_port
        lines = [
            f"clientPort={port}",
            f"secureClientPort={-1 if self.secure_client_port is None else self.secure_client_port}",
            f"dataDir={_version_dir(self.data_dir)}",
            f"dataDirSize={data_dir_size}",
            f"dataLogDir={_version_dir(self.data_log_dir)}",
            f"dataLogSize={data_log_size}",
            f"tickTime={self.tick_time_ms}",
            f"maxClientCnxns={self.max_client_cnxns}",
            f"minSessionTimeout={self.session_timeout_ms_min}",
            f"maxSessionTimeout={self.session_timeout_ms_max}",
            f"clientPortListenBacklog={self.client_port_listen_backlog}",
        ]
        if self.is_standalone():
            return lines + ["serverId=0"]
        me = self.servers.get(self.myid) if self.myid is not None else None
        lines += [
            f"serverId={self.myid}",
            f"initLimit={self.init_limit}",
            f"syncLimit={self.sync_limit}",
            f"electionAlg={self.election_alg}",
            f"electionPort={me.election_port if me else -1}",
            f"quorumPort={me.quorum_port if me else -1}",
            f"peerType={0 if self.peer_type == 'participant' else 1}",
            "membership: ",
        ]
        return lines + self.membership_lines()

    def membership_lines(self, version: int | None = None) -> list[str]:
        """``server.N=...`` lines then ``version=<hex>`` (QuorumMaj's text form)."""
        v = self.config_version if version is None else version
        lines = [f"server.{sid}={self.servers[sid].line_value()}" for sid in sorted(self.servers)]
        for gid in sorted(self.groups):
            lines.append(f"group.{gid}=" + ":".join(str(s) for s in self.groups[gid]))
        for sid in sorted(self.weights):
            lines.append(f"weight.{sid}={self.weights[sid]}")
        return lines + [f"version={v:x}"]

    def conf_text(self, **kwargs: int) -> str:
        """The exact bytes (as text) of a ``conf`` reply."""
        lines = self.conf_lines(**kwargs)
        text = "\n".join(lines)
        return text if not self.is_standalone() else text + "\n"


def _version_dir(path: str | None) -> str:
    # conf prints the snapshot/log directory, which is <dir>/version-2.
    return "" if path is None else os.path.join(path, "version-2")


# --- value parsers: (source, line, key, value) -> value, raise ConfigError ---

Parser = Callable[[str, int, str, str], object]


def _fail(source: str, line: int, key: str, detail: str) -> ConfigError:
    return ConfigError(f"{source}:{line}: {key}: {detail}")


def _int_in(lo: int, hi: int) -> Parser:
    def parse(source: str, line: int, key: str, value: str) -> int:
        if not _INT_RE.fullmatch(value):
            raise _fail(source, line, key, f"{value!r} is not an integer")
        n = int(value)
        if not lo <= n <= hi:
            raise _fail(source, line, key, f"{n} is out of range [{lo}, {hi}]")
        return n
    return parse


_int32 = _int_in(_INT32_MIN, _INT32_MAX)
_positive = _int_in(1, _INT32_MAX)
_non_negative = _int_in(0, _INT32_MAX)
_port = _int_in(0, _PORT_MAX)
_long = _int_in(-(2**63), 2**63 - 1)


def _bool(source: str, line: int, key: str, value: str) -> bool:
    # QuorumPeerConfig.parseBoolean: exactly true/false, any case.
    if value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise _fail(source, line, key, f"{value!r} is not a boolean (choose 'true' or 'false')")


def _java_bool(source: str, line: int, key: str, value: str) -> bool:
    # Boolean.parseBoolean, as a JVM property is read: "true" in any case, else false.
    return value.lower() == "true"


def _yes(source: str, line: int, key: str, value: str) -> bool:
    # skipACL: ZooKeeper skips ACLs only for the exact value "yes".
    if value not in ("yes", "no"):
        raise _fail(source, line, key, f"{value!r} is not 'yes' or 'no'")
    return value == "yes"


def _jvm_bool(source: str, line: int, key: str, value: str) -> bool:
    # Boolean.getBoolean / parseBoolean, for settings ZooKeeper reads only as
    # JVM properties: "true" in any case, anything else is false, no error.
    return value.strip().lower() == "true"


def _compression(source: str, line: int, key: str, value: str) -> str:
    # gz or snappy in any case; anything else (empty, unknown) means
    # uncompressed, as ZooKeeper falls back. (Imported here: the storage
    # package is not needed to read a config, and `zabpy server` listens on
    # its client port before it imports the rest of the server.)
    from zabpy.storage import snapstream
    return snapstream.parse_method(value)


def _size_factor(source: str, line: int, key: str, value: str) -> float:
    # ZKDatabase: an unparsable value or one above 1 falls back to the default
    # (with a warning in ZooKeeper's log); a negative one turns DIFF from the log off.
    try:
        factor = float(value)
    except ValueError:
        return limits.SNAPSHOT_SIZE_FACTOR_DEFAULT
    return limits.SNAPSHOT_SIZE_FACTOR_DEFAULT if factor > 1 else factor


def _nonempty(source: str, line: int, key: str, value: str) -> str:
    if not value:
        raise _fail(source, line, key, "empty value")
    return value


def _peer_type(source: str, line: int, key: str, value: str) -> str:
    if value.lower() not in ("participant", "observer"):
        raise _fail(source, line, key, f"{value!r} is not 'participant' or 'observer'")
    return value.lower()


def _election_alg(source: str, line: int, key: str, value: str) -> int:
    n = _int32(source, line, key, value)
    if n != 3:
        raise _fail(source, line, key, f"{n}: only electionAlg 3 is supported")
    return n


def _whitelist(source: str, line: int, key: str, value: str) -> frozenset[str]:
    words = [w.strip() for w in value.split(",") if w.strip()]
    if "*" in words:
        return frozenset(FOUR_LETTER_WORDS)
    return frozenset(words)


# Canonical key -> (ServerConfig field, parser). A key may also be written
# with a "zookeeper." prefix (the JVM property name).
_KEYS: dict[str, tuple[str, Parser]] = {
    "tickTime": ("tick_time_ms", _positive),
    "dataDir": ("data_dir", _nonempty),
    "dataLogDir": ("data_log_dir", _nonempty),
    "clientPort": ("client_port", _port),
    "clientPortAddress": ("client_port_address", _nonempty),
    "clientPortListenBacklog": ("client_port_listen_backlog", _int32),
    "secureClientPort": ("secure_client_port", _port),
    "secureClientPortAddress": ("secure_client_port_address", _nonempty),
    "maxClientCnxns": ("max_client_cnxns", _non_negative),
    "maxCnxns": ("max_cnxns", _non_negative),
    "minSessionTimeout": ("session_timeout_ms_min", _int_in(-1, _INT32_MAX)),
    "maxSessionTimeout": ("session_timeout_ms_max", _int_in(-1, _INT32_MAX)),
    "4lw.commands.whitelist": ("four_letter_whitelist", _whitelist),
    "extendedTypesEnabled": ("extended_types_enabled", _bool),
    "skipACL": ("skip_acl", _yes),
    "DigestAuthenticationProvider.superDigest": ("super_digest", _nonempty),
    # ZooKeeper reads jute.maxbuffer and readonlymode.enabled only as JVM
    # properties (-D...); in zoo.cfg it ignores them. kazoo's harness writes
    # them in zoo.cfg meaning them, so zabpy honours both places.
    "jute.maxbuffer": ("jute_maxbuffer", _positive),
    "forceSync": ("force_sync", _yes),
    "snapCount": ("snap_count", _positive),
    "preAllocSize": ("pre_alloc_size_kb", _positive),
    "autopurge.snapRetainCount": ("autopurge_snap_retain_count", _int32),
    "autopurge.purgeInterval": ("autopurge_purge_interval_h", _int32),
    "initLimit": ("init_limit", _positive),
    "syncLimit": ("sync_limit", _positive),
    "connectToLearnerMasterLimit": ("connect_to_learner_master_limit", _positive),
    "electionAlg": ("election_alg", _election_alg),
    "standaloneEnabled": ("standalone_enabled", _bool),
    "reconfigEnabled": ("reconfig_enabled", _bool),
    "syncEnabled": ("sync_enabled", _bool),
    "quorumListenOnAllIPs": ("quorum_listen_on_all_ips", _bool),
    "observerMasterPort": ("observer_master_port", _port),
    "localSessionsEnabled": ("local_sessions_enabled", _bool),
    "localSessionsUpgradingEnabled": ("local_sessions_upgrading_enabled", _bool),
    "readonlymode.enabled": ("read_only_mode_enabled", _bool),
    "peerType": ("peer_type", _peer_type),
    "dynamicConfigFile": ("dynamic_config_file", _nonempty),
    "admin.enableServer": ("admin_enable_server", _bool),
    "admin.serverAddress": ("admin_server_address", _nonempty),
    "admin.serverPort": ("admin_server_port", _port),
    "admin.commandURL": ("admin_command_url", _nonempty),
    "metricsProvider.className": ("metrics_provider_class", _nonempty),
    "metricsProvider.httpHost": ("metrics_http_host", _nonempty),
    "metricsProvider.httpPort": ("metrics_http_port", _port),
    # ZooKeeperServer reads it with Boolean.parseBoolean: only "true" is true.
    "digest.enabled": ("digest_enabled", _jvm_bool),
    "fsync.warningthresholdms": ("fsync_warning_threshold_ms", _long),
    "globalOutstandingLimit": ("global_outstanding_limit", _positive),
    "snapshot.compression.method": ("snapshot_compression_method", _compression),
    "snapshot.trust.empty": ("snapshot_trust_empty", _jvm_bool),
    "txnLogSizeLimitInKb": ("txn_log_size_limit_kb", _long),
    # JVM property of ZooKeeperServer, read once when the server starts
    "enforceQuota": ("enforce_quota", _java_bool),
    "snapshotSizeFactor": ("snapshot_size_factor", _size_factor),
    "oraclePath": ("oracle_path", _nonempty),
    # JVM properties of ZooKeeper's ContainerManager (znode.container.*)
    "znode.container.checkIntervalMs": ("container_check_interval_ms", _positive),
    "znode.container.maxPerMinute": ("container_max_per_minute", _positive),
    # JVM property of ZooKeeper's NIOServerCnxnFactory
    "nio.sessionlessCnxnTimeout": ("sessionless_cnxn_timeout_ms", _positive),
    # zabpy's own: how often the garbage collector sweeps everything
    # (runtime/gc_policy.py); 0 never
    "zabpy.gcFullSweepIntervalMs": ("gc_full_sweep_interval_ms", _int_in(0, 2**63 - 1)),
    # zabpy's own (ZooKeeper has no bound on a connection's queued replies)
    "zabpy.maxQueuedBytesPerConnection": ("max_queued_bytes_per_connection", _non_negative),
    "zabpy.queuedBytesGraceMs": ("queued_bytes_grace_ms", _positive),
    # zabpy's HTTP/JSON API (zabpy/httpapi, docs/http-api.md)
    "zabpy.http.enabled": ("http_enabled", _bool),
    "zabpy.http.port": ("http_port", _port),
    "zabpy.http.address": ("http_address", _nonempty),
    "zabpy.http.tls": ("http_tls", _bool),
    "zabpy.http.changeLogSize": ("http_change_log_size", _positive),
    "zabpy.http.sessionsMax": ("http_sessions_max", _positive),
    # zabpy's per-session limits (0: off)
    "zabpy.maxEphemeralsPerSession": ("max_ephemerals_per_session", _non_negative),
    "zabpy.maxWatchesPerSession": ("max_watches_per_session", _non_negative),
    "zabpy.maxRequestBytesPerConnection": ("max_request_bytes_per_connection", _non_negative),
}
# Keys zabpy uses but reads from ``ServerConfig.raw`` (runtime/tls.py).
_RAW_KEYS = frozenset({
    "ssl.keyStore.location", "ssl.keyStore.type", "ssl.keyStore.password",
    "ssl.trustStore.location", "ssl.trustStore.type", "ssl.trustStore.password",
    "ssl.clientAuth",
})
# JVM properties of ZooKeeper's auth code, read by runtime/security.py
_RAW_KEYS |= {
    "java.security.auth.login.config", "sasl.serverconfig", "allowSaslFailedClients",
    "sessionRequireClientSASLAuth", "enforce.auth.enabled", "enforce.auth.schemes",
    "kerberos.removeHostFromPrincipal", "kerberos.removeRealmFromPrincipal",
    "SASLAuthenticationProvider.superPassword",
    "X509AuthenticationProvider.superUser", "audit.enable", "ssl.authProvider",
}
# Quorum TLS and SASL, read by runtime/quorum_security.py
_RAW_KEYS |= {
    "sslQuorum", "portUnification", "sslQuorumReloadCertFiles", "quorum.auth.enableSasl",
    "quorum.auth.learnerRequireSasl", "quorum.auth.serverRequireSasl",
    "quorum.auth.learner.saslLoginContext", "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
}
_RAW_PREFIXES = ("jvm.pause.", "authProvider.", "superUser", "zookeeper.authProvider.",
                 "zookeeper.superUser", "ssl.quorum.", "zookeeper.ssl.quorum.")
_PREFIX = "zookeeper."
_SERVER_RE = re.compile(r"server\.([0-9]+)")
_GROUP_RE = re.compile(r"group\.([0-9]+)")
_WEIGHT_RE = re.compile(r"weight\.([0-9]+)")

# (value, line) for each key, in file order.
Entries = dict[str, tuple[str, int]]


def _read_lines(text: str, source: str, warnings: list[str]) -> Entries:
    """Pass 1: java.util.Properties syntax, minus unicode escapes.

    A line is ``key=value``, ``key: value`` or ``key value``; ``#`` and ``!``
    start a comment line; a trailing backslash continues the line.
    """
    entries: Entries = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, logical = i + 1, lines[i].strip()
        while _continues(logical) and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + lines[i].strip()
        i += 1
        if not logical or logical[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]?\s*(.*)", logical)
        assert match is not None, logical
        key, value = match.group(1), match.group(2).strip()
        if key in entries:
            warnings.append(
                f"{source}:{number}: {key}: repeated; the value on line "
                f"{entries[key][1]} is ignored"
            )
            del entries[key]  # keep file order of the value that counts
        entries[key] = (value, number)
    return entries


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _canonical(key: str) -> str:
    if key.startswith(_PREFIX) and key[len(_PREFIX):] in _KEYS:
        return key[len(_PREFIX):]
    return key


def _parse_values(entries: Entries, source: str, warnings: list[str]) -> tuple[dict, dict]:
    """Pass 2: returns (field values, quorum values) and the line of each field."""
    values: dict[str, object] = {}
    where: dict[str, tuple[str, int]] = {}  # field -> (key as written, line)
    quorum: dict[str, dict] = {"servers": {}, "groups": {}, "weights": {}}
    for key, (value, line) in entries.items():
        canon = _canonical(key)
        if canon in _KEYS:
            name, parse = _KEYS[canon]
            if name in values:
                warnings.append(f"{source}:{line}: {key}: also set on line {where[name][1]}; this one wins")
            values[name] = parse(source, line, key, value)
            where[name] = (key, line)
        elif (canon in _RAW_KEYS or canon.removeprefix(_PREFIX) in _RAW_KEYS
              or canon.startswith(_RAW_PREFIXES)):
            pass  # read from ``raw`` by the module that uses it (TLS, pause monitor)
        elif not _parse_quorum_key(key, value, line, source, quorum):
            warnings.append(f"{source}:{line}: {key}: unknown key, ignored by zabpy")
    values["__where__"] = where
    return values, quorum


def _parse_quorum_key(key: str, value: str, line: int, source: str, quorum: dict) -> bool:
    """server.N / group.G / weight.N; False if the key is none of them."""
    if m := _SERVER_RE.fullmatch(key):
        sid = int(m.group(1))
        quorum["servers"][sid] = (_parse_server(sid, value, source, line, key), line)
    elif m := _GROUP_RE.fullmatch(key):
        members = [_int_in(0, 2**63 - 1)(source, line, key, s.strip()) for s in value.split(":")]
        quorum["groups"][int(m.group(1))] = (members, line)
    elif m := _WEIGHT_RE.fullmatch(key):
        quorum["weights"][int(m.group(1))] = (_non_negative(source, line, key, value), line)
    else:
        return False
    return True


def _split_host_port(text: str, source: str, line: int, key: str) -> list[str]:
    # ConfigUtils.getHostAndPort: "[v6]:a:b" keeps the bracketed host whole.
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise _fail(source, line, key, f"{text!r}: malformed IPv6 address")
        rest = text[end + 2:]
        return [text[1:end]] + (rest.split(":") if rest else [])
    return text.split(":")


def _parse_server(sid: int, value: str, source: str, line: int, key: str) -> ServerSpec:
    form = "expected host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]"
    server_part, _, client_part = value.partition(";")
    if "|" in server_part:
        raise _fail(source, line, key, "several addresses (multiAddress) are not supported")
    parts = _split_host_port(server_part.strip(), source, line, key)
    if ";" in client_part or not 3 <= len(parts) <= 4 or not parts[0]:
        raise _fail(source, line, key, f"{value!r}: {form}")
    server_port = _int_in(1, _PORT_MAX)
    quorum_port = server_port(source, line, key, parts[1].strip())
    election_port = server_port(source, line, key, parts[2].strip())
    if quorum_port == election_port:
        raise _fail(source, line, key, "quorum and election ports must be different")
    role = _peer_type(source, line, key, parts[3].strip()) if len(parts) == 4 else "participant"
    client_host = client_port = None
    if client_part.strip():
        client = _split_host_port(client_part.strip(), source, line, key)
        if len(client) > 2:
            raise _fail(source, line, key, f"{value!r}: {form}")
        client_host = client[0].strip() if len(client) == 2 else "0.0.0.0"
        client_port = server_port(source, line, key, client[-1].strip())
    return ServerSpec(sid, parts[0].strip(), quorum_port, election_port, role, client_host, client_port)


# --- pass 3: rules across keys ---


def _resolve(values: dict, source: str, warnings: list[str]) -> dict:
    """Fill in the values that depend on other keys; raise on contradictions."""
    where: dict[str, tuple[str, int]] = values.pop("__where__")
    if "client_port" in values and values["client_port"] == 0:
        del values["client_port"]  # ZooKeeper reads clientPort=0 as "not set".
    if "client_port" not in values and "client_port_address" in values:
        key, line = where["client_port_address"]
        raise _fail(source, line, key, "clientPortAddress is set but clientPort is not set")
    # A zoo.cfg without clientPortAddress binds every interface (InetSocketAddress(port)).
    values.setdefault("client_port_address", "0.0.0.0")
    if values.get("secure_client_port") == 0:
        del values["secure_client_port"]
    if "secure_client_port" not in values and "secure_client_port_address" in values:
        key, line = where["secure_client_port_address"]
        raise _fail(source, line, key, "secureClientPortAddress is set but secureClientPort is not set")
    if values.get("autopurge_snap_retain_count", 3) < _MIN_SNAP_RETAIN_COUNT:
        key, line = where["autopurge_snap_retain_count"]
        warnings.append(f"{source}:{line}: {key}: below {_MIN_SNAP_RETAIN_COUNT}, using {_MIN_SNAP_RETAIN_COUNT}")
        values["autopurge_snap_retain_count"] = _MIN_SNAP_RETAIN_COUNT
    _resolve_whitelist(values, where, source, warnings)
    if "data_dir" not in values:
        warnings.append(f"{source}: dataDir: not set; zabpy keeps data in memory (ZooKeeper refuses this)")
    tick = values.get("tick_time_ms", 3000)
    low = values.get("session_timeout_ms_min", -1)
    high = values.get("session_timeout_ms_max", -1)
    low, high = (2 * tick if low == -1 else low), (20 * tick if high == -1 else high)
    if low > high:
        key, line = where.get("session_timeout_ms_min") or where["session_timeout_ms_max"]
        raise _fail(source, line, key, f"minSessionTimeout {low} is larger than maxSessionTimeout {high}")
    return values


def _resolve_whitelist(values: dict, where: dict, source: str, warnings: list[str]) -> None:
    words = set(values.get("four_letter_whitelist", ()))
    if "four_letter_whitelist" in values:
        key, line = where["four_letter_whitelist"]
        for word in sorted(words - set(FOUR_LETTER_WORDS)):
            warnings.append(f"{source}:{line}: {key}: {word!r} is not a four-letter word")
    # ZooKeeper always enables srvr (zkServer.sh uses it) and isro in read-only mode.
    words.add("srvr")
    if values.get("read_only_mode_enabled"):
        words.add("isro")
    values["four_letter_whitelist"] = frozenset(words)


def _apply_quorum(cfg: ServerConfig, quorum: dict, source: str) -> None:
    """Install server/group/weight lines into cfg and check them as ZooKeeper does."""
    cfg.servers = {sid: spec for sid, (spec, _) in sorted(quorum["servers"].items())}
    cfg.weights = {sid: w for sid, (w, _) in sorted(quorum["weights"].items())}
    cfg.groups = {}
    owner: dict[int, int] = {}
    for gid, (members, line) in sorted(quorum["groups"].items()):
        for sid in members:
            if sid in owner:
                raise _fail(source, line, f"group.{gid}", f"server {sid} is already in group.{owner[sid]}")
            owner[sid] = gid
        cfg.groups[gid] = members
    participants = cfg.participants()
    first_line = min((line for _, line in quorum["servers"].values()), default=0)
    observers = len(cfg.servers) - len(participants)
    if not participants and not cfg.standalone_enabled:
        raise ConfigError(f"{source}: standaloneEnabled: false needs at least one participant server.N line")
    if not participants and observers:
        raise _fail(source, first_line, "server.N", "observers without participants")
    if len(participants) == 1 and cfg.standalone_enabled and observers:
        raise _fail(source, first_line, "server.N", "observers without a quorum (one participant, standaloneEnabled)")
    if not cfg.is_standalone():
        for name, key in (("init_limit", "initLimit"), ("sync_limit", "syncLimit")):
            if getattr(cfg, name) is None:
                raise ConfigError(f"{source}: {key}: not set (required with more than one server)")


def parse_config(text: str, *, source: str = "zoo.cfg") -> tuple[ServerConfig, list[str]]:
    """Parse zoo.cfg text without touching the file system; returns (config, warnings)."""
    warnings: list[str] = []
    entries = _read_lines(text, source, warnings)
    values, quorum = _parse_values(entries, source, warnings)
    values = _resolve(values, source, warnings)
    if "client_port" not in values and not any(
        spec.client_port for spec, _ in quorum["servers"].values()
    ):
        warnings.append(f"{source}: clientPort: not set; zabpy listens on 2181")
    cfg = ServerConfig(**values, source=source, raw={k: v for k, (v, _) in entries.items()})
    if cfg.dynamic_config_file is not None and quorum["servers"] | quorum["groups"] | quorum["weights"]:
        line = min(line for part in quorum.values() for _, line in part.values())
        raise _fail(source, line, "dynamicConfigFile", "server/group/weight lines must be in the dynamic file")
    if cfg.dynamic_config_file is None:
        _apply_quorum(cfg, quorum, source)   # else the dynamic file's lines, checked there
    return cfg, warnings


def load_config(path: str) -> tuple[ServerConfig, list[str]]:
    """Read zoo.cfg at ``path`` as QuorumPeerConfig.parse does; returns (config, warnings).

    A relative dataDir/dataLogDir is taken relative to the current
    directory (ZooKeeper's File semantics; it warns the same way).
    """
    cfg, warnings = parse_config(_read_text(path), source=path)
    for name, key in (("data_dir", "dataDir"), ("data_log_dir", "dataLogDir")):
        value = getattr(cfg, name)
        if value is not None and not os.path.isabs(value):
            if key in cfg.raw or _PREFIX + key in cfg.raw:
                warnings.append(f"{path}: {key}: {value!r} is relative to the current directory")
            setattr(cfg, name, os.path.abspath(value))
    if cfg.dynamic_config_file is not None:
        _load_dynamic(cfg, warnings)
    if cfg.data_dir is not None:
        cfg.myid = _read_myid(os.path.join(cfg.data_dir, "myid"))
    if not cfg.is_standalone() and cfg.myid is None:
        raise ConfigError(f"{path}: dataDir: myid file is missing (required with more than one server)")
    _apply_own_server(cfg, warnings)
    return cfg, warnings


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e


def _read_myid(path: str) -> int | None:
    # A standalone server needs no myid file; a present one must hold a number.
    if not os.path.isfile(path):
        return None
    first = _read_text(path).partition("\n")[0].strip()
    if not _INT_RE.fullmatch(first) or not 0 <= int(first) < 2**63:
        raise ConfigError(f"{path}:1: myid: {first!r} is not a server id")
    return int(first)


def _load_dynamic(cfg: ServerConfig, warnings: list[str]) -> None:
    """Merge ``dynamicConfigFile``: only server/group/weight lines are allowed there."""
    path = cfg.dynamic_config_file
    assert path is not None
    entries = _read_lines(_read_text(path), path, warnings)
    quorum: dict[str, dict] = {"servers": {}, "groups": {}, "weights": {}}
    for key, (value, line) in entries.items():
        if key == "version":
            raise _fail(path, line, key, "a dynamic file takes its version from its name")
        if not _parse_quorum_key(key, value, line, path, quorum):
            raise _fail(path, line, key, "only server.N, group.G and weight.N belong in a dynamic file")
    suffix = path.rsplit(".", 1)[-1]
    cfg.config_version = int(suffix, 16) if re.fullmatch(r"[0-9a-fA-F]+", suffix) else 0
    _apply_quorum(cfg, quorum, path)


def _apply_own_server(cfg: ServerConfig, warnings: list[str]) -> None:
    """This server's server.N line wins over clientPort and peerType (setupClientPort/PeerType)."""
    spec = cfg.servers.get(cfg.myid) if cfg.myid is not None else None
    if spec is None:
        return
    if spec.client_port is not None:
        static = "clientPort" in cfg.raw or _PREFIX + "clientPort" in cfg.raw
        any_local = cfg.client_port_address in ("0.0.0.0", "::")
        if static and (
            cfg.client_port != spec.client_port
            or (not any_local and cfg.client_port_address != spec.client_host)
        ):
            raise ConfigError(
                f"{cfg.source}: clientPort: {cfg.client_port_address}:{cfg.client_port} differs from "
                f"server.{spec.sid}'s client address {spec.client_host}:{spec.client_port}"
            )
        cfg.client_port, cfg.client_port_address = spec.client_port, spec.client_host or "0.0.0.0"
    if spec.role != cfg.peer_type:
        warnings.append(
            f"{cfg.source}: peerType: {cfg.peer_type} but server.{spec.sid} says {spec.role}; using {spec.role}"
        )
        cfg.peer_type = spec.role


def default_config(**overrides: object) -> ServerConfig:
    """The configuration used when no zoo.cfg is given: a local test server.

    127.0.0.1:2181, tickTime 2000 (zoo_sample.cfg), data in memory unless
    ``data_dir`` is given, every four-letter word enabled.
    """
    values: dict[str, object] = {
        "tick_time_ms": 2000,
        "client_port": 2181,
        "client_port_address": "127.0.0.1",
        "four_letter_whitelist": frozenset(FOUR_LETTER_WORDS),
    }
    values.update(overrides)
    cfg = ServerConfig(**values)  # type: ignore[arg-type]
    if cfg.session_timeout_ms_min > cfg.session_timeout_ms_max:
        raise ConfigError(
            f"<default>: minSessionTimeout {cfg.session_timeout_ms_min} is larger than "
            f"maxSessionTimeout {cfg.session_timeout_ms_max}"
        )
    return cfg
