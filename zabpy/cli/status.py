"""`zabpy status`: a server's mode, like ``zkServer.sh status``.

Usage: ``zabpy status [-server host:port | --server host:port | zoo.cfg]``.
With no argument the server is 127.0.0.1:2181.

It sends the ``srvr`` four-letter word (always whitelisted) to the client
port, reads the reply to EOF, and prints its ``Mode:`` line (standalone,
leader, follower, observer, read-only). Given a zoo.cfg it first finds the
client address as zkServer.sh does: clientPortAddress/clientPort, else the
``;[host:]port`` client part of this server's ``server.<myid>`` line (via
zabpy.runtime.config.load_config when that loader accepts the file, else a
minimal key=value reading). A wildcard address is reached at 127.0.0.1.

Exit codes: 0 with a mode, 1 when the server cannot be reached or does not
say its mode, 2 on a usage error.
"""

from __future__ import annotations

import os
import socket
import sys

from zabpy import limits

__all__ = ["main", "query_four_letter_word", "parse_mode", "client_address_from_config"]

DEFAULT_SERVER = ("127.0.0.1", 2181)
TIMEOUT_S = 5.0
USAGE = "usage: zabpy status [-server host:port | zoo.cfg]"


def query_four_letter_word(host: str, port: int, word: bytes, timeout_s: float = TIMEOUT_S) -> str:
    """Send one 4lw and return the whole reply (the server closes after it)."""
    assert len(word) == limits.FOUR_LETTER_WORD_LEN
    chunks, total = [], 0
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(word)
        while total < limits.FOUR_LETTER_REPLY_BYTES_MAX:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def parse_mode(reply: str) -> str | None:
    for line in reply.splitlines():
        if line.startswith("Mode:"):
            return line.partition(":")[2].strip()
    return None


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad host:port {text!r}")
    return host, int(port)


def _reachable_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _minimal_config(path: str) -> dict[str, str]:
    props: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#!" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _address_minimal(path: str) -> tuple[str, int]:
    """zkServer.sh's own search: clientPort, else server.<myid>'s client part."""
    props = _minimal_config(path)
    if props.get("clientPort", "").isdigit():
        return props.get("clientPortAddress", "127.0.0.1"), int(props["clientPort"])
    myid_path = os.path.join(props.get("dataDir", ""), "myid")
    try:
        with open(myid_path, encoding="utf-8") as f:
            myid = f.read().strip()
    except OSError:
        raise ValueError(f"{path}: no clientPort and no myid at {myid_path}") from None
    server_line = props.get(f"server.{myid}", "")
    if ";" not in server_line:
        raise ValueError(f"{path}: no clientPort and server.{myid} has no client port")
    return _split_host_port(server_line.split(";", 1)[1])


def client_address_from_config(path: str) -> tuple[str, int]:
    """Where the server configured by ``path`` listens for clients."""
    try:
        from zabpy.runtime.config import ConfigError, load_config
    except ImportError:
        host, port = _address_minimal(path)
    else:
        try:
            cfg, _warnings = load_config(path)
            host, port = cfg.client_port_address, cfg.client_port
        except ConfigError:
            # zkServer.sh status does not validate the whole file; neither do we.
            host, port = _address_minimal(path)
    return _reachable_host(host), port


def _target(argv: list[str]) -> tuple[str, int, bool]:
    """(host, port, from_config) from the command line; raises ValueError."""
    if not argv:
        return DEFAULT_SERVER[0], DEFAULT_SERVER[1], False
    if argv[0] in ("-server", "--server") and len(argv) == 2:
        host, port = _split_host_port(argv[1])
        return _reachable_host(host), port, False
    if len(argv) == 1 and not argv[0].startswith("-"):
        if os.path.exists(argv[0]) or not _looks_like_address(argv[0]):
            host, port = client_address_from_config(argv[0])
            return host, port, True
        host, port = _split_host_port(argv[0])
        return _reachable_host(host), port, False
    raise ValueError(USAGE)


def _looks_like_address(text: str) -> bool:
    return ":" in text and text.rpartition(":")[2].isdigit()


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    try:
        host, port, from_config = _target(argv)
    except (ValueError, OSError) as exc:
        print(f"zabpy status: {exc}", file=sys.stderr)
        return 2 if str(exc) == USAGE else 1
    if from_config:
        print(f"Client port found: {port}. Client address: {host}. Client SSL: false.")
    try:
        reply = query_four_letter_word(host, port, b"srvr")
    except OSError as exc:
        print(f"Error contacting service at {host}:{port}: {exc}. It is probably not running.",
              file=sys.stderr)
        return 1
    mode = parse_mode(reply)
    if mode is None:
        detail = reply.strip() or "empty reply to srvr"
        print(f"Error contacting service at {host}:{port}: {detail}", file=sys.stderr)
        return 1
    print(f"Mode: {mode}")
    return 0
