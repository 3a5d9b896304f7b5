"""`python -m services.ingest`: settings from VBG_INGEST_* (else VBG_*), limits from VIDEOBG_*."""

from services.common import lifecycle
from services.common.stage_service import Service
from services.ingest.server import IngestSettings, build_server, build_worker

if __name__ == "__main__":
    raise SystemExit(lifecycle.main(Service(IngestSettings(), build_server, build_worker, name="ingest")))
