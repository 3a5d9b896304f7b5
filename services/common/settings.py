"""Settings every service shares; each service subclasses with its own env prefix (VBG_<SERVICE>_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.common.objstore import ObjectStore
from videobg import nats_subjects
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
    nats_password: str = ""  # that user's password (a Kubernetes Secret)
    s3_endpoint: str = "127.0.0.1:8333"  # host:port, as the minio client takes it
    s3_public_endpoint: str = ""  # host:port clients download presigned URLs from ("" = s3_endpoint)
    s3_access_key: str = "videobg"  # the services' S3 user (not the S3 server's root)
    s3_secret_key: str = "videobg-secret"  # its secret (a Kubernetes Secret)
    s3_bucket: str = "videobg"  # every object of every job lives here (videobg/object_keys.py lays them out)
    s3_secure: bool = False  # https to S3
    grpc_host: str = "127.0.0.1"  # address the gRPC server binds (0.0.0.0 in a pod)
    grpc_port: int = 0  # 0: any free port (tests); Kubernetes sets a fixed one
    metrics_port: int = 0  # 0: no separate metrics server
    ack_wait_s: float = 30.0  # JetStream redelivers a message this long after the last heartbeat
    max_deliver: int = 5  # deliveries of one work message before the job fails (transient_error)
    stage_deadline_s: float = 900.0  # no stage of one job may run longer than this
    work_dir: str = ""  # scratch space for downloads ("" = system temp)
    # job records expire this long after their last change (the KV bucket's max age, set by whichever
    # service starts first and brought up to date by every later one: give all services the same value)
    job_retention_s: float = nats_subjects.JOBS_MAX_AGE_S
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR
    log_format: str = "json"  # one JSON object per line (services/common/logs.py); "text" for a terminal
    # The media core's settings (VIDEOBG_*: models, device, limits, queues), read from the environment
    # once, when these are built (in the service's __main__), and passed down with them.
    core: CoreSettings = Field(default_factory=CoreSettings)

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


class StageSettings(ServiceSettings):
    """Base of the stage services' settings. Each subclass sets its own env prefix (VBG_INGEST_, ...); a
    field not set under that prefix falls back to the shared VBG_ one (VBG_NATS_URL, VBG_S3_ENDPOINT...),
    so a deployment names its infrastructure once."""

    backoff_s: tuple[float, ...] = (5.0, 30.0, 120.0)  # delays between retries of a failed attempt
    drain_grace_s: float = 25.0  # after SIGTERM: how long the job in hand may run before it is handed back
    grpc_workers: int = 8  # threads serving gRPC calls (each stage call runs in one)
    concurrency: int = 1  # work messages handled at once by this process's worker
    queue_metrics_s: float = 5.0  # how often a worker refreshes the JetStream queue gauges (0: never)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix="VBG_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings
