"""Replicated JetStream on a real 3-node nats-server cluster on loopback (procs.start_nats_cluster).

What the services rely on when a NATS server dies: streams and KV buckets get 3 replicas against a cluster
(1 against a lone server) and a single-replica one is scaled up in place; a client given every node's URL
rides through a kill -9 of the meta leader and of a stream leader; every publish JetStream acknowledged is
still there afterwards, and a publish retried with its Nats-Msg-Id is stored once; the durable pull
consumer keeps delivering to a worker bound before the failover.

One cluster for the module; the failover test runs last in the file, since it leaves a node restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from devstack import procs
from devstack.procs import NatsCluster
from services.common import bus
from services.common.jobstore import JobStore
from services.common.record import Job
from videobg import nats_subjects
from videobg.errors import Conflict, Transient

pytestmark = pytest.mark.integration

FAILOVER_DEADLINE_S = 240.0
STREAMS = (
    nats_subjects.WORK_STREAM,
    nats_subjects.EVENTS_STREAM,
    f"KV_{nats_subjects.JOBS_BUCKET}",
    f"KV_{nats_subjects.KEYS_BUCKET}",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = procs.start_nats_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()


async def _replicas(js, stream: str) -> int:
    return (await js.stream_info(stream)).config.num_replicas or 1


async def _retry(what, deadline_s: float = 30.0):
    """Call `what()` until it does not raise Transient (NATS electing a leader), within a deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return await what()
        except Transient:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


def test_cluster_nodes_are_separate_processes_with_their_own_store(cluster: NatsCluster) -> None:
    assert len({s.pid for s in cluster.servers}) == 3
    assert len({s.data_dir for s in cluster.servers}) == 3
    assert all(s.url.startswith("nats://127.0.0.1:") for s in cluster.servers)
    jsz = cluster.monitor("/jsz")
    assert jsz["meta_cluster"]["cluster_size"] == 3
    assert cluster.meta_leader() in {n.name for n in cluster.nodes}


async def test_lone_server_gets_one_replica_and_refuses_three(nats_url: str) -> None:
    nc = await bus.connect(nats_url)
    try:
        js = nc.jetstream()
        assert bus.cluster_size(nc) == 1
        assert await bus.ensure_streams(js) == 1
        with pytest.raises(bus.ReplicaShortfall, match="3 replicas wanted"):
            await bus.ensure_kv(js, "vbg_test_r3", replicas=3)
    finally:
        await nc.close()


async def test_single_replica_streams_are_scaled_up_in_place(cluster: NatsCluster) -> None:
    nc = await bus.connect(cluster.url)
    try:
        # scaling to 3 replicas starts an election on every stream (ensure_streams waits for each new
        # leader); slack for a loaded machine beyond nats-py's 5 s default
        js = nc.jetstream(timeout=30.0)
        assert bus.cluster_size(nc) == 3
        # an installation from before the cluster: everything with one replica, and a record in it
        assert await bus.ensure_streams(js, 1) == 1
        assert [await _replicas(js, s) for s in STREAMS] == [1, 1, 1, 1]
        await JobStore(js).create(Job(id="scaleupjob0001", owner="acme"))
        await bus.publish_work(
            js, nats_subjects.WORK_INGEST, {"job_id": "scaleupjob0001"}, "scaleupjob0001:ingest"
        )

        assert await bus.ensure_streams(js) == 3  # the default against a cluster
        assert [await _replicas(js, s) for s in STREAMS] == [3, 3, 3, 3]
        assert (await JobStore(js).get("scaleupjob0001")).owner == "acme"
        assert (await js.stream_info(nats_subjects.WORK_STREAM)).state.messages == 1

        await bus.ensure_streams(js, 1)  # a service still configured for one replica shrinks nothing
        assert [await _replicas(js, s) for s in STREAMS] == [3, 3, 3, 3]
        with pytest.raises(bus.ReplicaShortfall, match="at most 3"):
            await bus.ensure_streams(js, 5)
        await js.purge_stream(nats_subjects.WORK_STREAM)
    finally:
        await nc.close()


def test_acknowledged_writes_survive_killing_the_leaders(cluster: NatsCluster) -> None:
    # its own deadline: two elections and two node restarts outlast the tier's 60 s on a loaded machine
    asyncio.run(asyncio.wait_for(_failover(cluster), FAILOVER_DEADLINE_S))


async def _failover(cluster: NatsCluster) -> None:
    """kill -9 the meta leader, restart it, then kill -9 the work stream's leader: every acked write is
    kept, retried publishes land once, and a worker bound before the failover keeps receiving work."""
    nc = await bus.connect(cluster.url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js)
        jobs = JobStore(js)
        got: list[str] = []

        async def handle(d: bus.Delivery) -> None:
            got.append(d.payload["n"])

        worker = bus.Worker(
            js,
            nats_subjects.WORK_INGEST,
            nats_subjects.CONSUMER_INGEST,
            handle,
            ack_wait=5.0,
            fetch_timeout=0.5,
        )
        task = asyncio.create_task(worker.run())
        acked: list[str] = []
        seq0 = (await js.stream_info(nats_subjects.WORK_STREAM)).state.last_seq

        async def write(n: str) -> None:
            async def once() -> None:
                with contextlib.suppress(Conflict):  # an earlier try was stored, its ack lost
                    await jobs.create(Job(id=f"failover{n}", owner="acme"))
                await bus.publish_work(js, nats_subjects.WORK_INGEST, {"n": n}, f"failover{n}:ingest")

            await _retry(once)
            acked.append(n)

        try:
            for i in range(10):
                await write(f"{i:06d}")
            # one node down at a time: three nodes keep a quorum (two) through the loss of any one
            await _until_current(js)
            meta = cluster.meta_leader()
            cluster.kill(cluster.index(meta))
            for i in range(10, 20):
                await write(f"{i:06d}")
            cluster.restart(cluster.index(meta))
            await _until_current(js)
            leader = (await _retry(lambda: _stream_info(js, nats_subjects.WORK_STREAM))).cluster.leader
            cluster.kill(cluster.index(leader))
            for i in range(20, 30):
                await write(f"{i:06d}")
            cluster.restart(cluster.index(leader))
            for i in range(30, 40):
                await write(f"{i:06d}")

            end = time.monotonic() + 90
            while len(set(got)) < len(acked) and time.monotonic() < end:
                await asyncio.sleep(0.2)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)  # and raises what ended the worker early, if anything did

        assert sorted(set(got)) == sorted(acked), "an acknowledged unit of work was lost"
        last_seq = (await _retry(lambda: _stream_info(js, nats_subjects.WORK_STREAM))).state.last_seq
        assert last_seq - seq0 == len(acked), "a retried publish was stored twice"
        records = await _retry(lambda: _all_records(jobs))
        assert {f"failover{n}" for n in acked} <= set(records)
        # every node is back and current: a replica of each stream on every node
        for stream in STREAMS:
            info = await _retry(lambda s=stream: _stream_info(js, s))
            assert info.config.num_replicas == 3
            assert len(info.cluster.replicas or []) == 2
    finally:
        await nc.close()


async def _until_current(js, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while not await bus.replicas_current(js, STREAMS):
        assert time.monotonic() < end, "replicas did not catch up"
        await asyncio.sleep(0.2)


async def _stream_info(js, stream: str):
    with bus_errors():
        return await js.stream_info(stream)


async def _all_records(jobs: JobStore) -> dict[str, Job]:
    return {j.id: j for j in await jobs.list(limit=1000)}


@contextlib.contextmanager
def bus_errors() -> Iterator[None]:
    try:
        yield
    except bus.NATS_DOWN as e:
        raise Transient(repr(e)) from e


def test_blobs_have_a_copy_on_each_volume_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SeaweedFS with replication 001 and two volume servers (the local cluster stack's layout): with one
    volume server stopped every object still reads; once it is back, new writes go through again."""
    from services.common.objstore import ObjectStore

    d = tmp_path_factory.mktemp("s3-two-volumes")
    s3 = procs.start_seaweedfs(d / "s3", access_key="k", secret_key="secret-key-1", replication="001")
    volume = None
    try:
        volume = procs.start_weed_volume(d / "volume2", s3)
        assert procs.data_nodes(s3.ports["master"]) == 2
        store = ObjectStore(f"127.0.0.1:{s3.port}", "k", "secret-key-1", "replicated")
        store.ensure_bucket()
        blobs = {f"jobs/j{i}/result.mp4": bytes([i]) * (1000 + i) for i in range(6)}
        for key, data in blobs.items():
            store.put_bytes(key, data)
        volume.stop()
        assert {k: store.get_bytes(k) for k in blobs} == blobs  # each read from the copy left
        volume = procs.start_weed_volume(
            d / "volume2", s3, volume.ports["volume"], volume.ports["volume_grpc"]
        )
        end = time.monotonic() + 60
        while True:  # the master takes the server back within a heartbeat or two
            try:
                store.put_bytes("jobs/after/result.mp4", b"x" * 10)
                break
            except Transient:
                assert time.monotonic() < end, "writes did not resume with both volume servers up"
                time.sleep(0.5)
        assert store.get_bytes("jobs/after/result.mp4") == b"x" * 10
    finally:
        if volume is not None:
            volume.stop()
        s3.stop()
