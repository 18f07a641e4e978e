"""Section ``tree``: what the TreePlugin costs (issue 20).

A 10,000-node tree (1,000 with ``--quick``, fanout 10) is imported with ``attach_many`` for
each driver; then, per store: requests and seconds of a descendants query (ids only, of the
root and of a child of the root: 1,110 descendants, 110 with ``--quick``), of the same
query with ``records=True``, and of one ``add_child`` (the record, the lock, the structure
CAS).
"""

from __future__ import annotations

import time
from typing import Any

from s3db_async.plugins import TreePlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "tree: requests per descendants query in a 10,000-node tree, per add_child"


async def _timed(db: Database, coro: Any) -> tuple[Any, int, float]:
    db.store.stats.reset()
    started = time.perf_counter()
    result = await coro
    return result, db.store.stats.total(), time.perf_counter() - started


async def _driver(ctx: BenchContext, store: str, driver: str, n: int) -> dict[str, Any]:
    tree = TreePlugin(resources={"cats": {"driver": driver}})
    async with Database(ctx.url(store), plugins=[tree], parallelism=64) as db:
        cats = await db.create_resource("cats", attributes={"n": "integer"})
        ids = [f"n{i:06d}" for i in range(n)]
        await cats.insert_many({"id": rid, "n": i} for i, rid in enumerate(ids))
        links = {rid: None if i == 0 else ids[(i - 1) // 10] for i, rid in enumerate(ids)}
        _, import_requests, import_s = await _timed(db, tree.attach_many("cats", links))
        mid = ids[1]  # a child of the root: 1,110 descendants (110 with --quick)
        everything, all_requests, all_s = await _timed(db, tree.descendants("cats", ids[0]))
        below, mid_requests, mid_s = await _timed(db, tree.descendants("cats", mid))
        records, rec_requests, rec_s = await _timed(db, tree.descendants("cats", mid, records=True))
        _, add_requests, add_s = await _timed(db, tree.add_child("cats", mid, {"n": -1}))
        assert len(everything) == n - 1 and len(below) == len(records) >= 110
    return {
        "nodes": n,
        "import": {"requests": import_requests, "seconds": round(import_s, 3)},
        "descendants_of_root": {"requests": all_requests, "seconds": round(all_s, 4)},
        "descendants_of_node": {
            "descendants": len(below),
            "requests": mid_requests,
            "seconds": round(mid_s, 4),
        },
        "descendants_with_records": {"requests": rec_requests, "seconds": round(rec_s, 4)},
        "add_child": {"requests": add_requests, "seconds": round(add_s, 4)},
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 1_000 if ctx.quick else 10_000
    out: dict[str, Any] = {}
    for store in ctx.stores:
        out[store] = {}
        for driver in ("nested_set", "adjacency"):
            row = await _driver(ctx, store, driver, n)
            ctx.log(
                f"tree {store} {driver}: descendants of a node in a {n}-node tree "
                f"{row['descendants_of_node']['requests']} request(s) "
                f"{row['descendants_of_node']['seconds']}s, with records "
                f"{row['descendants_with_records']['requests']}, "
                f"add_child {row['add_child']['requests']} requests {row['add_child']['seconds']}s"
            )
            out[store][driver] = row
    return out
