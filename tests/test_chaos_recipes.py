"""The fault harness's later parts (issue 16): the lock, ephemeral and watch
checkers on hand-made histories, the PNG timeline, the disk faults on a
real loop file system, and short seeded runs (root only): disk faults on
zabpy, and a small subset of the same faults against Java ZooKeeper 3.8."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import tempfile

import pytest

from zabpy.chaos.checks import Anomaly, Verdict
from zabpy.chaos.faults import Fault
from zabpy.chaos.net import PREFIX, why_not_runnable
from zabpy.chaos.recipe_checks import check_ephemerals, check_lock, check_watches
from zabpy.chaos.workload import ClientLog, Record

# ---- lock ------------------------------------------------------------------------------


def _hold(client, call, acquired, released, session=0x10):
    r = Record(client, session + client, "lock", call, acquired, "ok")
    r.result = released
    return r


def _lock_log(cid, holds, states=()):
    log = ClientLog(cid, "lock", "h")
    log.records = list(holds)
    log.states = [(0.0, "CONNECTED"), *states]
    return log


def test_lock_holds_one_after_another_pass():
    a = _lock_log(1, [_hold(1, 0.0, 0.1, 0.3), _hold(1, 0.9, 1.0, 1.2)])
    b = _lock_log(2, [_hold(2, 0.05, 0.31, 0.8), _hold(2, 1.1, 1.25, 1.5)])
    v = check_lock([a, b])
    assert v.anomalies == [] and v.ops_checked == 4


def test_two_holders_at_once_are_caught():
    a = _lock_log(1, [_hold(1, 0.0, 0.1, 0.5)])
    b = _lock_log(2, [_hold(2, 0.05, 0.3, 0.6)])
    v = check_lock([a, b])
    assert [x.kind for x in v.anomalies] == ["lock: two holders"]
    assert "client 2 acquired at 0.300s while client 1 held it" in v.anomalies[0].message


def test_a_hold_ends_when_the_holder_loses_its_connection():
    """Client 1's connection is suspended at 0.2 s: from then on it must
    assume its session (and lock node) may be gone, and client 2 may take
    the lock after the session expired."""
    a = _lock_log(1, [_hold(1, 0.0, 0.1, 5.0)], states=[(0.2, "SUSPENDED"), (0.3, "LOST")])
    b = _lock_log(2, [_hold(2, 0.05, 4.0, 4.5)])
    assert check_lock([a, b]).anomalies == []
    # Without the suspension the same history is two holders.
    a.states = [(0.0, "CONNECTED")]
    assert check_lock([a, b]).anomalies


# ---- ephemerals ------------------------------------------------------------------------

def _eph_log(cid, records):
    log = ClientLog(cid, "ephemeral", "h")
    log.records = records
    return log


def _eph(kind, path, session, t, result=None, outcome="ok"):
    r = Record(1, session, kind, t, t + 0.01, outcome, value=path)
    r.result = result
    return r


def test_ephemerals_of_live_sessions_present_and_none_left_pass():
    p = "/chaos-eph/c1-1"
    log = _eph_log(1, [_eph("eph-create", p, 0x51, 0.0), _eph("eph-check", p, 0x51, 0.1, 0x51),
                       _eph("eph-check", p, 0x51, 0.2, 0x51), _eph("close", None, 0x51, 0.3),
                       _eph("orphan", "/chaos-eph/o1-1", 0x52, 0.0)])
    v = check_ephemerals([log], {})
    assert v.anomalies == [] and v.ops_checked == 3


def test_ephemeral_gone_or_outliving_its_session_is_caught():
    p = "/chaos-eph/c1-1"
    log = _eph_log(1, [_eph("eph-create", p, 0x51, 0.0), _eph("eph-check", p, 0x51, 0.1, None),
                       _eph("eph-check", p, 0x51, 0.2, 0x77),
                       _eph("orphan", "/chaos-eph/o1-1", 0x52, 0.0)])
    v = check_ephemerals([log], {"198.18.0.2:2181": ["o1-1"]})
    kinds = [a.kind for a in v.anomalies]
    assert kinds == ["ephemeral: gone while its session lived", "ephemeral: wrong owner",
                     "ephemeral: outlived its session"]
    assert "/chaos-eph/o1-1 still on 198.18.0.2:2181" in v.anomalies[2].message
    assert "orphan" in v.anomalies[2].ops[0]


# ---- watches ---------------------------------------------------------------------------

def _reg(t, version, gen=0, events=1, none=0):
    r = Record(1, 0x61, "watch-reg", t, t + 0.01, "ok", version=version)
    r.value = {"gen": gen, "events": events, "none": none}
    r.result = gen
    return r


def _wread(t, version, reg, gen=0):
    r = Record(1, 0x61, "watch-read", t, t + 0.01, "ok", version=version)
    r.value = {"reg_version": reg.version, "reg_gen": reg.result, "reg_call": reg.call,
               "events": reg.value["events"] if t > 1.0 else 0, "none": reg.value["none"]}
    r.result = gen
    return r


def _watch_log(records, raw):
    log = ClientLog(1, "watch", "h")
    log.records, log.raw_events = records, raw
    return log


def test_watch_events_once_and_before_new_data_pass():
    r1, r2 = _reg(0.0, 3), _reg(0.5, 4, events=0)
    log = _watch_log([r1, _wread(0.2, 3, r1), r2, _wread(0.7, 4, r2)],
                     [(0, "CHANGED", "/chaos-register", 1, 3)])
    v = check_watches([log], {4: 0x105}, {})
    assert v.anomalies == [] and v.ops_checked == 4


def test_watch_event_twice_lost_or_without_change_is_caught():
    r1 = _reg(0.0, 3, events=0)
    # A read on the same connection sees v5 with no event for the watch at v3.
    lost = _watch_log([r1, _wread(0.2, 5, r1)], [])
    assert [a.kind for a in check_watches([lost]).anomalies] == [
        "watch: new data before its event"]
    # After a drop (gen 1) kazoo dropped the watch: no event is owed.
    assert check_watches([_watch_log([r1, _wread(0.2, 5, r1, gen=1)], [])]).anomalies == []
    twice = _watch_log([_reg(0.0, 3)], [(0, "CHANGED", "/chaos-register", 1, 3),
                                         (0, "CHANGED", "/chaos-register", 0, None)])
    assert [a.kind for a in check_watches([twice]).anomalies] == [
        "watch: event fired no registration"]
    stale = _watch_log([_reg(0.0, 3), _reg(0.5, 3, events=0)],
                       [(0, "CHANGED", "/chaos-register", 1, 3)])
    assert [a.kind for a in check_watches([stale]).anomalies] == [
        "watch: event without a newer version"]


def test_watch_events_of_one_connection_come_in_zxid_order():
    """A data watch set at v3 fires for the write of v4 (txn 0x110); a child
    watch set at cversion 7 fires for the create numbered 7 (txn 0x108).
    Arriving data first, child second, they went back in zxid order; on a
    new connection (gen 1) the order starts afresh."""
    zx, cz = {4: 0x110, 5: 0x120}, {7: 0x108, 8: 0x130}
    ordered = [(0, "CHILD", "/chaos-set", 1, 7), (0, "CHANGED", "/chaos-register", 1, 3),
               (0, "CHILD", "/chaos-set", 1, 8)]
    assert check_watches([_watch_log([], ordered)], zx, cz).anomalies == []
    back = [(0, "CHANGED", "/chaos-register", 1, 3), (0, "CHILD", "/chaos-set", 1, 7)]
    v = check_watches([_watch_log([], back)], zx, cz)
    assert [a.kind for a in v.anomalies] == ["watch: events out of zxid order"]
    assert "child watch at cversion 7 (txn 0x108) fired after data watch at v3" in (
        v.anomalies[0].message)
    new_conn = [(0, "CHANGED", "/chaos-register", 1, 3), (1, "CHILD", "/chaos-set", 1, 7)]
    assert check_watches([_watch_log([], new_conn)], zx, cz).anomalies == []
    # The recorder keeps the registration's record (its version is filled
    # in by the caller's thread, possibly after the event came).
    reg_data, reg_child = _reg(0.0, 3), _reg(0.0, 7)
    as_records = [(0, "CHANGED", "/chaos-register", 1, reg_data),
                  (0, "CHILD", "/chaos-set", 1, reg_child)]
    assert [a.kind for a in check_watches([_watch_log([], as_records)], zx, cz).anomalies] == [
        "watch: events out of zxid order"]


# ---- the timeline ----------------------------------------------------------------------

def test_timeline_png_shows_faults_clients_and_anomalies(tmp_path):
    from zabpy.chaos import timeline
    f = Fault("kill", 1.0, 2.0, [2], "kill -9 2", began=1.0, healed=3.0)
    log = ClientLog(1, "register", "h")
    log.records = [Record(1, 0x1, "cas", t / 10, t / 10 + 0.05, "ok", ("a", "b"), 1)
                   for t in range(50)]
    log.records.append(Record(1, 0x1, "cas", 2.0, 5.0, "info", ("a", "b"), 1, err="Timeout"))
    log.states = [(0.0, "CONNECTED"), (2.5, "SUSPENDED"), (2.9, "CONNECTED")]
    bad = Verdict([Anomaly("register: not linearizable", "x",
                           ["#1 client 1 cas(('a', 'b')) -> 'ok' [4.000, 4.200]"])], 50)
    assert timeline.anomaly_spans({"register": bad}) == [(4.0, 4.2)]
    meta = {"target": "zabpy", "servers": 3, "seed": 1}
    out = tmp_path / "t.png"
    timeline.draw(str(out), meta, [f], [log], {"register": bad}, 6.0)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 150


# ---- disks (root) ----------------------------------------------------------------------

def _skip_reason():
    return why_not_runnable()


needs_root = pytest.mark.skipif(_skip_reason() is not None,
                                reason=f"fault harness cannot run here: {_skip_reason()}")


@needs_root
def test_full_disk_and_fsync_faults_on_a_member_file_system():
    from zabpy.chaos.disk import MODE_EIO, MODE_OK, MODE_SLOW, Disks
    work = tempfile.mkdtemp(prefix=f"zabpy-chaos-{os.getpid()}-")
    disks = Disks(work, [1])
    try:
        what = disks.setup()
        assert disks.kind in ("loop", "tmpfs"), what
        d = disks.data_dir(1)
        assert any(line.split()[1] == d for line in open("/proc/self/mounts"))
        disks.fill(1)
        with pytest.raises(OSError) as e:
            with open(os.path.join(d, "x"), "wb") as f:
                f.write(b"a" * 65536)
                f.flush()
                os.fsync(f.fileno())
        assert e.value.errno == errno.ENOSPC
        disks.heal()
        with open(os.path.join(d, "x"), "wb") as f:
            f.write(b"a" * 65536)
        if disks.shim is None:
            pytest.skip(f"no fsync shim: {disks.shim_missing}")
        probe = ("import os, sys, time\nfd = os.open(sys.argv[1], os.O_WRONLY)\n"
                 "t = time.monotonic()\ntry:\n    os.fdatasync(fd)\n"
                 "    print('ok', time.monotonic() - t)\nexcept OSError as e:\n"
                 "    print('errno', e.errno)\n")
        env = dict(os.environ, **disks.env(1))

        def fsync_says():
            return subprocess.run([sys.executable, "-c", probe, os.path.join(d, "x")], env=env,
                                  capture_output=True, text=True, check=True).stdout.split()
        disks.set_fsync(1, MODE_EIO)
        assert fsync_says() == ["errno", str(errno.EIO)]
        disks.set_fsync(1, MODE_SLOW, 300)
        word, took = fsync_says()
        assert word == "ok" and float(took) >= 0.3
        disks.set_fsync(1, MODE_OK)
        assert fsync_says()[0] == "ok"
    finally:
        disks.close()
        subprocess.run(["rm", "-rf", work])
    assert not any(work in line for line in open("/proc/self/mounts"))


def _run_chaos(tmp_path, *args, timeout=300):
    report = tmp_path / "report"
    proc = subprocess.Popen(["nice", sys.executable, "-m", "zabpy.chaos", *args,
                             "--report-dir", str(report)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}{proc.pid}-" not in out, "the harness left namespaces behind"
    assert not [line for line in open("/proc/self/mounts") if f"zabpy-chaos-{proc.pid}-" in line]
    assert proc.returncode in (0, 1), stdout + stderr
    result = json.loads((report / "result.json").read_text())
    assert (report / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "report.txt").read_text() == stdout.split("replay: ")[0]
    return proc.returncode, stdout + stderr, result


def _exits(result, kind):
    return [e for f in result["faults"] if f["kind"] == kind for e in f["exits"].values()]


@needs_root
def test_disk_faults_on_zabpy_lose_no_acknowledged_write(tmp_path):
    """Seed 149 draws disk-eio twice, disk-full and kill-drop. A member whose
    fsync fails or whose disk is full stops (exit status 1: an IO error, not
    a broken invariant; ZooKeeper stops its SyncThread with the same code)
    and acknowledges nothing it did not log; restarted once the
    disk is healed, it catches up; every checker finds nothing."""
    rc, out, result = _run_chaos(tmp_path, "--seed", "149", "--duration", "20", "--faults",
                                 "disk-full,disk-eio,disk-slow,kill-drop,loss")
    assert rc == 0 and result["anomalies"] == 0, out
    kinds = [f["kind"] for f in result["faults"]]
    assert {"disk-eio", "disk-full", "kill-drop"} <= set(kinds), out
    assert "ext4 on loop" in result["meta"]["network"] or "tmpfs" in result["meta"]["network"]
    assert _exits(result, "disk-eio") and set(_exits(result, "disk-eio")) == {1}, out
    for name in ("register", "set", "lock", "ephemeral", "watch"):
        assert result["verdicts"][name]["ops_checked"] > 0, (name, out)


@needs_root
def test_java_zookeeper_under_the_same_faults(tmp_path):
    """The side-by-side subset in CI: Java ZooKeeper 3.8 in the same
    namespaces under seed 31 (loss, kill, split): no anomaly. No disk fault
    here: after a failed epoch-file write, Java 3.8.0 can keep a newer
    accepted epoch in memory than on disk and then refuse to start ("The
    accepted epoch, 11 is less than the current epoch, 12", the class of
    ZOOKEEPER-2307), which a later kill turns into a member that never
    comes back; the long runs (README) show it."""
    from zabpy.testing.difffuzz.servers import java_missing
    if java_missing():
        pytest.skip(java_missing())
    rc, out, result = _run_chaos(tmp_path, "--seed", "31", "--duration", "16", "--target",
                                 "java", "--faults", "kill,split,disk-slow,loss,pause,one-way")
    # Java's sync() does not go through a quorum: across a leader change a
    # read after it may miss an acknowledged write (docs/chaos-runs.md, seed
    # 2101). That one known limit is tolerated here; nothing else is.
    sync_limit = {"register: not linearizable", "register: stale read after sync"}
    kinds = {a["kind"] for v in result["verdicts"].values() for a in v["anomalies"]}
    assert rc in (0, 1) and kinds <= sync_limit, out
    if kinds:
        assert "register: stale read after sync" in kinds, out
    assert [f["kind"] for f in result["faults"]] == ["loss", "kill", "split"], out
    for name in ("register", "set", "lock", "ephemeral", "watch"):
        assert result["verdicts"][name]["ops_checked"] > 0, (name, out)
