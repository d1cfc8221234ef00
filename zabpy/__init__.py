"""zabpy: Apache ZooKeeper, rebuilt in Python."""

__version__ = "0.1.0"
# The ZooKeeper release whose behaviour and formats zabpy matches; reported
# by `envi`/`srvr` so that clients that parse it (kazoo's server_version())
# see a version they know.
ZOOKEEPER_VERSION = "3.8.0"

__all__ = ["__version__", "ZOOKEEPER_VERSION"]

# These imports (dataclasses, inspect, the build switch) allocate many objects
# and free almost none: the collector's passes meanwhile find nothing (about
# 5 M instructions of a server's start-up), so it is off until they are done.
import gc as _gc  # noqa: E402

_gc_was_enabled = _gc.isenabled()
_gc.disable()
try:
    # Compiled cores or their sources (zabpy/_build.py): decided before any is imported.
    from . import _build  # noqa: E402

    _build.choose()

    # zabpy's dataclass methods come compiled from a cache, as bytecode does
    # (zabpy/_codecache.py): installed before any of them is made.
    from . import _codecache  # noqa: E402

    _codecache.install()
finally:
    if _gc_was_enabled:
        _gc.enable()
    del _gc_was_enabled
del _gc
