"""Settings every service shares; each service subclasses with its own env prefix (VBG_<SERVICE>_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.objstore import ObjectStore
from videobg.settings import CoreSettings


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_", extra="ignore")

    # one URL, or a cluster's nodes separated by commas (clients fail over between them)
    nats_url: str = "nats://127.0.0.1:4222"
    # copies of every stream and KV bucket; 0: 1 against a lone server, 3 against a cluster. Existing
    # streams with fewer are scaled up in place at start; more than the cluster's servers: refuse to start
    nats_replicas: int = 0
    # This service's NATS user (services/common/natsauth.py: each service its own, with its permissions);
    # "" connects without one (a server without users, or credentials inside nats_url).
    nats_user: str = ""
    nats_password: str = ""
    s3_endpoint: str = "127.0.0.1:8333"  # host:port, as the minio client takes it
    s3_public_endpoint: str = ""  # host:port clients download presigned URLs from ("" = s3_endpoint)
    s3_access_key: str = "videobg"
    s3_secret_key: str = "videobg-secret"
    s3_bucket: str = "videobg"
    s3_secure: bool = False
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0  # 0: any free port (tests); Kubernetes sets a fixed one
    metrics_port: int = 0  # 0: no separate metrics server
    ack_wait_s: float = 30.0  # JetStream redelivers a message this long after the last heartbeat
    max_deliver: int = 5
    stage_deadline_s: float = 900.0  # no stage of one job may run longer than this
    work_dir: str = ""  # scratch space for downloads ("" = system temp)
    log_level: str = "INFO"
    log_format: str = "json"  # one JSON object per line (services/common/logs.py); "text" for a terminal

    def core(self) -> CoreSettings:
        return CoreSettings()

    def object_store(self) -> ObjectStore:
        """The bucket these settings name (no request is sent until it is used)."""
        return ObjectStore(
            self.s3_endpoint,
            self.s3_access_key,
            self.s3_secret_key,
            self.s3_bucket,
            self.s3_secure,
            public_endpoint=self.s3_public_endpoint or None,
        )
