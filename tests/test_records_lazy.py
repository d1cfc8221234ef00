"""Declared records become dataclasses on first use (jute/codec.py
``declare_record``), and shared records are interned (``intern_encoding``).
Neither may change what a record is or how it encodes: these tests pin the
dataclass behaviour of a record nobody has used yet (in a fresh process),
and the bytes and values around interned ACLs."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest

from zabpy.jute import DecodeError, Reader
from zabpy.jute import records as R
from zabpy.jute.codec import _read_elem
from zabpy.tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, fix_acl


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (no record used yet) and return its stdout."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_an_unused_record_answers_as_a_dataclass():
    out = _fresh(
        "import dataclasses\n"
        "from zabpy.jute import records as R\n"
        "assert '__dataclass_fields__' not in R.SetACLTxn.__dict__\n"  # not made yet
        "print([f.name for f in dataclasses.fields(R.SetACLTxn)],"
        " dataclasses.is_dataclass(R.GetEphemeralsRequest), R.CheckWatchesRequest.__match_args__)")
    assert out == "['path', 'acl', 'version'] True ('path', 'type')"


def test_a_record_unpickled_before_its_class_was_used_is_the_same_frozen_record():
    blob = pickle.dumps(R.SetDataTxn("/a", b"x", 3))
    out = _fresh(
        "import pickle, dataclasses\n"
        "from zabpy.jute import records as R\n"
        f"t = pickle.loads({blob!r})\n"
        "try:\n"
        "    t.version = 4\n"
        "except dataclasses.FrozenInstanceError:\n"
        "    print('frozen', t == R.SetDataTxn('/a', b'x', 3), repr(t))\n")
    assert out == "frozen True SetDataTxn(path='/a', data=b'x', version=3)"


def test_records_keep_slots_equality_hash_and_replace():
    a = R.ExistsRequest("/p", True)
    assert not hasattr(a, "__dict__")
    assert a == R.ExistsRequest("/p", True) and hash(a) == hash(R.ExistsRequest("/p", True))
    assert dataclasses.replace(a, watch=False) == R.ExistsRequest("/p", False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.path = "/q"


def test_interned_acls_encode_as_fresh_ones_do():
    fresh = [R.ACL(31, R.Id("world", "anyone")), R.ACL(1, R.Id("world", "anyone"))]
    shared = [OPEN_ACL_UNSAFE[0], READ_ACL_UNSAFE[0]]
    assert R.CreateTxn("/a", b"", shared, False, 1).to_bytes() == \
        R.CreateTxn("/a", b"", fresh, False, 1).to_bytes()


def test_decoding_the_world_acl_gives_the_shared_record_and_others_decode_as_sent():
    acl = [R.ACL(31, R.Id("world", "anyone")), R.ACL(5, R.Id("digest", "bob:x")),
           R.ACL(1, R.Id("world", "anyone")), R.ACL(31, R.Id("world", "anyonf"))]
    req = R.CreateRequest.read(Reader(R.CreateRequest("/a", b"", acl, 0).to_bytes()))
    assert req.acl == acl
    assert req.acl[0] is OPEN_ACL_UNSAFE[0] and req.acl[2] is READ_ACL_UNSAFE[0]
    assert req.acl[1] is not acl[1] and req.acl[3] not in (OPEN_ACL_UNSAFE[0],)
    assert fix_acl(req.acl[:1], []) == (OPEN_ACL_UNSAFE, 0)


def test_an_interned_encoding_past_the_readers_end_is_not_taken():
    # the bytes spell the world ACL, but the reader ends one byte before its
    # end: they are not this record's, and decoding them fails as it would
    # without interning
    raw = OPEN_ACL_UNSAFE[0].to_bytes()
    with pytest.raises(DecodeError):
        _read_elem(R.ACL, Reader(raw + b"more", 0, len(raw) - 1))
    r = Reader(raw + b"more", 0, len(raw))
    assert _read_elem(R.ACL, r) is OPEN_ACL_UNSAFE[0] and r.pos == len(raw)
