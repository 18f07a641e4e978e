"""CostsPlugin (issue 19): requests priced by class from the store's own counters (exact
against ``store.stats``), DELETE free, storage as time-weighted GB-months that overwrites
and deletes reduce, transfer out, ``db.costs`` and ``estimate(month)``. Runs on memory, file,
moto and SeaweedFS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from s3db_async.plugins import CostsPlugin
from s3db_async.plugins.costs import GB, MONTH_SECONDS, PRICING, Pricing

from s3db_async import Database
from s3db_async.errors import ConfigError
from s3db_async.plugin import ManualClock, use_clock
from s3db_async.stores import open_store
from s3db_async.testing import WorkerContext, run_processes

from ..._faults import LostReplyStore

pytestmark = pytest.mark.stores("memory", "file", "moto", "seaweedfs")

ATTRS = {"item": "string", "qty": "integer"}


async def listed_bytes(db: Database) -> tuple[int, int]:
    total = objects = 0
    async for page in db.store.list_pages():
        for entry in page:
            total += getattr(entry, "size", 0)
            objects += 1
    return total, objects


async def test_requests_are_exact_against_store_stats_and_priced_by_class(db: Database) -> None:
    orders = await db.create_resource("orders", attributes=ATTRS)
    before = dict(db.store.stats)
    costs = await db.use_plugin(CostsPlugin())
    assert db.costs is costs  # type: ignore[attr-defined]
    recs = [await orders.insert({"item": f"i{i}", "qty": i}) for i in range(5)]
    await orders.get(recs[0]["id"])
    await orders.update(recs[1]["id"], {"qty": 10})
    await orders.list()
    await orders.delete(recs[2]["id"])
    await orders.delete_many([r["id"] for r in recs[3:]])
    expected = {
        op: n - before.get(op, 0) for op, n in db.store.stats.items() if n - before.get(op, 0)
    }
    assert costs.requests() == expected
    s = costs.summary()
    p = PRICING["us-east-1"]
    put = sum(expected.get(op, 0) for op in ("put", "copy", "list"))
    get = sum(expected.get(op, 0) for op in ("get", "head"))
    deletes = sum(expected.get(op, 0) for op in ("delete", "delete_many"))
    assert deletes > 0
    assert s["classes"]["put"] == {"requests": put, "cost": put * p.put_per_1000 / 1000}
    assert s["classes"]["get"] == {"requests": get, "cost": get * p.get_per_1000 / 1000}
    assert s["request_cost"] == pytest.approx(
        put * p.put_per_1000 / 1000 + get * p.get_per_1000 / 1000
    )


async def test_delete_is_free_unlike_s3dbjs(db: Database) -> None:
    """s3db.js prices DELETE requests; S3 does not charge them."""
    costs = await db.use_plugin(CostsPlugin())
    costs.reset()
    await db.store.put("x/a", b"1")
    before = costs.summary()["request_cost"]
    for _ in range(5):
        await db.store.delete("x/a")
    await db.store.delete_many(["x/b", "x/c"])
    s = costs.summary()
    assert s["classes"]["delete"]["requests"] >= 6
    assert s["classes"]["delete"]["cost"] == 0.0
    assert s["request_cost"] == before


async def test_storage_is_time_weighted_and_overwrites_and_deletes_reduce_it(
    db: Database,
) -> None:
    """s3db.js only adds bytes on every write; an overwrite replaces, a delete removes."""
    with use_clock(ManualClock(1_800_000_000.0)) as clock:
        assert isinstance(clock, ManualClock)
        costs = await db.use_plugin(CostsPlugin())
        base = costs.stored_bytes
        assert (base, len(costs._sizes)) == await listed_bytes(db)
        await db.store.put("blob/a", b"x" * 1000)
        clock.advance(3600)
        await db.store.put("blob/a", b"y" * 500)  # overwrite: 500 held, not 1,500
        assert costs.stored_bytes == base + 500
        clock.advance(3600)
        await db.store.copy("blob/a", "blob/b")
        assert costs.stored_bytes == base + 1000
        clock.advance(3600)
        await db.store.delete("blob/a")
        await db.store.delete_many(["blob/b"])
        assert costs.stored_bytes == base
        clock.advance(3600)
        s = costs.summary()
        byte_seconds = base * 4 * 3600 + 1000 * 3600 + 500 * 3600 + 1000 * 3600
        assert s["seconds"] == 4 * 3600
        assert s["storage"]["gb_months"] == pytest.approx(byte_seconds / GB / MONTH_SECONDS)
        assert s["storage"]["cost"] == pytest.approx(
            byte_seconds / GB / MONTH_SECONDS * PRICING["us-east-1"].storage_gb_month
        )


async def test_stored_bytes_follow_resource_writes_exactly(db: Database) -> None:
    early = await db.create_resource("early", attributes=ATTRS)  # before the install
    await early.insert({"id": "e1", "item": "a", "qty": 1})
    costs = await db.use_plugin(CostsPlugin())
    await early.update("e1", {"item": "b" * 2000})
    await early.insert({"id": "e2", "item": "c", "qty": 2})
    await early.delete("e1")
    orders = await db.create_resource("orders", attributes=ATTRS)
    recs = await orders.insert_many([{"item": "t" * i, "qty": i} for i in range(20)])
    ids = [r.id if hasattr(r, "id") else r["id"] for r in recs]  # type: ignore[union-attr]
    await orders.update(ids[0], {"item": "z" * 3000})
    await orders.delete(ids[1])
    await orders.delete_many(ids[2:6])
    assert (costs.stored_bytes, len(costs._sizes)) == await listed_bytes(db)


async def test_streamed_uploads_are_stored_bytes_and_priced_as_puts(db: Database) -> None:
    """A multipart upload (``put_stream``, e.g. a backup to an s3 destination) is followed
    like a put: its size counts in storage, its create/part/complete requests as PUTs."""
    costs = await db.use_plugin(CostsPlugin())
    costs.reset()
    mib = 1024 * 1024
    parts = [b"x" * mib for _ in range(11)]  # 11 MiB in 5 MiB parts: 3 parts
    await db.store.put_stream("t/big", iter(parts), part_size=5 * mib)
    await db.store.put_stream("t/small", [b"abc"])
    s = costs.summary()
    assert (costs.stored_bytes, len(costs._sizes)) == await listed_bytes(db)
    assert s["requests"]["put_part"] == 3
    assert s["classes"]["put"]["requests"] == 1 + 3 + 1 + 1  # create, parts, done, small


async def test_transfer_out_counts_get_bodies(db: Database) -> None:
    costs = await db.use_plugin(CostsPlugin(pricing={"transfer_out_gb": 1.0}))
    costs.reset()
    await db.store.put("t/a", b"a" * 4096)
    await db.store.get("t/a")
    await db.store.get("t/a")
    s = costs.summary()
    assert s["transfer_out"]["bytes"] == 8192
    assert s["transfer_out"]["cost"] == pytest.approx(8192 / GB)


async def test_streamed_reads_count_as_transfer_out(db: Database) -> None:
    """``get_stream`` (backup verify/restore from an s3 destination) sends GET bodies too:
    the bytes read count as transfer out, like ``get``'s."""
    costs = await db.use_plugin(CostsPlugin())
    costs.reset()
    await db.store.put("t/s", b"s" * 5000)
    async with await db.store.get_stream("t/s", chunk_size=1024) as stream:
        assert await stream.read() == b"s" * 5000
    assert costs.summary()["transfer_out"]["bytes"] == 5000
    async with await db.store.get_stream("t/s", chunk_size=1024) as stream:
        async for _ in stream:
            break  # stopped early: what was read counts (S3 may hand it all in one chunk)
    assert 5000 < costs.summary()["transfer_out"]["bytes"] <= 10000
    await costs.uninstall()
    assert "get_stream" not in vars(db.store)


async def test_put_stream_of_one_bytes_object_is_refused_not_corrupted(db: Database) -> None:
    """Without the plugin ``put_stream(key, b"...")`` raises ConfigError; the plugin's
    counting wrapper must not turn each byte into a chunk of zero bytes instead."""
    costs = await db.use_plugin(CostsPlugin())
    with pytest.raises(ConfigError) as err:
        await db.store.put_stream("t/bytes", b"abc")
    assert err.value.metadata["field"] == "chunks"
    assert not await db.store.exists("t/bytes")
    assert "t/bytes" not in costs._sizes


async def test_estimate_scales_observed_rates_to_the_month(db: Database) -> None:
    with use_clock(ManualClock(1_800_000_000.0)) as clock:
        assert isinstance(clock, ManualClock)
        costs = await db.use_plugin(CostsPlugin(region="eu-central-1", inventory=False))
        costs.reset()
        for i in range(10):
            await db.store.put(f"e/{i}", b"x" * 100)
        clock.advance(86400)  # ten PUTs in one day
        est = costs.estimate("2026-02")
        assert est["seconds"] == 28 * 86400
        p = PRICING["eu-central-1"]
        puts = costs.requests()["put"]
        assert est["classes"]["put"]["requests"] == pytest.approx(puts * 28)
        assert est["classes"]["put"]["cost"] == pytest.approx(puts * 28 * p.put_per_1000 / 1000)
        assert est["storage"]["bytes"] == 1000
        assert est["storage"]["gb_months"] == pytest.approx(1000 / GB * 28 * 86400 / MONTH_SECONDS)
        assert costs.estimate()["seconds"] == MONTH_SECONDS
        with pytest.raises(ConfigError):
            costs.estimate("February")


def test_bad_options_raise_typed_errors() -> None:
    with pytest.raises(ConfigError) as err:
        CostsPlugin(region="mars-1")
    assert err.value.suggestion
    with pytest.raises(ConfigError):
        CostsPlugin(pricing={"put_per_1000": -1})
    with pytest.raises(ConfigError):
        CostsPlugin(pricing={"bogus": 1})
    for bad in ([0.1], 3.0, "cheap"):
        with pytest.raises(ConfigError) as err:
            CostsPlugin(pricing=bad)  # type: ignore[arg-type]
        assert err.value.metadata["field"] == "pricing" and err.value.suggestion
    for flag in ("inventory", "track_transfer"):
        with pytest.raises(ConfigError) as err:
            CostsPlugin(**{flag: "no"})
        assert err.value.metadata["field"] == flag
    with pytest.raises(ConfigError):
        CostsPlugin(region=["us-east-1"])  # type: ignore[arg-type]
    custom = Pricing(1.0, 1.0, 1.0, 1.0)
    assert CostsPlugin(pricing=custom).pricing is custom
    assert CostsPlugin(pricing={"get_per_1000": 0.001}).pricing.get_per_1000 == 0.001


async def test_the_class_itself_installs_with_defaults(store_url: str) -> None:
    """The seed's static ``usePlugin(CostsPlugin)``: the class is instantiated with defaults."""
    async with Database(store_url, plugins=[CostsPlugin]) as db:
        costs = db.costs  # type: ignore[attr-defined]
        assert isinstance(costs, CostsPlugin) and costs.region == "us-east-1"
        await db.store.put("s/a", b"abc")
        assert costs.requests()["put"] >= 1


async def test_uninstall_restores_the_store_and_db(db: Database) -> None:
    costs = await db.use_plugin(CostsPlugin())
    await costs.uninstall()
    assert not hasattr(db, "costs")
    assert "put" not in vars(db.store)
    await db.store.put("u/a", b"1")
    assert "u/a" not in costs._sizes


async def test_budget_exceeded_is_emitted_once(db: Database) -> None:
    costs = await db.use_plugin(CostsPlugin(pricing={"put_per_1000": 1000.0}, budget=2.5))
    seen: list[dict[str, object]] = []
    db.on("costs.budget_exceeded", seen.append)
    costs.reset()
    await db.store.put("b/a", b"1")
    costs.summary()
    assert seen == []
    await db.store.put("b/b", b"1")
    await db.store.put("b/c", b"1")
    costs.summary()
    costs.summary()
    assert len(seen) == 1 and seen[0]["budget"] == 2.5 and seen[0]["total"] >= 3.0
    with pytest.raises(ConfigError):
        CostsPlugin(budget=-1)


@pytest.fixture
async def faulty(store_url: str) -> AsyncIterator[tuple[Database, LostReplyStore]]:
    store = LostReplyStore(open_store(store_url))
    database = Database(store=store, passphrase="test-passphrase")
    await database.connect()
    try:
        yield database, store
    finally:
        await database.disconnect()


async def test_a_write_whose_reply_is_lost_is_counted_once(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    costs = await db.use_plugin(CostsPlugin())
    res = await db.create_resource("counters", attributes={"n": "integer|required"})
    store.lose(1, match=lambda key: "/data/" in key)
    await res.insert({"id": "c", "n": 0})
    store.lose(1, match=lambda key: "/data/" in key)
    await res.update("c", {"n": 12345})
    assert len(store.lost) == 2
    assert (costs.stored_bytes, len(costs._sizes)) == await listed_bytes(db)


async def test_flush_writes_deltas_and_the_sum_prices_them(db: Database) -> None:
    costs = await db.use_plugin(CostsPlugin(inventory=False))
    costs.reset()
    await db.store.put("f/a", b"x" * 10)
    first = costs.requests()
    assert await costs.flush()
    flushed = await costs.get_flushed_costs()
    assert flushed["snapshots"] == 1 and flushed["processes"] == [costs.process]
    assert flushed["requests"] == first
    await db.store.get("f/a")
    counted = costs.requests()  # includes the first flush's own requests
    transfer = costs.summary()["transfer_out"]["bytes"]  # the flush's own reads too
    assert transfer >= 10
    assert await costs.flush()
    flushed = await costs.get_flushed_costs()
    assert flushed["snapshots"] == 2
    assert flushed["requests"] == counted
    assert flushed["transfer_out"]["bytes"] == transfer
    with pytest.raises(ConfigError):
        CostsPlugin(flush_interval=0)


# -- two real processes flush; their requests add up exactly ------------------------------


async def write_and_flush(ctx: WorkerContext) -> dict[str, int]:
    async with Database(ctx.url) as db:
        costs = await db.use_plugin(CostsPlugin())
        costs.reset()
        before = dict(db.store.stats)
        orders = db.get_resource("orders")
        for i in range(ctx.args[0]):
            await orders.insert({"item": f"{ctx.index}-{i}", "qty": i})
        await orders.get("o1")
        sent = {op: n - before.get(op, 0) for op, n in db.store.stats.items()}
        assert await costs.flush()
        return {op: n for op, n in sent.items() if n}


@pytest.mark.stores("file", "seaweedfs")
async def test_flushed_requests_of_several_processes_add_up(store_url: str) -> None:
    async with Database(store_url) as db:
        orders = await db.create_resource("orders", attributes=ATTRS)
        await orders.insert({"id": "o1", "item": "tea", "qty": 1})
    results = await run_processes(write_and_flush, store_url, n=2, args=(4,))
    async with Database(store_url) as db:
        costs = await db.use_plugin(CostsPlugin(inventory=False))
        flushed = await costs.get_flushed_costs()
    assert flushed["snapshots"] == 2 and len(flushed["processes"]) == 2
    expected: dict[str, int] = {}
    for r in results:  # what each worker's store sent before its flush, counted by it
        for op, n in r.items():
            expected[op] = expected.get(op, 0) + n
    assert flushed["requests"] == expected


async def test_a_reset_of_the_store_counters_loses_no_request(db: Database) -> None:
    """``db.store.stats.reset()`` between two reads used to lose the requests made after
    the reset up to the count before it (5 GETs, reset, 7 GETs counted as 2)."""
    costs = await db.use_plugin(CostsPlugin())
    await db.store.put("x/a", b"1")
    for _ in range(5):
        await db.store.get("x/a")
    assert costs.requests()["get"] == 5  # synced: the plugin last saw get=5
    before = costs.requests()
    db.store.stats.reset()
    for _ in range(7):
        await db.store.get("x/a")
    after = costs.requests()
    sent = dict(db.store.stats)
    assert {op: after.get(op, 0) - before.get(op, 0) for op in after} == {
        op: sent.get(op, 0) for op in after
    }
    assert after["get"] == 12
    db.store.stats.clear()  # clear() is the same thing
    await db.store.get("x/a")
    assert costs.requests()["get"] == 13
    await db.uninstall_plugin(costs)
    assert "clear" not in vars(db.store.stats)
