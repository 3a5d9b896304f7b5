"""`python -m services.segmenter`: settings from VBG_SEGMENTER_* (else VBG_*), core from VIDEOBG_*."""

from services.common import lifecycle
from services.common.stage_service import Service
from services.segmenter.server import SegmenterSettings, build_server, build_worker, warmup

if __name__ == "__main__":
    service = Service(SegmenterSettings(), build_server, build_worker, name="segmenter", warmup=warmup)
    raise SystemExit(lifecycle.main(service))
