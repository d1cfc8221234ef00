"""The soak benchmark (bench/soak.py) in CI size: 40 s of mixed load,
churning sessions, fuzz cases, non-reading clients and half-open handshakes
against one zabpy process. The server must survive, and its open file
descriptors and RSS must not grow from the first to the last quarter of the
run beyond a generous slack (the hour-long run and its chart are in the
report; `python -m bench.soak --duration 3600 --chart soak.png`)."""

from __future__ import annotations

from bench import soak


def test_soak_ci_size(tmp_path, capsys):
    code = soak.main(["--duration", "40", "--interval", "4", "--warmup", "12",
                      "--out", str(tmp_path / "soak.csv"), "--check",
                      "--rss-slack-mib", "64", "--fd-slack", "20"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "'server_alive': True" in out
    assert (tmp_path / "soak.csv").read_text().count("\n") >= 8
