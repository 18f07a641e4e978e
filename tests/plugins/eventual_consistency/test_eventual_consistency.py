"""EventualConsistencyPlugin on every store: transactions, consolidation, costs, history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from s3db_async.plugins import EventualConsistencyPlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, PluginError, ValidationError
from s3db_async.stores import open_store
from tests._faults import LostReplyStore

ATTRS = {"owner": "string"}


async def setup(
    db: Database, *, create: bool = True, **options: Any
) -> tuple[Any, EventualConsistencyPlugin]:
    options.setdefault("resources", {"wallets": {"balance": {}}})
    job = options.pop("job", True)
    plugin = await db.use_plugin(EventualConsistencyPlugin(**options))
    if not job:  # request counts: no lease campaign of the job in the background
        await plugin.job.cancel()
    wallets = None
    if create:
        wallets = await db.create_resource("wallets", attributes=ATTRS)
        await wallets.insert({"id": "w1", "owner": "ann"})
    return wallets, plugin


def tx_keys(plugin: EventualConsistencyPlugin, kind: str = "tx") -> Any:
    return plugin.storage.store.list_keys(f"resource=wallets/plugin={plugin.slug}/{kind}/")


# -- options and bad input -----------------------------------------------------------------
def test_bad_options_raise_typed_errors_with_suggestions() -> None:
    for kwargs in (
        {},
        {"resources": {"wallets": {"balance": {}}}, "mode": "later"},
        {"resource": "wallets"},
        {"resources": {"wallets": {"balance": {"colour": 1}}}},
        {"resources": {"wallets": {"balance": {}}}, "retention": 0},
        {"resources": {"wallets": {"balance": {"initial": "ten"}}}},
    ):
        with pytest.raises((ConfigError, ValidationError)) as info:
            EventualConsistencyPlugin(**kwargs)
        assert info.value.suggestion, kwargs
        assert info.value.metadata.get("field"), kwargs


async def test_bad_amounts_and_fields_are_refused(db: Database) -> None:
    wallets, plugin = await setup(db)
    for amount in ("10", True, float("nan"), None):
        with pytest.raises(ValidationError) as info:
            await wallets.add("w1", "balance", amount)
        assert info.value.metadata["field"] == "balance" and info.value.suggestion
    with pytest.raises(ConfigError, match="not a counter field"):
        await wallets.add("w1", "stock", 1)
    with pytest.raises(ValidationError):
        await plugin.add("wallets", "a/b", "balance", 1)
    assert await tx_keys(plugin) == []


# -- writes and consolidation ----------------------------------------------------------------
async def test_async_add_is_one_put_and_durable_before_consolidation(
    db: Database, store_url: str
) -> None:
    """s3db.js defect: async mode kept transactions in memory until stop(); here each is one PUT."""
    wallets, plugin = await setup(db, job=False)
    await wallets.add("w1", "balance", 1)  # warm-up (namespace registration, capabilities)
    for op in (wallets.add, wallets.sub, wallets.increment, wallets.decrement):
        db.store.stats.reset()
        assert await op("w1", "balance", 2) is None
        assert sum(db.store.stats.values()) <= 2 and db.store.stats.get("put") == 1
    assert len(await tx_keys(plugin)) == 5  # written, visible to any process at once
    async with Database(store_url) as other:  # another connection, no plugin, no stop()
        keys = await other.store.list_keys(f"resource=wallets/plugin={plugin.slug}/tx/")
        assert len(keys) == 5
    assert (await wallets.get("w1")).get("balance") is None
    assert await wallets.get_counter("w1") == 1
    assert await wallets.consolidate("w1") == 1
    assert (await wallets.get("w1"))["balance"] == 1
    assert await tx_keys(plugin) == []


async def test_the_documented_resource_call_works(db: Database) -> None:
    """s3db.js defect: its documented ``wallets.add('w1', 'balance', 100)`` throws."""
    wallets, _ = await setup(db, mode="sync")
    assert await wallets.add("w1", "balance", 100) == 100
    assert await wallets.add("w1", 5) == 105  # single field: the field may be left out
    assert (await wallets.get("w1"))["balance"] == 105


async def test_sync_mode_consolidates_on_write_and_set_orders_by_id(db: Database) -> None:
    wallets, plugin = await setup(
        db,
        resources={"wallets": {"balance": {"initial": 10}, "points": {"mode": "async"}}},
        mode="sync",
    )
    assert await wallets.add("w1", "balance", 5) == 15
    assert await wallets.sub("w1", "balance", 20) == -5
    assert await wallets.set("w1", "balance", 100) == 100
    assert await wallets.increment("w1", "balance") == 101
    assert await wallets.decrement("w1", "balance", 0.5) == 100.5
    assert (await wallets.get("w1"))["balance"] == 100.5
    assert await wallets.add("w1", "points", 3) is None  # per-field mode
    await plugin.set("wallets", "w1", "points", 7)
    await plugin.add("wallets", "w1", "points", 1)
    assert await wallets.consolidate("w1", "points") == 8
    with pytest.raises(ConfigError, match="has 2 counter fields"):
        await wallets.add("w1", 1)


async def test_consolidating_1000_adds_of_one_record_takes_under_50_requests(
    db: Database,
) -> None:
    """s3db.js had not finished after 240 s and 50,927 requests on SeaweedFS."""
    wallets, plugin = await setup(db, job=False)
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await wallets.add("w1", "balance", i)

    await asyncio.gather(*(one(i) for i in range(1000)))
    db.store.stats.reset()
    assert await wallets.consolidate("w1") == sum(range(1000))
    requests = sum(db.store.stats.values())
    assert requests < 50, dict(db.store.stats)
    assert db.store.stats.get("get", 0) <= 3  # amounts come from the keys: no GET per transaction
    assert (await wallets.get("w1"))["balance"] == sum(range(1000))
    assert await tx_keys(plugin) == []
    assert len(await tx_keys(plugin, "applied")) == 1


async def test_transactions_are_consolidated_from_list_alone(db: Database) -> None:
    wallets, plugin = await setup(db, job=False)
    for amount in (3, 4, 5):
        await wallets.add("w1", "balance", amount)
    (key, *_) = await tx_keys(plugin)
    assert key.rsplit("/", 1)[-1].endswith("~add~3")
    db.store.stats.reset()
    assert await wallets.get_counter("w1") == 12
    assert dict(db.store.stats) == {"get": 1, "list": 1}  # the state (missing) and one LIST


async def test_installed_before_the_resource_exists(db: Database) -> None:
    _, plugin = await setup(db, create=False, mode="sync")
    assert await plugin.add("wallets", "w1", "balance", 7) == 7  # no resource yet: state only
    wallets = await db.create_resource("wallets", attributes=ATTRS)
    await wallets.insert({"id": "w1", "owner": "ann"})
    assert await wallets.add("w1", "balance", 1) == 8
    assert (await wallets.get("w1"))["balance"] == 8
    # and after: a declared number field is the user's; the plugin just writes it
    later = await db.create_resource("cards", attributes={"points": "number|optional"})
    cards = await db.use_plugin(
        EventualConsistencyPlugin(resource="cards", field="points", mode="sync", alias="cards")
    )
    await later.insert({"id": "c1"})
    assert await later.add("c1", 2) == 2 and await cards.current("cards", "c1", "points") == 2


async def test_a_consolidation_interrupted_after_its_commit_is_finished_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallets, plugin = await setup(db)
    for amount in (10, 20):
        await wallets.add("w1", "balance", amount)
    original = plugin._finish

    async def crash(*args: Any) -> None:
        raise RuntimeError("process died after the commit")

    monkeypatch.setattr(plugin, "_finish", crash)
    with pytest.raises(RuntimeError):
        await wallets.consolidate("w1")
    monkeypatch.setattr(plugin, "_finish", original)
    assert len(await tx_keys(plugin)) == 2  # committed, not yet archived nor deleted
    assert await wallets.get_counter("w1") == 30  # applied transactions are not counted twice
    await wallets.add("w1", "balance", 1)
    assert await wallets.consolidate("w1") == 31
    assert (await wallets.get("w1"))["balance"] == 31
    assert await tx_keys(plugin) == [] and len(await tx_keys(plugin, "applied")) == 2


async def test_recalculate_repairs_a_field_written_by_hand(db: Database) -> None:
    wallets, _ = await setup(db, mode="sync")
    for amount in (1, 2, 3):
        await wallets.add("w1", "balance", amount)
    await wallets.update("w1", {"balance": 999})
    assert await wallets.recalculate("w1") == 6
    assert (await wallets.get("w1"))["balance"] == 6


async def test_history_is_folded_after_retention_and_values_stay_exact(db: Database) -> None:
    now = [1_700_000_000.0]
    wallets, plugin = await setup(db, mode="sync", retention=3600, clock=lambda: now[0])
    await wallets.add("w1", "balance", 5)
    await wallets.set("w1", "balance", 50)
    now[0] += 1800
    await wallets.add("w1", "balance", 1)
    assert await plugin.collect_garbage() == 0
    now[0] += 1801  # the first two commits are past retention, the third is not
    assert await plugin.collect_garbage() == 2
    assert len(await tx_keys(plugin, "applied")) == 1
    assert await plugin.collect_garbage() == 0
    await wallets.update("w1", {"balance": 0})
    assert await wallets.recalculate("w1") == 51


async def test_analytics_per_cohort_with_gaps_and_top_records(db: Database) -> None:
    now = [datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()]
    wallets, plugin = await setup(db, mode="sync", analytics=True, clock=lambda: now[0])
    await wallets.insert({"id": "w2", "owner": "bob"})
    await wallets.add("w1", "balance", 10)
    await wallets.sub("w1", "balance", 4)
    now[0] += 2 * 3600
    await wallets.add("w2", "balance", 7)
    rows = await plugin.analytics("wallets", "balance", period="hour", fill_gaps=True)
    assert [r["cohort"] for r in rows] == ["2026-01-01T10", "2026-01-01T11", "2026-01-01T12"]
    assert rows[0] == {
        "cohort": "2026-01-01T10",
        "count": 2,
        "sum": 6,
        "min": -4,
        "max": 10,
        "avg": 3.0,
    }
    assert rows[1]["count"] == 0 and rows[2]["sum"] == 7
    (day,) = await plugin.analytics("wallets", "balance", period="day")
    assert day["count"] == 3 and day["sum"] == 13
    top = await plugin.top_records("wallets", "balance", limit=1)
    assert top == [{"id": "w2", "count": 1, "sum": 7}]
    with pytest.raises(ConfigError):
        await plugin.analytics("wallets", "balance", period="week")


async def test_analytics_must_be_enabled(db: Database) -> None:
    _, plugin = await setup(db)
    with pytest.raises(PluginError) as info:
        await plugin.analytics("wallets", "balance")
    assert info.value.suggestion


async def test_the_leader_job_consolidates_in_async_mode(db: Database) -> None:
    wallets, plugin = await setup(db, consolidation_interval=0.2)
    for amount in (1, 2, 3):
        await wallets.add("w1", "balance", amount)
    for _ in range(300):
        if plugin.job.runs and not await plugin.pending("wallets", "balance"):
            break
        await asyncio.sleep(0.05)
    assert await plugin.pending("wallets", "balance") == {}
    assert (await wallets.get("w1"))["balance"] == 6


async def test_events_and_uninstall_with_purge(db: Database) -> None:
    wallets, plugin = await setup(db, mode="sync")
    seen: list[str] = []
    plugin.on("transaction.written", lambda e: seen.append(e["op"]))
    plugin.on("record.consolidated", lambda e: seen.append(f"={e['value']}"))
    await wallets.add("w1", "balance", 4)
    assert seen == ["add", "=4"]
    await db.uninstall_plugin(plugin.alias, purge_data=True)
    assert not hasattr(wallets, "add")
    assert await db.store.list_keys(f"resource=wallets/plugin={plugin.slug}/") == []


async def test_lost_replies_on_the_state_and_archive_apply_nothing_twice(store_url: str) -> None:
    store = LostReplyStore(open_store(store_url))
    async with Database(store=store) as db:
        wallets, plugin = await setup(db, mode="sync")
        store.lose(1, match=lambda key: "/state/" in key)  # applied, answer lost
        assert await wallets.add("w1", "balance", 5) == 5
        store.lose(1, match=lambda key: "/state/" in key, error="precondition")
        assert await wallets.add("w1", "balance", 6) == 11
        assert len(store.lost) == 2
        assert (await wallets.get("w1"))["balance"] == 11
        assert await plugin.current("wallets", "w1", "balance") == 11


async def test_an_interrupted_collection_folds_nothing_twice(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_700_000_000.0]
    wallets, plugin = await setup(db, mode="sync", retention=60, clock=lambda: now[0])
    await wallets.add("w1", "balance", 5)
    await wallets.add("w1", "balance", 7)
    now[0] += 120
    real = plugin.storage.store.delete_many
    calls = 0

    async def fail_once(keys: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("died before deleting the folded archives")
        return await real(keys)

    monkeypatch.setattr(plugin.storage.store, "delete_many", fail_once)
    with pytest.raises(OSError):
        await plugin.collect_garbage()
    assert len(await tx_keys(plugin, "applied")) == 2  # folded into the base, not yet deleted
    assert await plugin.collect_garbage() == 0  # deletes them, folds nothing again
    assert await tx_keys(plugin, "applied") == []
    await wallets.update("w1", {"balance": -1})
    assert await wallets.recalculate("w1") == 12


async def test_namespaced_instances_side_by_side_and_uninstall_keeps_data(db: Database) -> None:
    wallets, eu = await setup(db, mode="sync", namespace="eu", alias="eu")
    us = await db.use_plugin(
        EventualConsistencyPlugin(
            resources={"wallets": {"credit": {}}}, mode="sync", namespace="us", alias="us"
        )
    )
    assert await eu.add("wallets", "w1", "balance", 3) == 3
    assert await us.add("wallets", "w1", "credit", 4) == 4
    record = await wallets.get("w1")
    assert (record["balance"], record["credit"]) == (3, 4)
    await db.uninstall_plugin("us")  # keeps its data: a reinstalled plugin continues
    again = await db.use_plugin(
        EventualConsistencyPlugin(
            resources={"wallets": {"credit": {}}}, mode="sync", namespace="us", alias="us"
        )
    )
    assert await again.add("wallets", "w1", "credit", 1) == 5
    assert await eu.current("wallets", "w1", "balance") == 3
    await db.uninstall_plugin("eu")  # the instance that added the methods: they stay for "us"
    assert await wallets.add("w1", "credit", 2) == 7
    with pytest.raises(ConfigError, match="not a counter field"):
        await wallets.add("w1", "balance", 1)
    await db.uninstall_plugin("us")
    assert not hasattr(wallets, "add")


# -- audit (issue 20): what the page promises --------------------------------------------
async def test_a_record_created_after_consolidation_gets_the_value_on_the_next_one(
    db: Database,
) -> None:
    """The page: "Records that do not exist (yet) keep their value in the state; the next
    consolidation after the record is created writes it", even with nothing pending."""
    await setup(db, create=False, job=False)
    wallets = await db.create_resource("wallets", attributes=ATTRS)
    await wallets.add("w9", 10)
    assert await wallets.consolidate("w9") == 10  # no record yet: the state keeps it
    await wallets.insert({"id": "w9", "owner": "bob"})
    assert (await wallets.get("w9")).get("balance") is None
    db.store.stats.reset()
    assert await wallets.consolidate("w9") == 10
    assert (await wallets.get("w9"))["balance"] == 10
    db.store.stats.reset()  # once up to date, a no-op consolidation writes nothing
    assert await wallets.consolidate("w9") == 10
    assert db.store.stats["put"] == 0


async def test_bad_plugin_and_analytics_arguments_raise_typed_errors(db: Database) -> None:
    for kwargs in ({"concurrency": 0}, {"concurrency": "8"}, {"clock": 5}, {"resources": 5}):
        with pytest.raises(ConfigError) as info:
            EventualConsistencyPlugin(**{"resource": "wallets", "field": "balance", **kwargs})
        assert info.value.suggestion and info.value.metadata["field"] in kwargs, kwargs
    wallets, plugin = await setup(db, analytics=True, job=False)
    with pytest.raises(ConfigError) as info:  # a string that is no counter field
        await wallets.add("w1", "balanse", 1)
    assert info.value.metadata["field"] == "balanse" and "balance" in info.value.suggestion
    with pytest.raises(ConfigError) as info:
        await plugin.analytics("wallets", "balance", start=datetime(2026, 1, 1))  # naive
    assert info.value.metadata["field"] == "start"
    for limit in (0, "3"):
        with pytest.raises(ConfigError) as info:
            await plugin.top_records("wallets", "balance", limit=limit)  # type: ignore[arg-type]
        assert info.value.metadata["field"] == "limit"
