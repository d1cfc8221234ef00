"""Path rules of ZooKeeper (PathUtils.validatePath).

A path starts with '/', has no empty, '.' or '..' component, no trailing '/'
(except the root), and none of the characters ZooKeeper forbids. ZooKeeper
checks the UTF-16 form, so every code point outside the Basic Multilingual
Plane (a surrogate pair in UTF-16) is refused, like the surrogates themselves.
"""

from __future__ import annotations

import re

__all__ = ["validate_path", "parent_of", "basename", "is_ancestor_or_self"]


def _bad_char(c: str) -> bool:
    o = ord(c)
    return (
        o == 0
        or 0x01 <= o <= 0x1F
        or 0x7F <= o <= 0x9F
        or 0xD800 <= o <= 0xF8FF
        or 0xFFF0 <= o <= 0xFFFF
        or o > 0xFFFF
    )


# The forbidden characters beyond ASCII, compiled on first use: building this
# class (ranges up to U+10FFFF) costs re about 10 M instructions, 2% of a
# server's start-up, and most servers never see a path that is not ASCII.
_BAD_CHARS: re.Pattern[str] | None = None


def _bad_chars() -> re.Pattern[str]:
    global _BAD_CHARS
    if _BAD_CHARS is None:
        # chr(0xD800): mypyc takes no surrogate in a string literal (the same class).
        _BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f" + chr(0xD800)
                                + "-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")
    return _BAD_CHARS


def _no_bad_char(path: str) -> bool:
    """No character ``_bad_char`` refuses. In ASCII those are exactly the
    ones ``isprintable`` refuses (0x00-0x1F and 0x7F)."""
    if path.isascii():
        return path.isprintable()
    return _bad_chars().search(path) is None


def validate_path(path: str | None, *, sequential: bool = False) -> str | None:
    """Return None if valid, else a reason. ``sequential`` validates the path
    the client sent before the suffix is appended (a trailing '/' is then
    allowed, as in ZooKeeper)."""
    if path is None:
        return "path is null"
    if sequential:
        path = path + "1"
    # The common case in one pass of C code; anything odd takes the slow path.
    if (len(path) > 1 and path[0] == "/" and path[-1] != "/" and "//" not in path
            and "/." not in path and _no_bad_char(path)):
        return None
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with / character"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with / character"
    prev = "/"
    for i in range(1, len(path)):
        c = path[i]
        if _bad_char(c):
            return f"invalid character @{i}"
        if c == "/" and prev == "/":
            return f"empty node name specified @{i}"
        if c == "." and prev == "." and path[i - 2] == "/" and (i + 1 == len(path) or path[i + 1] == "/"):
            return f"relative paths not allowed @{i}"
        if c == "." and prev == "/" and (i + 1 == len(path) or path[i + 1] == "/"):
            return f"relative paths not allowed @{i}"
        prev = c
    return None


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def basename(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def is_ancestor_or_self(ancestor: str, path: str) -> bool:
    if ancestor == "/" or ancestor == path:
        return True
    return path.startswith(ancestor) and path[len(ancestor)] == "/"
