"""Command line for the ensemble simulation: ``python -m zabpy.sim --seed N`` or ``--seeds K``.

Each run drives whole replicas (election, ZAB, the server core) with
simulated clients under injected faults and prints its outcome; a failing
seed prints the command that replays it (add ``--trace`` to see every event).
"""

from __future__ import annotations

import argparse
import sys

from .cli import parser, run_seeds
from .reconfig_sim import ReconfigSimulation
from .replica_sim import ReplicaSimOptions, ReplicaSimulation

_KEYS = ("voters", "observers", "clients", "fault_ms", "liveness_ms", "read_only",
         "local_sessions", "oracle")


def _overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _KEYS if getattr(args, k) is not None}


def replay_command(seed: int, overrides: dict, spares: int | None = None) -> str:
    extra = "".join(f" --{k.replace('_', '-')} {v}" for k, v in overrides.items())
    if spares is not None:
        extra += f" --reconfig {spares}"
    return f"python -m zabpy.sim --seed {seed}{extra}"


def _simulation(seed: int, over: dict, spares: int | None):
    opts = ReplicaSimOptions(seed=seed, **over)
    return ReplicaSimulation(opts) if spares is None else ReconfigSimulation(opts, spares)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m zabpy.sim", __doc__,
               extra=("--clients", "--read-only", "--local-sessions"))
    p.add_argument("--oracle", choices=("detector", "both"),
                   help="two voters with the QuorumOracleMaj oracle (see sim/replica_sim.py)")
    p.add_argument("--reconfig", type=int, metavar="SPARES",
                   help="dynamic reconfig: SPARES extra servers and an operator's reconfig "
                        "requests among the faults (see sim/reconfig_sim.py)")
    args = p.parse_args(argv)
    over = _overrides(args)
    return run_seeds(
        args, lambda seed: (_simulation(seed, over, args.reconfig).run(), ""),
        lambda r: f"ok leader={r.leader} committed={r.committed} client ops={r.client_ops}",
        lambda seed: replay_command(seed, over, args.reconfig))


if __name__ == "__main__":
    sys.exit(main())
