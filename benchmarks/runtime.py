"""Section ``runtime``: what the plugin runtime costs (issue 18).

- ``write_cost``: requests and latency per insert / update / delete of a resource without a
  durable consumer and of one with one (the change feed's intent: target +1 PUT per write,
  plus the GET a delete then makes to record what it deletes), at concurrency 1.
- ``delivery``: a backlog of changes (inserts and updates written at concurrency 32)
  delivered to one consumer in batches of 500: changes/s, requests per change; then the
  same backlog to a second consumer under tracemalloc: the memory it held (peak per change).
- ``lag``: writers at concurrency 16 and a consumer (batches of 500, polling every 50 ms
  when idle) at once: changes/s through the feed and the delay from a write's intent to its
  delivery (p50, p99, max); when the writers outrun the consumer, the lag is the backlog.
  ``lag_one_writer``: the same with one writer, which the consumer keeps up with.
- ``lease_failover`` (:mod:`benchmarks._runtime_leases`): seconds until a new leader after
  the holder stops renewing and after it is SIGKILLed (not on memory, whose data lives in one
  process), and lease requests per minute of a holder and of a waiting contender.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from benchmarks._common import BenchContext, run_ops
from benchmarks._runtime_leases import lease_failover
from s3db_async import Database, Plugin, Resource
from s3db_async.plugin import Change

TITLE = "plugin runtime: change feed cost per write, delivery throughput and lag, lease failover"
ATTRIBUTES = {"name": "string", "n": "integer", "region": "string"}


class _Bench(Plugin):
    """Hosts the benchmark's subscriptions."""


def _latency_ms(result: dict[str, Any]) -> float:
    return round(1000.0 / result["ops_per_s"], 3) if result["ops_per_s"] else 0.0


async def _cost_rows(ctx: BenchContext, db: Database, res: Resource) -> dict[str, Any]:
    """insert, update (a new value each time: never an unchanged skip), delete at c=1."""
    counter = {"insert": 0, "update": 0, "delete": 0, "value": 0}

    async def insert(i: int) -> None:
        counter["insert"] += 1
        await res.insert({"id": f"k{counter['insert']}", "name": "a", "n": i, "region": "eu"})

    async def update(i: int) -> None:
        counter["update"] = counter["update"] % counter["insert"] + 1
        counter["value"] += 1
        await res.update(f"k{counter['update']}", {"n": -counter["value"]})

    async def delete(i: int) -> None:
        counter["delete"] += 1
        await res.delete(f"k{counter['delete']}")

    rows = {}
    for op, fn in (("insert", insert), ("update", update), ("delete", delete)):
        if op == "delete":  # exactly the records there are: a missing one writes nothing
            db.store.stats.reset()
            n = counter["insert"]
            seconds = await run_ops(fn, n, 1)
            r = {
                "ops_per_s": round(n / seconds, 1),
                "n": n,
                "requests_per_op": round(db.store.stats.total() / n, 3),
                "requests": db.store.stats.snapshot(),
            }
        else:
            r = await ctx.measure(fn, concurrency=1, stats=db.store.stats, max_n=2_000)
        rows[op] = {
            "ops_per_s": r["ops_per_s"],
            "latency_ms": _latency_ms(r),
            "requests_per_op": r["requests_per_op"],
            "puts_per_op": round(r["requests"].get("put", 0) / r["n"], 3),
        }
    return rows


async def _write_cost(ctx: BenchContext, db: Database, plugin: Plugin) -> dict[str, Any]:
    out: dict[str, Any] = {}
    plain = await db.create_resource("plain", attributes=ATTRIBUTES)
    out["plain"] = await _cost_rows(ctx, db, plain)
    watched = await db.create_resource("watched", attributes=ATTRIBUTES)
    await plugin.subscribe(watched, lambda cs: None, consumer="cost", poll_interval=None)
    out["watched"] = await _cost_rows(ctx, db, watched)
    out["added"] = {
        op: {
            k: round(out["watched"][op][k] - out["plain"][op][k], 3)
            for k in ("latency_ms", "requests_per_op", "puts_per_op")
        }
        for op in ("insert", "update", "delete")
    }
    return out


async def _delivery(ctx: BenchContext, db: Database, plugin: Plugin) -> dict[str, Any]:
    n = 300 if ctx.quick else 3_000
    res = await db.create_resource("backlog", attributes=ATTRIBUTES)
    got: list[Change] = []
    sub = await plugin.subscribe(
        res, got.extend, consumer="drain", poll_interval=None, batch_size=500
    )
    await run_ops(lambda i: res.insert({"id": f"r{i}", "name": "a", "n": i, "region": "eu"}), n, 32)
    await run_ops(lambda i: res.update(f"r{i % n}", {"n": -i - 1}), n, 32)
    db.store.stats.reset()
    started = time.perf_counter()
    while await sub.poll():
        pass
    seconds = time.perf_counter() - started
    assert len(got) == 2 * n, (len(got), 2 * n)
    requests = db.store.stats.snapshot()
    # memory: the same backlog again, delivered to a second consumer under tracemalloc
    again = await plugin.subscribe(
        res, lambda cs: None, consumer="memory", poll_interval=None, batch_size=500,
        from_="earliest",
    )  # fmt: skip
    tracemalloc.start()
    while await again.poll():
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "changes": len(got),
        "changes_per_s": round(len(got) / seconds, 1),
        "requests_per_change": round(sum(requests.values()) / len(got), 3),
        "requests": requests,
        "consumer_peak_bytes": peak,
        "peak_bytes_per_change": round(peak / len(got), 1),
    }


async def _lag(
    ctx: BenchContext, db: Database, plugin: Plugin, *, n: int, concurrency: int, name: str
) -> dict[str, Any]:
    res = await db.create_resource(name, attributes=ATTRIBUTES)
    delays: list[float] = []
    done = asyncio.Event()

    def handler(changes: list[Change]) -> None:
        now = datetime.now(UTC)
        delays.extend((now - c.at).total_seconds() for c in changes)
        if len(delays) >= n:
            done.set()

    sub = await plugin.subscribe(res, handler, consumer="live", poll_interval=0.05, batch_size=500)
    started = time.perf_counter()
    await run_ops(lambda i: res.insert({"id": f"r{i}", "name": "a", "n": i, "region": "eu"}), n, 16)
    await asyncio.wait_for(done.wait(), timeout=300)
    seconds = time.perf_counter() - started
    await sub.stop()
    delays.sort()
    return {
        "writers": concurrency,
        "changes": len(delays),
        "changes_per_s": round(len(delays) / seconds, 1),
        "lag_p50_ms": round(statistics.median(delays) * 1000, 1),
        "lag_p99_ms": round(delays[int(len(delays) * 0.99) - 1] * 1000, 1),
        "lag_max_ms": round(delays[-1] * 1000, 1),
    }


async def _bench_store(ctx: BenchContext, name: str) -> dict[str, Any]:
    async with Database(ctx.url(name), parallelism=64) as db:
        plugin = await db.use_plugin(_Bench())
        out: dict[str, Any] = {"write_cost": await _write_cost(ctx, db, plugin)}
        added = out["write_cost"]["added"]
        ctx.log(
            f"{name:9} feed adds per write: "
            + ", ".join(
                f"{op} +{a['puts_per_op']:.2f} PUT +{a['requests_per_op']:.2f} req "
                f"+{a['latency_ms']:.2f} ms"
                for op, a in added.items()
            )
        )
        out["delivery"] = await _delivery(ctx, db, plugin)
        d = out["delivery"]
        ctx.log(
            f"{name:9} feed delivery {d['changes_per_s']:>9.1f} changes/s "
            f"{d['requests_per_change']:.3f} req/change {d['peak_bytes_per_change']:.0f} B/change"
        )
        out["lag"] = await _lag(
            ctx, db, plugin, n=200 if ctx.quick else 2_000, concurrency=16, name="live"
        )
        out["lag_one_writer"] = await _lag(
            ctx, db, plugin, n=50 if ctx.quick else 300, concurrency=1, name="steady"
        )
        for key in ("lag", "lag_one_writer"):
            lag = out[key]
            ctx.log(
                f"{name:9} feed live, {lag['writers']:>2} writers {lag['changes_per_s']:>9.1f} "
                f"changes/s lag p50 {lag['lag_p50_ms']} ms p99 {lag['lag_p99_ms']} ms"
            )
        # -- lease failover ------------------------------------------------------------
        out["lease_failover"] = await lease_failover(ctx, name)
        return out


async def run(ctx: BenchContext) -> dict[str, Any]:
    return {name: await _bench_store(ctx, name) for name in ctx.stores}
