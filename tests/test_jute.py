"""Jute encoding against golden bytes (layouts from zookeeper.jute)."""

import pytest

from zabpy.jute import DecodeError, decode
from zabpy.jute import records as R


def test_stat_is_68_bytes_pzxid_last():
    s = R.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    b = s.to_bytes()
    assert len(b) == 68
    assert b[-8:] == (11).to_bytes(8, "big")
    assert decode(R.Stat, b) == s


def test_create_request_golden():
    req = R.CreateRequest("/a", b"x", [R.ACL(31, R.Id("world", "anyone"))], 1)
    assert req.to_bytes() == (
        b"\x00\x00\x00\x02/a" + b"\x00\x00\x00\x01x" + b"\x00\x00\x00\x01"
        + b"\x00\x00\x00\x1f" + b"\x00\x00\x00\x05world" + b"\x00\x00\x00\x06anyone"
        + b"\x00\x00\x00\x01")


def test_null_buffer_and_vector():
    assert R.GetDataResponse(None, R.Stat(*[0] * 11)).to_bytes()[:4] == b"\xff\xff\xff\xff"
    assert decode(R.GetChildrenResponse, b"\xff\xff\xff\xff").children is None


def test_connect_request_without_read_only_byte():
    old = R.ConnectRequest(0, 0, 30000, 0, bytes(16), False, has_read_only=False)
    decoded = decode(R.ConnectRequest, old.to_bytes())
    assert decoded.has_read_only is False and decoded.timeOut == 30000


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x00\x05ab", b"\xff\xff\xff\xfe"])
def test_truncated_or_negative_lengths_raise(data):
    with pytest.raises(DecodeError):
        decode(R.SyncRequest, data)


def test_vector_count_larger_than_input_raises():
    with pytest.raises(DecodeError):
        decode(R.GetChildrenResponse, b"\x7f\xff\xff\xff")


def test_fast_frozen_init_keeps_the_dataclass_contract():
    """codec.fast_frozen_init stores fields through the slots' descriptors: the
    same fields, defaults, __post_init__, equality, hashing and immutability."""
    import dataclasses

    from zabpy.jute.codec import fast_frozen_init
    from zabpy.zab.ready import Persist

    def fast(cls):   # the generated __init__ stores through the slots' descriptors
        return any(n.startswith("_set_") for n in cls.__init__.__code__.co_names)

    assert fast(Persist)
    p = Persist(records=((R.TxnHeader(1, 2, 3, 4, 5), None),), payloads=(b"x",))
    assert (p.truncate_zxid, p.then, p.payloads) == (None, (), (b"x",))
    assert p == Persist(records=p.records, payloads=(b"x",)) and hash(p) == hash(
        Persist(records=p.records, payloads=(b"x",)))
    with pytest.raises(AssertionError):        # __post_init__ still runs
        Persist(records=p.records, payloads=(b"x", b"y"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.then = ()
    pkt = R.QuorumPacket(2, 7, b"d", None)       # records get it when they materialize
    assert fast(R.QuorumPacket)
    assert (pkt.type, pkt.zxid, pkt.data, pkt.authinfo) == (2, 7, b"d", None)
    with pytest.raises(TypeError):
        R.QuorumPacket(2, 7)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        xs: list = dataclasses.field(default_factory=list)
    generated = WithFactory.__init__
    assert fast_frozen_init(WithFactory).__init__ is generated   # left as dataclass made it
    assert WithFactory().xs == [] and not fast(WithFactory)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithInitVar:
        x: int
        k: dataclasses.InitVar[int] = 0

        def __post_init__(self, k):
            assert k == 2

    generated = WithInitVar.__init__
    assert fast_frozen_init(WithInitVar).__init__ is generated   # the InitVar is its parameter
    assert WithInitVar(1, 2) == WithInitVar(1, k=2)



def _reader_reference(cls, data):
    """``cls`` read field by field through the Reader's own primitives (what
    the generated readers inline): the value and where it stopped, or an error."""
    from zabpy.jute.codec import Reader, _read_value
    r = Reader(data)
    try:
        return cls(*[_read_value(r, typ) for _, typ in cls.FIELDS]), r.pos
    except DecodeError:
        return "error", None


@pytest.mark.parametrize("cls", [R.CreateRequest, R.SetDataRequest, R.CreateTxn, R.SetDataTxn,
                                 R.TxnHeader, R.GetDataResponse, R.SetACLRequest, R.WatcherEvent,
                                 R.MultiHeader, R.CheckVersionRequest])
def test_generated_reader_agrees_with_the_reader_primitives(cls):
    """The generated readers inline buffer, string and vector reads and keep
    the offset in a local: on every prefix of a valid encoding, with a null
    buffer or string, and with a string that is not UTF-8, they read what the
    Reader's own primitives read, stop where they stop, and fail where they fail."""
    from zabpy.jute.codec import Reader
    marker = "\x01\x02\x03\x04"  # a string field's bytes, replaced by bad UTF-8 below
    first = {"int": 7, "long": 1 << 40, "bool": True, "buffer": b"data", "ustring": "/a/\u00e9"}
    values = []
    for _, typ in cls.FIELDS:
        if isinstance(typ, tuple):
            values.append([R.ACL(31, R.Id("world", "anyone"))] if typ[1] is R.ACL else None)
        elif isinstance(typ, str):
            values.append(first[typ])
        else:
            values.append(R.Stat(*range(11)))
    encodings = [cls(*values).to_bytes()]
    for i, (_, typ) in enumerate(cls.FIELDS):
        if typ in ("buffer", "ustring"):
            encodings.append(cls(*values[:i], None, *values[i + 1:]).to_bytes())
        if typ == "ustring":
            enc = cls(*values[:i], marker, *values[i + 1:]).to_bytes()
            encodings.append(enc.replace(marker.encode(), b"\xff\xfe/x"))
    for enc in encodings:
        for cut in range(len(enc) + 1):
            data = enc[:cut]
            r = Reader(data)
            try:
                got = cls.read(r), r.pos
            except DecodeError:
                got = "error", None
            assert got == _reader_reference(cls, data), (cls.__name__, data)
