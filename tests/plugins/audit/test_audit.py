"""AuditPlugin (issue 19): every committed write of an audited resource becomes one audit
entry, durably (the change feed), once per record for ``delete_many``, at a pinned request
cost. Runs on memory, file and SeaweedFS; the crash test SIGKILLs a real writer process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from s3db_async.plugins import AuditPlugin

from s3db_async import Change, Database, Plugin, actor
from s3db_async.errors import ConfigError, ValidationError
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = pytest.mark.stores("memory", "file", "seaweedfs")

ATTRS = {"item": "string", "qty": "integer|optional", "note": "string|optional"}


class Collect(Plugin):
    def __init__(self, got: list[Change]) -> None:
        super().__init__()
        self.got = got


async def setup(db: Database, **options: Any) -> tuple[Any, AuditPlugin]:
    orders = await db.create_resource("orders", attributes=ATTRS)
    options.setdefault("leader", False)
    options.setdefault("poll_interval", None)  # tests drive the feed with flush()
    audit = await db.use_plugin(AuditPlugin(resources=["orders"], **options))
    return orders, audit


async def test_every_write_is_audited_with_actor_time_and_images(db: Database) -> None:
    orders, audit = await setup(db)
    with actor("alice"):
        rec = await orders.insert({"item": "tea", "qty": 1})
        await orders.update(rec["id"], {"qty": 2})
    with actor("bob"):
        await orders.delete(rec["id"])
    await audit.flush()
    history = await audit.get_record_history("orders", rec["id"])
    assert [(e["operation"], e["actor"]) for e in history] == [
        ("insert", "alice"),
        ("update", "alice"),
        ("delete", "bob"),
    ]
    ins, upd, dele = history
    assert ins["before"] is None and ins["after"]["qty"] == 1
    assert upd["before"]["qty"] == 1 and upd["after"]["qty"] == 2 and upd["changed"] == ["qty"]
    assert dele["before"]["qty"] == 2 and dele["after"] is None
    assert all(e["resource"] == "orders" and e["record_id"] == rec["id"] for e in history)
    assert all(not e["truncated"] for e in history)
    ats = [datetime.fromisoformat(e["at"]) for e in history]
    assert ats == sorted(ats) and ats[0].tzinfo is not None
    logs = audit.logs
    assert logs is not None and logs.name == "plg_audit_logs"


async def test_delete_many_is_audited_once_per_record(db: Database) -> None:
    """s3db.js writes two audit entries per record of deleteMany; we write one."""
    orders, audit = await setup(db)
    ids = [r["id"] for r in (await orders.insert_many([{"item": f"i{i}"} for i in range(7)])).ok]
    await orders.delete_many(ids)
    await audit.flush()
    deletes = await audit.get_audit_logs(resource="orders", operation="delete")
    assert sorted(e["record_id"] for e in deletes) == sorted(ids)
    assert len(await audit.get_audit_logs(operation="insert")) == 7


async def test_an_audited_insert_costs_three_requests_and_pinned_overheads(db: Database) -> None:
    """The writer pays 2 PUTs (intent + record, the actor in the intent's key); the consumer
    proves each insert and reads its content with 1 GET of the record, and per batch pays
    2 PUTs for the segment (record + partition reference), 1 PUT for the cursor and the
    LISTs. s3db.js: 11 requests per audited insert."""
    orders, audit = await setup(db, batch_size=100)
    await orders.insert({"item": "warm-up"})  # one-time reads of the first write
    await audit.flush()
    stats = db.store.stats
    n = 100
    start = dict(stats)
    for i in range(n):
        with actor("alice" if i % 2 else None):
            await orders.insert({"item": f"i{i}"})
    wrote = {k: stats[k] - start.get(k, 0) for k in stats}
    assert wrote.get("put", 0) == 2 * n and sum(wrote.values()) == 2 * n
    mid = dict(stats)
    assert await audit.flush() == n
    consumed = {k: stats[k] - mid.get(k, 0) for k in stats if stats[k] - mid.get(k, 0)}
    assert consumed.get("head", 0) == 0 and consumed["get"] == n
    assert consumed["put"] <= 3 and consumed["list"] <= 4
    per_insert = (2 * n + sum(consumed.values())) / n
    assert per_insert <= 3.07, per_insert
    entries = await audit.get_audit_logs(resource="orders", operation="insert")
    assert len(entries) == n + 1
    by_item = {e["after"]["item"]: e for e in entries}
    assert by_item["i1"]["actor"] == "alice" and by_item["i2"]["actor"] is None


async def test_an_insert_updated_before_the_audit_reads_it_keeps_both_forms(
    db: Database,
) -> None:
    """When the record has moved on, the insert's form comes from its intent, with an actor
    too long for a key."""
    orders, audit = await setup(db)
    long_actor = "service:" + "x" * 200
    with actor(long_actor):
        rec = await orders.insert({"item": "tea"})
    with actor("bob"):
        await orders.update(rec["id"], {"item": "coffee"})
    await audit.flush()
    ins, upd = await audit.get_record_history("orders", rec["id"])
    assert ins["actor"] == long_actor and ins["after"]["item"] == "tea"
    assert upd["actor"] == "bob" and upd["after"]["item"] == "coffee"


async def test_data_options_truncation_and_diff(db: Database) -> None:
    orders, audit = await setup(db, max_data_size=120, diff_only=True)
    rec = await orders.insert({"item": "tea", "note": "x" * 500})
    await orders.update(rec["id"], {"qty": 3})
    await audit.flush()
    ins, upd = await audit.get_record_history("orders", rec["id"])
    assert ins["truncated"] and ins["after"]["_truncated"] and ins["after"]["_size"] > 500
    assert "before" not in upd and upd["changes"] == {"qty": [None, 3]}
    assert not upd["truncated"]


async def test_include_data_false_keeps_only_the_facts(db: Database) -> None:
    orders, audit = await setup(db, include_data=False)
    rec = await orders.insert({"item": "tea"})
    await audit.flush()
    (entry,) = await audit.get_audit_logs()
    assert "after" not in entry and "before" not in entry
    assert entry["record_id"] == rec["id"] and entry["changed"] == ["item"]


async def test_actor_callable_fills_in_when_no_context_actor(db: Database) -> None:
    orders, audit = await setup(db, actor=lambda c: (c.after or c.before or {}).get("note"))
    await orders.insert({"item": "a", "note": "svc-importer"})
    with actor("carol"):
        await orders.insert({"item": "b", "note": "ignored"})
    await audit.flush()
    assert [e["actor"] for e in await audit.get_audit_logs()] == ["svc-importer", "carol"]
    assert [e["after"]["item"] for e in await audit.get_audit_logs(actor="carol")] == ["b"]


async def test_filters_by_time_resource_and_limit(db: Database) -> None:
    orders, audit = await setup(db)
    for i in range(3):
        await orders.insert({"item": f"i{i}"})
    await audit.flush()
    now = datetime.now(UTC)
    assert len(await audit.get_audit_logs(since=now - timedelta(hours=1))) == 3
    assert await audit.get_audit_logs(since=now + timedelta(days=2)) == []
    assert await audit.get_audit_logs(until=now - timedelta(days=2)) == []
    assert len(await audit.get_audit_logs(since=now.date().isoformat(), limit=2)) == 2
    assert await audit.get_audit_logs(resource="customers") == []
    with pytest.raises(ValidationError) as err:
        await audit.get_audit_logs(operation="upsert")
    assert err.value.suggestion and "insert" in err.value.suggestion
    with pytest.raises(ValidationError):
        await audit.get_audit_logs(since="yesterday")


async def test_a_batch_delivered_again_is_read_once(db: Database) -> None:
    orders, audit = await setup(db, batch_size=3)
    for i in range(5):
        await orders.insert({"item": f"i{i}"})
    failed: list[int] = []

    def crash_once(event: str, payload: Any) -> None:
        if event == "audit.written" and not failed:  # after the segment, before the cursor
            failed.append(payload["count"])
            raise RuntimeError("killed before the cursor was saved")

    audit.emit = crash_once  # type: ignore[method-assign]
    assert await audit.flush() == 5
    assert failed == [3]
    logs = await audit.get_audit_logs()
    assert len(logs) == 5 and len({e["id"] for e in logs}) == 5
    assert len(await audit.logs.list_ids()) == 2  # type: ignore[union-attr]


async def test_overlapping_segments_are_read_once(db: Database) -> None:
    """A batch redelivered with another split (more changes arrived) overlaps the first
    segment: readers drop the repeated change ids."""
    orders, audit = await setup(db)
    got: list[Change] = []
    for i in range(4):
        await orders.insert({"item": f"i{i}"})
    sink = await db.use_plugin(Collect(got))
    await sink.subscribe(orders, got.extend, from_="earliest", poll_interval=None)
    while await sink.subscriptions[0].poll():
        pass
    await audit._record(got[:2])
    await audit._record(got)
    assert len(await audit.logs.list_ids()) == 1  # type: ignore[union-attr]
    await audit._record(got[1:])
    assert len(await audit.logs.list_ids()) == 2  # type: ignore[union-attr]
    assert [e["id"] for e in await audit.get_audit_logs()] == [c.change_id for c in got]


async def test_retention_cleanup_drops_old_dates_only(db: Database) -> None:
    orders, audit = await setup(db, retention_days=30)
    await orders.insert({"item": "tea"})
    await audit.flush()
    assert await audit.cleanup(now=datetime.now(UTC) + timedelta(days=29)) == 0
    assert len(await audit.get_audit_logs()) == 1
    assert await audit.cleanup(now=datetime.now(UTC) + timedelta(days=32)) == 1
    assert await audit.get_audit_logs() == []


async def test_all_resources_mode_follows_new_resources_and_skips_plugin_ones(
    db: Database,
) -> None:
    audit = await db.use_plugin(AuditPlugin(poll_interval=None))
    users = await db.create_resource("users", attributes={"name": "string"})
    await users.insert({"name": "ann"})
    await audit.flush()
    assert [e["resource"] for e in await audit.get_audit_logs()] == ["users"]
    assert {s.resource.name for s in audit.subscriptions} == {"users"}


async def test_operations_option_records_only_the_tracked_operations(db: Database) -> None:
    """The seed's ``trackOperations: ['inserted', 'updated', 'deleted']``: event names or
    operation names, and an operation left out gets no entry."""
    orders, audit = await setup(db, operations=["inserted", "deleted"])
    assert audit.operations == ("insert", "delete")
    rec = await orders.insert({"item": "tea", "qty": 1})
    await orders.update(rec["id"], {"qty": 2})
    await orders.update(rec["id"], {"qty": 3})
    await orders.delete(rec["id"])
    await audit.flush()
    history = await audit.get_record_history("orders", rec["id"])
    assert [e["operation"] for e in history] == ["insert", "delete"]
    assert history[1]["before"]["qty"] == 3  # the data is the record as it was deleted
    only_updates = await db.use_plugin(
        AuditPlugin(
            resources=["orders"], operations=["update"], leader=False, poll_interval=None,
            namespace="updates",
        )
    )  # fmt: skip
    other = await orders.insert({"item": "mug"})  # not recorded by this one
    await orders.update(other["id"], {"qty": 5})
    await only_updates.flush()
    assert [e["operation"] for e in await only_updates.get_audit_logs()] == ["update"]


async def test_records_with_datetimes_are_audited_as_json(db: Database) -> None:
    """A resource with ``timestamps=True`` (or datetime fields) has datetimes in its record
    images; they used to fail the log's json field, and the feed retried the batch forever
    (``flush()`` never returned)."""
    people = await db.create_resource(
        "people", attributes={"name": "string", "born": "datetime|optional"}, timestamps=True
    )
    audit = await db.use_plugin(AuditPlugin(resources=["people"], leader=False, poll_interval=None))
    born = datetime(1990, 5, 17, 8, 30, tzinfo=UTC)
    ann = await people.insert({"name": "Ann", "born": born})
    await people.update(ann["id"], {"name": "Anne"})
    assert await asyncio.wait_for(audit.flush(), 30) == 2
    ins, upd = await audit.get_record_history("people", ann["id"])
    assert datetime.fromisoformat(ins["after"]["born"]) == born
    assert isinstance(ins["after"]["created_at"], str)
    assert (upd["before"]["name"], upd["after"]["name"]) == ("Ann", "Anne")


async def test_uninstall_with_purge_drops_the_log_resource(db: Database) -> None:
    orders, audit = await setup(db)
    await orders.insert({"item": "tea"})
    await audit.flush()
    assert db.resource_exists("plg_audit_logs")
    await db.uninstall_plugin("audit", purge_data=True)
    assert not db.resource_exists("plg_audit_logs")


async def test_bad_options_raise_typed_errors() -> None:
    for bad in (
        {"max_data_size": 0},
        {"retention_days": 0},
        {"resources": "orders"},
        {"actor": "alice"},
        {"poll_interval": 0},
        {"batch_size": 0},
        {"operations": "insert"},
        {"operations": ["insert", "upsert"]},
        {"operations": []},
    ):
        with pytest.raises(ConfigError) as err:
            AuditPlugin(**bad)
        assert err.value.suggestion and err.value.metadata["field"] in bad


# -- a real writer process, SIGKILLed right after its write ------------------------------


async def write_and_hang(ctx: WorkerContext) -> None:
    async with Database(ctx.url) as db:
        orders = db.get_resource("orders")
        with actor("worker"):
            rec = await orders.insert({"item": "killed-after-write"})
        await ctx.report("written", rec["id"])
        await ctx.receive()  # never answered: the test SIGKILLs this process


@pytest.mark.stores("file", "seaweedfs")
async def test_a_writer_killed_after_its_write_loses_no_entry(store_url: str) -> None:
    async with Database(store_url) as db:
        _, audit = await setup(db)  # registers the consumer: every writer records intents
        async with spawn_processes(write_and_hang, store_url, n=1) as group:
            index, rid = await group.wait_for("written")
            group.kill(index)
            (outcome,) = await group.outcomes()
        assert outcome.killed
        await audit.flush()
        (entry,) = await audit.get_record_history("orders", rid)
        assert entry["operation"] == "insert" and entry["actor"] == "worker"


@pytest.mark.parametrize("leader", [True, False])
async def test_background_polling_writes_entries(db: Database, leader: bool) -> None:
    """leader=True polls from a leader job (one process across the bucket); leader=False
    from this process's own feed loop."""
    orders, audit = await setup(db, leader=leader, poll_interval=0.05)
    rec = await orders.insert({"item": "tea"})
    for _ in range(400):  # bounded: 400 rounds of 50 ms
        if await audit.get_record_history("orders", rec["id"]):
            break
        await asyncio.sleep(0.05)
    (entry,) = await audit.get_record_history("orders", rec["id"])
    assert entry["operation"] == "insert"
    assert ("poll" in audit.jobs) is leader


async def test_stop_and_start_again_keeps_auditing(db: Database) -> None:
    orders, audit = await setup(db)
    await orders.insert({"item": "a"})
    await audit.stop()
    await orders.insert({"item": "b"})  # written while stopped: still in the feed
    await audit.start()
    await audit.flush()
    assert [e["after"]["item"] for e in await audit.get_audit_logs()] == ["a", "b"]


# -- several processes each run the plugin: one leader writes the trail, once ------------


async def audit_and_write(ctx: WorkerContext) -> list[str]:
    async with Database(ctx.url) as db:
        audit = await db.use_plugin(AuditPlugin(resources=["orders"], poll_interval=0.1))
        orders = db.get_resource("orders")
        await ctx.barrier()  # every process runs the plugin before anyone writes
        ids = []
        for i in range(ctx.args[0]):
            with actor(f"p{ctx.index}"):
                ids.append((await orders.insert({"item": f"p{ctx.index}-{i}"}))["id"])
        await ctx.barrier("written")
        for _ in range(600):  # bounded: until the leader wrote every entry of this run
            if len(await audit.get_audit_logs()) >= ctx.count * ctx.args[0]:
                break
            await asyncio.sleep(0.05)
        await ctx.barrier("read")
        return ids


@pytest.mark.stores("file", "seaweedfs")
async def test_processes_running_the_plugin_write_each_entry_once(store_url: str) -> None:
    async with Database(store_url) as db:
        await setup(db)  # the resource and the consumer exist before the workers start
    async with spawn_processes(audit_and_write, store_url, n=2, args=(6,)) as group:
        await group.release()
        await group.release("written")
        await group.release("read")
        ids = [i for per in await group.results() for i in per]
    async with Database(store_url) as db:
        audit = await db.use_plugin(AuditPlugin(resources=["orders"], poll_interval=None))
        logs = await audit.get_audit_logs()
        assert sorted(e["record_id"] for e in logs) == sorted(ids)
        assert {e["actor"] for e in logs} == {"p0", "p1"}
        segments = await audit.logs.list(partition="by_resource_date",  # type: ignore[union-attr]
                                         partition_values={"resource": "orders"})  # fmt: skip
        assert sum(s["count"] for s in segments) == len(ids)  # no entry written twice
