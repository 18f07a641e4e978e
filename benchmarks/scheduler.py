"""Section ``scheduler``: what a SchedulerPlugin job costs (issue 19).

- ``per_tick``: one database runs an interval job (a no-op action) for a number of ticks on
  a ManualClock; the store requests per tick on the leader (the runtime's tick claim, the
  shared switch, the history entry; lease renewals included) for ``coalesce`` and ``replay``.
- ``run_job``: latency and requests of ``run_job`` (a manual run with its history entry).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from s3db_async.plugins import SchedulerPlugin

from benchmarks._common import BenchContext
from s3db_async import Database
from s3db_async.plugin import ManualClock, use_clock

TITLE = "scheduler: store requests per tick on the leader and per manual run"


async def _per_tick(ctx: BenchContext, store: str, policy: str, ticks: int) -> dict[str, Any]:
    done: list[float] = []
    ran = asyncio.Event()

    def action(db: Database, job: Any) -> None:
        done.append(job.tick.timestamp())
        ran.set()

    plugin = SchedulerPlugin(
        jobs={"tick": {"schedule": 10, "action": action, "catch_up": policy}}, lease_ttl=60
    )
    with use_clock(ManualClock(1_700_000_000.0)) as clock:
        assert isinstance(clock, ManualClock)
        async with Database(ctx.url(store), plugins=[plugin]) as db:
            job = plugin.job("tick")
            assert job.lease is not None
            await job.lease.wait_elected()
            db.store.stats.reset()
            started = time.perf_counter()
            while len(done) < ticks:
                clock.advance(10)
                await ran.wait()
                ran.clear()
                await job.wait_idle()
            seconds = time.perf_counter() - started
            requests = db.store.stats.total()
    return {
        "ticks": ticks,
        "requests_per_tick": round(requests / ticks, 2),
        "ms_per_tick": round(1000 * seconds / ticks, 2),
    }


async def _run_job(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    plugin = SchedulerPlugin(jobs={"manual": {"schedule": "@yearly", "action": lambda d, c: 1}})
    async with Database(ctx.url(store), plugins=[plugin]) as db:
        await plugin.run_job("manual")  # creates the partition prefix once
        db.store.stats.reset()
        started = time.perf_counter()
        for _ in range(n):
            await plugin.run_job("manual")
        seconds = time.perf_counter() - started
        return {
            "runs": n,
            "ms_per_run": round(1000 * seconds / n, 2),
            "requests_per_run": round(db.store.stats.total() / n, 2),
        }


async def run(ctx: BenchContext) -> dict[str, Any]:
    ticks = 20 if ctx.quick else 100
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = {
            "coalesce": await _per_tick(ctx, store, "coalesce", ticks),
            "replay": await _per_tick(ctx, store, "replay", ticks),
            "run_job": await _run_job(ctx, store, 10 if ctx.quick else 50),
        }
        ctx.log(
            f"scheduler {store}: {row['coalesce']['requests_per_tick']} requests/tick "
            f"(replay {row['replay']['requests_per_tick']}), run_job "
            f"{row['run_job']['ms_per_run']} ms, {row['run_job']['requests_per_run']} requests"
        )
        out[store] = row
    return out
