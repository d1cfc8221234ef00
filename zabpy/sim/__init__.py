"""The deterministic simulator: seeded network, disk and clock, invariant checks.

``python -m zabpy.sim --seed N`` replays one run of whole replicas with
simulated clients (``replica_sim``); ``--seeds K`` tries K random seeds and
prints the replay command of any failure. ``python -m zabpy.sim.election_cli``
runs the election alone (``ensemble``).
"""

from .ensemble import SimOptions, SimResult, Simulation
from .invariants import ElectionChecker, SimFailure
from .network import Delivery, Network, NetworkFaults
from .node import ElectionNode, Node, NodeReady
from .replica_sim import ReplicaSimOptions, ReplicaSimResult, ReplicaSimulation

__all__ = ["SimOptions", "SimResult", "Simulation", "ElectionChecker", "SimFailure", "Delivery",
           "Network", "NetworkFaults", "ElectionNode", "Node", "NodeReady", "ReplicaSimOptions",
           "ReplicaSimResult", "ReplicaSimulation"]
