"""Overlapped stages (videobg.overlap): one thread a stage, or a pool of workers that keeps frame order."""

import random
import threading
import time

import pytest

from videobg.overlap import StageClock, threaded

pytestmark = pytest.mark.unit


def _jittered(x: int) -> int:
    time.sleep(random.random() * 0.005)  # finishes out of order across workers
    return x * x


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_come_out_in_order_whatever_the_workers(workers):
    clock = StageClock()
    out = list(threaded(range(60), _jittered, name="sq", maxsize=3, clock=clock, workers=workers))
    assert out == [x * x for x in range(60)]
    assert clock.busy["sq"] > 0


def test_workers_run_at_the_same_time():
    # every call waits for the other three: with fewer than 4 at once the barrier breaks (after 30 s)
    barrier = threading.Barrier(4, timeout=30)

    def meet(x: int) -> int:
        barrier.wait()
        return x

    assert list(threaded(range(8), meet, name="meet", workers=4)) == list(range(8))


def test_a_worker_failure_reaches_the_consumer_and_stops_the_pool():
    def fail_at_5(x: int) -> int:
        if x == 5:
            raise ValueError("frame 5 is bad")
        return x

    got = []
    with pytest.raises(ValueError, match="frame 5"):
        for x in threaded(range(100), fail_at_5, name="f", workers=3):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + 30
    while any(t.name.startswith("stage-f") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("stage-f") for t in threading.enumerate())


def test_closing_early_stops_the_feeder_and_the_workers():
    fed = []

    def source():
        for i in range(10_000):
            fed.append(i)
            yield i

    it = threaded(source(), lambda x: x + 1, name="early", maxsize=2, workers=3)
    assert [next(it) for _ in range(3)] == [1, 2, 3]
    it.close()
    assert not any(t.name.startswith("stage-early") for t in threading.enumerate())
    assert len(fed) < 100  # bounded read-ahead: the queue and the workers in flight, no more


def test_a_stage_never_iterated_starts_no_thread():
    before = threading.active_count()
    it = threaded(range(5), lambda x: x, name="lazy", workers=2)
    assert threading.active_count() == before
    it.close()


def test_workers_must_be_positive():
    with pytest.raises(ValueError):
        list(threaded(range(3), lambda x: x, name="bad", workers=0))


def test_auto_refine_workers_follow_the_cores(monkeypatch):
    from videobg import settings as core_settings

    for cores, want in [(1, 1), (2, 1), (4, 1), (7, 1), (8, 2), (16, 4), (64, 4)]:
        monkeypatch.setattr(core_settings, "usable_cpus", lambda c=cores: c)
        assert core_settings.CoreSettings().resolved_refine_workers() == want, cores
    assert core_settings.CoreSettings(refine_workers=3).resolved_refine_workers() == 3
    with pytest.raises(ValueError):
        core_settings.CoreSettings(refine_workers=-1).resolved_refine_workers()


def test_the_cgroup_cpu_quota_caps_the_usable_cores(tmp_path, monkeypatch):
    # a Kubernetes `limits.cpu` shows only as a cgroup quota: the affinity mask still lists every core of
    # the node, and thread counts sized from it would be throttled
    from videobg import settings as core_settings

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert core_settings.cgroup_cpu_quota(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert core_settings.cgroup_cpu_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("400000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert core_settings.cgroup_cpu_quota(v1) == 4.0
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert core_settings.cgroup_cpu_quota(v1) is None
    assert core_settings.cgroup_cpu_quota(tmp_path / "absent") is None

    monkeypatch.setattr(core_settings.os, "sched_getaffinity", lambda pid: set(range(64)))
    (v2 / "cpu.max").write_text("200000 100000\n")
    monkeypatch.setattr(core_settings, "CGROUP_ROOT", v2)
    assert core_settings.usable_cpus() == 2
    assert core_settings.CoreSettings().resolved_threads() == 1
    assert core_settings.CoreSettings().resolved_refine_workers() == 1
    (v2 / "cpu.max").write_text("250000 100000\n")  # 2.5 CPUs: rounded up
    assert core_settings.usable_cpus() == 3
    monkeypatch.setattr(core_settings, "CGROUP_ROOT", tmp_path / "absent")
    assert core_settings.usable_cpus() == 64
    assert core_settings.CoreSettings().resolved_refine_workers() == 4
