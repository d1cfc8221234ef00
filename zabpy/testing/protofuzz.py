"""A seeded protocol fuzzer for the client port.

Each case opens one connection and sends something a careless or hostile
client might: a mutated or random ConnectRequest, or, after a proper
handshake, frames for every op code (valid records built from their jute
declarations, then mutated: bits flipped, truncated, extended, integers set
to boundary values, lengths lied about) and unknown op codes, sometimes
pipelined, sometimes followed by a broken length prefix. After each case the
connection is dropped and the checker asserts that the server is alive,
answers a fresh client, and that ``mntr``'s zk_outstanding_requests is back
to 0 (every request answered or refused left the accounting).

    python -m zabpy.testing.protofuzz --port 2181 --seed 7 --cases 2000

prints the seed and case number of the first failure; ``--seed S --first N
--cases 1`` replays that one case.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import time

from ..jute import records as R
from ..jute.constants import OpCode
from .server import mntr

__all__ = ["Case", "make_case", "run_case", "check_server", "fuzz"]

_INT_EDGES = (0, 1, -1, 2**31 - 1, -2**31, 0x7FFFFFFF, 0x10000, 0xFFFFF, 0x100000)
_LONG_EDGES = (0, -1, 1, 2**63 - 1, -2**63, 2**40)
_PATHS = ("/", "", "/fz", "/fz/a", "/fz/b/c", "/zookeeper", "/zookeeper/quota", "//",
          "/fz/", "/fz\x00x", "/fz/\u00e9", "/fz/" + "x" * 300, "fz", "/fz/../a")
# every op a client may send, and a few it may not
OPS = sorted({int(op) for op in OpCode} | {23, 99, 108, 1000, -2, -12, 2**31 - 1})


class Case:
    """What one case sends: ``chunks`` in order (each one sendall)."""

    def __init__(self, seed: int, index: int, kind: str, chunks: list[bytes]):
        self.seed, self.index, self.kind, self.chunks = seed, index, kind, chunks

    def __repr__(self) -> str:
        size = sum(len(c) for c in self.chunks)
        return f"Case(seed={self.seed}, index={self.index}, kind={self.kind}, {size} bytes)"


def _value(rng: random.Random, typ, depth: int = 0):
    if typ == "int":
        return rng.choice(_INT_EDGES) if rng.random() < 0.3 else rng.randint(-3, 40)
    if typ == "long":
        return rng.choice(_LONG_EDGES) if rng.random() < 0.3 else rng.randint(0, 1000)
    if typ in ("boolean", "bool"):
        return rng.random() < 0.5
    if typ == "ustring":
        if rng.random() < 0.05:
            return None
        return rng.choice(_PATHS) if rng.random() < 0.8 else \
            "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 12)))
    if typ == "buffer":
        if rng.random() < 0.05:
            return None
        return rng.randbytes(rng.choice((0, 1, 10, 100, 5000)))
    if isinstance(typ, tuple):  # (vector, element type)
        n = 0 if depth > 2 else rng.choice((0, 1, 2, 3))
        return [_value(rng, typ[1], depth + 1) for _ in range(n)]
    return typ(*[_value(rng, t, depth + 1) for _, t in typ.FIELDS])


def _record(rng: random.Random, cls) -> bytes:
    try:
        return cls(*[_value(rng, t) for _, t in cls.FIELDS]).to_bytes()
    except (struct.error, ValueError, TypeError, OverflowError, UnicodeError):
        return rng.randbytes(rng.randint(0, 64))


def _multi_body(rng: random.Random, read: bool) -> bytes:
    ops = ([OpCode.getData, OpCode.getChildren, OpCode.exists] if read else
           [OpCode.create, OpCode.delete, OpCode.setData, OpCode.check, OpCode.createTTL])
    out = b""
    for _ in range(rng.randint(0, 4)):
        op = rng.choice(ops + [rng.choice(OPS)])
        out += R.MultiHeader(op, False, -1).to_bytes()
        cls = R.REQUEST_RECORD.get(op)
        out += _record(rng, cls) if cls else rng.randbytes(rng.randint(0, 8))
    if rng.random() < 0.8:
        out += R.MultiHeader(-1, True, -1).to_bytes()
    return out


def _body(rng: random.Random, op: int) -> bytes:
    if op in (OpCode.multi, OpCode.multiRead):
        return _multi_body(rng, op == OpCode.multiRead)
    cls = R.REQUEST_RECORD.get(op)
    if cls is None or rng.random() < 0.1:
        return rng.randbytes(rng.choice((0, 1, 4, 8, 20, 200)))
    return _record(rng, cls)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        what = rng.random()
        if what < 0.3 and b:  # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif what < 0.5:  # truncate
            del b[rng.randint(0, len(b)):]
        elif what < 0.65:  # extend
            b += rng.randbytes(rng.randint(1, 16))
        elif len(b) >= 4:  # an int32 (a length, a count) set to an edge value
            i = rng.randrange(0, len(b) - 3)
            b[i:i + 4] = struct.pack(">i", rng.choice(_INT_EDGES[:6]))
    return bytes(b)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _connect_request(rng: random.Random) -> bytes:
    return R.ConnectRequest(0, 0, rng.choice((0, 1, 4000, 30000, 2**31 - 1)), 0, bytes(16),
                            rng.random() < 0.5).to_bytes()


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(seed * 1_000_003 + index)
    kind = rng.choices(("handshake", "request", "pipeline", "framing"), (2, 6, 2, 1))[0]
    if kind == "handshake":
        hello = _connect_request(rng)
        pick = rng.random()
        if pick < 0.3:
            chunks = [rng.randbytes(rng.randint(0, 60))]
        elif pick < 0.8:
            chunks = [_frame(_mutate(rng, hello))]
        else:
            chunks = [_mutate(rng, _frame(hello))]
        return Case(seed, index, kind, chunks)
    chunks = [_frame(_connect_request(rng))]
    n = 1 if kind == "request" else rng.randint(2, 20)
    for i in range(n):
        op = rng.choice(OPS)
        payload = struct.pack(">ii", rng.choice((i + 1, 0, -2, -1, 2**31 - 1)), op) + _body(rng, op)
        if rng.random() < 0.4:
            payload = payload[:8] + _mutate(rng, payload[8:])
        chunks.append(_frame(payload))
    if kind == "framing":
        chunks.append(rng.choice((struct.pack(">i", -1), struct.pack(">i", 2**31 - 1),
                                  struct.pack(">i", 0x100001), b"\x00\x00", rng.randbytes(9))))
    return Case(seed, index, kind, chunks)


def run_case(port: int, case: Case, read_s: float = 0.3) -> None:
    """Send the case, read what comes back for a moment, then drop the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            for c in case.chunks:
                s.sendall(c)
            s.settimeout(read_s)
            deadline = time.monotonic() + read_s
            while time.monotonic() < deadline:
                if not s.recv(65536):
                    break
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass


def _fresh_client_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(_frame(R.ConnectRequest(0, 0, 10000, 0, bytes(16), False).to_bytes()))
        s.sendall(_frame(struct.pack(">ii", 1, OpCode.exists)
                         + R.ExistsRequest("/", False).to_bytes()))
        buf = b""
        while True:
            if len(buf) >= 4:
                (n,) = struct.unpack_from(">i", buf)
                if len(buf) >= 4 + n:
                    break
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
        (n,) = struct.unpack_from(">i", buf)
        buf = buf[4 + n:]  # the ConnectResponse
        while len(buf) < 20:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
        xid, _, err = struct.unpack_from(">iqi", buf, 4)
        return xid == 1 and err == 0


def outstanding(port: int) -> int:
    return int(mntr(port)["zk_outstanding_requests"])


def check_server(port: int, alive=lambda: True, settle_s: float = 5.0) -> None:
    """The server is alive, answers a fresh client, and its outstanding
    request count comes back to 0."""
    assert alive(), "the server process died"
    assert _fresh_client_answers(port), "a fresh client got no answer"
    deadline = time.monotonic() + settle_s
    while (n := outstanding(port)) != 0:
        assert time.monotonic() < deadline, f"zk_outstanding_requests stays at {n}"
        time.sleep(0.01)


def fuzz(port: int, seed: int, cases: int, first: int = 0, alive=lambda: True,
         deadline_s: float | None = None, log=print) -> int:
    """Run cases ``first``..``first+cases-1``; returns how many ran (fewer
    when ``deadline_s`` of wall time ran out). Raises on the first failure,
    naming its case."""
    start = time.monotonic()
    for i in range(first, first + cases):
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            return i - first
        case = make_case(seed, i)
        try:
            run_case(port, case, read_s=0.05)
            check_server(port, alive)
        except (AssertionError, OSError) as e:
            raise AssertionError(f"{case} failed: {e}; replay with "
                                 f"--seed {seed} --first {i} --cases 1") from e
    return cases


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Fuzz a ZooKeeper client port.")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args(argv)
    n = fuzz(args.port, args.seed, args.cases, args.first)
    print(f"{n} cases passed (seed {args.seed}, from {args.first})")


if __name__ == "__main__":
    main()
