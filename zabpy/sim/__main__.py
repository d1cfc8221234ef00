"""``python -m zabpy.sim --seed N | --seeds K``: the whole ensemble (FLE + ZAB)
under injected faults. The election-only simulation is
``python -m zabpy.sim.election_cli``."""

import sys

from .zab import main

sys.exit(main())
