"""Use after disconnect (issue 15.2): one NotConnectedError, before connect and after
disconnect, until connect() is called again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from s3db_async import Database, PluginStorage
from s3db_async.errors import ConfigError, NotConnectedError

pytestmark = pytest.mark.stores("memory", "file", "moto", "seaweedfs")


def _operations(db: Database, rid: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    users = db.resources["users"]
    storage = PluginStorage(db, "probe")
    return {
        "insert": lambda: users.insert({"name": "Bob"}),
        "insert_many": lambda: users.insert_many([{"name": "Bob"}]),
        "get": lambda: users.get(rid),
        "exists": lambda: users.exists(rid),
        "update": lambda: users.update(rid, {"name": "Ann B"}),
        "upsert": lambda: users.upsert({"id": rid, "name": "Ann C"}),
        "delete": lambda: users.delete(rid),
        "count": lambda: users.count(),
        "list": lambda: users.list(),
        "query": lambda: users.query({"name": "Ann"}),
        "create_resource": lambda: db.create_resource("other", attributes={"title": "string"}),
        "reload": lambda: db.reload(),
        "plugin_storage.set": lambda: storage.set("k", {"v": 1}),
        "plugin_storage.get": lambda: storage.get("k"),
    }


async def test_every_operation_raises_not_connected_after_disconnect(store_url: str) -> None:
    db = Database(store_url)
    await db.connect()
    users = await db.create_resource("users", attributes={"name": "string|required"})
    ann = await users.insert({"name": "Ann"})
    ops = _operations(db, ann["id"])
    await db.disconnect()
    assert not db.is_connected
    for name, op in ops.items():
        with pytest.raises(NotConnectedError) as info:
            await op()
        assert "not connected" in info.value.message, name
        assert "connect()" in (info.value.suggestion or ""), name
    with pytest.raises(NotConnectedError):
        _ = db.store

    await db.connect()  # connecting again makes everything work again
    try:
        assert (await users.get(ann["id"]))["name"] == "Ann"
        assert await users.count() == 1
        await users.insert({"name": "Bob"})
        assert await users.count() == 2
        other = await db.create_resource("other", attributes={"title": "string"})
        await other.insert({"title": "x"})
        await PluginStorage(db, "probe").set("k", {"v": 1})
    finally:
        await db.disconnect()


async def test_before_connect_is_the_same_error(store_url: str) -> None:
    db = Database(store_url)
    with pytest.raises(NotConnectedError) as info:
        await db.create_resource("users", attributes={"name": "string"})
    assert isinstance(info.value, ConfigError)  # `except ConfigError` keeps working
    with pytest.raises(NotConnectedError):
        _ = db.store
    async with db:
        await db.create_resource("users", attributes={"name": "string"})
    with pytest.raises(NotConnectedError):
        await db.resources["users"].count()


async def test_a_given_store_is_not_usable_before_connect(store_url: str) -> None:
    from s3db_async import open_store

    db = Database(store=open_store(store_url))
    with pytest.raises(NotConnectedError):
        _ = db.store
    async with db:
        users = await db.create_resource("users", attributes={"name": "string"})
        await users.insert({"name": "Ann"})
    with pytest.raises(NotConnectedError):
        await users.list()


async def test_disconnect_hooks_still_reach_the_store(store_url: str) -> None:
    """Plugins flush and ``before_disconnect`` hooks write while the store is still open."""
    db = Database(store_url)
    await db.connect()
    users = await db.create_resource("users", attributes={"name": "string"})

    async def flush(database: Database) -> None:
        await database.resources["users"].insert({"name": "flushed"})

    db.add_hook("before_disconnect", flush)
    await db.disconnect()
    async with Database(store_url) as again:
        assert [r["name"] for r in await again.resources["users"].list()] == ["flushed"]
    assert users.db is db
