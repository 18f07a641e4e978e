"""Section ``ttl``: what the TTLPlugin costs (issue 19).

- ``write``: requests per insert into a TTL resource (the record, plus the change feed's
  intent) and into a plain one, at concurrency 16.
- ``sweep``: 10,000 records (1,000 with ``--quick``) expired at once, swept (hard-delete) by
  one ``sweep()``: records/s and requests per record, split into the index building (the
  change feed delivered to the index) and the expiry itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from s3db_async.plugins import TTLPlugin

from benchmarks._common import BenchContext
from s3db_async import Database
from s3db_async.plugin import ManualClock, use_clock

TITLE = "ttl: requests per write, sweep of 10,000 expired records (requests per record)"


async def _insert_all(res: Any, n: int, prefix: str) -> float:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await res.insert({"id": f"{prefix}{i:06d}", "v": i})

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    plugin = TTLPlugin(
        resources={"s": {"ttl": 60}}, sweep_interval=10**6, concurrency=32, batch_size=1000
    )
    with use_clock(ManualClock(1_700_000_000.0)) as clock:
        assert isinstance(clock, ManualClock)
        async with Database(ctx.url(store), plugins=[plugin], parallelism=64) as db:
            s = await db.create_resource("s", attributes={"v": "integer"})
            plain = await db.create_resource("plain", attributes={"v": "integer"})
            db.store.stats.reset()
            await _insert_all(plain, 200, "p")
            plain_per = db.store.stats.total() / 200
            db.store.stats.reset()
            seconds = await _insert_all(s, n, "r")
            ttl_per = db.store.stats.total() / n
            db.store.stats.reset()
            started = time.perf_counter()
            first = await plugin.sweep()  # builds the index from the feed; nothing due yet
            index_s = time.perf_counter() - started
            index_requests = db.store.stats.total()
            clock.advance(120)
            db.store.stats.reset()
            started = time.perf_counter()
            report = await plugin.sweep()
            sweep_s = time.perf_counter() - started
            sweep_requests = db.store.stats.total()
            assert first.indexed == n and report.expired == n, (first, report)
    return {
        "records": n,
        "insert_requests": {"plain": round(plain_per, 2), "ttl": round(ttl_per, 2)},
        "insert_per_s": round(n / seconds, 1),
        "index": {
            "seconds": round(index_s, 3),
            "requests_per_record": round(index_requests / n, 2),
        },
        "sweep": {
            "seconds": round(sweep_s, 3),
            "records_per_s": round(n / sweep_s, 1),
            "requests_per_record": round(sweep_requests / n, 2),
        },
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 1_000 if ctx.quick else 10_000
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        ctx.log(
            f"ttl {store}: sweep of {n} expired records {row['sweep']['records_per_s']} rec/s, "
            f"{row['sweep']['requests_per_record']} requests/record "
            f"(+{row['index']['requests_per_record']} to index, "
            f"insert {row['insert_requests']['ttl']} vs {row['insert_requests']['plain']})"
        )
        out[store] = row
    return out
