"""zoo.cfg loading (zabpy.runtime.config).

Reference: ZooKeeper 3.8 QuorumPeerConfig.parseProperties / parse, the
zookeeperAdmin guide's configuration section, and `conf` transcripts taken
from Debian's ZooKeeper 3.8.0 (below).
"""

from __future__ import annotations

import os

import pytest

from zabpy import limits
from zabpy.runtime.config import (
    FOUR_LETTER_WORDS,
    ConfigError,
    ServerConfig,
    ServerSpec,
    default_config,
    load_config,
    parse_config,
)

# kazoo's test harness (kazoo/testing/common.py) writes this zoo.cfg.
KAZOO_CFG = """\
tickTime=2000
dataDir=/tmp/x/data
clientPort=22810
clientPortAddress=127.0.0.1
secureClientPort=22814
secureClientPortAddress=127.0.0.1
maxClientCnxns=0
admin.serverAddress=127.0.0.1
admin.serverPort=22813
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
ssl.keyStore.location=/tmp/x/keystore.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=/tmp/x/truststore.pem
ssl.trustStore.type=PEM
readonlymode.enabled=true
4lw.commands.whitelist=*
reconfigEnabled=true
localSessionsEnabled=false
localSessionsUpgradingEnabled=false
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
initLimit=4
syncLimit=2
server.1=127.0.0.1:22812:22811:participant
server.2=127.0.0.1:22822:22821:participant
server.3=127.0.0.1:22832:22831:participant
peerType=participant
"""

# `printf conf | nc` against Debian's ZooKeeper 3.8.0 (QuorumPeerMain), standalone:
#   tickTime=2000, dataDir=/tmp/cfgtask/data, clientPort=34657,
#   clientPortAddress=127.0.0.1, 4lw.commands.whitelist=*, admin.enableServer=false
JAVA_CONF_STANDALONE = (
    "clientPort=34657\nsecureClientPort=-1\ndataDir=/tmp/cfgtask/data/version-2\n"
    "dataDirSize=457\ndataLogDir=/tmp/cfgtask/data/version-2\ndataLogSize=457\n"
    "tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n"
    "clientPortListenBacklog=-1\nserverId=0\n"
)
# The same from server 1 of a running 2-of-3 ensemble (myid=1, server.3 an observer
# with a client address), after the leader set the config version to 0x100000000.
# Note: no newline after the version line.
JAVA_CONF_QUORUM = (
    "clientPort=60707\nsecureClientPort=-1\ndataDir=/tmp/cfgtask/q1/data/version-2\n"
    "dataDirSize=610\ndataLogDir=/tmp/cfgtask/q1/data/version-2\ndataLogSize=610\n"
    "tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n"
    "clientPortListenBacklog=-1\nserverId=1\ninitLimit=4\nsyncLimit=2\nelectionAlg=3\n"
    "electionPort=37689\nquorumPort=35123\npeerType=0\nmembership: \n"
    "server.1=127.0.0.1:35123:37689:participant\n"
    "server.2=127.0.0.1:60567:58139:participant\n"
    "server.3=127.0.0.1:33053:38647:observer;127.0.0.1:44869\n"
    "version=100000000"
)


def parse(text: str) -> ServerConfig:
    cfg, _ = parse_config(text)
    return cfg


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return str(info.value)


# --- defaults ---


def test_dataclass_defaults_follow_zookeeper_code_defaults():
    cfg = ServerConfig()
    assert cfg.tick_time_ms == 3000
    assert (cfg.session_timeout_ms_min, cfg.session_timeout_ms_max) == (6000, 60000)
    assert cfg.max_client_cnxns == 60 and cfg.max_cnxns == 0
    assert cfg.four_letter_whitelist == frozenset({"srvr"})
    assert cfg.jute_maxbuffer == limits.JUTE_MAXBUFFER
    assert cfg.force_sync and not cfg.skip_acl and cfg.digest_enabled
    assert (cfg.snap_count, cfg.pre_alloc_size_kb) == (100_000, 65536)
    assert (cfg.autopurge_snap_retain_count, cfg.autopurge_purge_interval_h) == (3, 0)
    assert (cfg.admin_server_address, cfg.admin_server_port, cfg.admin_command_url) == (
        "0.0.0.0", 8080, "/commands")
    assert (cfg.metrics_http_host, cfg.metrics_http_port) == ("0.0.0.0", 7000)
    assert cfg.election_alg == 3 and cfg.standalone_enabled and not cfg.reconfig_enabled


def test_default_config_is_a_local_test_server():
    cfg = default_config()
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2181)
    assert cfg.tick_time_ms == 2000
    assert (cfg.session_timeout_ms_min, cfg.session_timeout_ms_max) == (4000, 40000)
    assert cfg.data_dir is None and cfg.data_log_dir is None
    assert cfg.four_letter_whitelist == frozenset(FOUR_LETTER_WORDS)
    assert cfg.source is None and cfg.is_standalone()


def test_default_config_overrides_and_derived_values():
    cfg = default_config(tick_time_ms=500, data_dir="/d", client_port=0)
    assert (cfg.session_timeout_ms_min, cfg.session_timeout_ms_max) == (1000, 10000)
    assert cfg.data_log_dir == "/d" and cfg.client_port == 0
    with pytest.raises(ConfigError, match="minSessionTimeout"):
        default_config(session_timeout_ms_min=9000, session_timeout_ms_max=8000)
    with pytest.raises(TypeError):
        default_config(no_such_field=1)


def test_minimal_file_binds_all_interfaces_and_derives_timeouts():
    cfg, warnings = parse_config("tickTime=1000\ndataDir=/var/zk\nclientPort=2182\n")
    assert (cfg.client_port_address, cfg.client_port) == ("0.0.0.0", 2182)
    assert (cfg.session_timeout_ms_min, cfg.session_timeout_ms_max) == (2000, 20000)
    assert cfg.data_log_dir == "/var/zk"
    assert cfg.four_letter_whitelist == frozenset({"srvr"})
    assert warnings == [] and cfg.source == "zoo.cfg"


def test_minus_one_session_timeout_means_default_and_order_does_not_matter():
    cfg = parse("minSessionTimeout=-1\nmaxSessionTimeout=50000\ntickTime=2000\ndataDir=/d\nclientPort=1\n")
    assert (cfg.session_timeout_ms_min, cfg.session_timeout_ms_max) == (4000, 50000)


# --- the kazoo harness config ---


def test_kazoo_config_loads_with_only_warnings():
    cfg, warnings = parse_config(KAZOO_CFG)
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 22810)
    assert (cfg.secure_client_port, cfg.secure_client_port_address) == (22814, "127.0.0.1")
    assert cfg.max_client_cnxns == 0
    assert (cfg.admin_server_address, cfg.admin_server_port) == ("127.0.0.1", 22813)
    assert cfg.read_only_mode_enabled and cfg.reconfig_enabled
    assert not cfg.local_sessions_enabled and not cfg.local_sessions_upgrading_enabled
    assert cfg.super_digest == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert (cfg.init_limit, cfg.sync_limit, cfg.peer_type) == (4, 2, "participant")
    assert cfg.four_letter_whitelist == frozenset(FOUR_LETTER_WORDS)
    assert sorted(cfg.servers) == [1, 2, 3]
    assert cfg.servers[2] == ServerSpec(2, "127.0.0.1", 22822, 22821, "participant", None, None)
    assert not cfg.is_standalone()
    assert cfg.raw["serverCnxnFactory"] == "org.apache.zookeeper.server.NettyServerCnxnFactory"
    assert len(cfg.raw) == 27
    # the ssl.* keys are used by the secure client port (runtime/tls.py),
    # authProvider.N by the auth settings (runtime/security.py)
    unknown = ["serverCnxnFactory"]
    assert len(warnings) == len(unknown)
    for line, (key, warning) in enumerate(zip(unknown, warnings), start=10):
        assert warning.startswith(f"zoo.cfg:{line}: {key}:")


def test_kazoo_config_loads_from_disk_with_myid(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("2\n")
    path = tmp_path / "zoo.cfg"
    path.write_text(KAZOO_CFG.replace("/tmp/x/data", str(data)))
    cfg, warnings = load_config(str(path))
    assert cfg.myid == 2 and cfg.source == str(path)
    assert cfg.data_dir == str(data) == cfg.data_log_dir
    assert all(w.startswith(f"{path}:") for w in warnings)


# --- syntax ---


def test_properties_syntax_comments_separators_and_continuation():
    cfg, warnings = parse_config(
        "# comment\n! also a comment\n\n  tickTime = 1500  \nclientPort: 2190\n"
        "dataDir /data\n4lw.commands.whitelist=ruok, \\\n    conf,stat\n"
    )
    assert cfg.tick_time_ms == 1500 and cfg.client_port == 2190 and cfg.data_dir == "/data"
    assert cfg.four_letter_whitelist == frozenset({"ruok", "conf", "stat", "srvr"})
    assert warnings == []


def test_repeated_key_last_wins_with_warning():
    cfg, warnings = parse_config("dataDir=/d\nclientPort=1\ntickTime=100\ntickTime=200\n")
    assert cfg.tick_time_ms == 200
    assert warnings == ["zoo.cfg:4: tickTime: repeated; the value on line 3 is ignored"]


def test_zookeeper_prefix_is_accepted_for_property_keys():
    cfg = parse(
        "dataDir=/d\nclientPort=1\nzookeeper.extendedTypesEnabled=true\nzookeeper.skipACL=yes\n"
        "zookeeper.DigestAuthenticationProvider.superDigest=super:x\nzookeeper.forceSync=no\n"
        "zookeeper.snapCount=10\njute.maxbuffer=4096\nzookeeper.4lw.commands.whitelist=ruok\n"
    )
    assert cfg.extended_types_enabled and cfg.skip_acl and not cfg.force_sync
    assert (cfg.super_digest, cfg.snap_count, cfg.jute_maxbuffer) == ("super:x", 10, 4096)
    assert cfg.four_letter_whitelist == frozenset({"ruok", "srvr"})
    cfg = parse("dataDir=/d\nclientPort=1\nextendedTypesEnabled=true\nzookeeper.jute.maxbuffer=8\n")
    assert cfg.extended_types_enabled and cfg.jute_maxbuffer == 8


def test_other_keys_map_to_fields():
    cfg = parse(
        "dataDir=/d\ndataLogDir=/l\nclientPort=1\nmaxCnxns=7\npreAllocSize=1024\n"
        "autopurge.snapRetainCount=5\nautopurge.purgeInterval=24\nstandaloneEnabled=false\n"
        "admin.enableServer=false\nadmin.commandURL=/c\nmetricsProvider.className=P\n"
        "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=7001\ndigest.enabled=false\n"
        "fsync.warningthresholdms=50\nglobalOutstandingLimit=10\nsnapshot.compression.method=gz\n"
        "txnLogSizeLimitInKb=100\nclientPortListenBacklog=64\nreadonlymode.enabled=true\n"
        "initLimit=3\nsyncLimit=1\nserver.1=h:1:2\n"
    )
    assert not cfg.is_standalone()
    assert (cfg.data_log_dir, cfg.max_cnxns, cfg.pre_alloc_size_kb) == ("/l", 7, 1024)
    assert (cfg.autopurge_snap_retain_count, cfg.autopurge_purge_interval_h) == (5, 24)
    assert not cfg.standalone_enabled and not cfg.admin_enable_server
    assert (cfg.admin_command_url, cfg.metrics_provider_class) == ("/c", "P")
    assert (cfg.metrics_http_host, cfg.metrics_http_port) == ("127.0.0.1", 7001)
    assert not cfg.digest_enabled and cfg.fsync_warning_threshold_ms == 50
    assert (cfg.global_outstanding_limit, cfg.snapshot_compression_method) == (10, "gz")
    assert (cfg.txn_log_size_limit_kb, cfg.client_port_listen_backlog) == (100, 64)
    # srvr always; isro too in read-only mode (FourLetterCommands.isEnabled).
    assert cfg.four_letter_whitelist == frozenset({"srvr", "isro"})


def test_snap_retain_count_below_three_is_raised_with_warning():
    cfg, warnings = parse_config("dataDir=/d\nclientPort=1\nautopurge.snapRetainCount=1\n")
    assert cfg.autopurge_snap_retain_count == 3
    assert warnings == ["zoo.cfg:3: autopurge.snapRetainCount: below 3, using 3"]


def test_missing_datadir_and_clientport_are_warnings():
    cfg, warnings = parse_config("tickTime=2000\n")
    assert cfg.data_dir is None and cfg.client_port == 2181
    assert any("dataDir" in w for w in warnings) and any("clientPort" in w for w in warnings)


def test_unknown_whitelist_word_warns():
    _, warnings = parse_config("dataDir=/d\nclientPort=1\n4lw.commands.whitelist=ruok,nope\n")
    assert warnings == ["zoo.cfg:3: 4lw.commands.whitelist: 'nope' is not a four-letter word"]


# --- errors: each names the key and the line ---


@pytest.mark.parametrize(
    "line, needle",
    [
        ("tickTime=abc", "tickTime: 'abc' is not an integer"),
        ("tickTime=0", "tickTime: 0 is out of range"),
        ("tickTime=99999999999", "tickTime: 99999999999 is out of range"),
        ("clientPort=-1", "clientPort: -1 is out of range"),
        ("clientPort=65536", "clientPort: 65536 is out of range"),
        ("admin.serverPort=70000", "admin.serverPort: 70000 is out of range"),
        ("maxClientCnxns=1.5", "maxClientCnxns: '1.5' is not an integer"),
        ("standaloneEnabled=yes", "standaloneEnabled: 'yes' is not a boolean"),
        ("zookeeper.extendedTypesEnabled=1", "zookeeper.extendedTypesEnabled: '1' is not a boolean"),
        ("skipACL=true", "skipACL: 'true' is not 'yes' or 'no'"),
        ("forceSync=maybe", "forceSync: 'maybe' is not 'yes' or 'no'"),
        ("peerType=leader", "peerType: 'leader' is not 'participant' or 'observer'"),
        ("electionAlg=1", "electionAlg: 1: only electionAlg 3 is supported"),
        ("dataDir=", "dataDir: empty value"),
        ("server.1=h:1", "server.1: 'h:1': expected host:quorumPort:electionPort"),
        ("server.1=h:1:2:3:4", "server.1: 'h:1:2:3:4': expected"),
        ("server.1=h:x:2", "server.1: 'x' is not an integer"),
        ("server.1=h:0:2", "server.1: 0 is out of range"),
        ("server.1=h:5:5", "server.1: quorum and election ports must be different"),
        ("server.1=h:1:2:leader", "server.1: 'leader' is not 'participant' or 'observer'"),
        ("server.1=h:1:2;a:b:3", "server.1: 'h:1:2;a:b:3': expected"),
        ("server.1=h:1:2;70000", "server.1: 70000 is out of range"),
        ("server.1=a:1:2|b:1:2", "server.1: several addresses"),
        ("group.1=1:x", "group.1: 'x' is not an integer"),
        ("weight.1=-2", "weight.1: -2 is out of range"),
    ],
)
def test_bad_value_names_key_and_line(line, needle):
    message = error_of(f"dataDir=/d\nclientPort=1\n{line}\n")
    assert message.startswith("zoo.cfg:3: "), message
    assert needle in message, message


def test_session_timeout_order_error_names_key_and_line():
    message = error_of("dataDir=/d\nclientPort=1\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n")
    assert message.startswith("zoo.cfg:3: minSessionTimeout:"), message
    # Only the max set: it is compared with the derived min (2 x tickTime).
    message = error_of("tickTime=2000\ndataDir=/d\nclientPort=1\nmaxSessionTimeout=3000\n")
    assert message.startswith("zoo.cfg:4: maxSessionTimeout:"), message


def test_address_without_port_is_an_error():
    message = error_of("dataDir=/d\nclientPortAddress=127.0.0.1\n")
    assert message.startswith("zoo.cfg:2: clientPortAddress:")
    message = error_of("dataDir=/d\nclientPort=1\nsecureClientPortAddress=127.0.0.1\n")
    assert message.startswith("zoo.cfg:3: secureClientPortAddress:")


def test_error_uses_given_source():
    with pytest.raises(ConfigError, match=r"^/etc/zk/zoo.cfg:1: tickTime:"):
        parse_config("tickTime=x\n", source="/etc/zk/zoo.cfg")


# --- server lines, groups, weights, standalone ---


def test_server_line_forms():
    cfg = parse(
        "dataDir=/d\nclientPort=1\ninitLimit=5\nsyncLimit=2\n"
        "server.1=zk1:2888:3888\n"
        "server.2=zk2:2888:3888:participant;2181\n"
        "server.3=zk3:2888:3888:OBSERVER;10.0.0.3:2182\n"
        "server.4=[::1]:2888:3888;[::1]:2183\n"
    )
    assert cfg.servers[1] == ServerSpec(1, "zk1", 2888, 3888, "participant", None, None)
    assert cfg.servers[2] == ServerSpec(2, "zk2", 2888, 3888, "participant", "0.0.0.0", 2181)
    assert cfg.servers[3] == ServerSpec(3, "zk3", 2888, 3888, "observer", "10.0.0.3", 2182)
    assert cfg.servers[4] == ServerSpec(4, "::1", 2888, 3888, "participant", "::1", 2183)
    assert cfg.participants() == [1, 2, 4]
    assert cfg.servers[4].line_value() == "[::1]:2888:3888:participant;[::1]:2183"
    assert cfg.servers[2].line_value() == "zk2:2888:3888:participant;0.0.0.0:2181"


def test_groups_and_weights():
    cfg = parse(
        "dataDir=/d\nclientPort=1\ninitLimit=5\nsyncLimit=2\n"
        + "".join(f"server.{i}=h{i}:1:2\n" for i in range(1, 5))
        + "group.1=1:2\ngroup.2=3:4\nweight.1=1\nweight.2=0\nweight.3=1\nweight.4=1\n"
    )
    assert cfg.groups == {1: [1, 2], 2: [3, 4]}
    assert cfg.weights == {1: 1, 2: 0, 3: 1, 4: 1}
    assert cfg.membership_lines()[4:6] == ["group.1=1:2", "group.2=3:4"]
    message = error_of("dataDir=/d\nclientPort=1\ngroup.1=1:2\ngroup.2=2:3\n")
    assert message.startswith("zoo.cfg:4: group.2: server 2 is already in group.1")


@pytest.mark.parametrize(
    "lines, standalone",
    [
        ("", True),
        ("server.1=h:1:2\n", True),  # HBase's lone server line: still standalone
        ("standaloneEnabled=false\nserver.1=h:1:2\n", False),
        ("server.1=h:1:2\nserver.2=h:3:4\n", False),
        ("server.1=h:1:2\nserver.2=h:3:4:observer\nstandaloneEnabled=false\n", False),
    ],
)
def test_is_standalone_as_quorum_peer_main_decides(lines, standalone):
    cfg = parse(f"dataDir=/d\nclientPort=1\ninitLimit=5\nsyncLimit=2\n{lines}")
    assert cfg.is_standalone() is standalone


def test_quorum_needs_limits_and_participants():
    message = error_of("dataDir=/d\nclientPort=1\nsyncLimit=2\nserver.1=h:1:2\nserver.2=h:3:4\n")
    assert "initLimit" in message
    message = error_of("dataDir=/d\nclientPort=1\ninitLimit=2\nserver.1=h:1:2\nserver.2=h:3:4\n")
    assert "syncLimit" in message
    message = error_of("dataDir=/d\nclientPort=1\nserver.1=h:1:2:observer\n")
    assert message.startswith("zoo.cfg:3: server.N: observers without participants")
    message = error_of("dataDir=/d\nclientPort=1\nserver.1=h:1:2\nserver.2=h:3:4:observer\n")
    assert "observers without a quorum" in message
    assert "standaloneEnabled" in error_of("dataDir=/d\nclientPort=1\nstandaloneEnabled=false\n")


# --- load_config: files ---


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_load_relative_datadir_resolves_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, warnings = load_config(write(tmp_path / "zoo.cfg", "dataDir=data\nclientPort=1\n"))
    assert cfg.data_dir == os.path.join(str(tmp_path), "data") == cfg.data_log_dir
    assert any("dataDir" in w and "relative" in w for w in warnings)
    assert cfg.myid is None


def test_load_bad_myid_is_an_error(tmp_path):
    (tmp_path / "myid").write_text("one\n")
    path = write(tmp_path / "zoo.cfg", f"dataDir={tmp_path}\nclientPort=1\n")
    with pytest.raises(ConfigError, match=r"myid:1: myid: 'one'"):
        load_config(path)


def test_load_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.cfg"))


def test_load_quorum_requires_myid(tmp_path):
    text = f"dataDir={tmp_path}\nclientPort=1\ninitLimit=5\nsyncLimit=2\nserver.1=h:1:2\nserver.2=h:3:4\n"
    with pytest.raises(ConfigError, match="myid file is missing"):
        load_config(write(tmp_path / "zoo.cfg", text))


def test_load_own_server_line_sets_client_address_and_role(tmp_path):
    (tmp_path / "myid").write_text("2")
    text = (f"dataDir={tmp_path}\ninitLimit=5\nsyncLimit=2\nserver.1=h:1:2\n"
            "server.2=h:3:4:observer;127.0.0.1:2300\nserver.3=h:5:6\n")
    cfg, warnings = load_config(write(tmp_path / "zoo.cfg", text))
    assert (cfg.myid, cfg.peer_type) == (2, "observer")
    assert (cfg.client_port_address, cfg.client_port) == ("127.0.0.1", 2300)
    assert any("peerType" in w for w in warnings)
    conflicting = text + "clientPort=2400\n"
    with pytest.raises(ConfigError, match="clientPort"):
        load_config(write(tmp_path / "zoo.cfg", conflicting))


def test_load_dynamic_config_file(tmp_path):
    (tmp_path / "myid").write_text("1")
    dynamic = write(tmp_path / "zoo.cfg.dynamic.100000000",
                    "server.1=h:1:2:participant;2181\nserver.2=h:3:4:participant;2182\n")
    text = f"dataDir={tmp_path}\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile={dynamic}\n"
    cfg, _ = load_config(write(tmp_path / "zoo.cfg", text))
    assert sorted(cfg.servers) == [1, 2] and cfg.config_version == 0x100000000
    assert cfg.client_port == 2181
    with pytest.raises(ConfigError, match="must be in the dynamic file"):
        load_config(write(tmp_path / "zoo.cfg", text + "server.3=h:7:8\n"))
    write(tmp_path / "zoo.cfg.dynamic.100000000", "tickTime=5\n")
    with pytest.raises(ConfigError, match=r"dynamic.100000000:1: tickTime"):
        load_config(write(tmp_path / "zoo.cfg", text))


# --- conf four-letter word ---


def test_conf_lines_match_zookeeper_standalone(tmp_path):
    cfg = parse(
        "tickTime=2000\ndataDir=/tmp/cfgtask/data\nclientPort=34657\n"
        "clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
    )
    assert cfg.conf_text(data_dir_size=457, data_log_size=457) == JAVA_CONF_STANDALONE
    assert cfg.conf_lines(data_dir_size=457, data_log_size=457) == JAVA_CONF_STANDALONE.splitlines()


def test_conf_standalone_reports_server_id_zero_even_with_a_server_line():
    cfg = parse("tickTime=2000\ndataDir=/d\nclientPort=1\nserver.1=h:1:2\n")
    cfg.myid = 1
    assert cfg.conf_lines()[-1] == "serverId=0"


def test_conf_lines_match_zookeeper_quorum():
    cfg = parse(
        "tickTime=2000\ndataDir=/tmp/cfgtask/q1/data\nclientPort=60707\nclientPortAddress=127.0.0.1\n"
        "initLimit=4\nsyncLimit=2\nreconfigEnabled=true\n"
        "server.1=127.0.0.1:35123:37689:participant\nserver.2=127.0.0.1:60567:58139:participant\n"
        "server.3=127.0.0.1:33053:38647:observer;127.0.0.1:44869\n"
    )
    cfg.myid, cfg.config_version = 1, 0x100000000
    assert cfg.conf_text(data_dir_size=610, data_log_size=610) == JAVA_CONF_QUORUM


def test_storage_properties_parse_as_zookeeper_reads_them():
    """SnapStream.StreamMode.fromString (any case; unknown means none),
    Boolean.getBoolean / parseBoolean (only "true" is true, never an error),
    FileTxnLog's Long.getLong for txnLogSizeLimitInKb."""
    def cfg(lines: str):
        c, _ = parse_config("dataDir=/d\nclientPort=1\n" + lines)
        return c
    base = cfg("")
    assert (base.snapshot_compression_method, base.snapshot_trust_empty) == ("", False)
    assert base.digest_enabled and base.txn_log_size_limit_kb == -1
    c = cfg("zookeeper.snapshot.compression.method=SNAPPY\nzookeeper.snapshot.trust.empty=TRUE\n"
            "zookeeper.txnLogSizeLimitInKb=2048\ndigest.enabled=no\n")
    assert (c.snapshot_compression_method, c.snapshot_trust_empty) == ("snappy", True)
    assert c.txn_log_size_limit_kb == 2048 and not c.digest_enabled
    c = cfg("snapshot.compression.method=lz4\nsnapshot.trust.empty=yes\n")
    assert (c.snapshot_compression_method, c.snapshot_trust_empty) == ("", False)
    assert cfg("snapshot.compression.method=Gz\n").snapshot_compression_method == "gz"


def test_snapshot_size_factor_and_oracle_path():
    # ZKDatabase: default 0.33, above 1 or unparsable -> 0.33, negative turns
    # DIFF from the txn log off; oraclePath is a QuorumPeerConfig key.
    base = "tickTime=1000\ndataDir=/var/zk\n"
    assert parse_config(base)[0].snapshot_size_factor == 0.33
    assert parse_config(base)[0].oracle_path is None
    for value, want in (("0.5", 0.5), ("2", 0.33), ("abc", 0.33), ("-1", -1.0), ("0", 0.0)):
        cfg, _ = parse_config(base + f"snapshotSizeFactor={value}\n")
        assert cfg.snapshot_size_factor == want, value
    cfg, warnings = parse_config(base + "zookeeper.snapshotSizeFactor=0.1\noraclePath=/m/o\n")
    assert cfg.snapshot_size_factor == 0.1 and cfg.oracle_path == "/m/o"
    assert not [w for w in warnings if "snapshotSizeFactor" in w or "oraclePath" in w]
