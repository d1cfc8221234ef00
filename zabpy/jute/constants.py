"""Numbers of the ZooKeeper 3.8 protocol: op codes, error codes, watch event
types and states, create modes, permissions, special xids."""

from __future__ import annotations

import enum

__all__ = [
    "OpCode", "Err", "EventType", "KeeperState", "WatcherType", "CreateMode",
    "Perms", "Xid", "AddWatchMode", "CONTAINER_EPHEMERAL_OWNER", "TTL_MASK",
    "EPHEMERAL_TYPE_MASK",
]


class OpCode(enum.IntEnum):
    notification = 0
    create = 1
    delete = 2
    exists = 3
    getData = 4
    setData = 5
    getACL = 6
    setACL = 7
    getChildren = 8
    sync = 9
    ping = 11
    getChildren2 = 12
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    checkWatches = 17
    removeWatches = 18
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    multiRead = 22
    auth = 100
    setWatches = 101
    sasl = 102
    getEphemerals = 103
    getAllChildrenNumber = 104
    setWatches2 = 105
    addWatch = 106
    whoAmI = 107
    createSession = -10
    closeSession = -11
    error = -1


class Err(enum.IntEnum):
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class EventType(enum.IntEnum):
    None_ = -1
    NodeCreated = 1
    NodeDeleted = 2
    NodeDataChanged = 3
    NodeChildrenChanged = 4
    DataWatchRemoved = 5
    ChildWatchRemoved = 6
    PersistentWatchRemoved = 7


class KeeperState(enum.IntEnum):
    Unknown = -1
    Disconnected = 0
    NoSyncConnected = 1
    SyncConnected = 3
    AuthFailed = 4
    ConnectedReadOnly = 5
    SaslAuthenticated = 6
    Closed = 7
    Expired = -112


class WatcherType(enum.IntEnum):
    Children = 1
    Data = 2
    Any = 3
    Persistent = 4
    PersistentRecursive = 5


class AddWatchMode(enum.IntEnum):
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode(enum.IntEnum):
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    # Plain-int sets: on Python 3.11 every enum member lookup goes through
    # EnumType.__getattr__'s slow hook, and these run several times per create.
    @property
    def is_ephemeral(self) -> bool:
        return self in _EPHEMERAL_MODES

    @property
    def is_sequential(self) -> bool:
        return self in _SEQUENTIAL_MODES

    @property
    def is_container(self) -> bool:
        return self == 4

    @property
    def is_ttl(self) -> bool:
        return self in _TTL_MODES


_EPHEMERAL_MODES = frozenset({1, 3})
_SEQUENTIAL_MODES = frozenset({2, 3, 6})
_TTL_MODES = frozenset({5, 6})


class Perms(enum.IntFlag):
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class Xid(enum.IntEnum):
    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


# ephemeralOwner encodings of the extended node types (EphemeralType in Java).
CONTAINER_EPHEMERAL_OWNER = -0x8000000000000000  # Long.MIN_VALUE
EPHEMERAL_TYPE_MASK = -0x100000000000000  # 0xFF00000000000000 as signed long
TTL_MASK = 0xFF00000000000000


def _plain(enum_cls: type) -> type:
    """``enum_cls``'s members as attributes of a plain class. On Python 3.11
    every ``OpCode.create`` goes through EnumType's ``__getattr__`` hook
    (about 200 ns; 3.12 dropped the hook), so the per-request code reads
    members from these instead: ``OP.create`` is the same ``OpCode.create``."""
    return type(enum_cls.__name__ + "Members", (), dict(enum_cls.__members__))


OP = _plain(OpCode)
ERR = _plain(Err)
MODE = _plain(CreateMode)
PERM = _plain(Perms)
EVENT = _plain(EventType)
STATE = _plain(KeeperState)
XID = _plain(Xid)
