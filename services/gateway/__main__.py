"""`python -m services.gateway`: REST + gRPC Jobs API (settings from VBG_GATEWAY_* env)."""

import asyncio
import logging
import sys

from services.common.logs import setup_logging
from services.gateway.server import serve
from services.gateway.settings import GatewaySettings
from videobg.errors import Transient

settings = GatewaySettings()
setup_logging(settings.log_level, "gateway", settings.log_format)
try:
    asyncio.run(serve(settings))
except Transient as e:  # NATS unreachable at start: say so in one line, exit non-zero
    logging.getLogger("services.gateway").error("cannot start: %s", e)
    sys.exit(1)
