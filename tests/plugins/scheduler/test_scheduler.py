"""SchedulerPlugin (issue 19): schedules (cron with tz, @macros, intervals), each tick once
across databases, timeouts that cancel, retries with backoff, enable/disable shared through
the store, coalesce/replay of missed ticks, history, run_job, add_job/remove_job, events.

Time is a ManualClock (``s3db_async.plugin.use_clock``): schedules of minutes run in
milliseconds and nothing asserts wall-clock durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from s3db_async.plugins import SchedulerPlugin
from s3db_async.plugins.scheduler import JobContext, JobSpec, parse_interval

from s3db_async import Database, PluginStorage
from s3db_async.errors import ConfigError, NotFoundError, PluginError
from s3db_async.plugin import ManualClock, use_clock

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock(START)) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


async def until(check: Callable[[], Any], what: str = "condition") -> None:
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def drive(clock: ManualClock, check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Move the clock one second at a time until ``await check()`` holds (bounded)."""
    for _ in range(400):
        if await check():
            return
        clock.advance(1)
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


Opener = Callable[..., Awaitable[tuple[Database, SchedulerPlugin]]]


@pytest.fixture
async def open_db(store_url: str) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(jobs: dict[str, Any], **options: Any) -> tuple[Database, SchedulerPlugin]:
        db = Database(store_url)
        plugin = SchedulerPlugin(jobs=jobs, lease_ttl=30, **options)
        await db.connect()
        await db.use_plugin(plugin)
        opened.append(db)
        return db, plugin

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


def events(plugin: SchedulerPlugin, *names: str) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        plugin.on(name, lambda p, n=name: seen.append((n, p)))
    return seen


# -- configuration ---------------------------------------------------------------------------
def test_intervals_and_macros_parse() -> None:
    assert parse_interval("30s") == 30 and parse_interval("every 1h30m") == 5400
    assert parse_interval(90) == 90 and parse_interval("0 3 * * *") is None
    spec = JobSpec.from_config("n", {"schedule": "@monthly", "action": print})
    assert spec.cron == "0 0 1 * *" and spec.interval is None
    assert JobSpec.from_config("i", {"schedule": "5m", "action": print}).interval == 300
    backoff = JobSpec.from_config("b", {"schedule": 1, "action": print, "backoff": 2})
    assert [backoff.delay(a) for a in (1, 2, 3)] == [2, 4, 8]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"action": print}, "schedule"),
        ({"schedule": "not cron", "action": print}, "schedule"),
        ({"schedule": "@daily"}, "action"),
        ({"schedule": "@daily", "action": print, "tz": "Mars/Olympus"}, "tz"),
        ({"schedule": "@daily", "action": print, "retries": -1}, "retries"),
        ({"schedule": "@daily", "action": print, "timeout": 0}, "timeout"),
        ({"schedule": "@daily", "action": print, "catch_up": "all"}, "catch_up"),
        ({"schedule": "@daily", "action": print, "every": 3}, "every"),
        # s3db.js's action(db): refused when configured, not a failed run at every tick
        ({"schedule": "@daily", "action": lambda db: None}, "action"),
    ],
)
def test_bad_job_options_are_typed_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SchedulerPlugin(jobs={"job": config})
    assert info.value.metadata["field"] == field and info.value.metadata["job"] == "job"
    assert info.value.suggestion


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"history": "yes"}, "history"),
        ({"max_error_length": -1}, "max_error_length"),
        ({"max_error_length": "2000"}, "max_error_length"),
        ({"lease_ttl": 0}, "lease_ttl"),
    ],
)
def test_bad_plugin_options_are_typed_errors(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SchedulerPlugin(jobs={}, **options)
    assert info.value.metadata["field"] == field and info.value.suggestion


# -- schedules -------------------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_macros_honour_the_time_zone(open_db: Opener) -> None:
    """s3db.js runs @monthly/@daily in UTC whatever the tz; here they follow it."""
    _, plugin = await open_db(
        {
            "monthly": {"schedule": "@monthly", "tz": "America/New_York", "action": print},
            "daily": {"schedule": "@daily", "tz": "Asia/Tokyo", "action": print},
            "weekly": {"schedule": "@weekly", "tz": "Europe/Berlin", "action": print},
        }
    )
    await until(lambda: all(plugin.job(n).next_run for n in ("monthly", "daily", "weekly")))
    # now: 2023-11-14 22:13:20 UTC = 17:13 in New York, 07:13 on the 15th in Tokyo
    assert plugin.job("monthly").next_run == datetime(2023, 12, 1, 5, 0, tzinfo=UTC)  # EST
    assert plugin.job("daily").next_run == datetime(2023, 11, 15, 15, 0, tzinfo=UTC)  # JST
    assert plugin.job("weekly").next_run == datetime(2023, 11, 18, 23, 0, tzinfo=UTC)  # CET


async def test_interval_job_runs_and_keeps_history(
    open_db: Opener, clock: ManualClock, store_kind: str
) -> None:
    ran: list[JobContext] = []

    async def action(db: Database, ctx: JobContext) -> None:
        assert isinstance(db, Database)
        ran.append(ctx)

    _, plugin = await open_db({"beat": {"schedule": "10s", "action": action}})
    seen = events(plugin, "scheduler.started", "scheduler.succeeded")
    job = plugin.job("beat")
    await until(lambda: job.lease is not None and job.lease.is_leader, "the lease")

    async def two_runs() -> bool:
        return len(ran) >= 2

    await drive(clock, two_runs, "two runs")
    await until(lambda: len(seen) >= 4, "events")
    history = await plugin.get_history("beat")
    assert len(history) >= 2
    newest = history[0]
    assert newest["status"] == "succeeded" and newest["attempts"] == 1
    assert newest["epoch"] == job.lease.epoch and newest["duration"] >= 0
    assert ran[0].epoch == newest["epoch"] and ran[0].scheduled and ran[0].attempt == 1
    ticks = [datetime.fromisoformat(h["tick"]).timestamp() for h in history]
    assert all(t % 10 == 0 for t in ticks) and len(set(ticks)) == len(ticks)
    assert [n for n, _ in seen[:2]] == ["scheduler.started", "scheduler.succeeded"]


# -- once across databases -------------------------------------------------------------------
async def test_each_tick_runs_once_across_three_databases(
    open_db: Opener, clock: ManualClock
) -> None:
    counts: dict[float, int] = {}

    def action(db: Database, ctx: JobContext) -> None:
        counts[ctx.tick.timestamp()] = counts.get(ctx.tick.timestamp(), 0) + 1

    plugins = [(await open_db({"once": {"schedule": 5, "action": action}}))[1] for _ in range(3)]
    await until(
        lambda: any(p.job("once").lease.is_leader for p in plugins),  # type: ignore[union-attr]
        "a leader",
    )

    async def runs() -> bool:
        return len(counts) >= 4

    await drive(clock, runs, "four ticks")
    await asyncio.sleep(0.1)
    assert set(counts.values()) == {1}, counts
    history = await plugins[0].get_history("once")
    assert len({h["tick"] for h in history}) == len(history) >= 4


# -- timeouts and retries ----------------------------------------------------------------------
@pytest.mark.stores("memory", "file")
async def test_a_timeout_cancels_the_action(open_db: Opener, clock: ManualClock) -> None:
    """s3db.js races the action against a timer and lets it run on; here it is cancelled."""
    state: list[str] = []

    async def slow(db: Database, ctx: JobContext) -> None:
        state.append("started")
        try:
            await asyncio.sleep(3600)  # real time: only a cancellation ends it
            state.append("finished")
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    _, plugin = await open_db({"slow": {"schedule": "1h", "action": slow, "timeout": 5}})
    failed = events(plugin, "scheduler.failed")
    task = asyncio.ensure_future(plugin.run_job("slow"))
    await until(lambda: state == ["started"], "the action to start")
    clock.advance(6)
    entry = await asyncio.wait_for(task, 30)
    assert state == ["started", "cancelled"]
    assert entry["status"] == "timeout" and "timed out after 5s" in entry["error"]
    assert failed and failed[0][1]["status"] == "timeout"
    assert (await plugin.get_history("slow"))[0]["status"] == "timeout"


@pytest.mark.stores("memory", "file")
async def test_retries_back_off_exponentially(open_db: Opener, clock: ManualClock) -> None:
    attempts: list[tuple[int, float]] = []

    async def flaky(db: Database, ctx: JobContext) -> str:
        attempts.append((ctx.attempt, clock.time()))
        if ctx.attempt < 3:
            raise RuntimeError(f"boom {ctx.attempt}")
        return "ok"

    _, plugin = await open_db(
        {"flaky": {"schedule": "1h", "action": flaky, "retries": 3, "backoff": 5}}
    )
    retrying = events(plugin, "scheduler.retrying")
    task = asyncio.ensure_future(plugin.run_job("flaky"))
    await until(lambda: len(attempts) == 1)
    clock.advance(5)
    await until(lambda: len(attempts) == 2)
    clock.advance(10)
    entry = await asyncio.wait_for(task, 30)
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert [t - START for _, t in attempts] == [0, 5, 15]
    assert [p["delay"] for _, p in retrying] == [5, 10]
    assert entry["status"] == "succeeded" and entry["attempts"] == 3 and entry["error"] is None


@pytest.mark.stores("memory")
async def test_retries_exhausted_record_the_last_error(open_db: Opener) -> None:
    def broken(db: Database, ctx: JobContext) -> None:
        raise ValueError(f"bad input on attempt {ctx.attempt}")

    _, plugin = await open_db(
        {"broken": {"schedule": "1h", "action": broken, "retries": 1, "backoff": 0}}
    )
    entry = await plugin.run_job("broken")
    assert entry["status"] == "failed" and entry["attempts"] == 2
    assert entry["error"] == "ValueError: bad input on attempt 2"


# -- enable / disable ----------------------------------------------------------------------
async def test_disable_is_seen_by_the_leader_of_another_database(
    open_db: Opener, clock: ManualClock
) -> None:
    ran: list[float] = []

    def action(db: Database, ctx: JobContext) -> None:
        ran.append(ctx.tick.timestamp())

    _, first = await open_db({"sw": {"schedule": 5, "action": action}})
    _, second = await open_db({"sw": {"schedule": 5, "action": action}})
    skipped_first = events(first, "scheduler.skipped")
    skipped_second = events(second, "scheduler.skipped")
    await second.disable("sw")  # whichever database leads sees the switch
    assert not await first.is_enabled("sw")

    async def one_skip() -> bool:
        return bool(skipped_first or skipped_second)

    await drive(clock, one_skip, "a skipped tick")
    assert ran == []
    await first.enable("sw")

    async def one_run() -> bool:
        return bool(ran)

    await drive(clock, one_run, "a run after enable")
    assert await second.is_enabled("sw")


@pytest.mark.stores("memory", "file")
async def test_remove_job_in_one_process_leaves_the_shared_switch_alone(
    open_db: Opener,
) -> None:
    """remove_job changes *this process's* jobs: a job disabled everywhere stays disabled
    for the processes that still run it (the switch was deleted, re-enabling it)."""
    _, first = await open_db({"sw": {"schedule": "1h", "action": lambda db, ctx: None}})
    _, second = await open_db({"sw": {"schedule": "1h", "action": lambda db, ctx: None}})
    await first.disable("sw")
    await second.remove_job("sw")
    assert "sw" not in second.specs and "sw" in first.jobs
    assert not await first.is_enabled("sw")
    await second.add_job("sw", {"schedule": "1h", "action": lambda db, ctx: None})
    assert not await second.is_enabled("sw")  # re-added: the shared switch still holds


@pytest.mark.stores("memory")
async def test_enabled_false_starts_switched_off_and_run_job_still_runs(open_db: Opener) -> None:
    ran: list[bool] = []
    _, plugin = await open_db(
        {
            "off": {
                "schedule": 5,
                "action": lambda db, ctx: ran.append(ctx.scheduled),
                "enabled": False,
            }
        }
    )
    assert not await plugin.is_enabled("off")
    entry = await plugin.run_job("off")
    assert ran == [False] and entry["scheduled"] is False and entry["epoch"] is None


# -- missed ticks ----------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["coalesce", "replay"])
@pytest.mark.stores("memory", "file")
async def test_missed_ticks_after_an_outage_by_policy(
    open_db: Opener, clock: ManualClock, policy: str
) -> None:
    ran: list[tuple[float, bool]] = []

    def action(db: Database, ctx: JobContext) -> None:
        ran.append((ctx.tick.timestamp(), ctx.replayed))

    jobs = {"m": {"schedule": 10, "action": action, "catch_up": policy, "max_catch_up": 4}}
    db, plugin = await open_db(jobs)
    await until(lambda: plugin.job("m").lease.is_leader, "the lease")  # type: ignore[union-attr]

    async def first() -> bool:
        return len(ran) >= 1

    await drive(clock, first, "the first run")
    await plugin.job("m").wait_idle()  # the run has recorded its tick
    await db.disconnect()  # the outage: 6 ticks pass with nobody running
    last = ran[-1][0]
    clock.advance(60)
    ran.clear()
    _, plugin = await open_db(jobs)

    async def after() -> bool:
        return bool(ran) and not plugin.job("m").running

    await drive(clock, after, "the run after the outage")
    await asyncio.sleep(0.05)
    first_run = [t for t, _ in ran]
    if policy == "coalesce":
        assert len(first_run) == 1 and first_run[0] > last + 60
    else:  # replay: the 3 newest missed ticks (max_catch_up=4 with the current one), in order
        current = first_run[3]
        assert first_run[:4] == [current - 30, current - 20, current - 10, current]
        assert [r for _, r in ran[:4]] == [True, True, True, False]
        history = await plugin.get_history("m")
        assert sum(1 for h in history if h["replayed"]) == 3


# -- control ---------------------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_add_remove_and_unknown_jobs(open_db: Opener) -> None:
    _, plugin = await open_db({})
    seen = events(plugin, "scheduler.job_added", "scheduler.job_removed")
    await plugin.add_job("later", {"schedule": "@hourly", "action": lambda db, ctx: "x"})
    assert plugin.job("later").next_run is not None
    with pytest.raises(ConfigError):
        await plugin.add_job("later", {"schedule": "@hourly", "action": print})
    assert (await plugin.run_job("later"))["status"] == "succeeded"
    await plugin.remove_job("later")
    assert "later" not in plugin.jobs and "later" not in plugin.specs
    with pytest.raises(NotFoundError):
        await plugin.run_job("later")
    with pytest.raises(NotFoundError):
        await plugin.disable("nope")
    assert [n for n, _ in seen] == ["scheduler.job_added", "scheduler.job_removed"]


@pytest.mark.stores("memory")
async def test_run_job_refuses_while_running_and_history_off(open_db: Opener) -> None:
    gate = asyncio.Event()

    async def wait(db: Database, ctx: JobContext) -> None:
        await gate.wait()

    _, plugin = await open_db({"w": {"schedule": "1h", "action": wait}}, history=False)
    run = asyncio.ensure_future(plugin.job("w").run_now())
    await until(lambda: plugin.job("w").running)
    with pytest.raises(PluginError):
        await plugin.run_job("w")
    gate.set()
    assert await run
    with pytest.raises(PluginError):
        await plugin.get_history()


@pytest.mark.stores("memory")
async def test_run_job_refuses_a_second_manual_run_while_the_first_goes_on(
    open_db: Opener,
) -> None:
    """The docs: run_job raises PluginError "if it is running here" - a manual run too."""
    gate = asyncio.Event()
    calls: list[int] = []

    async def wait(db: Database, ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        await gate.wait()

    _, plugin = await open_db({"w": {"schedule": "1h", "action": wait}})
    first = asyncio.ensure_future(plugin.run_job("w"))
    await until(lambda: calls == [1], "the first run")
    with pytest.raises(PluginError) as info:
        await asyncio.wait_for(plugin.run_job("w"), 10)  # bounded: it must refuse at once
    assert info.value.metadata["reason"] == "running"
    gate.set()
    assert (await first)["status"] == "succeeded" and calls == [1]
    assert (await plugin.run_job("w"))["status"] == "succeeded"  # free again
    with pytest.raises(ConfigError) as bad:
        await plugin.get_history("w", status="ok")
    assert bad.value.metadata["field"] == "status"
    with pytest.raises(ConfigError) as bad:
        await plugin.get_history("w", limit=-1)
    assert bad.value.metadata["field"] == "limit"
    assert len(await plugin.get_history("w", status="succeeded", limit=1)) == 1


@pytest.mark.stores("memory", "file")
async def test_uninstall_purges_history_and_switches(open_db: Opener) -> None:
    db, plugin = await open_db({"p": {"schedule": "1h", "action": lambda db, ctx: None}})
    await plugin.run_job("p")
    await plugin.disable("p")
    assert plugin.history is not None
    name = plugin.history.name
    assert name == "plg_scheduler_history" and await plugin.history.count() == 1
    await db.uninstall_plugin(plugin, purge_data=True)
    assert not db.resource_exists(name)
    assert await PluginStorage(db, "scheduler").list() == []


@pytest.mark.stores("memory", "file")
async def test_replay_reruns_a_tick_whose_process_died_mid_run(
    open_db: Opener, clock: ManualClock
) -> None:
    """The tick is marked done only after its run: a run cut off by the process's end leaves
    the tick undone, and the next leader replays it (at least once per tick)."""
    ran: list[tuple[float, bool]] = []
    hang = asyncio.Event()

    async def action(db: Database, ctx: JobContext) -> None:
        ran.append((ctx.tick.timestamp(), ctx.replayed))
        if len(ran) == 2:
            await hang.wait()  # the second tick never finishes in the first "process"

    jobs = {"r": {"schedule": 10, "action": action, "catch_up": "replay"}}
    db, plugin = await open_db(jobs)
    await until(lambda: plugin.job("r").lease.is_leader, "the lease")  # type: ignore[union-attr]

    async def second_started() -> bool:
        return len(ran) >= 2

    await drive(clock, second_started, "the second run")
    cut = ran[1][0]
    await db.disconnect()  # dies mid-run: the tick is not marked done
    _, plugin = await open_db(jobs)

    async def replayed() -> bool:
        return len(ran) >= 4 and not plugin.job("r").running

    await drive(clock, replayed, "the replay")
    assert ran[2] == (cut, True) and ran[3][0] > cut
    statuses = {h["tick"]: h["status"] for h in await plugin.get_history("r")}
    assert statuses[datetime.fromtimestamp(cut, UTC).isoformat()] == "succeeded"
