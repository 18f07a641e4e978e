"""MetricsPlugin (issue 19): counts, errors, latency histograms and slow operations per
resource and operation; flushes to a plugin resource summed across real processes;
Prometheus text, ASGI app, and an HTTP port only when asked. Runs on memory, file and
SeaweedFS (the flush and the multi-process sums on the stores that hold data across
processes)."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from s3db_async.plugins import MetricsPlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, MissingDependencyError, NotFoundError
from s3db_async.testing import WorkerContext, run_processes

pytestmark = pytest.mark.stores("memory", "file", "seaweedfs")

ATTRS = {"item": "string"}


async def setup(db: Database, **options: Any) -> tuple[Any, MetricsPlugin]:
    orders = await db.create_resource("orders", attributes=ATTRS)
    options.setdefault("flush_interval", None)
    metrics = await db.use_plugin(MetricsPlugin(**options))
    return orders, metrics


async def test_counts_errors_and_histograms_per_resource_and_operation(db: Database) -> None:
    orders, metrics = await setup(db, buckets=(0.5, 100.0))
    rec = await orders.insert({"item": "tea"})
    for _ in range(3):
        await orders.get(rec["id"])
    with pytest.raises(NotFoundError):
        await orders.get("missing")
    await orders.list()
    m = metrics.get_metrics()
    get = m["resources"]["orders"]["get"]
    assert get["count"] == 4 and get["errors"] == 1
    assert get["error_types"] == {"NotFoundError": 1}
    assert sum(get["buckets"]) == 4 and len(get["buckets"]) == 3  # 2 bounds + Inf
    assert get["max"] >= get["sum"] / 4 > 0
    assert set(m["resources"]["orders"]) == {"insert", "get", "list"}  # only what ran
    assert m["totals"] == {"count": 6, "errors": 1, "slow": 0}
    assert m["buckets"] == [0.5, 100.0]


async def test_slow_operations_are_logged_kept_and_emitted(db: Database) -> None:
    orders, metrics = await setup(db, slow_threshold_ms=0, slow_log_size=2)
    seen: list[dict[str, Any]] = []
    metrics.on("metrics.slow", seen.append)
    rec = await orders.insert({"item": "tea"})
    await orders.get(rec["id"])
    await orders.count()
    assert [s["operation"] for s in seen] == ["insert", "get", "count"]
    assert [s["operation"] for s in metrics.slow_operations()] == ["get", "count"]  # newest 2
    assert metrics.slow_operations()[0]["id"] == rec["id"]
    assert metrics.get_metrics()["totals"]["slow"] == 3


async def test_no_slow_log_without_threshold(db: Database) -> None:
    orders, metrics = await setup(db, slow_threshold_ms=None)
    await orders.insert({"item": "tea"})
    assert metrics.slow_operations() == [] and metrics.get_metrics()["totals"]["slow"] == 0


async def test_flush_writes_deltas_in_two_puts_and_nothing_when_idle(db: Database) -> None:
    orders, metrics = await setup(db)
    rec = await orders.insert({"item": "tea"})
    await orders.get(rec["id"])
    assert await metrics.flush()  # the first write also reads and stamps the resource once
    db.store.stats.reset()
    assert not await metrics.flush()  # nothing happened since
    assert db.store.stats.total() == 0
    await orders.get(rec["id"])
    db.store.stats.reset()
    assert await metrics.flush()
    assert db.store.stats.snapshot() == {"put": 2}  # the record + its date reference
    flushed = await metrics.get_flushed_metrics()
    assert flushed["snapshots"] == 2
    assert flushed["resources"]["orders"]["get"]["count"] == 2  # 1 + 1: deltas, summed
    assert flushed["resources"]["orders"]["insert"]["count"] == 1
    assert (await metrics.get_flushed_metrics(until=date.today() - timedelta(days=1)))[
        "snapshots"
    ] == 0
    assert (await metrics.get_flushed_metrics(until=datetime.now(UTC).date()))["snapshots"] == 2
    assert (await metrics.get_flushed_metrics(resource="other"))["resources"] == {}


async def test_cleanup_drops_old_snapshots(db: Database) -> None:
    orders, metrics = await setup(db, retention_days=7)
    await orders.insert({"item": "tea"})
    await metrics.flush()
    assert await metrics.cleanup(now=datetime.now(UTC) + timedelta(days=6)) == 0
    assert await metrics.cleanup(now=datetime.now(UTC) + timedelta(days=8)) == 1
    assert (await metrics.get_flushed_metrics())["snapshots"] == 0


async def test_prometheus_text_parses_and_matches(db: Database) -> None:
    orders, metrics = await setup(db, slow_threshold_ms=0)
    rec = await orders.insert({"item": "tea"})
    await orders.get(rec["id"])
    await orders.get(rec["id"])
    families = {f.name: f for f in text_string_to_metric_families(metrics.prometheus_text())}
    ops = {
        (s.labels["resource"], s.labels["operation"]): s.value
        for s in families["s3db_operations"].samples
        if s.name == "s3db_operations_total"
    }
    assert ops == {("orders", "insert"): 1.0, ("orders", "get"): 2.0}
    hist = [
        s for s in families["s3db_operation_duration_seconds"].samples
        if s.labels.get("operation") == "get"
    ]  # fmt: skip
    buckets = [s.value for s in hist if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 2.0  # cumulative, +Inf = count
    assert [s.value for s in hist if s.name.endswith("_count")] == [2.0]
    slow = {s.labels["operation"]: s.value for s in families["s3db_slow_operations"].samples
            if s.name.endswith("_total")}  # fmt: skip
    assert slow == {"insert": 1.0, "get": 2.0}


async def test_asgi_app_serves_the_exposition(db: Database) -> None:
    orders, metrics = await setup(db)
    await orders.insert({"item": "tea"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/", "query_string": b"",
        "headers": [], "http_version": "1.1",
    }  # fmt: skip
    await metrics.asgi_app()(scope, receive, send)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert 's3db_operations_total{operation="insert",resource="orders"} 1.0' in body


@pytest.mark.stores("memory")
async def test_no_port_unless_asked_then_served_and_closed(db: Database) -> None:
    """s3db.js opens :9090 by default; we open nothing unless port= is given."""
    _, quiet = await setup(db)
    assert quiet.port is None and quiet.bound_port is None
    loud = await db.use_plugin(MetricsPlugin(port=0, flush_interval=None, alias="served"))
    port = loud.bound_port
    assert port
    await db.get_resource("orders").insert({"item": "tea"})

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(fetch)
    assert 's3db_operations_total{operation="insert",resource="orders"} 1.0' in text
    await loud.stop()
    assert loud.bound_port is None
    with pytest.raises(OSError):
        await asyncio.to_thread(fetch)


@pytest.mark.stores("memory")
async def test_prometheus_without_the_extra_names_the_install_command(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, metrics = await setup(db)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependencyError) as err:
        metrics.prometheus_text()
    assert "s3db-async[metrics]" in str(err.value)
    assert metrics.get_metrics()["totals"]["count"] >= 0  # the rest works without it
    with pytest.raises(MissingDependencyError):
        await db.use_plugin(MetricsPlugin(port=0, alias="served"))


async def test_resource_selection_and_plugin_resources(db: Database) -> None:
    orders, metrics = await setup(db)  # every resource, including later ones
    users = await db.create_resource("users", attributes={"name": "string"})
    await users.insert({"name": "ann"})
    await orders.count()
    await metrics.flush()  # writes plg_metrics_snapshots: not measured itself
    assert set(metrics.get_metrics()["resources"]) == {"users", "orders"}
    only = await db.use_plugin(
        MetricsPlugin(resources=["users"], operations=["get"], flush_interval=None, alias="m2")
    )
    await orders.count()
    await users.count()
    assert only.get_metrics()["resources"] == {}


async def test_uninstall_removes_the_measuring_and_purge_the_snapshots(db: Database) -> None:
    orders, metrics = await setup(db)
    await orders.insert({"item": "tea"})
    await metrics.flush()
    await db.uninstall_plugin("metrics", purge_data=True)
    await orders.count()
    assert "count" not in metrics.get_metrics()["resources"]["orders"]
    assert not db.resource_exists("plg_metrics_snapshots")


async def test_bad_options_raise_typed_errors() -> None:
    for bad in (
        {"operations": ["fly"]},
        {"operations": "get"},
        {"buckets": (1.0, 0.5)},
        {"slow_threshold_ms": -1},
        {"slow_log_size": 0},
        {"flush_interval": 0},
        {"retention_days": 0},
        {"port": 70000},
        {"resources": "orders"},
        {"prefix": "s3db-x"},
    ):
        with pytest.raises(ConfigError) as err:
            MetricsPlugin(**bad)
        assert err.value.suggestion and err.value.metadata["field"] in bad


# -- two real processes flush; their figures add up --------------------------------------


async def get_and_flush(ctx: WorkerContext) -> str:
    async with Database(ctx.url) as db:
        metrics = await db.use_plugin(MetricsPlugin(flush_interval=None))
        orders = db.get_resource("orders")
        for _ in range(ctx.args[0]):
            await orders.get("o1")
        assert await metrics.flush()
        return metrics.process


@pytest.mark.stores("file", "seaweedfs")
async def test_flushed_figures_of_several_processes_add_up(store_url: str) -> None:
    async with Database(store_url) as db:
        orders, metrics = await setup(db)
        await orders.insert({"id": "o1", "item": "tea"})
    processes = await run_processes(get_and_flush, store_url, n=2, args=(5,))
    async with Database(store_url) as db:
        metrics = await db.use_plugin(MetricsPlugin(flush_interval=None))
        flushed = await metrics.get_flushed_metrics()
    assert sorted(flushed["processes"]) == sorted(processes) and len(set(processes)) == 2
    assert flushed["resources"]["orders"]["get"]["count"] == 10
