"""EventualConsistencyPlugin across real OS processes (FileStore, SeaweedFS): exact sums, SIGKILL.

Under ``CI=true`` a SeaweedFS that cannot start fails the run (the server fixture raises).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from s3db_async.plugins import EventualConsistencyPlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, run_processes, spawn_processes

PROCESSES, OPS, RECORDS = 4, 100, 10
IDS = [f"w{i}" for i in range(RECORDS)]

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


def plugin(mode: str) -> EventualConsistencyPlugin:
    return EventualConsistencyPlugin(
        resources={"wallets": {"balance": {}}},
        mode=mode,
        consolidation_interval=3600,
        analytics=True,
    )


async def prepare(url: str) -> None:
    async with Database(url) as db:
        wallets = await db.create_resource("wallets", attributes={"owner": "string"})
        for rid in IDS:
            await wallets.insert({"id": rid, "owner": rid})


# -- workers (each runs in its own OS process) ------------------------------------------------
async def random_ops(ctx: WorkerContext) -> dict[str, int]:
    """100 random adds/subs on 10 records; even workers in sync mode (consolidating on every
    write), odd ones in async mode calling consolidate_all every 10 writes. Returns the sums."""
    rng = random.Random(ctx.index)
    mode = "sync" if ctx.index % 2 == 0 else "async"
    sums = dict.fromkeys(IDS, 0)
    async with Database(ctx.url, plugins=[plugin(mode)]) as db:
        wallets = db.get_resource("wallets")
        ec = db.plugins.get(EventualConsistencyPlugin)
        await ctx.barrier("connected")
        for i in range(OPS):
            rid, amount = rng.choice(IDS), rng.randint(1, 50)
            if rng.random() < 0.5:
                await wallets.add(rid, "balance", amount)
                sums[rid] += amount
            else:
                await wallets.sub(rid, "balance", amount)
                sums[rid] -= amount
            if mode == "async" and i % 10 == 9:
                await ec.consolidate_all()
    return sums


async def doomed(ctx: WorkerContext) -> None:
    """Write transactions of 1..5 on w0, then stop at ``ctx.args[0]`` and wait for SIGKILL."""
    (point,) = ctx.args
    async with Database(ctx.url, plugins=[plugin("async")]) as db:
        wallets = db.get_resource("wallets")
        ec = db.plugins.get(EventualConsistencyPlugin)
        for amount in range(1, 6):
            await wallets.add("w0", "balance", amount)

        async def pause(*args: Any, **kwargs: Any) -> None:
            await ctx.report("paused", point)
            await ctx.receive()  # never comes: the test kills us here

        if point == "after_write":
            await pause()
        elif point == "after_commit":  # the state is committed, the record not yet written
            ec._sync_record = pause  # type: ignore[method-assign]
        elif point == "after_archive":  # archived and record written, transactions not deleted
            ec.storage.store.delete_many = pause  # type: ignore[method-assign]
        await wallets.consolidate("w0")


async def async_writer(ctx: WorkerContext) -> int:
    """Async mode with a short job interval: 30 adds, then wait until the leader job (in
    whichever process leads) has consolidated everything. Returns what this worker added."""
    ec = EventualConsistencyPlugin(
        resources={"wallets": {"balance": {}}}, consolidation_interval=0.3, lock_ttl=10
    )
    async with Database(ctx.url, plugins=[ec]) as db:
        wallets = db.get_resource("wallets")
        await ctx.barrier("connected")
        total = 0
        for i in range(30):
            await wallets.add(IDS[i % 3], "balance", i + ctx.index)
            total += i + ctx.index
        await ctx.barrier("written")
        while await ec.pending("wallets", "balance"):
            await asyncio.sleep(0.1)
        await ctx.barrier("consolidated")  # keep every job running until all are done
        return total


# -- tests --------------------------------------------------------------------------------------
async def test_four_processes_of_random_adds_and_subs_consolidate_to_the_exact_sum(
    store_url: str,
) -> None:
    await prepare(store_url)
    answers = await run_processes(random_ops, store_url, PROCESSES, timeout=600)
    expected = {rid: sum(a[rid] for a in answers) for rid in IDS}
    async with Database(store_url, plugins=[plugin("sync")]) as db:
        ec = db.plugins.get(EventualConsistencyPlugin)
        await ec.consolidate_all()
        assert await ec.pending("wallets", "balance") == {}
        wallets = db.get_resource("wallets")
        got = {r["id"]: r.get("balance", 0) for r in await wallets.list()}
        assert got == expected
        counts = await ec.top_records("wallets", "balance", limit=RECORDS, by="count")
        assert sum(r["count"] for r in counts) == PROCESSES * OPS  # applied once each


@pytest.mark.parametrize("point", ["after_write", "after_commit", "after_archive"])
async def test_a_sigkill_between_write_and_consolidation_loses_nothing_and_doubles_nothing(
    store_url: str, point: str
) -> None:
    await prepare(store_url)
    async with spawn_processes(doomed, store_url, 1, (point,)) as group:
        index, got = await group.wait_for("paused")
        assert got == point
        group.kill(index)
        (outcome,) = await group.outcomes()
    assert outcome.killed
    async with Database(store_url, plugins=[plugin("sync")]) as db:
        ec = db.plugins.get(EventualConsistencyPlugin)
        wallets = db.get_resource("wallets")
        assert await ec.current("wallets", "w0", "balance") == 15
        assert await wallets.add("w0", "balance", 100) == 115
        assert (await wallets.get("w0"))["balance"] == 115
        assert await ec.pending("wallets", "balance") == {}
        (row,) = await ec.analytics("wallets", "balance", period="month")
        assert row["count"] == 6 and row["sum"] == 115  # each transaction archived once


async def test_the_leader_job_consolidates_what_several_processes_wrote(store_url: str) -> None:
    await prepare(store_url)
    totals = await run_processes(async_writer, store_url, 3, timeout=300)
    async with Database(store_url, plugins=[plugin("sync")]) as db:
        ec = db.plugins.get(EventualConsistencyPlugin)
        assert await ec.pending("wallets", "balance") == {}
        wallets = db.get_resource("wallets")
        got = sum(r.get("balance") or 0 for r in await wallets.list())
        assert got == sum(totals)
        counts = await ec.top_records("wallets", "balance", by="count")
        assert sum(r["count"] for r in counts) == 90
