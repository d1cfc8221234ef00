"""JAAS login configuration files (the text ``java.security.auth.login.config``
points to), as far as ZooKeeper's server reads them.

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };

A file holds named sections; a section holds login modules, each a class
name, a control flag and ``key=value`` options ended by ``;``. Comments are
``//`` and ``/* */`` as in the JDK's parser. Pure: text in, sections out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["JaasError", "LoginModule", "parse_jaas", "digest_credentials", "USER_PREFIX"]

USER_PREFIX = "user_"
_FLAGS = {"required", "requisite", "sufficient", "optional"}
_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"((?:[^"\\]|\\.)*)"|([{};=])|([^\s{};="]+)', re.S)


class JaasError(ValueError):
    """The file does not parse (ZooKeeper then refuses to start)."""


@dataclass(frozen=True)
class LoginModule:
    class_name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value): kind is 'str' (quoted), 'sym' or 'word'."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise JaasError(f"line {line}: unexpected {text[pos]!r}")
        pos = m.end()
        if m.group(1) is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", m.group(1))))
        elif m.group(2) is not None:
            out.append(("sym", m.group(2)))
        elif m.group(3) is not None:
            out.append(("word", m.group(3)))
    return out


def parse_jaas(text: str) -> dict[str, list[LoginModule]]:
    toks = _tokens(text)
    i = 0

    def take(kind: str | None = None, value: str | None = None) -> str:
        nonlocal i
        if i >= len(toks):
            raise JaasError("unexpected end of file")
        k, v = toks[i]
        if (kind and k != kind) or (value and v != value):
            raise JaasError(f"expected {value or kind}, found {v!r}")
        i += 1
        return v

    sections: dict[str, list[LoginModule]] = {}
    while i < len(toks):
        name = take("word") if toks[i][0] == "word" else take("str")
        take("sym", "{")
        modules: list[LoginModule] = []
        while toks[i:i + 1] and toks[i] != ("sym", "}"):
            cls = take("word")
            flag = take("word")
            if flag.lower() not in _FLAGS:
                raise JaasError(f"{cls}: invalid control flag {flag!r}")
            options: dict[str, str] = {}
            while toks[i:i + 1] and toks[i] != ("sym", ";"):
                key = take("word")
                take("sym", "=")
                if i < len(toks) and toks[i][0] in ("str", "word"):
                    options[key] = toks[i][1]
                    i += 1
                else:
                    raise JaasError(f"{cls}: option {key} has no value")
            take("sym", ";")
            modules.append(LoginModule(cls, flag.lower(), options))
        take("sym", "}")
        take("sym", ";")
        # the JDK merges a repeated section name into one list
        sections.setdefault(name, []).extend(modules)
    return sections


def digest_credentials(modules: list[LoginModule]) -> dict[str, str]:
    """ZooKeeper's SaslServerCallbackHandler: every ``user_NAME`` option of
    every module in the section is a DIGEST-MD5 user NAME and its password."""
    creds: dict[str, str] = {}
    for m in modules:
        for k, v in m.options.items():
            if k.startswith(USER_PREFIX):
                creds[k[len(USER_PREFIX):]] = v
    return creds
