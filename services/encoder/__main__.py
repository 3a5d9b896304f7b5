"""`python -m services.encoder`: settings from VBG_ENCODER_* (else VBG_*; COMPOSITOR_TARGET is required)."""

from services.common import lifecycle
from services.common.stage_service import Service
from services.encoder.server import EncoderSettings, build_server, build_worker

if __name__ == "__main__":
    settings = EncoderSettings()  # type: ignore[call-arg]  # compositor_target comes from the environment
    raise SystemExit(lifecycle.main(Service(settings, build_server, build_worker, name="encoder")))
