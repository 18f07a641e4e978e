"""Resource CRUD, request budgets, concurrency and partitions on every store."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from s3db_async import Database
from s3db_async.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PreconditionFailed,
    SchemaError,
    ValidationError,
)

USER_ATTRS = {
    "email": "string|required|email",
    "name": "string|min:2",
    "region": "string|optional",
    "age": "integer|optional",
    "profile": {"bio": "string|optional", "tags": "array|items:string|optional"},
}


async def users(db: Database, **kw: Any) -> Any:
    return await db.create_resource("users", attributes=USER_ATTRS, **kw)


async def test_insert_get_roundtrip_and_request_budget(db: Database) -> None:
    res = await users(db)
    db.store.stats.reset()
    rec = await res.insert(
        {"email": "ann@example.com", "name": "Ann", "profile": {"tags": ["a", "b"]}}
    )
    assert db.store.stats.snapshot() == {"put": 1}
    assert rec["email"] == "ann@example.com"
    assert rec.etag
    db.store.stats.reset()
    got = await res.get(rec["id"])
    assert db.store.stats.snapshot() == {"get": 1}
    assert got == rec
    assert got.etag == rec.etag
    db.store.stats.reset()
    assert await res.exists(rec["id"])
    assert db.store.stats.snapshot() == {"head": 1}


async def test_insert_with_partition_costs_one_put_per_partition(db: Database) -> None:
    res = await users(db, partitions={"by_region": {"fields": {"region": "string"}}})
    db.store.stats.reset()
    await res.insert({"email": "a@b.co", "name": "Ann", "region": "eu"})
    assert db.store.stats.snapshot() == {"put": 2}


async def test_update_budget_and_partition_move(db: Database) -> None:
    res = await users(db, partitions={"by_region": {"fields": {"region": "string"}}})
    rec = await res.insert({"email": "a@b.co", "name": "Ann", "region": "eu"})
    db.store.stats.reset()
    updated = await res.update(rec["id"], {"name": "Anne"})
    assert db.store.stats.snapshot() == {"get": 1, "put": 1}
    assert updated["name"] == "Anne" and updated["region"] == "eu"
    db.store.stats.reset()
    await res.update(rec["id"], {"region": "us"})
    # new reference first, the record, then the old reference killed by compare-and-swap
    assert db.store.stats.snapshot() == {"get": 1, "put": 3}
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == []
    assert await res.list_ids(partition="by_region", partition_values={"region": "us"}) == [
        rec["id"]
    ]


async def test_delete_budget(db: Database) -> None:
    plain = await users(db)
    rec = await plain.insert({"email": "a@b.co", "name": "Ann"})
    db.store.stats.reset()
    await plain.delete(rec["id"])
    assert db.store.stats.snapshot() == {"delete_many": 1}
    assert not await plain.exists(rec["id"])

    parted = await db.create_resource(
        "parted",
        attributes={"region": "string"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )
    rec = await parted.insert({"region": "eu"})
    db.store.stats.reset()
    assert await parted.delete(rec["id"]) is True
    assert db.store.stats.snapshot() == {"get": 1, "delete_many": 1, "put": 1}  # + ref kill
    assert await parted.count(partition="by_region") == 0


async def test_count_is_list_only(db: Database) -> None:
    res = await users(db)
    for i in range(5):
        await res.insert({"email": f"u{i}@b.co", "name": f"User{i}"})
    db.store.stats.reset()
    assert await res.count() == 5
    assert db.store.stats.snapshot() == {"list": 1}


async def test_duplicate_id_raises_without_overwriting(db: Database) -> None:
    res = await users(db)
    await res.insert({"id": "u1", "email": "first@b.co", "name": "First"})
    with pytest.raises(AlreadyExistsError):
        await res.insert({"id": "u1", "email": "second@b.co", "name": "Second"})
    assert (await res.get("u1"))["email"] == "first@b.co"


async def test_concurrent_inserts_of_one_id_exactly_one_wins(db: Database) -> None:
    res = await users(db)
    outcomes: list[str] = []

    async def attempt(i: int) -> None:
        try:
            await res.insert({"id": "same", "email": f"w{i}@b.co", "name": f"Writer{i}"})
            outcomes.append(f"win{i}")
        except AlreadyExistsError:
            outcomes.append("lost")

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(attempt, i)
    wins = [o for o in outcomes if o.startswith("win")]
    assert len(wins) == 1 and outcomes.count("lost") == 7
    winner = int(wins[0][3:])
    assert (await res.get("same"))["email"] == f"w{winner}@b.co"


async def test_concurrent_patches_to_different_fields_all_survive(db: Database) -> None:
    attrs = {f"f{i}": "integer|optional" for i in range(20)}
    res = await db.create_resource("wide", attributes=attrs, conflict_retries=100)
    rec = await res.insert({"id": "r"})
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(res.patch, rec["id"], {f"f{i}": i})
    final = await res.get("r")
    assert {k: final[k] for k in attrs} == {f"f{i}": i for i in range(20)}


async def test_concurrent_increments_lose_nothing(db: Database) -> None:
    res = await db.create_resource(
        "counters", attributes={"n": "integer|required"}, conflict_retries=200
    )
    await res.insert({"id": "c", "n": 0})

    async def worker() -> None:
        for _ in range(20):
            await res.update("c", lambda r: {"n": r["n"] + 1})

    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(worker)
    assert (await res.get("c"))["n"] == 80


async def test_if_match_and_conflicts(db: Database) -> None:
    res = await users(db)
    rec = await res.insert({"email": "a@b.co", "name": "Ann"})
    first = await res.update(rec["id"], {"name": "Anna"}, if_match=rec.etag)
    with pytest.raises(PreconditionFailed):
        await res.update(rec["id"], {"name": "Annie"}, if_match=rec.etag)
    record, etag = await res.get_with_etag(rec["id"])
    assert etag == first.etag and record["name"] == "Anna"
    with pytest.raises(NotFoundError):
        await res.update("missing", {"name": "Nobody"})


async def test_conflict_error_when_retries_exhausted(db: Database) -> None:
    res = await users(db)
    rec = await res.insert({"email": "a@b.co", "name": "Ann"})
    original_put = db.store.put

    async def racing_put(key: str, *a: Any, **kw: Any) -> str:
        if kw.get("if_match"):
            await original_put(key, *a, **kw)  # someone else wins every race
            kw["if_match"] = '"stale"'
        return await original_put(key, *a, **kw)

    db.store.put = racing_put  # type: ignore[method-assign]
    try:
        with pytest.raises(ConflictError):  # a change that still changes after each race
            await res.update(rec["id"], lambda r: {"name": r["name"] + "b"}, retries=2)
    finally:
        db.store.put = original_put  # type: ignore[method-assign]


async def test_update_validates_and_writes_nothing_on_error(db: Database) -> None:
    res = await users(db)
    rec = await res.insert({"email": "a@b.co", "name": "Ann"})
    db.store.stats.reset()
    with pytest.raises(ValidationError) as info:
        await res.update(rec["id"], {"email": "not-an-email", "name": "A"})
    assert set(info.value.fields) >= {"email", "name"}
    assert db.store.stats["put"] == 0
    assert (await res.get(rec["id"]))["email"] == "a@b.co"


async def test_invalid_insert_never_reaches_store(db: Database) -> None:
    res = await users(db)
    db.store.stats.reset()
    with pytest.raises(ValidationError) as info:
        await res.insert({"name": "A", "age": "old"})
    assert {"email", "name", "age"} <= set(info.value.fields)
    assert db.store.stats.total() == 0


@pytest.mark.parametrize("bad", ["a/b", "x\ny", "..", "", "tab\there"])
async def test_bad_ids_rejected(db: Database, bad: str) -> None:
    res = await users(db)
    with pytest.raises(ValidationError):
        await res.insert({"id": bad, "email": "a@b.co", "name": "Ann"})
    with pytest.raises(ValidationError):
        await res.get(bad)


async def test_replace_and_upsert(db: Database) -> None:
    res = await users(db, timestamps=True)
    rec = await res.insert({"email": "a@b.co", "name": "Ann", "age": 30})
    replaced = await res.replace(rec["id"], {"email": "b@b.co", "name": "Bea"})
    assert "age" not in replaced
    assert replaced["created_at"] == rec["created_at"]
    assert replaced["updated_at"] >= rec["updated_at"]
    with pytest.raises(NotFoundError):
        await res.replace("nope", {"email": "b@b.co", "name": "Bea"})
    up = await res.upsert({"id": "new", "email": "c@b.co", "name": "Cid"})
    assert up["name"] == "Cid"
    up2 = await res.upsert({"id": "new", "name": "Cyd"})
    assert up2["email"] == "c@b.co" and up2["name"] == "Cyd"


async def test_nested_update_merges(db: Database) -> None:
    res = await users(db)
    rec = await res.insert({"email": "a@b.co", "name": "Ann", "profile": {"bio": "hi"}})
    out = await res.update(rec["id"], {"profile": {"tags": ["x"]}})
    assert out["profile"] == {"bio": "hi", "tags": ["x"]}


async def test_delete_is_idempotent_and_events_only_for_existing(db: Database) -> None:
    res = await users(db)
    deleted: list[str] = []
    res.on("deleted", lambda r: deleted.append(r["id"]))
    rec = await res.insert({"email": "a@b.co", "name": "Ann"})
    assert await res.delete(rec["id"]) is True
    assert await res.delete(rec["id"]) is False
    assert await res.delete("never-existed") is False
    assert deleted == [rec["id"]]
    with pytest.raises(NotFoundError):
        await res.delete("never-existed", must_exist=True)


async def test_delete_many_and_delete_all(db: Database) -> None:
    res = await users(db)
    ids = [(await res.insert({"email": f"u{i}@b.co", "name": f"Us{i}"}))["id"] for i in range(5)]
    results = await res.delete_many(ids[:3])
    assert results.all_ok
    assert sorted(await res.list_ids()) == sorted(ids[3:])
    with pytest.raises(ConfigError):
        await res.delete_all()
    assert await res.delete_all(confirm=True) >= 2
    assert await res.count() == 0


async def test_list_page_stream_and_query(db: Database) -> None:
    res = await users(db, partitions={"by_region": {"fields": {"region": "string"}}})
    for i in range(25):
        await res.insert(
            {
                "id": f"u{i:02d}",
                "email": f"u{i}@b.co",
                "name": f"User{i}",
                "region": "eu" if i % 2 else "us",
                "age": i,
            }
        )
    everything = await res.list()
    assert [r["id"] for r in everything] == [f"u{i:02d}" for i in range(25)]
    assert len(await res.list(limit=3)) == 3
    assert [r["id"] async for r in res.stream(limit=4)] == ["u00", "u01", "u02", "u03"]

    first = await res.page(size=10)
    second = await res.page(size=10, cursor=first.next_cursor)
    third = await res.page(size=10, cursor=second.next_cursor)
    assert [len(first), len(second), len(third)] == [10, 10, 5]
    assert third.next_cursor is None
    assert [r["id"] for r in (await res.page(size=10, page=2)).items] == [
        f"u{i:02d}" for i in range(20, 25)
    ]

    assert await res.count(partition="by_region", partition_values={"region": "eu"}) == 12
    eu = await res.list(partition="by_region", partition_values={"region": "eu"})
    assert all(r["region"] == "eu" for r in eu) and len(eu) == 12

    found = await res.query({"age": {"$gte": 20}, "region": {"$in": ["eu"]}})
    assert [r["id"] for r in found] == ["u21", "u23"]
    assert len(await res.query({"age": {"$lt": 100}})) == 25  # nothing capped silently
    assert len(await res.query({"age": {"$lt": 100}}, limit=7)) == 7
    assert res.explain({"region": "us", "age": {"$gt": 3}})["partition"] == "by_region"
    db.store.stats.reset()
    us = await res.query({"region": "us", "age": {"$gt": 20}})
    assert [r["id"] for r in us] == ["u22", "u24"]
    assert db.store.stats["get"] == 13  # only the 'us' partition was read
    assert await res.count(by="region") == {"eu": 12, "us": 13}


async def test_partition_references_repaired(db: Database) -> None:
    res = await users(db, partitions={"by_region": {"fields": {"region": "string"}}})
    a = await res.insert({"email": "a@b.co", "name": "Ann", "region": "eu"})
    b = await res.insert({"email": "b@b.co", "name": "Bob", "region": "us"})
    # simulate a crash: a reference lost, a stale one left behind
    await db.store.delete(f"resource=users/partition=by_region/region=eu/id={a['id']}")
    await db.store.put(f"resource=users/partition=by_region/region=asia/id={b['id']}", b"")
    assert await res.list(partition="by_region", partition_values={"region": "asia"}) == []
    assert await res.rebuild_partitions() == {"added": 1, "removed": 1}
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == [a["id"]]
    assert await res.count(partition="by_region", partition_values={"region": "asia"}) == 0


async def test_multi_field_partition_and_unsafe_values(db: Database) -> None:
    res = await db.create_resource(
        "events",
        attributes={"kind": "string", "day": "string", "n": "integer"},
        partitions={"by_kind_day": {"fields": {"kind": "string", "day": "string|maxlength:10"}}},
    )
    await res.insert({"id": "e1", "kind": "a/b", "day": "2026-11-25T10:00:00", "n": 1})
    await res.insert({"id": "e2", "kind": "a/b", "day": "2026-11-26T10:00:00", "n": 2})
    await res.insert({"id": "e3", "kind": "../x", "day": "2026-11-25T11:00:00", "n": 3})
    keys = await db.store.list_keys("resource=events/partition=")
    assert all(k.count("/") == 4 for k in keys), keys  # values never add key segments
    ids = await res.list_ids(
        partition="by_kind_day", partition_values={"kind": "a/b", "day": "2026-11-25"}
    )
    assert ids == ["e1"]
    assert await res.count(partition="by_kind_day", partition_values={"day": "2026-11-25"}) == 2


async def test_hooks_events_and_middleware(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    res = await users(db)
    seen: list[tuple[str, Any]] = []

    def before_insert(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "name": data["name"].title()}

    async def after_insert(rec: dict[str, Any]) -> None:
        seen.append(("after_insert", rec["name"]))

    res.add_hook("before_insert", before_insert)
    res.add_hook("after_insert", after_insert)
    res.on("inserted", lambda r: seen.append(("inserted", r["name"])))
    res.on("updated", lambda r, before: seen.append(("updated", (before["name"], r["name"]))))

    async def audit(nxt: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(("mw", "in"))
        out = await nxt(*args, **kwargs)
        seen.append(("mw", "out"))
        return out

    res.use_middleware("insert", audit)
    rec = await res.insert({"email": "a@b.co", "name": "ann lee"})
    assert rec["name"] == "Ann Lee"
    await res.update(rec["id"], {"name": "Ann Li"})
    assert seen == [
        ("mw", "in"),
        ("after_insert", "Ann Lee"),
        ("inserted", "Ann Lee"),
        ("mw", "out"),
        ("updated", ("Ann Lee", "Ann Li")),
    ]

    def refuse(data: dict[str, Any]) -> None:
        raise PermissionError("no inserts today")

    res.add_hook("before_insert", refuse)
    db.store.stats.reset()
    with pytest.raises(PermissionError):
        await res.insert({"email": "b@b.co", "name": "Bob"})
    assert db.store.stats.total() == 0

    errors: list[Exception] = []
    res.on("error", lambda exc, info: errors.append(exc))

    def broken(_: Any, __: Any) -> None:
        raise RuntimeError("handler bug")

    res.on("updated", broken)
    with caplog.at_level(logging.ERROR, logger="s3db_async"):
        await res.update(rec["id"], {"name": "Ann Lo"})  # the operation still succeeds
    assert (await res.get(rec["id"]))["name"] == "Ann Lo"
    assert errors and "handler bug" in str(errors[0])
    assert "handler bug" in caplog.text
    with pytest.raises(ConfigError):
        res.add_hook("before_launch", refuse)


async def test_async_event_handlers_run_as_tasks(db: Database) -> None:
    res = await users(db)
    got = anyio.Event()
    payload: list[str] = []

    async def handler(rec: dict[str, Any]) -> None:
        payload.append(rec["id"])
        got.set()

    res.on("inserted", handler)
    rec = await res.insert({"email": "a@b.co", "name": "Ann"})
    with anyio.fail_after(5):
        await got.wait()
    assert payload == [rec["id"]]


async def test_content_methods(db: Database) -> None:
    res = await db.create_resource("files", attributes={"name": "string"})
    rec = await res.insert({"name": "logo.png"})
    assert not await res.has_content(rec["id"])
    await res.set_content(rec["id"], b"\x89PNG...", "image/png")
    assert await res.get_content(rec["id"]) == (b"\x89PNG...", "image/png")
    assert await res.has_content(rec["id"])
    await res.delete_content(rec["id"])
    with pytest.raises(NotFoundError):
        await res.get_content(rec["id"])
    with pytest.raises(NotFoundError):
        await res.set_content("missing", b"x")
    await res.set_content(rec["id"], "text body")
    await res.delete(rec["id"])
    assert not await res.has_content(rec["id"])


async def test_get_many_and_insert_many_per_item_results(db: Database) -> None:
    res = await users(db)
    results = await res.insert_many(
        [{"email": f"u{i}@b.co", "name": f"User{i}"} for i in range(10)]
        + [{"email": "bad", "name": "X"}]
    )
    assert len(results.ok) == 10 and len(results.errors) == 1
    assert isinstance(results.errors[0].error, ValidationError)
    ids = [r["id"] for r in results.ok]
    got = await res.get_many([*ids, "missing"])
    assert [r.ok for r in got] == [True] * 10 + [False]
    assert isinstance(got[-1].error, NotFoundError)


async def test_behaviors_at_the_resource_level(db: Database) -> None:
    from s3db_async.errors import MetadataLimitError

    big = "x" * 3000
    overflow = await db.create_resource("ov", attributes={"a": "string", "b": "string"})
    rec = await overflow.insert({"a": "small", "b": big})
    stored = await db.store.get(overflow.key_for(rec["id"]))
    assert big.encode() in stored.body and stored.metadata  # overflow went to the body
    assert (await overflow.get(rec["id"]))["b"] == big

    strict = await db.create_resource(
        "strict", attributes={"a": "string", "b": "string"}, behavior="enforce-limits"
    )
    db.store.stats.reset()
    with pytest.raises(MetadataLimitError) as info:
        await strict.insert({"a": "small", "b": big})
    assert "b" in str(info.value) and db.store.stats.total() == 0

    managed = await db.create_resource(
        "managed", attributes={"a": "string", "b": "string"}, behavior="user-managed"
    )
    events: list[dict[str, Any]] = []
    managed.on("limits_exceeded", events.append)
    rec = await managed.insert({"a": "small", "b": big})
    assert events == [{"id": rec["id"], "fields": ["b"]}]
    assert (await managed.get(rec["id"]))["b"] == big

    cut = await db.create_resource(
        "cut", attributes={"a": "string", "b": "string"}, behavior="truncate-data"
    )
    truncated: list[dict[str, Any]] = []
    cut.on("truncated", truncated.append)
    rec = await cut.insert({"a": "small", "b": big})
    got = await cut.get(rec["id"])
    assert got["a"] == "small" and big.startswith(got["b"]) and len(got["b"]) < len(big)
    assert truncated and truncated[0]["fields"] == ["b"]


async def test_incremental_ids_unique_across_clients(db: Database, store_url: str) -> None:
    res = await db.create_resource(
        "tickets", attributes={"title": "string"}, id_generator="incremental:1000"
    )
    first = await res.insert({"title": "first"})
    assert first["id"] == "1000"
    other = Database(store_url, passphrase="test-passphrase")
    await other.connect()
    try:
        twin = other.resources["tickets"]
        ids: list[str] = []

        async def add(r: Any, i: int) -> None:
            ids.append((await r.insert({"title": f"t{i}"}))["id"])

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(add, res if i % 2 else twin, i)
    finally:
        await other.disconnect()
    assert sorted(int(i) for i in ids) == list(range(1001, 1011))
    with pytest.raises(SchemaError, match="incremental"):
        await db.create_resource(
            "bad_ids", attributes={"a": "string"}, id_generator="incremental:x"
        )


async def test_password_hashing_runs_off_the_event_loop(db: Database) -> None:
    import threading

    res = await db.create_resource("logins", attributes={"user": "string", "pw": "password"})
    threads: list[int] = []
    original = res.schema.validate

    def spy(data: Any, *, partial: bool = False) -> Any:
        threads.append(threading.get_ident())
        return original(data, partial=partial)

    res.schema.validate = spy  # type: ignore[method-assign]
    rec = await res.insert({"user": "ann", "pw": "hunter2-hunter2"})
    await res.update(rec["id"], {"pw": "another-secret-9"})
    assert threads and threading.get_ident() not in threads
    assert await res.verify_password(rec["id"], "pw", "another-secret-9")
    assert not await res.verify_password(rec["id"], "pw", "hunter2-hunter2")


async def test_count_by_partition_matches_reading_records(db: Database) -> None:
    res = await db.create_resource(
        "grouped",
        attributes={"n": "integer|optional", "flag": "boolean|optional", "day": "string"},
        partitions={
            "by_n": {"fields": {"n": "integer"}},
            "by_flag": {"fields": {"flag": "boolean"}},
            "by_day": {"fields": {"day": "string|maxlength:10"}},
        },
    )
    for i in range(7):
        await res.insert(
            {
                "n": i % 3 if i != 6 else None,
                "flag": i % 2 == 0,
                "day": f"2026-11-2{i % 2}T0{i}:00",
            }
        )
    db.store.stats.reset()
    by_n = await res.count(by="n")
    assert db.store.stats.get("get", 0) == 0  # answered from the partition
    assert by_n == {0: 2, 1: 2, 2: 2, None: 1}
    assert await res.count(by="flag") == {True: 4, False: 3}
    # a truncating partition groups by prefix, so count(by=) must read the exact values
    days = await res.count(by="day")
    assert len(days) == 7 and db.store.stats.get("get", 0) == 7
