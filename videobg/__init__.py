"""videobg: transport-free media core (probe, decode/trim, matte, refine, composite, encode)."""

__version__ = "0.1.0"

import os as _os

# torch's OpenMP (libgomp) pool busy-waits after every parallel region by default; with decode/encode
# threads beside it that spinning starves everyone, torch included (measured: RVM 2 s instead of 0.15 s
# per 720p frame, 10-70x slower under contention). libgomp reads this once, when torch is first imported,
# and every import of torch here goes through this package first; a value already set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
