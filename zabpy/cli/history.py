"""`zabpy history /path`: who changed a znode and when.

    zabpy history /app/config --url http://127.0.0.1:8080 [--user bob:pw] [--limit N]
    zabpy history /app/config --data-dir /var/lib/zabpy [--limit N]

With ``--url`` it asks a running server's HTTP API (``/api/v1/history``):
zxid, time, op and session, and the authenticated ids and client IP for the
changes that server took itself (while they are in its change log). With
``--data-dir`` it reads the txn logs in the data directory (the server may
be stopped): zxid, time, op and session only — the logs do not hold who.
Newest first; ``--json`` prints the answer as JSON. Exit status 1 on an error.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from ..limits import HTTP_HISTORY_LIMIT_MAX

__all__ = ["main"]


def _from_url(url: str, path: str, limit: int, user: str | None) -> dict:
    q = urllib.parse.urlencode({"path": path, "limit": limit})
    req = urllib.request.Request(url.rstrip("/") + "/api/v1/history?" + q)
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        raise SystemExit(f"zabpy history: {e.code} {body.get('error', '')}: "
                         f"{body.get('message', '')}") from None


def _from_data_dir(data_dir: str, path: str, limit: int) -> dict:
    from ..httpapi.disklog import oldest_on_disk
    from ..httpapi.history import history_entries
    oldest = oldest_on_disk(data_dir)
    if oldest is None:
        raise SystemExit(f"zabpy history: no txn logs in {data_dir}")
    changes, since = _contiguous_tail(data_dir, oldest)
    return {"path": path, "entries": history_entries(reversed(changes), path, None, True, limit),
            "complete_from_zxid": since}


def _contiguous_tail(data_dir: str, oldest: int):
    """The newest run of log files without a gap (a SNAP or a purge leaves one)."""
    from ..httpapi.disklog import read_changes
    from ..storage.datadir import LOG_PREFIX, list_zxid_files, version_dir
    starts = [z - 1 for z, _p in list_zxid_files(version_dir(data_dir), LOG_PREFIX)]
    last = _last_zxid(data_dir)
    for since in starts:
        changes = read_changes(data_dir, since, last, lambda _p: ())
        if changes is not None:
            return changes, since
    return [], last


def _last_zxid(data_dir: str) -> int:
    from ..storage.datadir import LOG_PREFIX, list_zxid_files, version_dir
    from ..storage.txnlog import scan_log
    files = list_zxid_files(version_dir(data_dir), LOG_PREFIX)
    last = 0
    for _z, path in files[-2:]:
        with open(path, "rb") as f:
            entries = scan_log(f.read()).entries
        if entries:
            last = max(last, entries[-1][1])
    return last


def _line(e: dict) -> str:
    when = datetime.fromtimestamp(e["time"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    who = ""
    if e.get("auth_ids") is not None:
        who = f"  ids={','.join(e['auth_ids'])} ip={e.get('client_ip')}"
    return (f"{e['zxid_hex']:>14}  {when}  {e['op']:<12} {','.join(e['events']):<16} "
            f"session={e['session']}{who}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zabpy history", description=__doc__.split("\n")[0])
    ap.add_argument("path")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="a server's HTTP API, e.g. http://127.0.0.1:8080")
    src.add_argument("--data-dir", help="a data directory (dataLogDir) to read txn logs from")
    ap.add_argument("--user", help="user:password for HTTP Basic (a digest id)")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    limit = max(1, min(args.limit, HTTP_HISTORY_LIMIT_MAX))
    try:
        if args.url:
            answer = _from_url(args.url, args.path, limit, args.user)
        else:
            answer = _from_data_dir(args.data_dir, args.path, limit)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabpy history: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for e in answer["entries"]:
        print(_line(e))
    print(f"# {len(answer['entries'])} entries; complete from zxid "
          f"0x{answer['complete_from_zxid']:x}")
    return 0
