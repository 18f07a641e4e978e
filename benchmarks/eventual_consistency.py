"""Section ``eventual_consistency``: the cost of EventualConsistencyPlugin, per store.

- ``add``: ops/s and requests of an async-mode ``add`` (a transaction: one PUT) at
  concurrency 16.
- ``consolidate_1000``: 1,000 adds of one record written (concurrency 32), then one
  ``consolidate``: its requests and seconds (s3db.js 19.5.10 on SeaweedFS had not finished
  after 240 s and 50,927 requests; its ``add`` cost 21 requests).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from s3db_async.plugins import EventualConsistencyPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "EventualConsistencyPlugin: requests per add, consolidating 1,000 adds of one record"
ADDS = 1000


async def _bench_store(ctx: BenchContext, name: str) -> dict[str, Any]:
    plugin = EventualConsistencyPlugin(resources={"wallets": {"balance": {}}})
    async with Database(ctx.url(name), plugins=[plugin]) as db:
        wallets = await db.create_resource("wallets", attributes={"owner": "string"})
        await wallets.insert({"id": "w1", "owner": "bench"})
        await wallets.add("w1", "balance", 0)  # warm-up: capabilities, namespace
        await wallets.consolidate("w1")
        stats = db.store.stats
        r = await ctx.measure(
            lambda i: wallets.add("w1", "balance", 1), concurrency=16, stats=stats
        )
        ctx.log(
            f"{name:9} add               {r['ops_per_s']:>9.1f} ops/s "
            f"{r['requests_per_op']:.2f} req/op"
        )
        await wallets.consolidate("w1")
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await wallets.add("w1", "balance", 1)

        await asyncio.gather(*(one(i) for i in range(ADDS)))
        stats.reset()
        t0 = time.perf_counter()
        await wallets.consolidate("w1")
        seconds = time.perf_counter() - t0
        requests = stats.total()
        ctx.log(f"{name:9} consolidate 1,000 {seconds:.3f} s {requests} requests {dict(stats)}")
        return {
            "add": r,
            "consolidate_1000": {"seconds": seconds, "requests": requests, "ops": dict(stats)},
        }


async def run(ctx: BenchContext) -> dict[str, Any]:
    return {name: await _bench_store(ctx, name) for name in ctx.stores}
