"""videobg: transport-free media core (probe, decode/trim, matte, refine, composite, encode)."""

__version__ = "0.1.0"

import os as _os

# torch's OpenMP pool busy-waits by default; with decode/encode threads beside it that starves everyone
# (10-70x slower under contention, see videobg/models/__init__.py). libgomp reads this when torch loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
