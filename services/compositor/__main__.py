"""`python -m services.compositor`: settings from VBG_COMPOSITOR_* (else VBG_*), core from VIDEOBG_*."""

from services.common import lifecycle
from services.common.stage_service import Service
from services.compositor.server import CompositorSettings, build_server, warmup

if __name__ == "__main__":
    raise SystemExit(
        lifecycle.main(Service(CompositorSettings(), build_server, name="compositor", warmup=warmup))
    )
