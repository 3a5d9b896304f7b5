"""`python -m services.ingest`: settings from VBG_INGEST_* (else VBG_*), limits from VIDEOBG_*."""

from services.common.runtime import main
from services.ingest.server import IngestSettings, build_server, build_worker

if __name__ == "__main__":
    raise SystemExit(main(IngestSettings(), build_server, build_worker, name="ingest"))
