"""What users reach for first (issue 15.8): drain_events, `with` hints, Record in pydantic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s3db_async import Database, Record
from s3db_async.errors import ConfigError

pytestmark = pytest.mark.stores("memory", "file")


async def test_drain_events_waits_for_async_handlers(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    seen: list[str] = []
    gate = asyncio.Event()  # handlers stay pending until the test opens it (no timing race)

    async def slow(record: Record) -> None:
        await gate.wait()
        await asyncio.sleep(0.02)
        seen.append(record["name"])

    async def chained(record: Record) -> None:  # a handler that starts another handler
        await asyncio.sleep(0)
        users.emit("app.audited", record)

    async def audited(record: Record) -> None:
        await gate.wait()
        await asyncio.sleep(0.01)
        seen.append("audited:" + record["name"])

    users.on("inserted", slow)
    users.on("inserted", chained)
    users.on("app.audited", audited)
    await users.insert({"name": "Ann"})
    await users.insert({"name": "Bob"})
    assert seen == []  # still running: async handlers are background tasks
    gate.set()
    await db.drain_events()
    assert sorted(seen) == ["Ann", "Bob", "audited:Ann", "audited:Bob"]
    await db.drain_events()  # nothing pending: returns at once


async def test_drain_events_leaves_other_background_work_alone(db: Database) -> None:
    stop = asyncio.Event()
    worker = db.spawn(stop.wait(), name="long-running")
    users = await db.create_resource("users", attributes={"name": "string"})
    done: list[int] = []

    async def handler(record: Record) -> None:
        done.append(1)

    users.on("inserted", handler)
    await users.insert({"name": "Ann"})
    await asyncio.wait_for(db.drain_events(), 5)  # does not wait for the spawned worker
    assert done == [1] and not worker.done()
    stop.set()
    await worker


async def test_drain_events_does_not_raise_for_failing_handlers(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    errors: list[Exception] = []

    async def broken(record: Record) -> None:
        raise RuntimeError("boom")

    users.on("inserted", broken)
    users.on("error", lambda exc, info: errors.append(exc))
    await users.insert({"name": "Ann"})
    await db.drain_events()
    assert [str(e) for e in errors] == ["boom"]


def test_with_without_async_gets_a_typed_hint() -> None:
    db = Database("memory://hint/x")
    with pytest.raises(ConfigError) as info:
        with db:
            pass  # pragma: no cover
    assert "async with" in info.value.message and "async with" in (info.value.suggestion or "")
    assert not db.is_connected


async def test_record_in_pydantic_validates_and_serialises_as_a_dict(db: Database) -> None:
    pydantic = pytest.importorskip("pydantic")
    users = await db.create_resource(
        "users", attributes={"name": "string", "born": "date", "tags": "array|items:string"}
    )
    rec = await users.insert({"name": "Ann", "born": "1990-05-17", "tags": ["a"]})

    adapter: Any = pydantic.TypeAdapter(Record)
    assert adapter.validate_python(rec) is rec  # etag kept
    assert adapter.dump_python(rec) == dict(rec)
    assert pydantic.TypeAdapter(Any).validate_json(adapter.dump_json(rec)) == {
        "id": rec.id,
        "name": "Ann",
        "born": "1990-05-17",
        "tags": ["a"],
    }
    built = adapter.validate_python({"id": "x", "name": "Bo"})
    assert isinstance(built, Record) and built.id == "x"
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python(["not", "a", "mapping"])
    assert adapter.json_schema()["type"] == "object"

    class Listing(pydantic.BaseModel):  # a FastAPI response_model would look like this
        items: list[Record]
        next_cursor: str | None

    page = await users.page(size=10)
    body = Listing(items=page.items, next_cursor=page.next_cursor).model_dump(mode="json")
    assert body["items"][0]["born"] == "1990-05-17" and body["next_cursor"] is None
