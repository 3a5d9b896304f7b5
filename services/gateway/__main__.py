"""`python -m services.gateway`: REST + gRPC Jobs API (settings from VBG_GATEWAY_* env)."""

import asyncio
import logging
import sys

from services.gateway.server import serve
from services.gateway.settings import GatewaySettings
from videobg.errors import Transient

settings = GatewaySettings()
logging.basicConfig(
    level=settings.log_level.upper(), format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s"
)
try:
    asyncio.run(serve(settings))
except Transient as e:  # NATS unreachable at start: say so in one line, exit non-zero
    logging.getLogger("services.gateway").error("cannot start: %s", e)
    sys.exit(1)
