"""Section ``costs``: what the CostsPlugin itself costs, and a priced workload (issue 19).

- ``inventory_requests``: the one listing at install over a store of ``n`` objects (one LIST
  per 1,000 keys); afterwards the plugin adds no request (``added_requests`` compares the
  same workload's request count with and without it).
- ``overhead``: a memory-store ``put`` + ``get`` pair with the plugin following sizes and
  transfer, against the same pair without it (ratio of medians minus one).
- ``workload``: ``n`` inserts, a get of each, an update of half and a delete of a quarter on
  each store, priced at us-east-1: requests per class and the dollars (DELETE free).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from s3db_async.plugins import CostsPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "CostsPlugin: inventory requests, requests added (0), put+get overhead, priced workload"


async def _pairs(db: Database, n: int, tag: str) -> float:
    body = b"x" * 256
    started = time.perf_counter()
    for i in range(n):
        await db.store.put(f"bench/{tag}/{i % 64}", body)
        await db.store.get(f"bench/{tag}/{i % 64}")
    return n / (time.perf_counter() - started)


async def _overhead(ctx: BenchContext, n: int, rounds: int) -> float:
    plain_rates, costed_rates = [], []
    async with Database(ctx.url("memory", "costs-overhead-plain")) as plain:
        async with Database(ctx.url("memory", "costs-overhead"), plugins=[CostsPlugin()]) as costed:
            for i in range(rounds):
                if i % 2:
                    costed_rates.append(await _pairs(costed, n, "c"))
                plain_rates.append(await _pairs(plain, n, "p"))
                if not i % 2:
                    costed_rates.append(await _pairs(costed, n, "c"))
    return statistics.median(plain_rates) / statistics.median(costed_rates) - 1


async def _workload(res: Any, n: int) -> None:
    recs = [await res.insert({"name": f"n{i}", "n": i}) for i in range(n)]
    for r in recs:
        await res.get(r["id"])
    for r in recs[: n // 2]:
        await res.update(r["id"], {"n": -1})
    for r in recs[: n // 4]:
        await res.delete(r["id"])


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    attrs = {"name": "string", "n": "integer"}
    async with Database(ctx.url(store, "costs-plain")) as db:
        res = await db.create_resource("w", attributes=attrs)
        db.store.stats.reset()
        await _workload(res, n)
        plain_requests = db.store.stats.total()
    async with Database(ctx.url(store, "costs-costed")) as db:
        res = await db.create_resource("w", attributes=attrs)
        await _workload(res, n)  # n records already there for the inventory
        db.store.stats.reset()
        costs = await db.use_plugin(CostsPlugin())
        inventory = db.store.stats.total()
        objects = costs.summary()["storage"]["objects"]
        costs.reset()
        db.store.stats.reset()
        res2 = await db.create_resource("w2", attributes=attrs)
        db.store.stats.reset()
        await _workload(res2, n)
        costed_requests = db.store.stats.total()
        s = costs.summary()
    return {
        "inventory": {"objects": objects, "requests": inventory},
        "added_requests": costed_requests - plain_requests,
        "workload": {
            "records": n,
            "requests": {c: int(row["requests"]) for c, row in s["classes"].items()},
            "dollars": round(s["total"], 8),
            "delete_dollars": s["classes"]["delete"]["cost"],
            "stored_bytes": s["storage"]["bytes"],
        },
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 200 if ctx.quick else 1_000
    pairs, rounds = (2_000, 5) if ctx.quick else (10_000, 7)
    out: dict[str, Any] = {"overhead_put_get_memory": round(await _overhead(ctx, pairs, rounds), 4)}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        ctx.log(
            f"costs {store}: inventory {row['inventory']['objects']} objects in "
            f"{row['inventory']['requests']} requests, {row['added_requests']} requests added, "
            f"workload of {n} records ${row['workload']['dollars']} "
            f"(DELETE ${row['workload']['delete_dollars']})"
        )
        out[store] = row
    ctx.log(f"costs: put+get overhead on memory {out['overhead_put_get_memory']:.1%}")
    return out
