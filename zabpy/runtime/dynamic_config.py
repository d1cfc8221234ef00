"""The dynamic config files, written as ZooKeeper 3.8 writes them.

With ``reconfigEnabled`` a quorum peer keeps its membership in a separate
file and rewrites it whenever a new config becomes current (at its first
leader's epoch, and at each reconfig):

* ``<static cfg>.dynamic.<version hex>``: the ``server.N`` (group, weight)
  lines of QuorumVerifier.toString without the ``version`` line, sorted as
  strings (``server.100`` before ``server.2``), joined by newlines with none
  after the last (writeDynamicConfig);
* the static file, rewritten (editStaticConfig): read as
  ``java.util.Properties`` (a ConcurrentHashMap since Java 9), every key but
  ``server.*``, ``group.*``, ``weight.*``, ``dynamicConfigFile``, ``peerType``
  (and ``clientPort``/``clientPortAddress`` once this server's client address
  is in the dynamic file) written back as ``key=value`` lines in that map's
  iteration order, then ``dynamicConfigFile=<canonical path>``;
* ``<static cfg>.bak``: the static file as it was, copied once at start when
  it still held the membership (backupOldConfig).

``chm_order`` reproduces the map's iteration order (16 bins, doubling when
three quarters full, each resize splitting a bin in ConcurrentHashMap's way)
so the rewritten file matches Java's byte for byte.
"""

from __future__ import annotations

import os
import shutil

from ..election.quorum import QuorumVerifier, chm_order

__all__ = ["chm_order", "read_properties", "write_dynamic_config", "backup_static_config"]

_DROPPED = ("server.", "group.", "weight.", "dynamicConfigFile", "peerType")


def read_properties(path: str) -> dict[str, str]:
    """The key=value lines of a zoo.cfg, in file order (as Properties.load sees them)."""
    props: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#!":
                continue
            cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
            key, value = (line[:cut], line[cut + 1:]) if cut >= 0 else (line, "")
            props[key.strip()] = value.strip()
    return props


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_dynamic_config(static_path: str, qv: QuorumVerifier, *, erase_client: bool) -> str:
    """Write ``<static>.dynamic.<version>`` and point the static file at it; returns its path."""
    dynamic = f"{static_path}.dynamic.{qv.version:x}"
    lines = [line for line in qv.to_config_text().split("\n") if not line.startswith("version=")]
    _atomic_write(dynamic, "\n".join(sorted(lines)))
    props = read_properties(static_path)
    out = []
    for key in chm_order(list(props)):
        if key.startswith(_DROPPED) or (erase_client and key.startswith("clientPort")):
            continue
        out.append(f"{key}={props[key]}\n")
    out.append(f"dynamicConfigFile={os.path.realpath(dynamic)}\n")
    _atomic_write(static_path, "".join(out))
    return dynamic


def backup_static_config(static_path: str) -> None:
    """backupOldConfig: keep the static file as it came, once."""
    backup = static_path + ".bak"
    if not os.path.exists(backup):
        shutil.copyfile(static_path, backup)
