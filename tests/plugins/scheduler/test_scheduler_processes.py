"""SchedulerPlugin across 4 real OS processes (file, SeaweedFS): each tick of a job runs in
exactly one process, and after SIGKILL of the process that runs the ticks another one takes
them over (issue 19: "each tick runs once across 4 processes").

Each worker records its runs as PluginStorage keys ``beats/{tick}/{worker}``; the test reads
them and the runtime's tick claim (``plugin=scheduler/jobs/beat``: who ran the last tick).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from s3db_async.plugins import SchedulerPlugin
from s3db_async.plugins.scheduler import JobContext

from s3db_async import Database, PluginStorage
from s3db_async.stores import open_store
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

WAIT = 180.0  # seconds at most for the runs a step needs (SeaweedFS can be slow under load)


async def beat_worker(ctx: WorkerContext) -> dict[str, Any]:
    period, lease_ttl = ctx.args
    runs = 0

    async def action(db: Database, job: JobContext) -> None:
        nonlocal runs
        runs += 1
        tick = int(job.tick.timestamp() * 1000)
        await PluginStorage(db, "beats").set(f"beats/{tick}/w{ctx.index}", {"e": job.epoch})

    plugin = SchedulerPlugin(
        jobs={"beat": {"schedule": period, "action": action}}, lease_ttl=lease_ttl
    )
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.report("ready")
        await ctx.receive()  # "stop"
        failures = plugin.job("beat").failures
    return {"runs": runs, "failures": failures}


async def test_each_tick_runs_once_across_four_processes_and_survives_sigkill(
    store_url: str, store_kind: str
) -> None:
    period, lease_ttl = (1.0, 6.0) if store_kind == "seaweedfs" else (0.5, 3.0)
    store = open_store(store_url)
    await store.connect()
    beats = PluginStorage(store, "beats")
    claims = PluginStorage(store, "scheduler")

    async def runs() -> list[tuple[str, str]]:
        keys = await beats.list("beats/")
        return [tuple(k.rsplit("/", 2)[-2:]) for k in keys]  # type: ignore[misc]

    async def wait_runs(n: int) -> list[tuple[str, str]]:
        for _ in range(int(WAIT / 0.2)):
            found = await runs()
            if len(found) >= n:
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"fewer than {n} runs")

    try:
        async with spawn_processes(
            beat_worker, store_url, 4, (period, lease_ttl), auto_release=True
        ) as group:
            for i in range(4):
                await group.wait_for("ready", index=i)
            first = await wait_runs(3)
            claim = await claims.get("jobs/beat")  # the runtime's claim of the last tick
            pids = group.pids
            leader = next(i for i, pid in enumerate(pids) if claim["holder"].endswith(f":{pid}"))
            group.kill(leader)  # SIGKILL: no release, no last write
            after = await wait_runs(len(await runs()) + 3)
            for i in range(4):
                if i != leader:
                    group.send(i, "stop")
            outcomes = await group.outcomes()
        final = await runs()
    finally:
        await store.close()
    per_tick = Counter(t for t, _ in final)
    assert max(per_tick.values()) == 1, f"a tick ran twice: {sorted(final)}"
    assert len({w for _, w in final}) >= 2 and len(after) >= len(first) + 3
    assert outcomes[leader].killed
    survivors = [o.value for i, o in enumerate(outcomes) if i != leader]
    assert all(s["failures"] == 0 for s in survivors), survivors
