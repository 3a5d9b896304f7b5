"""`python -m services.compositor`: settings from VBG_COMPOSITOR_* (else VBG_*), core from VIDEOBG_*."""

from services.common.runtime import main
from services.compositor.server import CompositorSettings, build_server

if __name__ == "__main__":
    raise SystemExit(main(CompositorSettings(), build_server, name="compositor"))
