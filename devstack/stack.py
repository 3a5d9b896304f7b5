"""The whole service on one machine: nats-server, SeaweedFS and the five services as child processes.

    python -m devstack.stack                      # REST on http://127.0.0.1:8080, until Ctrl-C
    python -m devstack.stack --serve-dir ../shared/media/people   # + a loopback file server for clips
    python -m devstack.stack --demo --sample ../shared/media/people/sam2_01_dog.mp4   # one job, then exit
    python -m devstack.stack --metrics            # + /metrics on every service, Prometheus scraping them
    python -m devstack.stack --cluster            # 3 nats-server nodes (JetStream cluster) + 2 volume servers

With `--cluster` (StackConfig.cluster) NATS is a JetStream cluster of 3 nodes on loopback (`nats/n1..n3`,
routes on 127.0.0.1, each its own store) and SeaweedFS gets a second volume server (`s3-volume2/`) with
replication 001, so every blob has a copy on each: the layout the failover drill (bench/drills.py
failover) breaks one node of at a time. The services get every node's URL and create their streams
with 3 replicas.

Everything binds 127.0.0.1. Servers keep their data under `--data` (nats/, s3/), each service logs to
`<data>/logs/<name>.log`. On Ctrl-C or SIGTERM the services stop first (gateway, then the stages), then
SeaweedFS, then nats-server, each by PID. Tests and the benchmark drive the same `Stack` class:

    with Stack(StackConfig(data_dir=tmp, http_port=0)) as stack:
        stack.url, stack.kill("segmenter"), stack.start_service("segmenter"), stack.objects()
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import procs
from devstack.procs import LOOPBACK, NatsCluster, ServerProc, ServerStartError
from devstack.prometheus_local import start_prometheus
from services.common.natsauth import NatsAuth
from services.common.objstore import ObjectStore
from videobg.media.formats import get_format

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "segmenter", "compositor", "encoder")
SERVICES = ("compositor", "encoder", "segmenter", "ingest", "gateway")  # start order; stop is the reverse


@dataclass
class StackConfig:
    data_dir: Path = Path(".data")
    http_port: int = 8080  # 0: a free port
    model_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("VIDEOBG_MODEL_DIR", REPO / "models"))
    )
    default_model: str = ""  # "" : the segmenter's default
    access_key: str = "videobg"
    secret_key: str = "videobg-secret"
    bucket: str = "videobg"
    ack_wait_s: float | None = None  # None: the services' default
    log_level: str = "INFO"
    ready_timeout_s: float = 120.0
    # The local stack is a single-user developer box: no API keys unless asked for (keys are still checked
    # when sent), and loopback URLs may be fetched (the demo's file server, tests' fixtures).
    auth_required: bool = False
    fetch_allow: str = "127.0.0.0/8,::1/128"
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every service
    services: tuple[str, ...] = SERVICES  # a subset runs a partial stack (e.g. the gateway alone)
    # Every service serves /metrics on a free port and a Prometheus (data in <data>/prometheus) scrapes them.
    metrics: bool = False
    prometheus_port: int = 0  # 0: a free port
    scrape_interval_s: float = 5.0
    cluster: bool = False  # 3 NATS nodes (JetStream cluster) and 2 SeaweedFS volume servers, replicated


def _prefix(name: str) -> str:
    return f"VBG_{name.upper()}_"


class Stack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.nats: ServerProc | NatsCluster | None = None  # a NatsCluster when config.cluster
        self.s3: ServerProc | None = None
        self.volumes: list[ServerProc] = []  # SeaweedFS volume servers besides the one inside `s3`
        self.services: dict[str, ServerProc] = {}
        self.grpc_ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.prometheus: ServerProc | None = None
        self.http_port = config.http_port
        self.webhook_secret = secrets.token_hex(32)
        # NATS users with the same permissions as in Kubernetes (services/common/natsauth.py): each service
        # connects as itself; `self.nats.url` carries the admin user (tests, drills, the admin CLI).
        self.nats_auth = NatsAuth.generate()

    # --- addresses -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def s3_endpoint(self) -> str:
        assert self.s3 is not None
        return f"{LOOPBACK}:{self.s3.port}"

    def grpc_target(self, name: str) -> str:
        return f"{LOOPBACK}:{self.grpc_ports[name]}"

    def objects(self) -> ObjectStore:
        c = self.config
        return ObjectStore(self.s3_endpoint, c.access_key, c.secret_key, c.bucket)

    # --- start / stop --------------------------------------------------------------------------------

    def start(self) -> Stack:
        """Servers, bucket, services; returns once every service answers its health checks. Call from the
        main thread: children are asked to die with it (PR_SET_PDEATHSIG follows the starting thread)."""
        try:
            self.start_servers()
            self.objects().ensure_bucket()
            ports = procs.free_ports(len(SERVICES) + (self.http_port == 0))
            self.grpc_ports = dict(zip(SERVICES, ports, strict=False))
            if self.http_port == 0:
                self.http_port = ports[-1]
            names = [n for n in SERVICES if n in self.config.services]
            if self.config.metrics:
                self.metrics_ports = dict(zip(names, procs.free_ports(len(names)), strict=True))
            for name in names:
                self.start_service(name, wait=False)
            self.wait_ready(names)
            if self.config.metrics:
                self.prometheus = start_prometheus(
                    self.data_dir / "prometheus",
                    self.metrics_ports,
                    port=self.config.prometheus_port,
                    scrape_interval_s=self.config.scrape_interval_s,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def start_servers(self) -> None:
        c = self.config
        if not c.cluster:
            self.nats = procs.start_nats(self.data_dir / "nats", auth=self.nats_auth)
            self.s3 = procs.start_seaweedfs(
                self.data_dir / "s3", access_key=c.access_key, secret_key=c.secret_key
            )
            return
        self.nats = procs.start_nats_cluster(self.data_dir / "nats", 3, auth=self.nats_auth)
        # "001": a second copy of each volume on another server of the same rack; a write needs both
        # servers up (it is retried while one is down), a read needs either
        self.s3 = procs.start_seaweedfs(
            self.data_dir / "s3", access_key=c.access_key, secret_key=c.secret_key, replication="001"
        )
        self.volumes = [procs.start_weed_volume(self.data_dir / "s3-volume2", self.s3)]

    @property
    def nats_cluster(self) -> NatsCluster:
        assert isinstance(self.nats, NatsCluster), "not a cluster stack (StackConfig.cluster)"
        return self.nats

    def service_env(self, name: str) -> dict[str, str]:
        assert self.nats is not None
        c, p = self.config, _prefix(name)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "VIDEOBG_MODEL_DIR": str(Path(c.model_dir).resolve()),
            p + "NATS_URL": _without_user(self.nats.url),
            p + "NATS_USER": name,  # its own NATS user, with its permissions
            p + "NATS_PASSWORD": self.nats_auth.passwords[name],
            p + "S3_ENDPOINT": self.s3_endpoint,
            p + "S3_ACCESS_KEY": c.access_key,
            p + "S3_SECRET_KEY": c.secret_key,
            p + "S3_BUCKET": c.bucket,
            p + "GRPC_HOST": LOOPBACK,
            p + "GRPC_PORT": str(self.grpc_ports[name]),
            p + "LOG_LEVEL": c.log_level,
            p + "WORK_DIR": str(self.data_dir / "work" / name),
        }
        if c.default_model:
            env["VIDEOBG_DEFAULT_MODEL"] = c.default_model
        if c.ack_wait_s is not None:
            env[p + "ACK_WAIT_S"] = str(c.ack_wait_s)
        if name in ("gateway", "ingest"):
            env[p + "FETCH_ALLOW"] = c.fetch_allow
        if name in self.metrics_ports:
            env[p + "METRICS_PORT"] = str(self.metrics_ports[name])
        if name == "gateway":
            env[p + "WEBHOOK_SECRET"] = self.webhook_secret  # one per stack: a restarted gateway keeps it
            env[p + "AUTH_REQUIRED"] = "true" if c.auth_required else "false"
            env[p + "HTTP_HOST"] = LOOPBACK
            env[p + "HTTP_PORT"] = str(self.http_port)
        if name == "encoder":
            env[p + "COMPOSITOR_TARGET"] = self.grpc_target("compositor")
        if name == "segmenter":
            env[p + "MODEL_DIR"] = str(Path(c.model_dir).resolve())
        env.update(c.env)
        return env

    def start_service(self, name: str, *, wait: bool = True) -> ServerProc:
        """Start (or replace a dead) `python -m services.<name>` on its fixed ports."""
        old = self.services.get(name)
        if old is not None and old.alive():
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        (self.data_dir / "work" / name).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", f"services.{name}"]
        popen, log_path = procs.spawn(
            argv, self.data_dir / "logs", f"{name}.log", cwd=REPO, env=self.service_env(name)
        )
        ports = {"grpc": self.grpc_ports[name]} | ({"http": self.http_port} if name == "gateway" else {})
        proc = ServerProc(
            name=name,
            popen=popen,
            data_dir=self.data_dir,
            log_path=log_path,
            ports={"client": self.grpc_ports[name], **ports},
            url=self.grpc_target(name),
            stop_grace_s=15.0,  # a stage finishes the message in hand on SIGTERM
        )
        self.services[name] = proc
        if wait:
            self.wait_ready([name])
        return proc

    def _ready(self, name: str) -> bool:
        proc = self.services[name]
        if not _grpc_serving(proc.url):
            return False
        if name == "gateway":
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False
        return True

    def wait_ready(self, names: tuple[str, ...] | list[str]) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.config.ready_timeout_s
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.services[name]
                if not proc.alive():
                    raise ServerStartError(
                        f"{name} exited with {proc.popen.returncode} while starting; log tail:\n{proc.log_tail()}"
                    )
                if self._ready(name):
                    proc.started_in_s = time.monotonic() - t0
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}:\n{self.services[n].log_tail(2000)}" for n in pending)
                raise ServerStartError(
                    f"not ready after {self.config.ready_timeout_s:.0f} s: {pending}\n{tails}"
                )
            if pending:
                time.sleep(0.1)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one service by PID (SIGKILL: as if its machine died) and reap it."""
        proc = self.services[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        proc.popen.wait(timeout=30)

    def stop(self) -> None:
        """The gateway (so no new work comes in), then the stages together, then SeaweedFS, then
        nats-server; by PID, SIGTERM first (a stage drains the job in hand), SIGKILL after a grace.
        Prometheus goes first, so it records no failed scrapes of a stack that is stopping."""
        if self.prometheus is not None:
            self.prometheus.stop()
        gateway = self.services.get("gateway")
        if gateway is not None:
            gateway.stop()
        stages = [p for n, p in self.services.items() if n != "gateway" and p.alive()]
        for proc in stages:  # signal all, then wait for each: they drain in parallel
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in stages:
            proc.stop()
        for server in (*self.volumes, self.s3, self.nats):
            if server is not None:
                server.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _without_user(url: str) -> str:
    """`self.nats.url` carries the admin user; a service logs in as itself instead."""
    return ",".join("nats://" + u.split("://", 1)[-1].rpartition("@")[2] for u in url.split(","))


def _grpc_serving(target: str) -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


# --- a loopback file server, so a local clip can be submitted by URL ----------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class FileServer:
    """Serves one directory read-only on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self, directory: str | Path, port: int = 0):
        self.directory = Path(directory).resolve()
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self._httpd = http.server.ThreadingHTTPServer((LOOPBACK, port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="file-server", daemon=True)
        self._thread.start()

    def url_for(self, path: str | Path) -> str:
        rel = Path(path).resolve().relative_to(self.directory)
        return f"http://{LOOPBACK}:{self.port}/{quote(rel.as_posix())}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- a client for the Pixelcut dialect (demo, tests, benchmark) --------------------------------------------


def submit(base_url: str, video_url: str, background: str = "#000000", fmt: str = "mp4_h264") -> str:
    body = {"video_url": video_url, "background_color": background, "output_format": fmt}
    r = httpx.post(f"{base_url}/v1/video/remove-background", json=body, timeout=10.0, trust_env=False)
    if r.status_code != 202:
        raise RuntimeError(f"submit refused: {r.status_code} {r.text}")
    return r.json()["job_id"]


def wait_job(
    base_url: str, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.5, echo: bool = False
) -> dict:
    """Poll the Pixelcut status endpoint until completed or failed; returns the last status JSON."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        r = httpx.get(f"{base_url}/v1/video/remove-background/job/{job_id}", timeout=10.0, trust_env=False)
        r.raise_for_status()
        body = r.json()
        if echo and (body["status"], body["progress"]) != last:
            last = (body["status"], body["progress"])
            print(f"  {body['status']:<10} {body['progress']:5.1f} %", flush=True)
        if body["status"] in ("completed", "failed"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {body['status']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def download(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with httpx.stream("GET", url, timeout=60.0, trust_env=False) as r, open(dest, "wb") as f:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            f.write(chunk)
    return dest


# --- command line --------------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080, help="REST port of the gateway (0: any free port)")
    p.add_argument("--data", type=Path, default=Path(".data"), help="servers' data and the services' logs")
    p.add_argument(
        "--model-dir", type=Path, default=None, help="weights (default $VIDEOBG_MODEL_DIR or models/)"
    )
    p.add_argument("--model", default="", help="default matting model of the segmenter (light, human, ...)")
    p.add_argument("--serve-dir", type=Path, default=None, help="serve this directory on a loopback URL")
    p.add_argument(
        "--cluster", action="store_true", help="3 NATS nodes and 2 SeaweedFS volume servers, replicated"
    )
    p.add_argument("--demo", action="store_true", help="process --sample through REST, save it, and exit")
    p.add_argument("--metrics", action="store_true", help="/metrics on every service + Prometheus scraping")
    p.add_argument("--prometheus-port", type=int, default=0, help="with --metrics (0: any free port)")
    p.add_argument(
        "--sample", type=Path, default=REPO.parent / "shared" / "media" / "people" / "sam2_01_dog.mp4"
    )
    p.add_argument("--background", default="#1E90FF", help="demo: background_color (hex or transparent)")
    p.add_argument("--format", default="mp4_h264", help="demo: output_format")
    p.add_argument("--out", type=Path, default=Path("out"), help="demo: where the result goes")
    p.add_argument(
        "--auth", action="store_true", help="require API keys, as in production (prints how to make one)"
    )
    return p.parse_args(argv)


def key_instructions(stack: Stack) -> str:
    """How to make a key for this stack (the admin CLI on its nats-server) and run the kit with it."""
    assert stack.nats is not None
    python = Path(sys.executable)
    if python.is_relative_to(REPO):
        python = python.relative_to(REPO)
    return (
        "\nAPI keys are required (X-API-KEY, X-API-Key or Authorization: Bearer). Create one with credits:\n"
        f"  {python} -m services.gateway.admin --nats-url {stack.nats.url} create-key --owner me --credits 600\n"
        "then send it with every request, or run the conformance kit against this stack:\n"
        f"  make conformance BASE={stack.url} KEY=<the key>"
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _demo(stack: Stack, args: argparse.Namespace) -> int:
    sample = args.sample.resolve()
    if not sample.is_file():
        print(f"sample {sample} not found", file=sys.stderr)
        return 2
    with FileServer(sample.parent) as files:
        t0 = time.monotonic()
        job_id = submit(stack.url, files.url_for(sample), args.background, args.format)
        print(f"job {job_id}: {sample.name} -> {args.format} over {args.background}", flush=True)
        print(
            "  submitted as:\n"
            f"  curl -si {stack.url}/v1/video/remove-background -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"video_url": "{files.url_for(sample)}", "background_color": "{args.background}", '
            f'"output_format": "{args.format}"}}\'\n'
            f"  status: curl -s {stack.url}/v1/video/remove-background/job/{job_id}",
            flush=True,
        )
        status = wait_job(stack.url, job_id, echo=True)
    if status["status"] != "completed":
        print(f"job failed: {status.get('error_code')}: {status.get('error')}", file=sys.stderr)
        return 1
    ext = get_format(args.format).extension
    dest = download(status["result_url"], args.out / f"{sample.stem}_stack{ext}")
    print(f"done in {time.monotonic() - t0:.1f} s: {dest.resolve()}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    config = StackConfig(
        data_dir=args.data,
        http_port=args.port,
        default_model=args.model,
        metrics=args.metrics,
        prometheus_port=args.prometheus_port,
        cluster=args.cluster,
        auth_required=args.auth,
    )
    if args.model_dir is not None:
        config.model_dir = args.model_dir
    if not Path(config.model_dir).is_dir():
        print(f"warning: model dir {config.model_dir} does not exist (run `make models`)", file=sys.stderr)
    # Both explicitly: a shell that starts us in the background leaves SIGINT ignored otherwise.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    stack = Stack(config)
    files: FileServer | None = None
    try:
        servers = (
            "3 nats-server nodes, SeaweedFS with 2 volume servers"
            if args.cluster
            else "nats-server, SeaweedFS"
        )
        print(f"starting {servers} and {', '.join(SERVICES)} (data in {stack.data_dir}) ...")
        t0 = time.monotonic()
        stack.start()
        print(f"ready in {time.monotonic() - t0:.1f} s; logs in {stack.data_dir / 'logs'}")
        print(f"REST  {stack.url}   (docs {stack.url}/docs)")
        print(f"web console  {stack.url}/   (open it in a browser)")
        print(f"gRPC  Jobs on {stack.grpc_target('gateway')}")
        if stack.prometheus is not None:
            print(f"Prometheus {stack.prometheus.url}/graph   (alerts {stack.prometheus.url}/alerts)")
        if args.demo:
            return _demo(stack, args)
        example = "https://example.com/video.mp4"
        if args.serve_dir is not None:
            files = FileServer(args.serve_dir)
            print(f"files {args.serve_dir.resolve()} on http://{LOOPBACK}:{files.port}/")
            clips = sorted(
                p for p in files.directory.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".mkv")
            )
            if clips:
                example = files.url_for(clips[0])
        key_header = " -H 'X-API-KEY: <key>'" if args.auth else ""
        if args.auth:
            print(key_instructions(stack), flush=True)
        print(
            "\ntry:\n"
            f"  curl -si {stack.url}/v1/video/remove-background{key_header} -H 'Content-Type: application/json' \\\n"
            f'    -d \'{{"video_url": "{example}", "background_color": "transparent", '
            '"output_format": "webm_vp9"}\'\n'
            f"  curl -s{key_header} {stack.url}/v1/video/remove-background/job/<job_id>\n"
            f"or open the web console: {stack.url}/\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 130 if not args.demo else 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        if files is not None:
            files.close()
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
