"""Section ``audit``: what the AuditPlugin costs per audited insert (issue 19).

Per store: ``n`` inserts into an audited resource at concurrency 1 (the writer's requests:
record PUT + change-feed intent PUT), then one ``flush()`` at the plugin's default
``batch_size`` that writes their audit entries (one GET of the record per insert, which
proves it landed and is its content; per batch a segment = 2 PUTs, the cursor PUT, LISTs).
``requests_per_audited_insert`` is the total over ``n``; the issue's target is 3, s3db.js
19.5.10 measured 11 on SeaweedFS. ``insert_overhead`` compares the insert rate with an
unaudited resource on the same store.
"""

from __future__ import annotations

import time
from typing import Any

from s3db_async.plugins import AuditPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "AuditPlugin: S3 requests per audited insert (target 3; s3db.js 11), insert overhead"
ATTRIBUTES = {"name": "string", "n": "integer"}
S3DBJS_REQUESTS_PER_AUDITED_INSERT = 11


async def _bench_store(ctx: BenchContext, store: str) -> dict[str, Any]:
    n = 50 if ctx.quick else 300
    async with Database(ctx.url(store, "audit")) as db:
        plain = await db.create_resource("plain", attributes=ATTRIBUTES)
        orders = await db.create_resource("orders", attributes=ATTRIBUTES)
        audit = await db.use_plugin(AuditPlugin(resources=["orders"], poll_interval=None))
        await orders.insert({"name": "warm-up", "n": -1})
        await plain.insert({"name": "warm-up", "n": -1})
        await audit.flush()
        stats = db.store.stats

        started = time.perf_counter()
        for i in range(n):
            await plain.insert({"name": "x", "n": i})
        plain_s = time.perf_counter() - started

        stats.reset()
        started = time.perf_counter()
        for i in range(n):
            await orders.insert({"name": "x", "n": i})
        audited_s = time.perf_counter() - started
        writer = stats.snapshot()
        stats.reset()
        started = time.perf_counter()
        delivered = await audit.flush()
        flush_s = time.perf_counter() - started
        consumer = stats.snapshot()
        assert delivered == n, (delivered, n)
        total = sum(writer.values()) + sum(consumer.values())
        return {
            "n": n,
            "requests_per_audited_insert": round(total / n, 3),
            "writer_requests_per_insert": round(sum(writer.values()) / n, 3),
            "audit_requests_per_insert": round(sum(consumer.values()) / n, 3),
            "writer_requests": writer,
            "audit_requests": consumer,
            "s3dbjs_requests_per_audited_insert": S3DBJS_REQUESTS_PER_AUDITED_INSERT,
            "plain_inserts_per_s": round(n / plain_s, 1),
            "audited_inserts_per_s": round(n / audited_s, 1),
            "insert_overhead": round(audited_s / plain_s - 1, 3),
            "entries_per_s": round(n / flush_s, 1),
        }


async def run(ctx: BenchContext) -> dict[str, Any]:
    return {name: await _bench_store(ctx, name) for name in ctx.stores}
