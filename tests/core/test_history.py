"""Record history: every earlier version kept, restore, deletes, races, request budgets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s3db_async import Database
from s3db_async.errors import MetadataLimitError, NotFoundError, ValidationError

ATTRS = {"name": "string|required", "n": "integer", "region": "string|optional"}
BY_REGION = {"by_region": {"fields": {"region": "string"}}}


async def items(db: Database, **kw: Any) -> Any:
    return await db.create_resource("items", attributes=ATTRS, history=True, **kw)


async def history_keys(db: Database, res: Any, rid: str) -> list[str]:
    return await db.store.list_keys(res.history_prefix(rid))


async def test_every_version_kept_one_extra_put_per_update(db: Database) -> None:
    res = await items(db)
    rec = await res.insert({"name": "a", "n": 0})
    rid = rec["id"]
    writes = [
        lambda: res.update(rid, {"n": 1}),
        lambda: res.patch(rid, {"n": 2}),
        lambda: res.replace(rid, {"name": "b", "n": 3}),
        lambda: res.update(rid, lambda r: {"n": r["n"] + 1}),
    ]
    for write in writes:
        db.store.stats.reset()
        await write()
        assert db.store.stats.snapshot() == {"get": 1, "put": 2}  # history: exactly +1 PUT
    history = await res.history(rid)
    assert [r.revision for r in history] == [1, 2, 3, 4]
    assert [r["n"] for r in history] == [0, 1, 2, 3]
    assert [r["name"] for r in history] == ["a", "a", "a", "b"]
    assert all(r.id == rid and r.version == "v1" for r in history)
    times = [r.superseded_at for r in history]
    assert all(t is not None for t in times) and times == sorted(times)  # type: ignore[type-var]
    assert len({r.etag for r in history}) == 4
    current = await res.get_revision(rid, 5)
    assert current["n"] == 4 and current.superseded_at is None
    assert current.etag == (await res.get(rid)).etag
    assert (await res.get_revision(rid, 2))["n"] == 1
    with pytest.raises(NotFoundError):
        await res.get_revision(rid, 6)
    assert len(await history_keys(db, res, rid)) == 4


async def test_restore_is_itself_recorded(db: Database) -> None:
    res = await items(db, timestamps=True)
    rec = await res.insert({"name": "a", "n": 1})
    rid = rec["id"]
    await res.update(rid, {"n": 2, "name": "b"})
    await res.update(rid, {"n": 3})
    restored = await res.restore(rid, 1)
    assert restored["n"] == 1 and restored["name"] == "a"
    assert restored["created_at"] == rec["created_at"]
    assert restored["updated_at"] >= rec["updated_at"]
    got = await res.get(rid)
    assert got["n"] == 1 and got["name"] == "a"
    assert [r["n"] for r in await res.history(rid)] == [1, 2, 3]
    assert (await res.get_revision(rid, 4))["n"] == 1
    with pytest.raises(NotFoundError):
        await res.restore(rid, 9)


async def test_delete_keeps_history_restore_recreates_purge_removes(db: Database) -> None:
    res = await items(db, partitions=BY_REGION)
    rec = await res.insert({"name": "a", "n": 1, "region": "eu"})
    rid = rec["id"]
    await res.update(rid, {"n": 2, "region": "us"})
    conditional = (await db.store.capabilities()).conditional_delete
    db.store.stats.reset()
    assert await res.delete(rid) is True
    expected = {"get": 1, "put": 2, "delete_many": 1}  # preserve, kill the reference
    if conditional:  # delete If-Match, then the content in one batch
        expected["delete"] = 1
    assert db.store.stats.snapshot() == expected
    assert await res.get_or_none(rid) is None
    assert await res.list_ids(partition="by_region", partition_values={"region": "us"}) == []
    assert await res.delete(rid) is False
    assert [(r.revision, r["n"]) for r in await res.history(rid)] == [(1, 1), (2, 2)]

    back = await res.restore(rid, 1)  # re-created, numbered after the last revision
    assert back["n"] == 1 and (await res.get(rid))["region"] == "eu"
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == [rid]
    assert (await res.get_revision(rid, 3))["n"] == 1
    await res.update(rid, {"n": 5})
    assert [r["n"] for r in await res.history(rid)] == [1, 2, 1]

    assert await res.purge_history(rid) == 3
    assert await res.history(rid) == []
    assert await res.purge_history(rid) == 0
    assert (await res.get(rid))["n"] == 5


async def test_delete_many_with_history(db: Database) -> None:
    res = await items(db)
    a = await res.insert({"name": "a", "n": 1})
    b = await res.insert({"name": "b", "n": 2})
    result = await res.delete_many([a["id"], b["id"], "missing", "bad/id"])
    by_id = {r.id: r for r in result}
    assert by_id[a["id"]].ok and by_id[a["id"]].data == a
    assert by_id[b["id"]].ok
    assert not by_id["missing"].ok and not by_id["bad/id"].ok
    assert [r["name"] for r in await res.history(a["id"])] == ["a"]


async def test_without_history_nothing_is_kept(db: Database) -> None:
    res = await db.create_resource("plain", attributes=ATTRS)
    rec = await res.insert({"name": "a", "n": 1})
    db.store.stats.reset()
    await res.update(rec["id"], {"n": 2})
    assert db.store.stats.snapshot() == {"get": 1, "put": 1}
    await res.delete(rec["id"])
    assert await res.history(rec["id"]) == []
    assert await db.store.list_keys("resource=plain/history/") == []
    other = await res.insert({"name": "b", "n": 1})
    await res.update(other["id"], {"n": 2})
    assert "_r" not in (await db.store.get(res.key_for(other["id"]))).metadata


async def test_racing_writers_lose_and_duplicate_no_revision(db: Database) -> None:
    res = await items(db, conflict_retries=50)
    rec = await res.insert({"name": "a", "n": 0})
    rid = rec["id"]
    writers = 6 if db.store.__class__.__name__ != "S3Store" else 4

    async def bump() -> None:
        await res.update(rid, lambda r: {"n": r["n"] + 1})

    await asyncio.gather(*(bump() for _ in range(writers)))
    assert (await res.get(rid))["n"] == writers
    history = await res.history(rid)
    assert [r.revision for r in history] == list(range(1, writers + 1))
    assert [r["n"] for r in history] == list(range(writers))


async def test_orphan_entry_is_hidden_then_adopted(db: Database) -> None:
    res = await items(db)
    rec = await res.insert({"name": "a", "n": 1})
    rid = rec["id"]
    obj = await db.store.get(res.key_for(rid))
    assert await res._history.preserve(rid, obj) == 1  # a writer died before its If-Match write
    assert await res.history(rid) == []  # the entry preserves the current version: hidden
    assert (await res.get_revision(rid, 1))["n"] == 1
    db.store.stats.reset()
    await res.update(rid, {"n": 2})  # adopts entry 1 instead of writing it again
    assert db.store.stats.snapshot() == {"get": 2, "put": 2}
    assert [(r.revision, r["n"]) for r in await res.history(rid)] == [(1, 1)]


async def test_reinserted_id_continues_after_old_history(db: Database) -> None:
    res = await items(db)
    await res.insert({"id": "x", "name": "first", "n": 1})
    await res.update("x", {"n": 2})
    await res.delete("x")  # history: 1 (n=1), 2 (n=2)
    await res.insert({"id": "x", "name": "second", "n": 10})
    await res.update("x", {"n": 11})  # revision 1 is taken by the earlier life: goes to 3
    await res.update("x", {"n": 12})
    history = await res.history("x")
    assert [(r.revision, r["name"], r["n"]) for r in history] == [
        (1, "first", 1),
        (2, "first", 2),
        (3, "second", 10),
        (4, "second", 11),
    ]


async def test_racing_writers_after_a_reinsert_duplicate_nothing(db: Database) -> None:
    res = await items(db, conflict_retries=50)
    await res.insert({"id": "x", "name": "first", "n": -2})
    await res.update("x", {"n": -1})
    await res.delete("x")  # history: 1, 2
    await res.insert({"id": "x", "name": "second", "n": 0})  # _r says 1 again

    async def bump() -> None:
        await res.update("x", lambda r: {"n": r["n"] + 1})

    await asyncio.gather(*(bump() for _ in range(4)))
    history = await res.history("x")
    assert [(r.revision, r["n"]) for r in history] == [
        (1, -2),
        (2, -1),
        *zip(range(3, 7), range(4), strict=True),
    ]
    assert len(await history_keys(db, res, "x")) == 6


async def test_history_reserves_metadata_room(db: Database) -> None:
    res = await db.create_resource(
        "full", attributes={"text": "string"}, behavior="enforce-limits", history=True
    )

    def fits(n: int) -> bool:
        try:
            res.codec.encode({"text": "x" * n})
        except MetadataLimitError:
            return False
        return True

    room = max(n for n in range(1900, 2048) if fits(n))
    rec = await res.insert({"text": "x" * room})
    await res.update(rec["id"], {"text": "y" * room})
    assert (await res.get_revision(rec["id"], 1))["text"] == "x" * room
    with pytest.raises(ValidationError):
        await res.insert({"text": "x" * (room + 1)})


async def test_history_option_is_part_of_the_definition(store_url: str) -> None:
    async with Database(store_url) as db:
        res = await items(db)
        assert res.keeps_history and res.definition["history"] is True
        rec = await res.insert({"name": "a", "n": 1})
        await res.update(rec["id"], {"n": 2})
    async with Database(store_url) as db:
        res = db.resources["items"]
        assert res.keeps_history
        await res.update(rec["id"], {"n": 3})
        assert [r["n"] for r in await res.history(rec["id"])] == [1, 2]
        same = await items(db)
        assert same.version == "v1"
        off = await db.create_resource("items", attributes=ATTRS)
        assert off.version == "v2" and not off.keeps_history


async def test_passphrase_rotation_reencrypts_kept_revisions(store_url: str) -> None:
    async with Database(store_url, passphrase="old-pass") as db:
        res = await db.create_resource(
            "acct", attributes={"user": "string", "token": "secret"}, history=True
        )
        rec = await res.insert({"user": "a", "token": "first-token"})
        await res.update(rec["id"], {"token": "second-token"})
        totals = await db.rotate_passphrase("old-pass", "new-pass")
        assert totals["rewritten"] == 2  # the record and its kept revision
    async with Database(store_url, passphrase="new-pass") as db:
        res = db.resources["acct"]
        assert [r["token"] for r in await res.history(rec["id"])] == ["first-token"]
        for key in await db.store.list_keys("resource=acct/"):
            assert b"first-token" not in (await db.store.get(key)).body
