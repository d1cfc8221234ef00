"""ZooKeeper 3.8 wire and txn records, declared once (zookeeper.jute order).

Every class here is a frozen dataclass with ``FIELDS`` naming the wire order
(``class X(Record, fields=...)``: a dataclass from its first use, see
``codec.declare_record``); encode/decode come from ``codec.Record``. Tables at the bottom map op codes to
the request record a client sends and txn types to the txn record logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .codec import Reader, Record, Writer
from .constants import OpCode

V = "vector"


# ---- data -----------------------------------------------------------------

class Id(Record, fields=(("scheme", "ustring"), ("id", "ustring"))):
    pass


class ACL(Record, fields=(("perms", "int"), ("id", Id))):
    pass


STAT_FIELDS = (
    ("czxid", "long"), ("mzxid", "long"), ("ctime", "long"), ("mtime", "long"),
    ("version", "int"), ("cversion", "int"), ("aversion", "int"),
    ("ephemeralOwner", "long"), ("dataLength", "int"), ("numChildren", "int"),
    ("pzxid", "long"),
)


class Stat(Record, fields=STAT_FIELDS):
    pass


class StatPersisted(Record, fields=tuple(f for f in STAT_FIELDS if f[0] not in ("dataLength", "numChildren"))):
    pass


# ---- framing and session --------------------------------------------------

class RequestHeader(Record, fields=(("xid", "int"), ("type", "int"))):
    pass


class ReplyHeader(Record, fields=(("xid", "int"), ("zxid", "long"), ("err", "int"))):
    pass


@dataclass(frozen=True, slots=True)
class ConnectRequest(Record):
    """The readOnly flag is a trailing byte that pre-3.4 clients omit, so the
    record is decoded by hand; ``has_read_only`` remembers whether it came."""

    protocolVersion: int
    lastZxidSeen: int
    timeOut: int
    sessionId: int
    passwd: bytes | None
    readOnly: bool = False
    has_read_only: bool = True

    FIELDS: ClassVar = (("protocolVersion", "int"), ("lastZxidSeen", "long"), ("timeOut", "int"),
                        ("sessionId", "long"), ("passwd", "buffer"))

    @classmethod
    def read(cls, r: Reader) -> "ConnectRequest":
        pv, lz, to, sid, pw = r.int(), r.long(), r.int(), r.long(), r.buffer()
        if r.remaining() >= 1:
            return cls(pv, lz, to, sid, pw, r.bool(), True)
        return cls(pv, lz, to, sid, pw, False, False)

    def write(self, w: Writer) -> None:
        w.int(self.protocolVersion); w.long(self.lastZxidSeen); w.int(self.timeOut)
        w.long(self.sessionId); w.buffer(self.passwd)
        if self.has_read_only:
            w.bool(self.readOnly)


@dataclass(frozen=True, slots=True)
class ConnectResponse(Record):
    protocolVersion: int
    timeOut: int
    sessionId: int
    passwd: bytes | None
    readOnly: bool = False
    has_read_only: bool = True

    FIELDS: ClassVar = (("protocolVersion", "int"), ("timeOut", "int"), ("sessionId", "long"),
                        ("passwd", "buffer"))

    @classmethod
    def read(cls, r: Reader) -> "ConnectResponse":
        pv, to, sid, pw = r.int(), r.int(), r.long(), r.buffer()
        if r.remaining() >= 1:
            return cls(pv, to, sid, pw, r.bool(), True)
        return cls(pv, to, sid, pw, False, False)

    def write(self, w: Writer) -> None:
        w.int(self.protocolVersion); w.int(self.timeOut); w.long(self.sessionId)
        w.buffer(self.passwd)
        if self.has_read_only:
            w.bool(self.readOnly)


# ---- requests ---------------------------------------------------------------

class CreateRequest(Record, fields=(("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("flags", "int"))):
    pass


class CreateTTLRequest(Record, fields=(("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("flags", "int"), ("ttl", "long"))):
    pass


class DeleteRequest(Record, fields=(("path", "ustring"), ("version", "int"))):
    pass


class ExistsRequest(Record, fields=(("path", "ustring"), ("watch", "bool"))):
    pass


class GetDataRequest(Record, fields=(("path", "ustring"), ("watch", "bool"))):
    pass


class SetDataRequest(Record, fields=(("path", "ustring"), ("data", "buffer"), ("version", "int"))):
    pass


class GetACLRequest(Record, fields=(("path", "ustring"),)):
    pass


class SetACLRequest(Record, fields=(("path", "ustring"), ("acl", (V, ACL)), ("version", "int"))):
    pass


class GetChildrenRequest(Record, fields=(("path", "ustring"), ("watch", "bool"))):
    pass


class GetChildren2Request(Record, fields=(("path", "ustring"), ("watch", "bool"))):
    pass


class SyncRequest(Record, fields=(("path", "ustring"),)):
    pass


class CheckVersionRequest(Record, fields=(("path", "ustring"), ("version", "int"))):
    pass


class CheckWatchesRequest(Record, fields=(("path", "ustring"), ("type", "int"))):
    pass


class RemoveWatchesRequest(Record, fields=(("path", "ustring"), ("type", "int"))):
    pass


class GetEphemeralsRequest(Record, fields=(("prefixPath", "ustring"),)):
    pass


class GetAllChildrenNumberRequest(Record, fields=(("path", "ustring"),)):
    pass


class AddWatchRequest(Record, fields=(("path", "ustring"), ("mode", "int"))):
    pass


class AuthPacket(Record, fields=(("type", "int"), ("scheme", "ustring"), ("auth", "buffer"))):
    pass


class SetWatches(Record, fields=(("relativeZxid", "long"), ("dataWatches", (V, "ustring")), ("existWatches", (V, "ustring")),
       ("childWatches", (V, "ustring")))):
    pass


class SetWatches2(Record, fields=(("relativeZxid", "long"), ("dataWatches", (V, "ustring")), ("existWatches", (V, "ustring")),
       ("childWatches", (V, "ustring")), ("persistentWatches", (V, "ustring")),
       ("persistentRecursiveWatches", (V, "ustring")))):
    pass


class GetSASLRequest(Record, fields=(("token", "buffer"),)):
    pass


class ReconfigRequest(Record, fields=(("joiningServers", "ustring"), ("leavingServers", "ustring"), ("newMembers", "ustring"),
       ("curConfigId", "long"))):
    pass


class MultiHeader(Record, fields=(("type", "int"), ("done", "bool"), ("err", "int"))):
    pass


# ---- responses ----------------------------------------------------------------

class CreateResponse(Record, fields=(("path", "ustring"),)):
    pass


class Create2Response(Record, fields=(("path", "ustring"), ("stat", Stat))):
    pass


class SetDataResponse(Record, fields=(("stat", Stat),)):
    pass


ExistsResponse = SetDataResponse


class GetDataResponse(Record, fields=(("data", "buffer"), ("stat", Stat))):
    pass


class GetACLResponse(Record, fields=(("acl", (V, ACL)), ("stat", Stat))):
    pass


class SetACLResponse(Record, fields=(("stat", Stat),)):
    pass


class GetChildrenResponse(Record, fields=(("children", (V, "ustring")),)):
    pass


class GetChildren2Response(Record, fields=(("children", (V, "ustring")), ("stat", Stat))):
    pass


class SyncResponse(Record, fields=(("path", "ustring"),)):
    pass


class ErrorResponse(Record, fields=(("err", "int"),)):
    pass


class GetEphemeralsResponse(Record, fields=(("ephemerals", (V, "ustring")),)):
    pass


class GetAllChildrenNumberResponse(Record, fields=(("totalNumber", "int"),)):
    pass


class ClientInfo(Record, fields=(("authScheme", "ustring"), ("user", "ustring"))):
    pass


class WhoAmIResponse(Record, fields=(("clientInfo", (V, ClientInfo)),)):
    pass


class SetSASLResponse(Record, fields=(("token", "buffer"),)):
    pass


class WatcherEvent(Record, fields=(("type", "int"), ("state", "int"), ("path", "ustring"))):
    pass


# ---- txns (the same record is logged, proposed and applied) ---------------

class TxnHeader(Record, fields=(("clientId", "long"), ("cxid", "int"), ("zxid", "long"), ("time", "long"), ("type", "int"))):
    pass


class CreateTxn(Record, fields=(("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("ephemeral", "bool"),
       ("parentCVersion", "int"))):
    pass


class CreateContainerTxn(Record, fields=(("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("parentCVersion", "int"))):
    pass


class CreateTTLTxn(Record, fields=(("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("parentCVersion", "int"),
       ("ttl", "long"))):
    pass


class DeleteTxn(Record, fields=(("path", "ustring"),)):
    pass


class SetDataTxn(Record, fields=(("path", "ustring"), ("data", "buffer"), ("version", "int"))):
    pass


class SetACLTxn(Record, fields=(("path", "ustring"), ("acl", (V, ACL)), ("version", "int"))):
    pass


class CreateSessionTxn(Record, fields=(("timeOut", "int"),)):
    pass


class CloseSessionTxn(Record, fields=(("paths2Delete", (V, "ustring")),)):
    pass


class ErrorTxn(Record, fields=(("err", "int"),)):
    pass


class CheckVersionTxn(Record, fields=(("path", "ustring"), ("version", "int"))):
    pass


class Txn(Record, fields=(("type", "int"), ("data", "buffer"))):
    pass


class MultiTxn(Record, fields=(("txns", (V, Txn)),)):
    pass


class TxnDigest(Record, fields=(("version", "int"), ("treeDigest", "long"))):
    pass


# ---- files and quorum -------------------------------------------------------

class FileHeader(Record, fields=(("magic", "int"), ("version", "int"), ("dbid", "long"))):
    pass


class QuorumPacket(Record, fields=(("type", "int"), ("zxid", "long"), ("data", "buffer"), ("authinfo", (V, Id)))):
    pass


class LearnerInfo(Record, fields=(("serverid", "long"), ("protocolVersion", "int"), ("configVersion", "long"))):
    pass


# ---- tables -------------------------------------------------------------------

REQUEST_RECORD: dict[int, type[Record] | None] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.exists: ExistsRequest,
    OpCode.getData: GetDataRequest,
    OpCode.setData: SetDataRequest,
    OpCode.getACL: GetACLRequest,
    OpCode.setACL: SetACLRequest,
    OpCode.getChildren: GetChildrenRequest,
    OpCode.getChildren2: GetChildren2Request,
    OpCode.sync: SyncRequest,
    OpCode.check: CheckVersionRequest,
    OpCode.checkWatches: CheckWatchesRequest,
    OpCode.removeWatches: RemoveWatchesRequest,
    OpCode.getEphemerals: GetEphemeralsRequest,
    OpCode.getAllChildrenNumber: GetAllChildrenNumberRequest,
    OpCode.addWatch: AddWatchRequest,
    OpCode.auth: AuthPacket,
    OpCode.setWatches: SetWatches,
    OpCode.setWatches2: SetWatches2,
    OpCode.sasl: GetSASLRequest,
    OpCode.reconfig: ReconfigRequest,
    OpCode.ping: None,
    OpCode.closeSession: None,
    OpCode.whoAmI: None,
    # multi / multiRead have their own framing (see pipeline.multi)
}

TXN_RECORD: dict[int, type[Record] | None] = {
    OpCode.create: CreateTxn,
    OpCode.create2: CreateTxn,
    OpCode.createContainer: CreateContainerTxn,
    OpCode.createTTL: CreateTTLTxn,
    OpCode.delete: DeleteTxn,
    OpCode.deleteContainer: DeleteTxn,
    OpCode.setData: SetDataTxn,
    OpCode.reconfig: SetDataTxn,
    OpCode.setACL: SetACLTxn,
    OpCode.createSession: CreateSessionTxn,
    OpCode.closeSession: CloseSessionTxn,
    OpCode.error: ErrorTxn,
    OpCode.check: CheckVersionTxn,
    OpCode.multi: MultiTxn,
}
