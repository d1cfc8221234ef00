"""Crash test: SIGKILL the server at random moments under concurrent writes.

Reference: zookeeper-facts.md 4.3 (restore, torn tails) and the Zab paper's
durability requirement: a write acknowledged to a client survives any crash;
a multi is all or nothing. Each round starts `zabpy server` on the same data
directory (small snapCount and preAllocSize, so snapshots, log rolls and
preallocation all happen under fire), checks everything acknowledged so far,
runs kazoo writers (create, setData, multi) and kills the server with SIGKILL
after a random delay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

import pytest
from zabpy.testing.server import free_port

kazoo_client = pytest.importorskip("kazoo.client")

ROUNDS = 6
WRITERS = 4


class Ledger:
    """What the clients were told: acknowledged paths and counters, attempted multis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: set[str] = set()
        # (writer, round) -> last acknowledged value of that writer's counter in that
        # round: one counter per writer thread, since a writer of an earlier round
        # can outlive its round (kazoo retrying) and must not race a later one
        self.counters: dict[tuple[int, int], int] = {}
        self.multis: list[tuple[str, str]] = []


def _writer(port: int, wid: int, rnd: int, ledger: Ledger, stop: threading.Event) -> None:
    client = kazoo_client.KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    try:
        client.start(timeout=20)
        counter = f"/crash/ctr-{wid}-r{rnd}"
        client.ensure_path(counter)
        seq = 0
        i = 0
        while not stop.is_set():
            i += 1
            base = f"/crash/w{wid}-r{rnd}-{i}"
            if i % 3 == 0:
                client.create(base, b"x" * (i % 50))
                with ledger.lock:
                    ledger.created.add(base)
            elif i % 3 == 1:
                seq += 1
                client.set(counter, str(seq).encode())
                with ledger.lock:
                    ledger.counters[(wid, rnd)] = seq
            else:
                pair = (base + "-a", base + "-b")
                with ledger.lock:
                    ledger.multis.append(pair)
                t = client.transaction()
                t.create(pair[0], b"a")
                t.create(pair[1], b"b")
                t.set_data(counter, str(seq).encode())
                results = t.commit()
                if not any(isinstance(r, Exception) for r in results):
                    with ledger.lock:
                        ledger.created.update(pair)
    except Exception:
        pass  # the server was killed: whatever was not acknowledged may be lost
    finally:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


def _verify(port: int, ledger: Ledger) -> None:
    client = kazoo_client.KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    client.start(timeout=30)
    try:
        client.ensure_path("/crash")
        present = set("/crash/" + c for c in client.get_children("/crash"))
        missing = sorted(ledger.created - present)
        assert not missing, f"acknowledged creates lost: {missing[:5]}"
        for (wid, rnd), seq in ledger.counters.items():
            data, _ = client.get(f"/crash/ctr-{wid}-r{rnd}")
            assert int(data or b"0") >= seq, (wid, rnd, data, seq)
        for a, b in ledger.multis:
            assert (a in present) == (b in present), f"multi partly visible: {a} {b}"
    finally:
        client.stop()
        client.close()


def test_sigkill_rounds_keep_acknowledged_writes(tmp_path):
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed_note = f"seed {rng.random()}"
    data_dir = tmp_path / "data"
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={data_dir}\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\nsnapCount=300\npreAllocSize=64\n"
                   "admin.enableServer=false\n")
    ledger = Ledger()
    log_path = tmp_path / "server.log"
    for rnd in range(ROUNDS + 1):
        with open(log_path, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "zabpy", "server", str(cfg)],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            _verify(port, ledger)
            if rnd == ROUNDS:
                break
            stop = threading.Event()
            # daemon: a writer whose request was in flight when the server died
            # may wait on kazoo forever; it must not keep the test run alive
            threads = [threading.Thread(target=_writer, args=(port, w, rnd, ledger, stop),
                                        daemon=True)
                       for w in range(WRITERS)]
            for t in threads:
                t.start()
            # Kill at a random moment while the writers are busy.
            stop.wait(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            stop.set()
            for t in threads:
                t.join(timeout=60)
        except AssertionError as e:
            raise AssertionError(f"round {rnd} ({seed_note}; server log {log_path}): {e}") from None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
    assert len(ledger.created) > 0 and ledger.counters
