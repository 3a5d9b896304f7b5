"""`python -m services.gateway`: REST + gRPC Jobs API (settings from VBG_GATEWAY_* env)."""

from services.common import lifecycle
from services.gateway.server import GatewayService
from services.gateway.settings import GatewaySettings

if __name__ == "__main__":
    raise SystemExit(lifecycle.main(GatewayService(GatewaySettings())))
