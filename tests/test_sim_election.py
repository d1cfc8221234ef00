"""The deterministic simulator running election peers (DESIGN.md "simulator").

Invariants E1-E3 (zabpy/sim/invariants.py) run after every step; liveness:
once faults stop, every peer settles on one leader within a bounded virtual
time. A failure message names the seed; replay it with
``python -m zabpy.sim.election_cli --seed N --trace``.
"""

import pytest

from zabpy.sim import SimOptions, Simulation
from zabpy.sim.election_cli import main


@pytest.mark.parametrize("seed", range(120))
def test_fixed_seeds_converge_with_invariants_holding(seed):
    result = Simulation(SimOptions(seed=seed)).run()
    assert result.ok, f"{result.message}; replay: python -m zabpy.sim.election_cli --seed {seed} --trace"


@pytest.mark.parametrize("voters,observers,hierarchical", [
    (3, 0, False), (4, 1, False), (5, 2, False), (6, 0, True), (7, 1, True), (2, 0, False)])
def test_shapes(voters, observers, hierarchical):
    for seed in range(8):
        opts = SimOptions(seed=seed, voters=voters, observers=observers, hierarchical=hierarchical)
        result = Simulation(opts).run()
        assert result.ok, f"seed {seed}: {result.message}"
        assert result.leader is not None and result.leader <= voters


def test_same_seed_twice_gives_identical_trace():
    a = Simulation(SimOptions(seed=4242)).run()
    b = Simulation(SimOptions(seed=4242)).run()
    assert len(a.trace) > 20
    assert a.trace == b.trace
    c = Simulation(SimOptions(seed=4243)).run()
    assert c.trace != a.trace


def test_trace_records_faults_messages_and_decisions():
    trace = "\n".join(Simulation(SimOptions(seed=7, voters=5)).run().trace)
    assert "deliver" in trace and "settles" in trace and "heal everything" in trace


def test_cli_prints_replay_command_on_failure(capsys):
    # A 1 ms liveness bound after healing at t=0 cannot be met: the run must fail.
    code = main(["--seed", "3", "--voters", "3", "--fault-ms", "0", "--liveness-ms", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "replay: python -m zabpy.sim.election_cli --seed 3 --voters 3 --fault-ms 0 --liveness-ms 1" in out


def test_cli_ok_run(capsys):
    assert main(["--seed", "11"]) == 0
    assert "seed 11: ok" in capsys.readouterr().out
