"""videobg: transport-free media core (probe, decode/trim, matte, refine, composite, encode)."""

__version__ = "0.1.0"
