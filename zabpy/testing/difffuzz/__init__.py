"""A differential fuzzer: zabpy against Debian's Java ZooKeeper 3.8.

One seed is one random sequence of operations over several sessions. The
same raw requests go to a fresh Java ZooKeeper and a fresh zabpy server, and
every step is compared (see ``runner``): each reply's error code, body and
zxid, each connect response, every watch event with its place before or
after the reply of the request that caused it, the sessions each step
ended, the server's zxid after the step, and at the end the whole tree
(paths, data, stats, ACLs).

    python -m zabpy.testing.difffuzz --seeds 20            # seeds 0..19
    python -m zabpy.testing.difffuzz --seed 7 --ops 300 -v # one seed, op log

What it covers: every client opcode (create, create2, createContainer,
createTTL, delete, deleteContainer, exists, getData, setData, getACL,
setACL, getChildren, getChildren2, sync, ping, multi, multiRead, reconfig,
checkWatches, removeWatches, setWatches, setWatches2, getEphemerals,
getAllChildrenNumber, addWatch, whoAmI, auth, closeSession, an unknown op);
every create mode and flag (valid and not) in and out of multi; container
and TTL nodes (short TTLs that the reaper deletes during the run, long and
invalid ones); ACLs of every scheme (world, auth, digest, ip, invalid ones)
with several identities per session (digest users, a wrong password, ip,
super, failing credentials); one-shot watches through getData, exists and
getChildren, persistent and persistent-recursive watches through addWatch,
setWatches/setWatches2 with a relative zxid, checkWatches and
removeWatches of every type; session open, close, reconnect (with a wrong
password first, after the old connection was dropped, then the watches
re-armed with setWatches2 as a client does) and expiry; requests pipelined
back to back on one session (events tagged by the reply they preceded);
bodies cut short or with trailing bytes; quotas set by hand under
/zookeeper/quota (limits and stats nodes, so the tree compares the counts).

How it stays deterministic: after each step it waits for the background
work the step caused — an expiring session's close, the container and TTL
nodes the reaper must delete (one at a time; which nodes those are it reads
from zabpy's tree, as ZooKeeper shows a client 0 as their owner; only the
waiting uses that, never the comparison) — and pings every live session of
both servers meanwhile so that none expires by accident.

What it normalises (``normalise``), and nothing else: zxids as distances
from each server's zxid at the start; ctime/mtime; session ids (as labels
s1, s2 … in the ephemeralOwner of stats and in connect responses); the
order of children lists and of getEphemerals; the order of the events of a
step that closed a session (Java deletes a session's ephemerals in HashSet
order).

Deliberate differences and Java 3.8 bugs the generator does not produce
(each has a side-by-side test of its own):

- ZOOKEEPER-4466: Java 3.8 keeps one watch mode per (session, path), so a
  one-shot watch and a persistent one on the same path overwrite each other;
  zabpy keeps both. A session's path keeps its first watch class.
- Java 3.8's ``WatchManager.containsWatcher`` answers checkWatches for
  another session's watch on the same path; zabpy answers for the asking
  session only. checkWatches is sent only where no other session may hold a
  watch.
- ``check`` outside a multi: Java 3.8.0 never answers it (a null stat fails
  its reply serialisation); zabpy answers like a write (tests/test_ops.py).
- SASL without SASL configured: Java answers an empty token forever; zabpy
  answers AUTHFAILED and closes (tests/test_ops.py).
- A reconnect attempt with a wrong password while the session's connection
  is live: Java 3.8 closes that live connection first; zabpy does not
  (tests/test_sessions.py). The fuzzer's reconnect drops the old
  connection before any attempt, so both agree.
- createTTL with a non-TTL mode and a negative ttl outside a multi: Java
  3.8.0 validates it as a plain create, logs it and fail-stops applying it;
  zabpy answers BADARGUMENTS up front (tests/test_difffuzz.py).
- Session ids come from wall time in zabpy (issue 11 item 7); ids are
  normalised anyway.
- createSession on an established connection with a body that sets a
  timeout shorter than the session's: Java (and zabpy) let the session expire
  at the next tick unless another request comes first, a race with the
  fuzzer's next step; the generator sends the session's own timeout (a
  timeout of 0 is tests/test_difffuzz.py's).

Differences found and still open are listed in ``ops.OPEN_DIFFERENCES``; the
generator steers around them unless ``--open`` is given.
"""

from __future__ import annotations

from .runner import Difference, run_ops
from .servers import java_missing, reaped_kinds, server_pair

__all__ = ["Difference", "run_seed", "java_missing", "DEFAULT_OPS"]

DEFAULT_OPS = 150


def run_seed(seed: int, n_ops: int = DEFAULT_OPS, log=None, stats=None) -> Difference | None:
    """Run one seed on two fresh servers; the first difference, or None.
    ``stats`` (a Counter) gathers what the seed exercised."""
    with server_pair() as (zabpy, jport):
        return run_ops(seed, n_ops, zabpy.port, jport, log,
                       kinds=lambda: reaped_kinds(zabpy), stats=stats)
