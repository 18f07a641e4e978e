"""Resource operations: insert/get/update/delete at concurrency 1, 16 and 64, batch reads
and writes, listing and counting, with S3 requests per operation and the ratio to the
s3db.js 19.5.10 figures measured on this machine kind with the same workload (a resource
of 6 fields with one partition of 10 values, 1,000 records).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from benchmarks._common import BenchContext, run_ops
from s3db_async import Database, Resource

T = TypeVar("T")

TITLE = "resource operations (issue: core document model)"

# s3db.js 19.5.10 on this machine kind: ops/s (records/s for list), per store.
S3DBJS = {
    "memory": {
        "insert_c1": 1556,
        "get_c1": 10405,
        "get_c16": 11885,
        "update_c1": 226,
        "delete_c1": 1945,
        "list_1000_records_per_s": 8667,
        "count_1000_per_s": 560,
    },
    "seaweedfs": {
        "insert_c1": 90,
        "get_c1": 320,
        "get_c16": 534,
        "update_c1": 11.8,
        "delete_c1": 39.7,
        "list_1000_records_per_s": 617,
        "count_1000_per_s": 23.6,
    },
}

ATTRIBUTES = {
    "name": "string|required",
    "email": "string|email",
    "age": "integer|min:0",
    "region": "string|required",
    "score": "number",
    "active": "boolean",
}


def _record(i: int) -> dict[str, Any]:
    """A realistic record without an id: the library generates it, as users get it."""
    return {
        "name": f"User {i}",
        "email": f"user{i}@example.com",
        "age": 20 + i % 50,
        "region": f"r{i % 10}",
        "score": i * 1.5,
        "active": i % 2 == 0,
    }


async def _timed(ctx: BenchContext, db: Database, n: int, conc: int, op: Any) -> dict[str, Any]:
    db.store.stats.reset()
    seconds = await run_ops(op, n, conc)
    return {
        "ops_per_s": round(n / seconds, 1),
        "n": n,
        "concurrency": conc,
        "requests_per_op": round(db.store.stats.total() / n, 3),
        "requests": db.store.stats.snapshot(),
    }


async def _batch(db: Database, n: int, work: Awaitable[T]) -> tuple[dict[str, Any], T]:
    """Time one batch call over ``n`` records: records/s and requests per record."""
    db.store.stats.reset()
    t0 = time.perf_counter()
    result = await work
    seconds = time.perf_counter() - t0
    timing = {
        "records_per_s": round(n / seconds, 1),
        "n": n,
        "requests_per_record": round(db.store.stats.total() / n, 3),
    }
    return timing, result


async def _bench_store(ctx: BenchContext, store: str) -> dict[str, Any]:
    n_records = 200 if ctx.quick else 1000
    out: dict[str, Any] = {}
    async with Database(ctx.url(store), parallelism=64) as db:
        res: Resource = await db.create_resource(
            "bench",
            attributes=ATTRIBUTES,
            partitions={"by_region": {"fields": {"region": "string"}}},
        )
        scratch: Resource = await db.create_resource(
            "scratch",
            attributes=ATTRIBUTES,
            partitions={"by_region": {"fields": {"region": "string"}}},
        )

        # inserts (into a scratch resource): fixed counts, fresh ids
        for conc in (1, 16, 64):
            n = n_records if conc > 1 else max(100, n_records // 2)

            async def insert(i: int) -> None:
                await scratch.insert(_record(i))

            out[f"insert_c{conc}"] = await _timed(ctx, db, n, conc, insert)

        # the 1,000-record working set
        base = [_record(i) for i in range(n_records)]
        out["insert_many_c64"], result = await _batch(db, n_records, res.insert_many(base))
        assert result.all_ok
        ids = [r["id"] for r in result.ok]

        for conc in (1, 16, 64):

            async def get(i: int) -> None:
                await res.get(ids[i % n_records])

            out[f"get_c{conc}"] = await ctx.measure(get, concurrency=conc, stats=db.store.stats)

        ctr = itertools.count()
        for conc in (1, 16, 64):

            async def update(i: int) -> None:
                await res.update(ids[next(ctr) % n_records], {"score": float(i)})

            n = 100 if conc == 1 else n_records
            out[f"update_c{conc}"] = await _timed(ctx, db, n, conc, update)

        out["get_many_c64"], got = await _batch(db, n_records, res.get_many(ids))
        assert got.all_ok

        out["list_1000"], listed = await _batch(db, n_records, res.list())
        assert len(listed) == n_records

        async def count(i: int) -> None:
            await res.count()

        counted = await ctx.measure(count, concurrency=1, stats=db.store.stats, max_n=2000)
        out["count_1000"] = {**counted, "records": await res.count()}

        for conc in (1, 16, 64):
            made = await scratch.insert_many(
                _record(i) for i in range(n_records if conc > 1 else 200)
            )
            victims = [r["id"] for r in made.ok]

            async def delete(i: int, victims: list[str] = victims) -> None:
                await scratch.delete(victims[i])

            out[f"delete_c{conc}"] = await _timed(ctx, db, len(victims), conc, delete)
    if not ctx.quick and store in ("memory", "file", "seaweedfs"):
        out["list_10000"] = await _bench_big_list(ctx, store)
    return out


async def _bench_big_list(ctx: BenchContext, store: str) -> dict[str, Any]:
    n = 10_000
    async with Database(ctx.url(store), parallelism=64) as db:
        res = await db.create_resource("big", attributes=ATTRIBUTES)
        result = await res.insert_many(_record(i) for i in range(n))
        assert result.all_ok
        db.store.stats.reset()
        t0 = time.perf_counter()
        listed = await res.list()
        seconds = time.perf_counter() - t0
        out = {
            "records_per_s": round(len(listed) / seconds, 1),
            "n": len(listed),
            "requests_per_record": round(db.store.stats.total() / len(listed), 4),
        }
        db.store.stats.reset()
        t0 = time.perf_counter()
        total = await res.count()
        out["count_seconds"] = round(time.perf_counter() - t0, 4)
        out["count_requests"] = db.store.stats.total()
        assert total == n
        return out


async def _raw_ceiling(ctx: BenchContext, store: str) -> dict[str, float]:
    """Raw obstore put/get of ~200-byte objects at concurrency 64 on the same server."""
    from benchmarks.stores import _ObstoreClient

    client = _ObstoreClient(ctx, store)
    await client.open()
    try:
        n = 1000 if not ctx.quick else 200
        put_s = await run_ops(client.put, n, 64)
        get_s = await run_ops(client.get, n, 64)
    finally:
        await client.close()
    return {"put_c64": round(n / put_s, 1), "get_c64": round(n / get_s, 1)}


def _compare(store: str, out: dict[str, Any]) -> dict[str, Any]:
    ref = S3DBJS.get(store)
    if not ref:
        return {}

    def ours(key: str) -> float:
        if key == "list_1000_records_per_s":
            return float(out["list_1000"]["records_per_s"])
        if key == "count_1000_per_s":
            return float(out["count_1000"]["ops_per_s"])
        return float(out[key]["ops_per_s"])

    return {key: round(ours(key) / value, 2) for key, value in ref.items()}


async def run(ctx: BenchContext) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for store in ctx.stores:
        ctx.log(f"core: {store}")
        out = await _bench_store(ctx, store)
        vs = _compare(store, out)
        if vs:
            out["x_vs_s3dbjs"] = vs
        if store in ctx.servers:
            raw = await _raw_ceiling(ctx, store)
            out["raw_obstore_ceiling"] = raw
            out["batch_vs_raw"] = {
                "insert_many": round(out["insert_many_c64"]["records_per_s"] / raw["put_c64"], 2),
                "get_many": round(out["get_many_c64"]["records_per_s"] / raw["get_c64"], 2),
            }
        results[store] = out
    return results
