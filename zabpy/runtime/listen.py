"""The client port's listening socket, made before the rest of the server.

``zabpy server`` listens on its client port as soon as it has read its
config, before it imports the asyncio runtime and the cores (about half of
its start-up), as ZooKeeper binds its client port before it loads its
database: a client that connects meanwhile is accepted by the kernel and
served as soon as the server is, instead of being refused and trying again
later. ``ServerRuntime`` serves on that socket (``listening``).

Only a numeric address is bound here. A host name is resolved by
``loop.create_server`` as before, when the runtime starts.
"""

from __future__ import annotations

import socket

__all__ = ["bound_socket", "listening_socket", "LISTEN_BACKLOG"]

# What loop.create_server gives a socket it listens on (it calls listen()
# again with the same backlog when it serves this one).
LISTEN_BACKLOG = 100


def bound_socket(host: str, port: int) -> socket.socket | None:
    """A socket bound to ``host``:``port`` when ``host`` is a numeric
    address, set up as ``create_server(host, port, reuse_address=True)``
    would set it up; None for a name (or ""), which ``create_server``
    resolves. For an IP literal that resolution is pure cost at start-up:
    uvloop encodes the name with the idna codec (importing it and
    unicodedata) and runs getaddrinfo."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as create_server: IPv6 only on a v6 address
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            # the message create_server gives (logged by `zabpy server`)
            raise OSError(e.errno, f"error while attempting to bind on address "
                                   f"{(host, port)!r}: {(e.strerror or str(e)).lower()}") from None
        except BaseException:
            sock.close()
            raise
        return sock
    return None


def listening_socket(host: str, port: int) -> socket.socket | None:
    """``bound_socket``, listening (None for a host name)."""
    sock = bound_socket(host, port)
    if sock is not None:
        try:
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
    return sock
