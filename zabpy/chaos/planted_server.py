"""A zabpy server with a planted bug, for the test that shows the harness
catches a real server fault: ``python -m zabpy.chaos.planted_server
local-sync <zoo.cfg>``.

no-fsync: the transaction log is never fsynced, so ACKs and replies go out
while the txns are only in the page cache; a power cut on a majority
(``power-loss-all``) then loses acknowledged writes, which the set and
register checkers must report.

local-sync: a follower answers sync() itself, as a read, instead of
waiting for the leader's SYNC. A read after such a sync() may miss writes
the leader committed and other clients already saw acknowledged (ZooKeeper's
sync() exists to prevent that), which the register checker must report.
"""

from __future__ import annotations

import sys

from ..cli.main import main
from ..server.learner import LearnerServer
from ..server.standalone import StandaloneServer
from ..storage.files import TxnStore

BUGS = ("local-sync", "no-fsync")


def plant(bug: str) -> None:
    if bug == "local-sync":
        LearnerServer._is_write = StandaloneServer._is_write
    elif bug == "no-fsync":
        TxnStore._fsync = staticmethod(lambda fd: None)
    else:
        raise SystemExit(f"unknown planted bug {bug!r}; one of {BUGS}")


if __name__ == "__main__":
    plant(sys.argv[1])
    sys.exit(main(["server", *sys.argv[2:]]))
