"""`python -m services.segmenter`: settings from VBG_SEGMENTER_* (else VBG_*), core from VIDEOBG_*."""

from services.common.runtime import main
from services.segmenter.server import SegmenterSettings, build_server, build_worker, warmup

if __name__ == "__main__":
    raise SystemExit(main(SegmenterSettings(), build_server, build_worker, name="segmenter", warmup=warmup))
