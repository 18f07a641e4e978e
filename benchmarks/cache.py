"""Section ``cache``: CachePlugin hits against uncached reads, per store.

- ``uncached_get``: ``users.get(id)`` without the plugin (1 GET per call) over 200 records;
- ``memory_get`` / ``filesystem_get`` / ``redis_get``: the same with a warm CachePlugin on
  that driver (0 store requests per hit; Redis only when reachable at 127.0.0.1:6379);
- ``ratio_memory``: warm memory get / uncached get (issue 19's target: >= 20x on SeaweedFS);
- ``partition_list``: ``list()`` of one partition value, uncached and warm (memory);
- ``backends``: the hit path of the memory caches we could have built on (aiocache's
  SimpleMemoryCache, cashews when installed) against the plugin's driver, in µs per get.
"""

from __future__ import annotations

import pickle
import socket
import time
import uuid
from typing import Any

from s3db_async.plugins import CachePlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "CachePlugin warm get/list vs uncached, requests per hit"
RECORDS = 200
ATTRS = {"name": "string", "email": "string", "region": "string"}
PARTS = {"by_region": {"fields": {"region": "string"}}}


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def _fill(db: Database) -> list[str]:
    users = await db.create_resource("users", attributes=ATTRS, partitions=PARTS)
    ids = []
    for i in range(RECORDS):
        rec = await users.insert(
            {"name": f"User {i}", "email": f"u{i}@example.com", "region": ("eu", "us")[i % 2]}
        )
        ids.append(rec["id"])
    return ids


async def _measure_get(ctx: BenchContext, db: Database, ids: list[str]) -> dict[str, Any]:
    users = db.resources["users"]
    for rid in ids:  # warm (a no-op without the plugin)
        await users.get(rid)
    return await ctx.measure(
        lambda i: users.get(ids[i % len(ids)]), concurrency=1, stats=db.store.stats
    )


async def _bench_store(ctx: BenchContext, name: str) -> dict[str, Any]:
    url = ctx.url(name)
    out: dict[str, Any] = {}
    async with Database(url) as plain:
        ids = await _fill(plain)
        out["uncached_get"] = await _measure_get(ctx, plain, ids)
        users = plain.resources["users"]
        out["partition_list"] = {
            "uncached": await ctx.measure(
                lambda i: users.list(partition="by_region", partition_values={"region": "eu"}),
                concurrency=1,
                stats=plain.store.stats,
                min_n=3,
            )
        }
    drivers: dict[str, dict[str, Any]] = {
        "memory": {},
        "filesystem": {"path": str(ctx.tmpdir / f"cache-{uuid.uuid4().hex[:8]}")},
    }
    if _redis_up():
        drivers["redis"] = {"prefix": f"s3db-bench:{uuid.uuid4().hex[:8]}:"}
    for driver, config in drivers.items():
        cache = CachePlugin(driver=driver, config=config)
        async with Database(url, plugins=[cache]) as db:
            out[f"{driver}_get"] = await _measure_get(ctx, db, ids)
            if driver == "memory":
                cached = db.resources["users"]
                out["partition_list"]["memory"] = await ctx.measure(
                    lambda i, r=cached: r.list(
                        partition="by_region", partition_values={"region": "eu"}
                    ),
                    concurrency=1,
                    stats=db.store.stats,
                )
            await cache.clear()
    base = out["uncached_get"]["ops_per_s"]
    for driver in drivers:
        out[f"ratio_{driver}"] = round(out[f"{driver}_get"]["ops_per_s"] / base, 1)
    lists = out["partition_list"]
    lists["ratio"] = round(lists["memory"]["ops_per_s"] / lists["uncached"]["ops_per_s"], 1)
    for key in ("uncached_get", *(f"{d}_get" for d in drivers)):
        r = out[key]
        ctx.log(f"{name:9} {key:15} {r['ops_per_s']:>10.1f} ops/s {r['requests_per_op']} req/op")
    ctx.log(f"{name:9} memory hit / uncached get: {out['ratio_memory']}x")
    return out


async def _backends() -> dict[str, float]:
    """µs per warm get of one pickled record, one coroutine at a time."""
    from aiocache import SimpleMemoryCache
    from s3db_async.plugins.cache.drivers import BytesSerializer, MemoryCache

    value = pickle.dumps({"id": "abc", "name": "Ann", "email": "a@b.co", "region": "eu"})
    caches: dict[str, Any] = {
        "plugin_memory_driver": MemoryCache(),
        "aiocache_simple_memory": SimpleMemoryCache(serializer=BytesSerializer(), timeout=0),
    }
    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup("mem://?size=10000")
        caches["cashews_mem"] = cashews
    except ImportError:
        pass
    out: dict[str, float] = {}
    n = 20_000
    for name, cache in caches.items():
        await cache.set("users/rec-x/get", value)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                await cache.get("users/rec-x/get")
            best = min(best, time.perf_counter() - t0)
        out[name] = round(best / n * 1e6, 2)
    return out


async def run(ctx: BenchContext) -> dict[str, Any]:
    out: dict[str, Any] = {name: await _bench_store(ctx, name) for name in ctx.stores}
    out["backends_us_per_get"] = await _backends()
    ctx.log(f"memory caches, µs per get: {out['backends_us_per_get']}")
    return out
