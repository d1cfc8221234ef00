"""Every bound zabpy enforces, named once.

Relations between bounds are asserted at import so that a change to one
cannot silently break another.
"""

# Largest client frame, request or reply (ZooKeeper's jute.maxbuffer default).
JUTE_MAXBUFFER = 0xFFFFF
# Extra room a txn record may take beyond jute.maxbuffer (the request that made
# it was bounded; the txn adds a header and an ACL list).
JUTE_MAXBUFFER_EXTRASIZE = 1024

# A four-letter word is the first four bytes of a new connection.
FOUR_LETTER_WORD_LEN = 4

# Client connections: how many requests one connection may have in flight
# before we stop reading from it (back-pressure, ZooKeeper's
# globalOutstandingLimit is per server; ours is per connection and global).
CONNECTION_OUTSTANDING_MAX = 1000
GLOBAL_OUTSTANDING_MAX = 1000

# Bytes queued for one connection's socket before we stop reading its input.
CONNECTION_WRITE_BUFFER_HIGH = 4 * 1024 * 1024

# Bytes of replies one client connection may have queued and unread
# (zabpy.maxQueuedBytesPerConnection): past it the server answers none of that
# connection's reads and stops reading its requests until the client drains
# below half of it; a connection that stays over it for
# zabpy.queuedBytesGraceMs is closed. About eight full-size replies: a
# client pipelining large reads keeps its socket busy.
CONNECTION_QUEUED_BYTES_MAX_DEFAULT = 8 * 1024 * 1024
CONNECTION_QUEUED_GRACE_MS_DEFAULT = 30_000

# A multi of more sub-txns than this is applied this many at a time, one
# part per loop turn, and its watch events handed out so many per turn, so
# that other sessions are served in between (server/sliced.py). A part takes
# a few ms.
MULTI_APPLY_OPS_PER_PART = 250
WATCH_EVENTS_PER_PART = 1000
# A closeSession deleting more ephemerals than this deletes them this many per
# loop turn (server/sliced.py, SlicedClose); a delete costs a few microseconds.
CLOSE_SESSION_DELETES_PER_PART = 500
# A closeSession of a session owning more ephemerals than this is prepared
# (sized, counted per parent, sorted when its txn lists them) and, where it is
# applied, its deletes put in order, this many paths per loop turn, before the
# first part deletes (pipeline/prep.py ClosePrep, tree/kill_order.py): sorting
# 100,000 paths at once held the loop for about 30 ms (issue 19). A part is
# about 0.5 ms when the paths come in order, 1-2 ms when they come shuffled.
CLOSE_SESSION_PATHS_PER_PART = 5_000
# A multi request body larger than this is decoded and prepared in parts of
# MULTI_APPLY_OPS_PER_PART ops too (one create is about 60 bytes).
MULTI_SLICED_BODY_BYTES = 16 * 1024

# A getChildren of a node with more children than this whose encoded list
# is not cached (the first listing after a change) encodes the list this many
# names per loop turn before it is answered (server/sliced.py).
CHILDREN_ENCODE_PER_PART = 10_000
# A getAllChildrenNumber of a node with more nodes below it than this counts
# them this many per loop turn (a node costs some 0.4 us to count, a lookup in
# a dict of a million paths: cache misses; about 2 ms a part), and a
# getEphemerals of a session owning more than EPHEMERALS_PER_PART ephemerals
# filters and encodes them that many per turn (server/sliced.py).
COUNT_NODES_PER_PART = 5_000
EPHEMERALS_PER_PART = 10_000
# A reply frame longer than this (a long child list: 12 bytes a name) goes to
# its connection this many bytes per loop turn, and while the send budget
# (CONNECTION_QUEUED_BYTES_MAX_DEFAULT) allows, so that one reply neither holds
# the loop nor piles megabytes on a client that does not read; whatever else
# that connection is sent meanwhile (replies, watch events) follows it
# (server/standalone.py, ``_stream``).
REPLY_BYTES_PER_PART = 256 * 1024
# ... and the parts of all connections together, per loop turn, at most about
# this many bytes (the connections take turns).
REPLY_BYTES_PER_TURN = 1024 * 1024

# Sequential-node counter is a signed 32-bit int, as in ZooKeeper.
SEQUENCE_MAX = 2**31 - 1

# TTL range in milliseconds (ZooKeeper's EphemeralType.TTL max is 2^40 - 1).
TTL_MS_MAX = 2**40 - 1

# Path components and whole paths are bounded by the frame size.
PATH_BYTES_MAX = JUTE_MAXBUFFER

# setWatches: the client batches at 128 KiB; we accept up to a full frame.
SET_WATCHES_BYTES_MAX = JUTE_MAXBUFFER

# Container reaper (ZooKeeper's znode.container.* defaults).
CONTAINER_CHECK_INTERVAL_MS = 60_000
CONTAINER_MAX_PER_MINUTE = 10_000

# ZooKeeper's RateLogger: repeats of one warning within this long are counted, not written.
RATE_LOGGER_INTERVAL_MS = 100

# Per-IP connections (maxClientCnxns default).
MAX_CLIENT_CNXNS_DEFAULT = 60

# A connection without a session is closed after this long (ZooKeeper's
# zookeeper.nio.sessionlessCnxnTimeout default), freeing its maxClientCnxns
# slot: a client that connects and never finishes the handshake cannot hold
# one forever.
SESSIONLESS_CNXN_TIMEOUT_MS_DEFAULT = 10_000

# Outstanding writes the standalone pipeline keeps before the log catches up.
PENDING_TXNS_MAX = 10_000

# ---- the HTTP/JSON API (zabpy/httpapi) ----
# changes kept in memory for watch streams and history (zabpy.http.changeLogSize)
HTTP_CHANGE_LOG_SIZE_DEFAULT = 50_000
# internal sessions the API keeps, one per identity (zabpy.http.sessionsMax)
HTTP_SESSIONS_MAX_DEFAULT = 64
# concurrent watch streams per server (a stream's writes wait for its own
# socket; one that falls behind the change log is cut with ``event: gone``)
HTTP_STREAMS_MAX = 1024
# an API request body (a znode's data is at most jute.maxbuffer, base64 grows it by 4/3)
HTTP_BODY_BYTES_MAX = 2 * JUTE_MAXBUFFER
# entries one history answer may list
HTTP_HISTORY_LIMIT_MAX = 10_000

assert JUTE_MAXBUFFER > 0
assert CONNECTION_QUEUED_BYTES_MAX_DEFAULT > JUTE_MAXBUFFER
assert CONNECTION_QUEUED_GRACE_MS_DEFAULT > 0
assert MULTI_APPLY_OPS_PER_PART >= 1 and WATCH_EVENTS_PER_PART >= 1
assert CLOSE_SESSION_DELETES_PER_PART >= 1
assert CLOSE_SESSION_PATHS_PER_PART >= CLOSE_SESSION_DELETES_PER_PART
assert min(CHILDREN_ENCODE_PER_PART, COUNT_NODES_PER_PART, EPHEMERALS_PER_PART) >= 1
assert 16 < REPLY_BYTES_PER_PART < CONNECTION_QUEUED_BYTES_MAX_DEFAULT
assert REPLY_BYTES_PER_TURN >= REPLY_BYTES_PER_PART
assert CONNECTION_OUTSTANDING_MAX >= 1
assert SESSIONLESS_CNXN_TIMEOUT_MS_DEFAULT > 0
assert PATH_BYTES_MAX <= JUTE_MAXBUFFER
assert SET_WATCHES_BYTES_MAX <= JUTE_MAXBUFFER
assert TTL_MS_MAX < 2**63

# ---- leader election (QuorumCnxManager / FastLeaderElection) ----------------
# Largest election frame payload (QuorumCnxManager.PACKETMAXSIZE).
ELECTION_PACKET_BYTES_MAX = 512 * 1024
# Address string in the election initial message (QuorumCnxManager.maxBuffer).
ELECTION_ADDR_BYTES_MAX = 2048
# Notifications waiting to leave for one peer: only the newest matters.
ELECTION_SEND_QUEUE_MAX = 1
# Received notifications waiting for the election core (RECV_CAPACITY).
ELECTION_RECV_QUEUE_MAX = 100
# FLE timers (finalizeWait, min/maxNotificationInterval defaults).
FLE_FINALIZE_WAIT_MS = 200
FLE_NOTIFICATION_INTERVAL_MS_MIN = 200
FLE_NOTIFICATION_INTERVAL_MS_MAX = 60_000
# Outgoing election connect timeout (cnxTimeout default) and re-dial pause.
ELECTION_CONNECT_TIMEOUT_MS = 5_000
ELECTION_REDIAL_MS = 100

assert ELECTION_SEND_QUEUE_MAX == 1
assert 28 <= ELECTION_PACKET_BYTES_MAX
assert 0 < FLE_NOTIFICATION_INTERVAL_MS_MIN <= FLE_NOTIFICATION_INTERVAL_MS_MAX

# ---- zabpy shell / status (client side) ---------------------------------------
# `deleteall -b`: deletes per multi when no batch size is given (zkCli's 1000).
SHELL_DELETEALL_BATCH_DEFAULT = 1000
# `history` lists this many most recent commands (zkCli shows 10).
SHELL_HISTORY_SHOWN = 10
# A four-letter-word reply read by `zabpy status`; srvr is a few hundred bytes.
FOUR_LETTER_REPLY_BYTES_MAX = 1024 * 1024

assert SHELL_DELETEALL_BATCH_DEFAULT >= 1

# ---- storage (zabpy/storage) ------------------------------------------------
# Largest txn entry a log reader accepts (ZooKeeper's BinaryInputArchive check:
# jute.maxbuffer + extrasize); a larger length field is a torn or corrupt record.
TXN_LOG_ENTRY_BYTES_MAX = JUTE_MAXBUFFER + JUTE_MAXBUFFER_EXTRASIZE
# A closeSession txn lists the ephemerals it deletes (CloseSessionTxn.paths2Delete,
# as ZooKeeper 3.6+ writes it) only while that record takes at most this many
# bytes. A session owning more (100,000 ephemerals of 13-byte names: 1.7 MB) is
# closed by a txn without the record, as ZooKeeper writes it with
# zookeeper.closeSessionTxn.enabled=false, and every member deletes the
# session's ephemerals from its own tree: a longer record would make a log
# entry and a PROPOSAL longer than any reader takes (ZOOKEEPER-4306, where
# Java 3.8 writes it and its ensemble cannot load it).
CLOSE_SESSION_PATHS_BYTES_MAX = JUTE_MAXBUFFER - 1024
assert CLOSE_SESSION_PATHS_BYTES_MAX + 1024 <= TXN_LOG_ENTRY_BYTES_MAX
# Log files grow in preAllocSize steps (ZooKeeper default 64 MiB), extended
# when the write position comes within this many bytes of the end.
LOG_PREALLOC_BYTES_DEFAULT = 64 * 1024 * 1024
LOG_PREALLOC_MARGIN_BYTES = 4096
# snapCount and snapSizeLimitInKb defaults (a snapshot after snapCount/2 +
# random(snapCount/2) txns, or half the size limit + random).
SNAP_COUNT_DEFAULT = 100_000
SNAP_SIZE_LIMIT_BYTES_DEFAULT = 4 * 1024 * 1024 * 1024
# Restore tries at most this many snapshots, newest first (FileSnap).
SNAPSHOT_CANDIDATES_MAX = 100
# autopurge.snapRetainCount minimum (DatadirCleanupManager / PurgeTxnLog).
SNAP_RETAIN_COUNT_MIN = 3
# Sessions and ACL lists a snapshot may declare before we call it corrupt.
SNAPSHOT_SESSIONS_MAX = 10_000_000
SNAPSHOT_ACL_LISTS_MAX = 10_000_000
# Distinct ACL lists the data tree keeps to share one tuple among the nodes
# created with an equal ACL (DataTree.shared_acl); more get a tuple each.
TREE_SHARED_ACLS_MAX = 4096
# One snappy block of a .snappy snapshot may inflate to this much: snappy-java
# writes 32 KiB blocks; a bigger claim is corruption, not an allocation to make.
SNAPSHOT_SNAPPY_BLOCK_BYTES_MAX = 64 * 1024 * 1024

assert TXN_LOG_ENTRY_BYTES_MAX > JUTE_MAXBUFFER
assert LOG_PREALLOC_BYTES_DEFAULT > LOG_PREALLOC_MARGIN_BYTES
assert SNAP_COUNT_DEFAULT >= 2

# Metrics (zabpy.admin.metrics): recent observations a summary keeps for its
# quantiles (mntr's p50..p999 and Prometheus' quantile samples); count, sum,
# min and max cover every observation.
METRICS_SUMMARY_WINDOW = 1024
# Event-loop pause monitor: shortest sleep between two checks, so that a
# misconfigured interval cannot turn the monitor into a busy loop.
PAUSE_MONITOR_SLEEP_MS_MIN = 10

assert METRICS_SUMMARY_WINDOW >= 100

# ---- ZAB (zabpy/zab, runtime/quorum_transport) --------------------------------
# Largest quorum packet's data buffer (jute.maxbuffer plus the txn extra room:
# a PROPOSAL carries TxnHeader + txn; a learner's PING carries its touch table).
QUORUM_PACKET_DATA_BYTES_MAX = JUTE_MAXBUFFER + JUTE_MAXBUFFER_EXTRASIZE
assert CLOSE_SESSION_PATHS_BYTES_MAX + 1024 <= QUORUM_PACKET_DATA_BYTES_MAX
# Ids in a packet's authinfo vector (a REQUEST carries its client's auth ids).
QUORUM_PACKET_AUTH_IDS_MAX = 64
# A SNAP stream (sessions + tree after the SNAP packet) may be this large.
QUORUM_SNAP_BYTES_MAX = 2**31 - 1
# A SNAP image goes to the learner's socket a part of this size per loop turn,
# the next part only once the link's send buffer has drained (a 1M-znode image
# is some 190 MB: handed over whole, its copies stopped the leader's loop for a
# quarter of a second).
QUORUM_SNAP_PART_BYTES = 1024 * 1024
# A part and what a link still buffers stay below the link's bound, so that
# packets queued behind the image never find the link over it.
assert 0 < QUORUM_SNAP_PART_BYTES < CONNECTION_WRITE_BUFFER_HIGH // 2
# Committed txns the leader keeps in memory to sync learners by DIFF
# (ZooKeeper's commitLogCount default 500); older learners get a SNAP.
ZAB_COMMITTED_LOG_MAX = 500
# zookeeper.snapshotSizeFactor: a learner behind the committed history gets a
# DIFF read from the txn log when the log files to read weigh at most this
# times the newest snapshot file (ZKDatabase; negative: never).
SNAPSHOT_SIZE_FACTOR_DEFAULT = 0.33
# Proposals a leader may have outstanding (not yet committed) at once; propose()
# refuses beyond this (back-pressure to the pipeline).
ZAB_OUTSTANDING_MAX = 20_000
# Distinct sessions a learner reports in one PING reply (12 bytes each).
ZAB_TOUCHES_MAX = 80_000
# Forwarded sync() requests a learner may have waiting for the leader's SYNC.
ZAB_PENDING_SYNCS_MAX = 10_000
# A learner whose first connection to its new leader fails tries again, as
# ZooKeeper's Learner.connectToLeader does: at most this many attempts, this
# far apart (zookeeper.leaderConnectDelayDuringRetryMs), all within initLimit
# ticks. A leader decided by FLE binds its quorum port only after its own
# finalize wait, so a learner that decided first may find it closed.
LEARNER_CONNECT_TRIES_MAX = 5
LEARNER_CONNECT_RETRY_MS = 100
# The log tail a peer mirrors in memory: DIFF source for a future leader role
# and the unapplied entries it fast-forwards; must cover every outstanding txn.
ZAB_LOG_TAIL_MAX = ZAB_COMMITTED_LOG_MAX + ZAB_OUTSTANDING_MAX
# The low 32 bits of a zxid; a leader whose counter reaches this re-elects.
ZXID_COUNTER_MAX = 0xFFFFFFFF

assert QUORUM_PACKET_DATA_BYTES_MAX >= TXN_LOG_ENTRY_BYTES_MAX
assert ZAB_LOG_TAIL_MAX >= ZAB_OUTSTANDING_MAX + ZAB_COMMITTED_LOG_MAX
assert ZAB_TOUCHES_MAX * 12 <= QUORUM_PACKET_DATA_BYTES_MAX  # one PING reply holds them

# Request latency samples kept between two metric updates (one tick).
LATENCY_SAMPLES_MAX = 10_000

# Client reads pause at GLOBAL_OUTSTANDING_MAX requests in flight; one read
# (64 KiB) can still add a few thousand before the pause takes effect, so the
# leader's proposal window must be far larger.
assert GLOBAL_OUTSTANDING_MAX * 10 <= ZAB_OUTSTANDING_MAX

# After a fail-stop (runtime/fatal.py) `zabpy server` gives its orderly stop
# (operations endpoints, store close) this long, then exits non-zero anyway.
FAIL_STOP_SHUTDOWN_MS = 5_000

# RFC 2831: a DIGEST-MD5 digest-response is at most 4096 bytes (auth/digest_md5.py)
SASL_DIGEST_RESPONSE_MAX = 4096
assert HTTP_CHANGE_LOG_SIZE_DEFAULT > 0 and HTTP_SESSIONS_MAX_DEFAULT > 0
assert HTTP_BODY_BYTES_MAX > JUTE_MAXBUFFER
# A SASL token on the quorum/election ports or a GSSAPI token from a client
# (a Kerberos AP-REQ with a PAC runs to several KiB; the JDK accepts 64 KiB)
SASL_TOKEN_MAX = 65536
assert SASL_TOKEN_MAX >= SASL_DIGEST_RESPONSE_MAX

# Compiled dataclass methods kept in zabpy's code cache (_codecache.py); past
# this, a save keeps only the entries its own process used.
CODE_CACHE_ENTRIES_MAX = 4096
assert CODE_CACHE_ENTRIES_MAX >= 1
