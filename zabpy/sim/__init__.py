"""The deterministic simulator: seeded network, virtual clock, invariant checks.

``python -m zabpy.sim --seed N`` replays one run; ``--seeds K`` tries K random
seeds and prints the replay command of any failure.
"""

from .ensemble import SimOptions, SimResult, Simulation
from .invariants import ElectionChecker, SimFailure
from .network import Delivery, Network, NetworkFaults
from .node import ElectionNode, Node, NodeReady

__all__ = ["SimOptions", "SimResult", "Simulation", "ElectionChecker", "SimFailure", "Delivery",
           "Network", "NetworkFaults", "ElectionNode", "Node", "NodeReady"]
