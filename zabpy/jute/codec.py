"""Jute binary encoding: the primitive types and declared records.

Jute is ZooKeeper's serialization: big-endian ints (4 bytes) and longs
(8 bytes), one-byte booleans, length-prefixed byte buffers and UTF-8 strings
(length -1 means null), length-prefixed vectors (-1 means null), and records
that are their fields concatenated in declared order with no tag or length.

A record is a frozen dataclass whose ``FIELDS`` class attribute declares the
wire order and type of each field. ``encode`` and ``decode`` are derived from
that declaration, so a record's wire format is stated exactly once. Types are
the strings ``int``, ``long``, ``bool``, ``buffer``, ``ustring``, a record
class, or ``("vector", T)``.

Decoding never trusts a length: every read is checked against what is left,
and a short or malformed input raises ``DecodeError`` (the caller decides
whether that closes a connection or fails a file).
"""

from __future__ import annotations

import struct
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

__all__ = ["DecodeError", "Reader", "Writer", "Record", "declare_record", "encode", "decode",
           "intern_encoding", "fast_frozen_init"]

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_BOOL = struct.Struct(">?")


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected record."""


class Reader:
    """Reads jute primitives from a buffer, tracking the offset."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        self.buf = data if isinstance(data, memoryview) else memoryview(data)
        self.pos = pos
        self.end = len(self.buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.end:
            raise DecodeError(f"need {n} bytes at offset {self.pos}, have {self.end - self.pos}")

    def int(self) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise DecodeError(f"need 4 bytes at offset {pos}, have {self.end - pos}")
        (v,) = _INT.unpack_from(self.buf, pos)
        self.pos = pos + 4
        return v

    def long(self) -> int:
        self._need(8)
        (v,) = _LONG.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def bool(self) -> bool:
        self._need(1)
        v = self.buf[self.pos] != 0
        self.pos += 1
        return v

    def buffer(self) -> bytes | None:
        # int() and _need() inlined: this runs for every path and data field
        pos = self.pos
        if pos + 4 > self.end:
            raise DecodeError(f"need 4 bytes at offset {pos}, have {self.end - pos}")
        (n,) = _INT.unpack_from(self.buf, pos)
        pos += 4
        if n == -1:
            self.pos = pos
            return None
        if n < -1:
            raise DecodeError(f"negative buffer length {n}")
        if pos + n > self.end:
            raise DecodeError(f"need {n} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + n
        return bytes(self.buf[pos : pos + n])

    def ustring(self) -> str | None:
        raw = self.buffer()
        if raw is None:
            return None
        # Java decodes malformed UTF-8 to U+FFFD; paths holding it are then
        # refused by path validation, exactly as ZooKeeper refuses them.
        return raw.decode("utf-8", "replace")

    def raw(self, n: int) -> bytes:
        self._need(n)
        v = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return v

    def rest(self) -> bytes:
        return self.raw(self.end - self.pos)


class Writer:
    """Appends jute primitives to a bytearray."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def int(self, v: int) -> None:
        self.out += _INT.pack(v)

    def long(self, v: int) -> None:
        self.out += _LONG.pack(v)

    def bool(self, v: bool) -> None:
        self.out += b"\x01" if v else b"\x00"

    def buffer(self, v: bytes | None) -> None:
        if v is None:
            self.out += _INT.pack(-1)
        else:
            self.out += _INT.pack(len(v))
            self.out += v

    def ustring(self, v: str | None) -> None:
        self.buffer(None if v is None else v.encode("utf-8"))

    def raw(self, v: bytes) -> None:
        self.out += v

    def getvalue(self) -> bytes:
        return bytes(self.out)


def _write_value(w: Writer, typ: Any, value: Any) -> None:
    if typ == "int":
        w.int(value)
    elif typ == "long":
        w.long(value)
    elif typ == "bool":
        w.bool(value)
    elif typ == "buffer":
        w.buffer(value)
    elif typ == "ustring":
        w.ustring(value)
    elif isinstance(typ, tuple):
        if value is None:
            w.int(-1)
            return
        w.int(len(value))
        for item in value:
            _write_value(w, typ[1], item)
    else:
        value.write(w)


def _read_value(r: Reader, typ: Any) -> Any:
    if typ == "int":
        return r.int()
    if typ == "long":
        return r.long()
    if typ == "bool":
        return r.bool()
    if typ == "buffer":
        return r.buffer()
    if typ == "ustring":
        return r.ustring()
    if isinstance(typ, tuple):
        n = r.int()
        if n == -1:
            return None
        if n < -1 or n > r.remaining():
            # Every element takes at least one byte, so a count larger than
            # what is left is malformed; checking here bounds the allocation.
            raise DecodeError(f"bad vector length {n}")
        return [_read_value(r, typ[1]) for _ in range(n)]
    return typ.read(r)


class _RecordMeta(type):
    """The metaclass of records: a declared record becomes a dataclass on
    first use (``declare_record``), and asking a class that has not been
    used yet for its dataclass attributes (``dataclasses.fields(cls)``,
    ``cls.__match_args__``) makes it one first. ``__getattr__`` here runs
    only when the normal lookup fails, so it costs nothing once a record is
    a dataclass.

    ``class X(Record, fields=(...)): pass`` declares a record in one class
    creation (``declare_record`` on a finished class makes a second one, its
    slots being fixed at creation: about 75,000 instructions per record at
    every start)."""

    def __new__(mcls, name: str, bases: tuple, ns: dict, fields: Any = None):
        if fields is None:
            return super().__new__(mcls, name, bases, ns)
        new = super().__new__(mcls, name, bases, _declared(name, ns, fields, lambda: new))
        return new

    def __init__(cls, name: str, bases: tuple, ns: dict, fields: Any = None):
        super().__init__(name, bases, ns)

    def __getattr__(cls, name: str) -> Any:
        if name in _DATACLASS_ATTRS and "FIELDS" in cls.__dict__ \
                and "__dataclass_fields__" not in cls.__dict__:
            _materialize(cls)
            return getattr(cls, name)
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


_DATACLASS_ATTRS = frozenset({"__dataclass_fields__", "__dataclass_params__", "__match_args__"})


class Record(metaclass=_RecordMeta):
    """Base of all declared records; subclasses set FIELDS.

    Every record is a frozen dataclass with slots. ``Record`` itself is not
    a dataclass (so that a record that is not a dataclass yet does not
    inherit an empty ``__dataclass_fields__``); it carries the pickling
    methods that ``dataclass(slots=True)`` would add, which a frozen
    slotted class needs."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = ()

    def __getstate__(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]

    def __setstate__(self, state: list) -> None:
        cls = type(self)
        if "__dataclass_fields__" not in cls.__dict__:
            _materialize(cls)  # unpickled before any instance was made here
        for f, value in zip(fields(self), state):
            object.__setattr__(self, f.name, value)

    def write(self, w: Writer) -> None:
        for name, typ in self.FIELDS:
            _write_value(w, typ, getattr(self, name))

    @classmethod
    def read(cls, r: Reader) -> "Record":
        return cls(*[_read_value(r, typ) for _, typ in cls.FIELDS])

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()


_FIXED = {"int": "i", "long": "q", "bool": "?"}


def _w_buffer(out: bytearray, v: bytes | None) -> None:
    if v is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _INT.pack(len(v))
        out += v


def _w_ustring(out: bytearray, v: str | None) -> None:
    if v is None:
        out += b"\xff\xff\xff\xff"
    else:
        b = v.encode("utf-8")
        out += _INT.pack(len(b))
        out += b


def declare_record(cls: type, fields: tuple[tuple[str, Any], ...]) -> type:
    """The record class ``cls`` declares (a ``Record`` subclass with an
    empty body), with ``fields`` as its FIELDS and one slot per field.

    It becomes a frozen dataclass, and its generic write/read are replaced
    by straight-line code derived from FIELDS (runs of fixed-size fields
    become one ``struct`` call), on its first use: its first construction,
    ``read`` or ``write``, or a look-up of its dataclass attributes
    (``_RecordMeta``). The wire format is still stated once, in FIELDS.
    Making ~60 dataclasses and compiling their codecs at import was the
    largest part of a server's start-up; most records are used late or
    never (a standalone server never touches the quorum packets)."""
    ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    ns["__qualname__"] = cls.__qualname__
    new = type(cls)(cls.__name__, cls.__bases__, _declared(cls.__name__, ns, fields, lambda: new))
    return new


def _declared(name: str, ns: dict, fields: tuple[tuple[str, Any], ...], made) -> dict:
    """The namespace of a declared record class: ``ns`` (its body) with one
    slot per field, FIELDS, and first-use stubs that make it a dataclass
    (``made()`` is the class, once created)."""
    names = tuple(n for n, _ in fields)
    ns.update(__slots__=names, FIELDS=fields,
              __annotations__={n: "Any" for n in names},
              # a docstring spares dataclass() an inspect.signature() per class
              __doc__=ns.get("__doc__") or f"{name}({', '.join(names)})")

    def write(self, w: Writer) -> None:
        new = made()
        _materialize(new)
        new.write(self, w)

    def read(klass, r: Reader):
        new = made()
        _materialize(new)
        return new.read(r)

    def __init__(self, *args, **kwargs) -> None:
        new = made()
        _materialize(new)
        new.__init__(self, *args, **kwargs)

    ns.update(write=write, read=classmethod(read), __init__=__init__)
    return ns


def _materialize(cls: type) -> None:
    """Make a declared record a frozen dataclass (in place: the class object
    stays the same) and compile its codec; once only."""
    if "__dataclass_fields__" in cls.__dict__:
        return
    for name in ("write", "read", "__init__"):  # the first-use stubs
        delattr(cls, name)
    fast_frozen_init(dataclass(frozen=True)(cls))
    _compile_record(cls)


def fast_frozen_init(cls: type) -> type:
    """Give the frozen, slotted dataclass ``cls`` an ``__init__`` that stores
    each field through its slot's descriptor; returns ``cls``.

    A frozen dataclass's own ``__init__`` stores each field with
    ``object.__setattr__(self, name, value)``, which looks the slot up by
    name on every call: about half the cost of making the small immutable
    values (packets, txn headers, a Persist or a Send) that every write
    creates several of on every member. The fields, their order and
    defaults, ``__post_init__``, equality, hashing and immutability stay
    the dataclass's. A class with a field this cannot take (no slot, a
    default factory, keyword-only, init=False), whose ``__init__`` takes
    what is not a field (an InitVar), or one compiled by mypyc, is returned
    unchanged."""
    code = getattr(cls.__init__, "__code__", None)
    if code is None:
        return cls   # compiled (mypyc): its __init__ is native already
    params = cls.__dataclass_params__
    assert params.frozen, f"{cls.__name__} is not a frozen dataclass"
    if code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount] != \
            tuple(f.name for f in fields(cls)):
        return cls   # an InitVar is a parameter fields() does not list
    env: dict = {}
    args, body = [], []
    for f in fields(cls):
        slot = cls.__dict__.get(f.name)
        if not f.init or f.kw_only or f.default_factory is not MISSING \
                or type(slot).__name__ != "member_descriptor":
            return cls
        env[f"_set_{f.name}"] = slot.__set__
        if f.default is MISSING:
            args.append(f.name)
        else:
            env[f"_dflt_{f.name}"] = f.default
            args.append(f"{f.name}=_dflt_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    src = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"])
    exec(src, env)   # noqa: S102 - generated from the dataclass's own fields, as dataclass() does
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    return cls


_INTERNED: dict[int, bytes] = {}  # id(record) -> its encoding (see intern_encoding)
_INTERNED_KEPT: list = []          # those records, kept alive so that no id is reused


def intern_encoding(rec: Any) -> Any:
    """Remember the encoding of ``rec``, a record that many others share (the
    world ACL of most znodes): inside a vector it is then written as a copy
    of those bytes instead of field by field. Records are immutable, and
    ``rec`` is kept alive, so its id stays its own. Returns ``rec``."""
    if id(rec) not in _INTERNED:
        raw = rec.to_bytes()
        _INTERNED[id(rec)] = raw
        _INTERNED_KEPT.append(rec)
        _INTERNED_BY_CLASS.setdefault(type(rec), []).append((raw, rec))
    return rec


_INTERNED_BY_CLASS: dict[type, list[tuple[bytes, Any]]] = {}


def _read_elem(cls: type, r: Reader) -> Any:
    """A record inside a vector: an interned record of ``cls`` when the
    bytes are its encoding (equal values; records are immutable, so sharing
    one is safe, and the shared ACL is then recognised by identity), else
    decoded."""
    known = _INTERNED_BY_CLASS.get(cls)
    if known:
        pos, buf = r.pos, r.buf
        for raw, rec in known:
            end = pos + len(raw)
            if end <= r.end and buf[pos:end] == raw:
                r.pos = end
                return rec
    return cls.read(r)


def _read_failed(r: Reader, pos: int, kind: str) -> None:
    """Raise the DecodeError ``Reader`` itself would raise for a ``kind``
    field (``int``, ``buffer`` or a fixed-size run of ``kind`` bytes) at
    ``pos``: the inlined reads below check the same bounds, and on failure
    hand over to the Reader so that the message is the same."""
    r.pos = pos
    if kind == "int":
        r.int()
    elif kind == "buffer":
        r.buffer()
    else:
        r._need(int(kind))
    raise AssertionError(f"inlined {kind} read at {pos} failed, Reader did not")


def _read_lines(name: str, typ: str) -> list[str]:
    """Straight-line code reading a buffer or ustring field into ``v_name``
    at the local ``pos`` (Reader.buffer / Reader.ustring, inlined: these are
    most fields of the hot records, and a method call each was a large part
    of decoding a request)."""
    if typ == "ustring":
        # str() of the view decodes without first copying to bytes
        value = "str(buf[pos:pos + n], 'utf-8', 'replace')"
    else:
        value = "bytes(buf[pos:pos + n])"
    return [
        "    if pos + 4 > end:",
        "        _read_failed(r, pos, 'buffer')",
        "    n, = _INT_unpack_from(buf, pos)",
        "    if n == -1:",
        f"        v_{name} = None",
        "        pos += 4",
        "    else:",
        "        if n < -1 or pos + 4 + n > end:",
        "            _read_failed(r, pos, 'buffer')",
        "        pos += 4",
        f"        v_{name} = {value}",
        "        pos += n",
    ]


def _write_lines(name: str, typ: str) -> list[str]:
    """Straight-line code writing a buffer or ustring field (``_w_buffer`` /
    ``_w_ustring``, inlined)."""
    raw = f"self.{name}.encode('utf-8')" if typ == "ustring" else f"self.{name}"
    return [
        f"    if self.{name} is None:",
        "        out += b'\\xff\\xff\\xff\\xff'",
        "    else:",
        f"        raw = {raw}",
        "        out += _INT_pack(len(raw))",
        "        out += raw",
    ]


def _compile_record(cls: type) -> None:
    """Straight-line write and read for ``cls`` from its FIELDS. The reader
    keeps the offset in a local (``pos``) and stores it back into the Reader
    before anything that reads through it (a nested record, a vector's
    elements) and at the end; every bound is checked as Reader checks it."""
    fields = cls.FIELDS
    env: dict = {"_interned": _INTERNED.get, "_read_elem": _read_elem, "Writer": Writer,
                 "_w_buffer": _w_buffer, "_w_ustring": _w_ustring, "_INT": _INT,
                 "_INT_pack": _INT.pack, "_INT_unpack_from": _INT.unpack_from,
                 "_read_failed": _read_failed,
                 "_write_value": _write_value, "_read_value": _read_value,
                 "DecodeError": DecodeError, "struct": struct}
    wlines = ["def write(self, w):", "    out = w.out"]
    rlines = ["def read(cls, r):", "    buf = r.buf", "    pos = r.pos", "    end = r.end"]
    names: list[str] = []
    i = 0
    n_struct = 0
    while i < len(fields):
        name, typ = fields[i]
        if isinstance(typ, str) and typ in _FIXED:
            j = i
            fmt = ">"
            while j < len(fields) and isinstance(fields[j][1], str) and fields[j][1] in _FIXED:
                fmt += _FIXED[fields[j][1]]
                j += 1
            group = [f[0] for f in fields[i:j]]
            sname = f"_S{n_struct}"
            n_struct += 1
            st = struct.Struct(fmt)
            env[sname] = st
            wlines.append(f"    out += {sname}.pack({', '.join('self.' + g for g in group)})")
            rlines.append(f"    if pos + {st.size} > end:")
            rlines.append(f"        _read_failed(r, pos, '{st.size}')")
            targets = ", ".join("v_" + g for g in group)
            rlines.append(f"    {targets}, = {sname}.unpack_from(buf, pos)")
            rlines.append(f"    pos += {st.size}")
            names.extend(group)
            i = j
            continue
        tname = f"_T_{name}"
        env[tname] = typ
        if typ in ("buffer", "ustring"):
            wlines.extend(_write_lines(name, typ))
            rlines.extend(_read_lines(name, typ))
        elif isinstance(typ, tuple):
            elem = typ[1]
            env[f"_E_{name}"] = elem
            # vectors: written inline, element by element
            if elem == "ustring":
                witem = "_w_ustring(out, x)"
            elif elem == "buffer":
                witem = "_w_buffer(out, x)"
            elif isinstance(elem, str) and elem in _FIXED:
                env[f"_P_{name}"] = struct.Struct(">" + _FIXED[elem]).pack
                witem = f"out += _P_{name}(x)"
            elif isinstance(elem, str):
                witem = f"_write_value(w, _E_{name}, x)"
            else:
                witem = None  # a record: its interned encoding, or its write()
            wlines.append(f"    vec = self.{name}")
            wlines.append("    if vec is None:")
            wlines.append("        out += b'\\xff\\xff\\xff\\xff'")
            wlines.append("    else:")
            wlines.append("        out += _INT.pack(len(vec))")
            wlines.append("        for x in vec:")
            if witem is None:
                wlines.append("            raw = _interned(id(x))")
                wlines.append("            if raw is None:")
                wlines.append("                x.write(w)")
                wlines.append("            else:")
                wlines.append("                out += raw")
            else:
                wlines.append(f"            {witem}")
            # vectors: the count is checked against what is left (bounds the
            # allocation), then the elements are read in a comprehension
            # through the Reader (its offset stored back first)
            if elem == "ustring":
                item = "r.ustring()"
            elif elem in ("int", "long", "bool", "buffer"):
                item = f"r.{elem}()"
            elif isinstance(elem, str):
                item = f"_read_value(r, _E_{name})"
            else:
                item = f"_read_elem(_E_{name}, r)"
            rlines.append("    if pos + 4 > end:")
            rlines.append("        _read_failed(r, pos, 'int')")
            rlines.append(f"    n_{name}, = _INT_unpack_from(buf, pos)")
            rlines.append("    pos += 4")
            rlines.append(f"    if n_{name} == -1:")
            rlines.append(f"        v_{name} = None")
            rlines.append("    else:")
            rlines.append(f"        if n_{name} < -1 or n_{name} > end - pos:")
            rlines.append("            r.pos = pos")
            rlines.append(f"            raise DecodeError('bad vector length %d' % n_{name})")
            rlines.append("        r.pos = pos")
            rlines.append(f"        v_{name} = [{item} for _ in range(n_{name})]")
            rlines.append("        pos = r.pos")
        else:
            wlines.append(f"    self.{name}.write(w)")
            rlines.append("    r.pos = pos")
            rlines.append(f"    v_{name} = {tname}.read(r)")
            rlines.append("    pos = r.pos")
        names.append(name)
        i += 1
    rlines.append("    r.pos = pos")
    rlines.append(f"    return cls({', '.join('v_' + n for n in names)})")
    exec("\n".join(wlines), env)
    exec("\n".join(rlines), env)
    cls.write = env["write"]
    cls.read = classmethod(env["read"])


def encode(record: Record) -> bytes:
    return record.to_bytes()


def decode(cls: type[Record], data: bytes | memoryview, *, exact: bool = True) -> Any:
    """Decode one record; with ``exact`` trailing bytes are an error."""
    r = Reader(data)
    rec = cls.read(r)
    if exact and r.remaining():
        raise DecodeError(f"{r.remaining()} trailing bytes after {cls.__name__}")
    return rec
