"""Jobs (issue 18 item 3): ``every`` and ``cron`` with a ManualClock, no overlapping runs,
timeouts that cancel, errors emitted, pause/resume/run_now/cancel, clean stop, and
``leader=True`` ticks run once across databases (on every store) and across 4 OS processes
(file, SeaweedFS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from s3db_async import Database, PluginStorage
from s3db_async._clock import ManualClock, use_clock
from s3db_async.errors import ConfigError, LeaseLostError
from s3db_async.plugin import Job, JobRun
from s3db_async.stores import open_store

from ._runtime import TIMEOUT, FlakyStore, Runtime, answer, go, node_factory, reaped, until
from ._runtime import spawn_runtime as spawn

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, a multiple of 10 s


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock(START)) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


class Node:
    def __init__(self, db: Database, store: FlakyStore, plugin: Runtime) -> None:
        self.db, self.store, self.plugin = db, store, plugin
        self.events: list[tuple[str, dict[str, Any]]] = []
        for event in ("job.succeeded", "job.failed", "job.skipped"):
            plugin.on(event, lambda p, e=event: self.events.append((e, p)))

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


@pytest.fixture
async def nodes(store_url: str) -> AsyncIterator[Callable[[], Awaitable[Node]]]:
    async with node_factory(store_url, Node) as make:
        yield make


@pytest.fixture
async def node(nodes: Callable[[], Awaitable[Node]]) -> Node:
    return await nodes()


async def tick(clock: ManualClock, seconds: float = 10) -> None:
    """Advance the clock and let the woken tasks run."""
    clock.advance(seconds)
    for _ in range(5):
        await asyncio.sleep(0)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- every / cron ----------------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_every_runs_on_schedule(node: Node, clock: ManualClock) -> None:
    calls: list[float] = []

    async def fn() -> str:
        calls.append(clock.time())
        return "ok"

    job = node.plugin.every(10, fn, name="count")
    assert isinstance(job, Job) and node.plugin.jobs == {"count": job}
    await until(lambda: job.next_run is not None)
    assert job.next_run == at(START + 10) and job.last_run is None
    await tick(clock)
    await until(lambda: job.runs == 1, "the first run")
    assert calls == [START + 10] and job.last_run == at(START + 10)
    assert job.next_run == at(START + 20) and job.last_result == "ok"
    await tick(clock)
    await until(lambda: job.runs == 2, "the second run")
    assert node.names() == ["job.succeeded", "job.succeeded"]
    payload = node.events[0][1]
    assert payload["name"] == "count" and payload["tick"] == at(START + 10)
    assert payload["scheduled"] is True and payload["duration"] >= 0


@pytest.mark.stores("memory")
async def test_missed_ticks_collapse_into_one_run(node: Node, clock: ManualClock) -> None:
    ticks: list[datetime] = []

    def fn(run: JobRun) -> None:  # sync functions and a JobRun argument are fine
        ticks.append(run.tick)

    job = node.plugin.every(10, fn, name="collapse")
    await until(lambda: job.next_run is not None)
    await tick(clock, 35)
    await until(lambda: job.runs == 1)
    await asyncio.sleep(0.05)
    assert ticks == [at(START + 30)] and job.runs == 1
    assert job.next_run == at(START + 40)


@pytest.mark.stores("memory")
async def test_cron_in_a_time_zone(node: Node, clock: ManualClock) -> None:
    ticks: list[datetime] = []
    job = node.plugin.cron("*/5 * * * *", lambda run: ticks.append(run.tick), name="five")
    nightly = node.plugin.cron("0 3 * * *", lambda: None, tz="Europe/Berlin", name="nightly")
    await until(lambda: job.next_run is not None and nightly.next_run is not None)
    assert job.next_run == datetime(2023, 11, 14, 22, 15, tzinfo=UTC)
    assert nightly.next_run == datetime(2023, 11, 15, 2, 0, tzinfo=UTC)  # 03:00 CET
    await tick(clock, 100)  # 22:15:00
    await until(lambda: job.runs == 1)
    assert ticks == [datetime(2023, 11, 14, 22, 15, tzinfo=UTC)]
    assert job.next_run == datetime(2023, 11, 14, 22, 20, tzinfo=UTC)


# -- overlap, timeout, errors --------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_a_tick_during_a_run_is_skipped_and_counted(node: Node, clock: ManualClock) -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def slow() -> None:
        started.append(1)
        await release.wait()

    job = node.plugin.every(10, slow, name="slow")
    await until(lambda: job.next_run is not None)
    await tick(clock)
    await until(lambda: job.running)
    await tick(clock)
    await until(lambda: job.skipped == 1, "a skip")
    assert node.names() == ["job.skipped"] and node.events[0][1]["reason"] == "overlap"
    assert not await job.run_now()  # a manual run does not overlap either
    assert job.skipped == 2 and started == [1]
    release.set()
    await job.wait_idle()
    await until(lambda: job.runs == 1)
    await tick(clock)
    await until(lambda: job.runs == 2)
    assert started == [1, 1]


@pytest.mark.stores("memory")
async def test_a_timeout_cancels_the_coroutine(node: Node, clock: ManualClock) -> None:
    seen: list[str] = []

    async def stuck() -> None:
        seen.append("start")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    job = node.plugin.every(10, stuck, name="stuck", timeout=5)
    await until(lambda: job.next_run is not None)
    await tick(clock)
    await until(lambda: job.running)
    await tick(clock, 4.9)
    assert job.running
    await tick(clock, 0.2)
    await until(lambda: not job.running, "the timeout")
    assert seen == ["start", "cancelled"]
    assert node.names() == ["job.failed"]
    payload = node.events[0][1]
    assert payload["reason"] == "timeout" and isinstance(payload["error"], TimeoutError)
    assert job.failures == 1 and isinstance(job.last_error, TimeoutError)


@pytest.mark.stores("memory")
async def test_errors_are_logged_and_emitted(
    node: Node, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise ValueError("boom")

    job = node.plugin.every(10, broken, name="broken")
    await until(lambda: job.next_run is not None)
    with caplog.at_level(logging.ERROR, logger="s3db_async.plugins.runtime"):
        await tick(clock)
        await until(lambda: job.failures == 1)
    assert any("job broken failed" in r.getMessage() for r in caplog.records)
    assert node.names() == ["job.failed"]
    assert isinstance(node.events[0][1]["error"], ValueError)
    assert node.events[0][1]["reason"] == "error"
    await tick(clock)
    await until(lambda: job.failures == 2)  # the schedule goes on


# -- control -------------------------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_pause_resume_run_now_and_cancel(node: Node, clock: ManualClock) -> None:
    calls: list[bool] = []

    async def fn(run: JobRun) -> None:
        calls.append(run.scheduled)

    job = node.plugin.every(10, fn, name="ctl")
    await until(lambda: job.next_run is not None)
    job.pause()
    assert job.paused and job.next_run is None
    await tick(clock)
    await asyncio.sleep(0.02)
    assert calls == []
    job.resume()
    await tick(clock)
    await until(lambda: calls == [True])
    await job.wait_idle()
    assert await job.run_now()
    assert calls == [True, False]
    await job.cancel()
    assert job.cancelled and "ctl" not in node.plugin.jobs
    await tick(clock)
    await asyncio.sleep(0.02)
    assert calls == [True, False]


@pytest.mark.stores("memory", "file")
async def test_uninstall_and_disconnect_stop_jobs_cleanly(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a = await nodes()
    seen: list[str] = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    job = a.plugin.every(10, stuck, name="stuck")
    other = a.plugin.every(10, stuck, name="leader", leader=True)
    await until(lambda: job.next_run is not None and other.lease is not None)
    await tick(clock)
    await until(lambda: job.running)
    await a.db.uninstall_plugin(a.plugin)
    assert seen[:1] == ["cancelled"] and job.cancelled and other.cancelled
    assert a.plugin.tasks == frozenset() and a.plugin.jobs == {}
    assert other.lease is not None and not other.lease.is_leader

    b = await nodes()
    job = b.plugin.every(10, stuck, name="stuck")
    await tick(clock)
    await until(lambda: job.running)
    await b.db.disconnect()
    assert job.cancelled and b.plugin.tasks == frozenset()


@pytest.mark.stores("memory")
async def test_bad_job_arguments_raise_config_errors(node: Node) -> None:
    plugin = node.plugin
    for make in (
        lambda: plugin.every(0, lambda: None),
        lambda: plugin.every(-5, lambda: None),
        lambda: plugin.every(float("inf"), lambda: None),
        lambda: plugin.every(10, lambda: None, timeout=0),
        lambda: plugin.every(10, lambda: None, name="has space"),
        lambda: plugin.cron("every day", lambda: None),
        lambda: plugin.cron("* * * * *", lambda: None, tz="Mars/Olympus"),
    ):
        with pytest.raises(ConfigError) as info:
            make()
        assert info.value.metadata["field"] and info.value.metadata["reason"]
        assert info.value.suggestion or info.value.metadata["field"] in ("timeout", "seconds")
    plugin.every(10, lambda: None, name="dup")
    with pytest.raises(ConfigError, match="already has a job"):
        plugin.every(10, lambda: None, name="dup")
    default = plugin.every(10, lambda: None).name  # from the function's qualified name
    assert default.startswith("test_bad_job_arguments_raise_config_errors.")


# -- leader jobs ---------------------------------------------------------------------------------
async def test_a_leader_job_runs_each_tick_once_across_databases(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    ran: list[tuple[str, datetime, int | None]] = []
    a, b = await nodes(), await nodes()

    def work(who: str) -> Callable[[JobRun], Awaitable[None]]:
        async def fn(run: JobRun) -> None:
            ran.append((who, run.tick, run.fence.epoch if run.fence else None))

        return fn

    ja = a.plugin.every(10, work("a"), name="tick", leader=True, lease_ttl=60)
    await until(lambda: ja.lease is not None and ja.lease.is_leader, "a to lead")
    jb = b.plugin.every(10, work("b"), name="tick", leader=True, lease_ttl=60)
    await until(lambda: jb.next_run is not None)
    for n in range(1, 4):
        await tick(clock)
        await until(lambda n=n: len(ran) == n and not ja.running, f"tick {n}")
    assert [who for who, _, _ in ran] == ["a", "a", "a"]
    a.store.down = True  # a cannot renew: it stops leading, b takes over after the ttl
    for _ in range(8):
        await tick(clock)
        await asyncio.sleep(0.02)
    a.store.down = False
    await until(lambda: jb.lease is not None and jb.lease.is_leader, "b to lead")
    await until(lambda: not jb.running)
    count = len(ran)
    await tick(clock)
    await until(lambda: len(ran) == count + 1, "b's tick")
    assert ran[-1][0] == "b" and ran[-1][2] == 2
    ticks = Counter(t for _, t, _ in ran)
    assert max(ticks.values()) == 1, f"a tick ran twice: {ran}"
    state = await PluginStorage(b.db, "runtime").get("jobs/tick")
    assert state["tick"] == ran[-1][1].timestamp() and state["epoch"] == 2


@pytest.mark.parametrize("error", ["unknown", "precondition"])
@pytest.mark.stores("memory", "file")
async def test_a_lost_reply_on_the_tick_claim_runs_the_tick_once(
    node: Node, clock: ManualClock, error: str
) -> None:
    ran: list[datetime] = []
    job = node.plugin.every(10, lambda run: ran.append(run.tick), name="tick", leader=True)
    await until(lambda: job.lease is not None and job.lease.is_leader)
    node.store.lose(1, match=lambda key: key.endswith("/jobs/tick"), error=error)
    await tick(clock)
    await until(lambda: job.runs == 1 and not job.running)
    await tick(clock)
    await until(lambda: job.runs == 2)
    assert node.store.lost == ["plugin=runtime/jobs/tick"]
    assert ran == [at(START + 10), at(START + 20)]


@pytest.mark.stores("memory")
async def test_a_leader_job_run_is_cancelled_when_the_lease_is_lost(
    node: Node, clock: ManualClock
) -> None:
    seen: list[str] = []

    async def long(run: JobRun) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    job = node.plugin.every(10, long, name="long", leader=True, lease_ttl=30)
    await until(lambda: job.lease is not None and job.lease.is_leader)
    await tick(clock)
    await until(lambda: job.running)
    node.store.down = True
    await tick(clock, 25)  # past the lease deadline (ttl - margin)
    await until(lambda: not job.running, "the run to be cancelled")
    node.store.down = False
    assert seen == ["cancelled"]
    assert [e for e in node.names() if e != "job.skipped"] == ["job.failed"]
    failed = next(p for e, p in node.events if e == "job.failed")
    assert failed["reason"] == "leader_lost" and isinstance(failed["error"], LeaseLostError)


# -- across OS processes ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
async def test_a_leader_job_ticks_once_per_period_across_four_processes(
    store_url: str, store_kind: str
) -> None:
    period, lease_ttl = ("1", "6") if store_kind == "seaweedfs" else ("0.5", "3")
    with reaped() as procs:
        procs.extend(spawn("job", store_url, f"w{i}", period, lease_ttl) for i in range(4))
        for p in procs:
            assert answer(p) == "ready"
        go(*procs)
        store = open_store(store_url)
        await store.connect()
        storage = PluginStorage(store, "runtime")

        async def runs() -> list[tuple[str, str]]:
            keys = await storage.list("runs/")
            return [tuple(k.rsplit("/", 2)[-2:]) for k in keys]  # type: ignore[misc]

        async def wait_runs(n: int) -> list[tuple[str, str]]:
            for _ in range(int(TIMEOUT / 0.2)):
                found = await runs()
                if len(found) >= n:
                    return found
                await asyncio.sleep(0.2)
            raise AssertionError(f"fewer than {n} runs")

        first = await wait_runs(3)
        state = await storage.get("jobs/tick")  # the last tick claimed, by whom (host:pid)
        leader = next(p for p in procs if state["holder"].endswith(f":{p.pid}"))
        os.kill(leader.pid, signal.SIGKILL)  # the leader dies: another takes the ticks over
        leader.wait(timeout=30)
        after = await wait_runs(len(await runs()) + 3)
        go(*(p for p in procs if p is not leader), line="stop")
        answers = [answer(p) for p in procs if p is not leader]
        for p in procs:
            if p is not leader:
                assert p.wait(timeout=TIMEOUT) == 0
        final = await runs()
        await store.close()
    assert state is not None and state["epoch"] >= 1
    per_tick = Counter(t for t, _ in final)
    assert max(per_tick.values()) == 1, f"a tick ran twice: {sorted(final)}"
    workers = {w for _, w in final}
    assert len(workers) >= 2 and len(after) >= len(first) + 3
    assert all(a["failures"] == 0 for a in answers)
