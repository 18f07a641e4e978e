"""Section ``plugin_storage``: PluginStorage ops/s and S3 requests per operation, per store.

- ``set`` / ``get``: a small JSON value (kept in metadata) over 500 keys.
- ``increment``: one counter at concurrency 1 (a compare-and-swap from the cached etag: one
  conditional PUT when nobody else writes), and 256 sharded counters at concurrency 16.
- ``acquire_release``: take and release a lock (distinct names); a conditional create plus a
  conditional delete on memory/file, a GET + compare-and-swap and a compare-and-swap to a
  tombstone on S3 (no conditional delete through obstore).
"""

from __future__ import annotations

from typing import Any

from benchmarks._common import BenchContext, Op, run_ops
from s3db_async import PluginStorage
from s3db_async.stores import open_store

TITLE = "PluginStorage set/get/increment/acquire-release ops/s and requests/op"
KEYS = 500
SHARDS = 256
VALUE = {"name": "Ann Example", "email": "ann@example.com", "visits": 42, "tags": ["a", "b"]}


async def _bench_store(ctx: BenchContext, name: str) -> dict[str, Any]:
    store = open_store(ctx.url(name))
    await store.connect()
    try:
        storage = PluginStorage(store, "bench")
        await run_ops(lambda i: storage.set(f"k/{i:04d}", {**VALUE, "i": i}), KEYS, 32)

        async def acquire_release(i: int) -> None:
            lock = await storage.acquire_lock(f"l{i % KEYS}", ttl=30)
            assert lock is not None
            await lock.release()

        # steady state: counters exist, lock names were used once (S3 keeps a tombstone)
        await run_ops(lambda i: storage.increment(f"shards/{i}"), SHARDS, 32)
        await run_ops(acquire_release, KEYS, 32)
        ops: dict[str, tuple[Op, tuple[int, ...]]] = {
            "set": (lambda i: storage.set(f"k/{i % KEYS:04d}", {**VALUE, "i": i}), (1, 16)),
            "get": (lambda i: storage.get(f"k/{i % KEYS:04d}"), (1, 16)),
            "increment": (lambda i: storage.increment("hits"), (1,)),
            "increment_sharded": (lambda i: storage.increment(f"shards/{i % SHARDS}"), (16,)),
            "acquire_release": (acquire_release, (1, 16)),
        }
        out: dict[str, Any] = {}
        for op, (fn, levels) in ops.items():
            out[op] = {}
            for c in levels:
                r = await ctx.measure(fn, concurrency=c, stats=store.stats)
                ctx.log(
                    f"{name:9} {op:17} c={c:<3} {r['ops_per_s']:>9.1f} ops/s "
                    f"{r['requests_per_op']:.2f} req/op"
                )
                out[op][f"c{c}"] = r
        return out
    finally:
        await store.close()


async def run(ctx: BenchContext) -> dict[str, Any]:
    return {name: await _bench_store(ctx, name) for name in ctx.stores}
