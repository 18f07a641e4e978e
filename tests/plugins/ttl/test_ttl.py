"""TTLPlugin (issue 19): ttl or expiry field, the four expiry modes, reads that never return
an expired record (even before the sweep), an index by time cohort whose sweep reads only due
cohorts, every overdue record swept after an outage of any length, one sweeper across
databases, writes from databases without the sweeper indexed through the change feed.

Time is a ManualClock (``s3db_async.plugin.use_clock``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from s3db_async.plugins import TTLPlugin
from s3db_async.plugins.ttl import to_timestamp

from s3db_async import Database, PluginStorage, Resource
from s3db_async.errors import ConfigError, NotFoundError
from s3db_async.plugin import ManualClock, use_clock

START = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock(START)) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


Opener = Callable[..., Awaitable[tuple[Database, TTLPlugin]]]


@pytest.fixture
async def open_db(store_url: str) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(
        resources: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Database, TTLPlugin]:
        db = Database(store_url)
        await db.connect()
        opened.append(db)
        options.setdefault("sweep_interval", 10 * DAY)  # tests sweep by hand unless they say
        plugin = TTLPlugin(resources=resources or {}, cohort=60, **options)
        await db.use_plugin(plugin)
        return db, plugin

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


async def make(db: Database, name: str, **attributes: str) -> Resource:
    return await db.create_resource(name, attributes={"v": "integer", **attributes})


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "ttl"),
        ({"ttl": 5, "field": "x"}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": 5, "on_expire": "shred"}, "on_expire"),
        ({"ttl": 5, "on_expire": "archive"}, "archive_to"),
        ({"ttl": 5, "on_expire": "callback"}, "callback"),
        ({"ttl": 5, "ttl_seconds": 3}, "ttl_seconds"),
    ],
)
def test_bad_options_are_typed_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TTLPlugin(resources={"sessions": config})
    assert info.value.metadata["field"] == field and info.value.suggestion


def test_expiry_values() -> None:
    assert to_timestamp(10) == 10.0 and to_timestamp("nope") is None and to_timestamp(None) is None
    assert to_timestamp("2023-11-14T22:13:20Z") == START
    assert to_timestamp(datetime(2023, 11, 14, 22, 13, 20)) == START  # naive: UTC
    assert TTLPlugin(resources={"s": 60}).rules["s"].ttl == 60


# -- reads -----------------------------------------------------------------------------------
async def test_reads_never_return_an_expired_record_before_the_sweep(
    open_db: Opener, clock: ManualClock
) -> None:
    """s3db.js returns expired records until its sweep has run; here no read does."""
    db, plugin = await open_db({"sessions": {"ttl": 100}})
    sessions = await make(db, "sessions")
    short = await sessions.insert({"v": 1})
    clock.advance(50)
    longer = await sessions.insert({"v": 2})
    assert (await sessions.get(short["id"]))["v"] == 1
    clock.advance(51)  # the first has expired, nothing has swept
    with pytest.raises(NotFoundError) as info:
        await sessions.get(short["id"])
    assert info.value.metadata["reason"] == "expired"
    assert await sessions.get_or_none(short["id"]) is None
    assert [r["id"] for r in await sessions.list()] == [longer["id"]]
    assert [r["id"] for r in await sessions.query({"v": 1})] == []
    assert [r["id"] for r in (await sessions.page(size=10)).items] == [longer["id"]]
    many = await sessions.get_many([short["id"], longer["id"]])
    assert [item.ok for item in many] == [False, True]
    assert isinstance(many[0].error, NotFoundError)
    assert not await sessions.exists(short["id"]) and await sessions.exists(longer["id"])
    with plugin.including_expired():
        assert len(await sessions.list()) == 2
        assert (await sessions.get(short["id"]))["v"] == 1
        assert await sessions.exists(short["id"])


# -- modes -----------------------------------------------------------------------------------
async def test_hard_delete_sweeps_due_records_and_their_index(
    open_db: Opener, clock: ManualClock
) -> None:
    db, plugin = await open_db({"sessions": {"ttl": 100}})
    sessions = await make(db, "sessions")
    for i in range(5):
        await sessions.insert({"id": f"s{i}", "v": i})
        clock.advance(60)  # each in its own cohort
    report = await plugin.sweep()  # now START + 300: s0..s3 expired (at 100, 160, 220, 280)
    assert report.expired == 4 and report.errors == 0
    with plugin.including_expired():
        assert sorted(r["id"] for r in await sessions.list()) == ["s4"]
    clock.advance(200)
    assert (await plugin.sweep()).expired == 1
    storage = PluginStorage(db, "ttl")
    assert await storage.list("index/") == []
    assert await storage.list("cohorts/") == []  # past cohorts emptied: markers dropped


async def test_soft_delete_marks_once_and_hides(open_db: Opener, clock: ManualClock) -> None:
    db, plugin = await open_db({"invites": {"field": "expires_at", "on_expire": "soft-delete"}})
    invites = await make(db, "invites", expires_at="string|optional")
    at = datetime.fromtimestamp(START + 30, UTC).isoformat()
    await invites.insert({"id": "i1", "v": 1, "expires_at": at})
    await invites.insert({"id": "i2", "v": 2})  # no expiry: never expires
    clock.advance(31)
    assert (await plugin.sweep()).expired == 1
    assert (await plugin.sweep()).expired == 0  # the marked record is not expired again
    assert [r["id"] for r in await invites.list()] == ["i2"]
    with plugin.including_expired():
        record = await invites.get("i1")
    assert record["deleted_at"] == datetime.fromtimestamp(START + 31, UTC).isoformat()


async def test_archive_moves_records(open_db: Opener, clock: ManualClock) -> None:
    db, plugin = await open_db(
        {"orders": {"ttl": 10, "on_expire": "archive", "archive_to": "orders_archive"}}
    )
    orders = await make(db, "orders")
    archive = await make(db, "orders_archive")
    await orders.insert({"id": "o1", "v": 7})
    clock.advance(11)
    assert (await plugin.sweep()).expired == 1
    assert (await archive.get("o1"))["v"] == 7
    with plugin.including_expired():
        assert await orders.get_or_none("o1") is None


@pytest.mark.stores("memory", "file")
async def test_callback_gets_each_expired_record(open_db: Opener, clock: ManualClock) -> None:
    seen: list[tuple[str, str]] = []

    async def expired(db: Database, resource: str, record: dict[str, Any]) -> None:
        seen.append((resource, record["id"]))

    db, plugin = await open_db({"jobs": {"ttl": 5, "on_expire": "callback", "callback": expired}})
    events: list[dict[str, Any]] = []
    plugin.on("ttl.expired", events.append)
    jobs = await make(db, "jobs")
    await jobs.insert({"id": "j1", "v": 1})
    clock.advance(6)
    await plugin.sweep()
    await plugin.sweep()
    assert seen == [("jobs", "j1")]
    assert events[0]["mode"] == "callback" and events[0]["id"] == "j1"


# -- the index -------------------------------------------------------------------------------
async def test_an_extended_expiry_is_not_swept_early(open_db: Opener, clock: ManualClock) -> None:
    db, plugin = await open_db({"tokens": {"field": "expires_at"}})
    tokens = await make(db, "tokens", expires_at="number|optional")
    await tokens.insert({"id": "t", "v": 1, "expires_at": START + 60})
    await plugin.sweep()  # indexed under the first cohort
    await tokens.update("t", {"expires_at": START + 10 * 60})
    clock.advance(120)
    assert (await plugin.sweep()).expired == 0
    assert (await tokens.get("t"))["v"] == 1
    clock.advance(10 * 60)
    assert (await plugin.sweep()).expired == 1


async def test_every_overdue_record_is_swept_after_an_outage_of_any_length(
    open_db: Opener, clock: ManualClock
) -> None:
    """s3db.js checks only the last 2-3 cohorts and leaks older ones; here every due cohort
    is read, whatever its age."""
    db, plugin = await open_db({"events": {"field": "expires_at"}})
    events = await make(db, "events", expires_at="number|optional")
    for day in range(30):  # one record per day for a month: 30 cohorts
        await events.insert({"id": f"e{day:02d}", "v": day, "expires_at": START + day * DAY})
    await plugin.sweep()  # indexes them; e00 is due now
    clock.advance(45 * DAY)  # nobody swept for 45 days
    report = await plugin.sweep()
    # 29 cohorts of records plus the (now empty) one that was current at the first sweep
    assert report.expired == 29 and report.cohorts == 30
    with plugin.including_expired():
        assert await events.list() == []
    assert await PluginStorage(db, "ttl").list("cohorts/") == []


async def test_a_sweep_lists_only_due_cohorts(
    open_db: Opener, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, plugin = await open_db({"c": {"field": "expires_at"}})
    c = await make(db, "c", expires_at="number|optional")
    for i in range(20):  # 20 future cohorts, an hour apart
        await c.insert({"id": f"later{i}", "v": i, "expires_at": START + 3600 * (i + 1)})
    await c.insert({"id": "due", "v": 0, "expires_at": START + 61})
    await plugin.sweep()  # indexes them
    storage = plugin.get_storage()
    listed: list[str] = []
    real_list = storage.list

    async def recording(prefix: str = "", **kwargs: Any) -> Any:
        listed.append(prefix)
        return await real_list(prefix, **kwargs)

    monkeypatch.setattr(storage, "list", recording)
    clock.advance(120)
    report = await plugin.sweep()
    assert report.expired == 1
    index_lists = [p for p in listed if "/index/" in f"/{p}"]
    assert len(index_lists) == report.cohorts <= 2  # the due cohort (and the one of "now")
    assert len(await real_list("cohorts/")) >= 20  # the future ones are there, not listed


async def test_records_before_the_plugin_are_indexed_once(
    store_url: str, open_db: Opener, clock: ManualClock
) -> None:
    async with Database(store_url) as plain:
        old = await make(plain, "old", expires_at="number|optional")
        await old.insert({"id": "o", "v": 1, "expires_at": START + 5})
    _, plugin = await open_db({"old": {"field": "expires_at"}})
    clock.advance(6)
    assert (await plugin.sweep()).expired == 1


async def test_writes_of_a_database_without_the_sweeper_are_swept(
    store_url: str, open_db: Opener, clock: ManualClock
) -> None:
    """The index comes from the durable change feed: a database that only writes (another
    process without the plugin) still records each change, and the sweeper indexes it."""
    db, plugin = await open_db({"s": {"field": "expires_at"}})
    await make(db, "s", expires_at="number|optional")
    async with Database(store_url) as writer:
        s = writer.get_resource("s")
        for i in range(5):
            await s.insert({"id": f"w{i}", "v": i, "expires_at": START + 10})
    clock.advance(11)
    assert (await plugin.sweep()).expired == 5


async def test_the_scheduled_sweep_runs_on_one_database(
    open_db: Opener, clock: ManualClock
) -> None:
    swept: list[str] = []
    nodes = []
    for i in range(3):
        db, plugin = await open_db({"s": {"ttl": 5}}, sweep_interval=30, alias=f"ttl{i}")
        plugin.on("ttl.swept", lambda p, i=i: swept.append(f"n{i}"))
        nodes.append((db, plugin))
    s = await make(nodes[0][0], "s")
    for db, _ in nodes[1:]:
        await db.reload()
    await s.insert({"id": "x", "v": 1})
    for _ in range(400):
        if swept:
            break
        clock.advance(1)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert len(swept) == 1  # one tick, one sweeper
    with nodes[0][1].including_expired():
        assert await s.get_or_none("x") is None


@pytest.mark.stores("memory", "file")
async def test_uninstall_purges_the_index(open_db: Opener, clock: ManualClock) -> None:
    db, plugin = await open_db({"s": {"ttl": 5}})
    s = await make(db, "s")
    await s.insert({"id": "x", "v": 1})
    await plugin.sweep()
    assert await PluginStorage(db, "ttl").list("index/")
    await db.uninstall_plugin(plugin, purge_data=True)
    assert await PluginStorage(db, "ttl").list() == []
    assert not hasattr(s, "_ttl") and (await s.get("x"))["v"] == 1


async def test_a_resource_created_by_another_process_is_adopted_by_the_sweep(
    store_url: str, open_db: Opener, clock: ManualClock
) -> None:
    """The sweeper may run where the resource was never created: the sweep re-reads
    s3db.json while a configured resource is missing and sets it up then."""
    _, plugin = await open_db({"late": {"field": "expires_at"}})
    async with Database(store_url) as other:
        late = await make(other, "late", expires_at="number|optional")
        await late.insert({"id": "a", "v": 1, "expires_at": START + 5})  # before the adoption
    clock.advance(6)
    assert (await plugin.sweep()).expired == 1
