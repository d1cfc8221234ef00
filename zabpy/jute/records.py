"""ZooKeeper 3.8 wire and txn records, declared once (zookeeper.jute order).

Every class here is a frozen dataclass with ``FIELDS`` naming the wire order;
encode/decode come from ``codec.Record``. Tables at the bottom map op codes to
the request record a client sends and txn types to the txn record logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .codec import Reader, Record, Writer, declare_record
from .constants import OpCode

V = "vector"


def _rec(fields: tuple[tuple[str, Any], ...]):
    """Class decorator: a record with these FIELDS, a frozen dataclass with
    slots (made one on first use: ``codec.declare_record``)."""

    def wrap(cls):
        return declare_record(cls, fields)

    return wrap


# ---- data -----------------------------------------------------------------

@_rec((("scheme", "ustring"), ("id", "ustring")))
class Id(Record):
    pass


@_rec((("perms", "int"), ("id", Id)))
class ACL(Record):
    pass


STAT_FIELDS = (
    ("czxid", "long"), ("mzxid", "long"), ("ctime", "long"), ("mtime", "long"),
    ("version", "int"), ("cversion", "int"), ("aversion", "int"),
    ("ephemeralOwner", "long"), ("dataLength", "int"), ("numChildren", "int"),
    ("pzxid", "long"),
)


@_rec(STAT_FIELDS)
class Stat(Record):
    pass


@_rec(tuple(f for f in STAT_FIELDS if f[0] not in ("dataLength", "numChildren")))
class StatPersisted(Record):
    pass


# ---- framing and session --------------------------------------------------

@_rec((("xid", "int"), ("type", "int")))
class RequestHeader(Record):
    pass


@_rec((("xid", "int"), ("zxid", "long"), ("err", "int")))
class ReplyHeader(Record):
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

@_rec((("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("flags", "int")))
class CreateRequest(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("flags", "int"), ("ttl", "long")))
class CreateTTLRequest(Record):
    pass


@_rec((("path", "ustring"), ("version", "int")))
class DeleteRequest(Record):
    pass


@_rec((("path", "ustring"), ("watch", "bool")))
class ExistsRequest(Record):
    pass


@_rec((("path", "ustring"), ("watch", "bool")))
class GetDataRequest(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("version", "int")))
class SetDataRequest(Record):
    pass


@_rec((("path", "ustring"),))
class GetACLRequest(Record):
    pass


@_rec((("path", "ustring"), ("acl", (V, ACL)), ("version", "int")))
class SetACLRequest(Record):
    pass


@_rec((("path", "ustring"), ("watch", "bool")))
class GetChildrenRequest(Record):
    pass


@_rec((("path", "ustring"), ("watch", "bool")))
class GetChildren2Request(Record):
    pass


@_rec((("path", "ustring"),))
class SyncRequest(Record):
    pass


@_rec((("path", "ustring"), ("version", "int")))
class CheckVersionRequest(Record):
    pass


@_rec((("path", "ustring"), ("type", "int")))
class CheckWatchesRequest(Record):
    pass


@_rec((("path", "ustring"), ("type", "int")))
class RemoveWatchesRequest(Record):
    pass


@_rec((("prefixPath", "ustring"),))
class GetEphemeralsRequest(Record):
    pass


@_rec((("path", "ustring"),))
class GetAllChildrenNumberRequest(Record):
    pass


@_rec((("path", "ustring"), ("mode", "int")))
class AddWatchRequest(Record):
    pass


@_rec((("type", "int"), ("scheme", "ustring"), ("auth", "buffer")))
class AuthPacket(Record):
    pass


@_rec((("relativeZxid", "long"), ("dataWatches", (V, "ustring")), ("existWatches", (V, "ustring")),
       ("childWatches", (V, "ustring"))))
class SetWatches(Record):
    pass


@_rec((("relativeZxid", "long"), ("dataWatches", (V, "ustring")), ("existWatches", (V, "ustring")),
       ("childWatches", (V, "ustring")), ("persistentWatches", (V, "ustring")),
       ("persistentRecursiveWatches", (V, "ustring"))))
class SetWatches2(Record):
    pass


@_rec((("token", "buffer"),))
class GetSASLRequest(Record):
    pass


@_rec((("joiningServers", "ustring"), ("leavingServers", "ustring"), ("newMembers", "ustring"),
       ("curConfigId", "long")))
class ReconfigRequest(Record):
    pass


@_rec((("type", "int"), ("done", "bool"), ("err", "int")))
class MultiHeader(Record):
    pass


# ---- responses ----------------------------------------------------------------

@_rec((("path", "ustring"),))
class CreateResponse(Record):
    pass


@_rec((("path", "ustring"), ("stat", Stat)))
class Create2Response(Record):
    pass


@_rec((("stat", Stat),))
class SetDataResponse(Record):
    pass


ExistsResponse = SetDataResponse


@_rec((("data", "buffer"), ("stat", Stat)))
class GetDataResponse(Record):
    pass


@_rec((("acl", (V, ACL)), ("stat", Stat)))
class GetACLResponse(Record):
    pass


@_rec((("stat", Stat),))
class SetACLResponse(Record):
    pass


@_rec((("children", (V, "ustring")),))
class GetChildrenResponse(Record):
    pass


@_rec((("children", (V, "ustring")), ("stat", Stat)))
class GetChildren2Response(Record):
    pass


@_rec((("path", "ustring"),))
class SyncResponse(Record):
    pass


@_rec((("err", "int"),))
class ErrorResponse(Record):
    pass


@_rec((("ephemerals", (V, "ustring")),))
class GetEphemeralsResponse(Record):
    pass


@_rec((("totalNumber", "int"),))
class GetAllChildrenNumberResponse(Record):
    pass


@_rec((("authScheme", "ustring"), ("user", "ustring")))
class ClientInfo(Record):
    pass


@_rec((("clientInfo", (V, ClientInfo)),))
class WhoAmIResponse(Record):
    pass


@_rec((("token", "buffer"),))
class SetSASLResponse(Record):
    pass


@_rec((("type", "int"), ("state", "int"), ("path", "ustring")))
class WatcherEvent(Record):
    pass


# ---- txns (the same record is logged, proposed and applied) ---------------

@_rec((("clientId", "long"), ("cxid", "int"), ("zxid", "long"), ("time", "long"), ("type", "int")))
class TxnHeader(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("ephemeral", "bool"),
       ("parentCVersion", "int")))
class CreateTxn(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("parentCVersion", "int")))
class CreateContainerTxn(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("acl", (V, ACL)), ("parentCVersion", "int"),
       ("ttl", "long")))
class CreateTTLTxn(Record):
    pass


@_rec((("path", "ustring"),))
class DeleteTxn(Record):
    pass


@_rec((("path", "ustring"), ("data", "buffer"), ("version", "int")))
class SetDataTxn(Record):
    pass


@_rec((("path", "ustring"), ("acl", (V, ACL)), ("version", "int")))
class SetACLTxn(Record):
    pass


@_rec((("timeOut", "int"),))
class CreateSessionTxn(Record):
    pass


@_rec((("paths2Delete", (V, "ustring")),))
class CloseSessionTxn(Record):
    pass


@_rec((("err", "int"),))
class ErrorTxn(Record):
    pass


@_rec((("path", "ustring"), ("version", "int")))
class CheckVersionTxn(Record):
    pass


@_rec((("type", "int"), ("data", "buffer")))
class Txn(Record):
    pass


@_rec((("txns", (V, Txn)),))
class MultiTxn(Record):
    pass


@_rec((("version", "int"), ("treeDigest", "long")))
class TxnDigest(Record):
    pass


# ---- files and quorum -------------------------------------------------------

@_rec((("magic", "int"), ("version", "int"), ("dbid", "long")))
class FileHeader(Record):
    pass


@_rec((("type", "int"), ("zxid", "long"), ("data", "buffer"), ("authinfo", (V, Id))))
class QuorumPacket(Record):
    pass


@_rec((("serverid", "long"), ("protocolVersion", "int"), ("configVersion", "long")))
class LearnerInfo(Record):
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
