"""``count(by=field)`` on 10,000 records: from a single-field partition (LIST only) and
by reading every record (a field without a partition)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "count(by=...) on 10,000 records"
STORES = ("memory", "file", "seaweedfs", "moto")


async def _one(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    async with Database(ctx.url(store), parallelism=64) as db:
        res = await db.create_resource(
            "groups",
            attributes={"region": "string", "active": "boolean", "n": "integer"},
            partitions={"by_region": {"fields": {"region": "string"}}},
        )
        result = await res.insert_many(
            {"region": f"r{i % 10}", "active": i % 3 == 0, "n": i} for i in range(n)
        )
        assert result.all_ok
        out: dict[str, Any] = {"records": n}
        for label, field in (("by_partition_field", "region"), ("by_plain_field", "active")):
            db.store.stats.reset()
            t0 = time.perf_counter()
            groups = await res.count(by=field)
            seconds = time.perf_counter() - t0
            assert sum(groups.values()) == n
            out[label] = {
                "seconds": round(seconds, 3),
                "records_per_s": round(n / seconds, 1),
                "requests": db.store.stats.total(),
                "groups": len(groups),
            }
        return out


async def run(ctx: BenchContext) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for store in ctx.stores:
        n = 2_000 if ctx.quick or store == "moto" else 10_000
        ctx.log(f"count_by: {store} ({n} records)")
        results[store] = await _one(ctx, store, n)
    return results
