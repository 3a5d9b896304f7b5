"""Gateway settings (env prefix VBG_GATEWAY_): the shared service fields plus the REST listener."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_GATEWAY_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8080  # 0: any free port (tests)
    grpc_port: int = 50051
    result_url_ttl_s: float = 3600.0  # lifetime of a presigned result URL handed to a client
    max_body_bytes: int = 1024 * 1024  # request bodies are small JSON / form fields, never video
    watch_poll_s: float = 1.0  # Watch re-reads the record this often, in case a stage ends without an event
