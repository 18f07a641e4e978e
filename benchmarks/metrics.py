"""Section ``metrics``: what the MetricsPlugin costs on the hot path (issue 19).

A memory-store ``get`` (the cheapest operation there is, so the worst case for relative
overhead) at concurrency 1, on a resource without the plugin and on one measured by it,
interleaved in rounds so drift hits both alike; ``overhead`` is the ratio of the medians
minus one (target <= 0.10). ``requests_per_get`` shows the plugin adds no request, and
``flush_requests`` what one flush writes (the snapshot record and its date reference).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from s3db_async.plugins import MetricsPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "MetricsPlugin: overhead on a memory-store get (target <= 10%), flush cost"
STORES = ("memory",)
ATTRIBUTES = {"name": "string", "n": "integer"}


async def _rate(res: Any, rid: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await res.get(rid)
    return n / (time.perf_counter() - started)


async def run(ctx: BenchContext) -> dict[str, Any]:
    n, rounds = (2_000, 5) if ctx.quick else (10_000, 9)
    async with Database(ctx.url("memory", "metrics")) as db:
        plain = await db.create_resource("plain", attributes=ATTRIBUTES)
        measured = await db.create_resource("measured", attributes=ATTRIBUTES)
        metrics = await db.use_plugin(
            MetricsPlugin(resources=["measured"], flush_interval=None, slow_threshold_ms=1000)
        )
        a = await plain.insert({"name": "x", "n": 1})
        b = await measured.insert({"name": "x", "n": 1})
        await _rate(plain, a["id"], n // 4)  # warm-up
        await _rate(measured, b["id"], n // 4)
        plain_rates, measured_rates = [], []
        for i in range(rounds):  # alternate which goes first
            if i % 2:
                measured_rates.append(await _rate(measured, b["id"], n))
            plain_rates.append(await _rate(plain, a["id"], n))
            if not i % 2:
                measured_rates.append(await _rate(measured, b["id"], n))
        db.store.stats.reset()
        await measured.get(b["id"])
        requests_per_get = db.store.stats.total()
        db.store.stats.reset()
        await metrics.flush()
        flush_requests = db.store.stats.snapshot()
        p, m = statistics.median(plain_rates), statistics.median(measured_rates)
        return {
            "n_per_round": n,
            "rounds": rounds,
            "plain_gets_per_s": round(p, 1),
            "measured_gets_per_s": round(m, 1),
            "overhead": round(p / m - 1, 4),
            "target_overhead": 0.10,
            "requests_per_get": requests_per_get,
            "flush_requests": flush_requests,
            "counted": metrics.get_metrics()["totals"]["count"],
        }
