"""Database lifecycle, s3db.json versions and compare-and-swap, secrets, hooks."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from s3db_async import Database
from s3db_async.errors import (
    ConfigError,
    DecryptionError,
    EncryptionError,
    ResourceNotFoundError,
    SchemaError,
)


async def test_reopen_loads_resources_and_versions(store_url: str) -> None:
    async with Database(store_url) as db:
        res = await db.create_resource("items", attributes={"name": "string|required"})
        assert res.version == "v1"
        old = await res.insert({"name": "old"})
        same = await db.create_resource("items", attributes={"name": "string|required"})
        assert same is res and res.version == "v1"  # identical definition: no-op
        res2 = await db.create_resource(
            "items", attributes={"name": "string|required", "qty": "integer|default:1"}
        )
        assert res2 is res and res.version == "v2"
        new = await res.insert({"name": "new"})
        assert new["qty"] == 1
    async with Database(store_url) as db:
        assert db.list_resources() == ["items"]
        res = db.resources["items"]
        assert res.version == "v2"
        assert (await res.get(old["id"])) == {"id": old["id"], "name": "old"}
        assert (await res.get(old["id"])).version == "v1"
        assert (await res.get(new["id"]))["qty"] == 1
        meta = msgspec.json.decode((await db.store.get("s3db.json")).body)
        entry = meta["resources"]["items"]
        assert sorted(entry["versions"]) == ["v1", "v2"]
        assert all(v["hash"].startswith("sha256:") for v in entry["versions"].values())


async def test_field_ids_stable_across_versions(db: Database) -> None:
    res = await db.create_resource("stable", attributes={"a": "string", "b": "string"})
    ids_v1 = {p: res.registry.id_of(p) for p in ("a", "b")}
    await db.create_resource("stable", attributes={"b": "string", "c": "string"})
    await db.create_resource("stable", attributes={"a": "string", "c": "string", "d": "string"})
    assert {p: res.registry.id_of(p) for p in ("a", "b")} == ids_v1
    all_ids = [res.registry.id_of(p) for p in ("a", "b", "c", "d")]
    assert len(set(all_ids)) == 4


async def test_concurrent_resource_creation_from_two_clients(store_url: str) -> None:
    db1 = Database(store_url)
    db2 = Database(store_url)
    await db1.connect()
    await db2.connect()

    async def make(db: Database, name: str, field: str) -> None:
        await db.create_resource(name, attributes={field: "string"})

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(make, db1, f"one{i}", "x")
            tg.start_soon(make, db2, f"two{i}", "y")
    await db1.disconnect()
    await db2.disconnect()
    async with Database(store_url) as db3:
        expected = [f"one{i}" for i in range(4)] + [f"two{i}" for i in range(4)]
        assert db3.list_resources() == sorted(expected)


@pytest.mark.parametrize(
    ("attributes", "needle"),
    [
        ({"name": "string|requried"}, "requried"),
        ({"name": "strng"}, "strng"),
        ({"age": "number|min:abc"}, "min"),
    ],
)
async def test_invalid_schema_names_the_rule(db: Database, attributes: Any, needle: str) -> None:
    with pytest.raises(SchemaError) as info:
        await db.create_resource("bad", attributes=attributes)
    assert needle in str(info.value)
    assert not db.resource_exists("bad")


async def test_bad_partition_and_behavior(db: Database) -> None:
    with pytest.raises(SchemaError) as info:
        await db.create_resource(
            "bad", attributes={"a": "string"}, partitions={"p": {"fields": {"nope": "string"}}}
        )
    assert "nope" in str(info.value)
    with pytest.raises(SchemaError):
        await db.create_resource("bad", attributes={"a": "string"}, behavior="body-everything")
    with pytest.raises(SchemaError):
        await db.create_resource("bad/name", attributes={"a": "string"})


async def test_non_strict_validation_skips_partition_field_check(store_url: str) -> None:
    async with Database(store_url, strict_validation=False) as db:
        res = await db.create_resource(
            "loose", attributes={"a": "string"}, partitions={"p": {"fields": {"b": "string"}}}
        )
        assert "p" in res.partitions


async def test_get_resource_errors(db: Database) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        db.get_resource("ghost")
    assert isinstance(info.value, KeyError)
    assert info.value.suggestion


async def test_database_hooks_and_events(store_url: str) -> None:
    calls: list[str] = []
    db = Database(store_url)
    for name in ("before_connect", "after_connect", "before_disconnect", "after_disconnect"):
        db.add_hook(name, lambda _db, name=name: calls.append(name))

    def rename(config: dict[str, Any]) -> dict[str, Any]:
        calls.append("before_create_resource")
        return {**config, "timestamps": True}

    db.add_hook("before_create_resource", rename)
    db.add_hook("after_create_resource", lambda r: calls.append(f"after:{r.name}"))
    db.on("resource.created", lambda r: calls.append(f"event:{r.name}"))
    async with db:
        res = await db.create_resource("things", attributes={"a": "string"})
        assert res.timestamps
    assert calls == [
        "before_connect",
        "after_connect",
        "before_create_resource",
        "after:things",
        "event:things",
        "before_disconnect",
        "after_disconnect",
    ]
    with pytest.raises(ConfigError):
        db.add_hook("before_everything", print)


async def test_no_task_outlives_the_database(store_url: str) -> None:
    db = Database(store_url)
    await db.connect()
    started = anyio.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    task = db.spawn(forever(), name="forever")
    await started.wait()
    await db.disconnect()
    assert task.done() and task.cancelled()


async def test_secret_fields_encrypted_at_rest(store_url: str) -> None:
    async with Database(store_url, passphrase="correct horse") as db:
        res = await db.create_resource(
            "accounts", attributes={"user": "string", "token": "secret|required"}
        )
        rec = await res.insert({"user": "ann", "token": "tok-SUPERSECRET-123"})
        assert (await res.get(rec["id"]))["token"] == "tok-SUPERSECRET-123"
        keys = await db.store.list_keys()
        for key in keys:
            obj = await db.store.get(key)
            blob = obj.body + repr(obj.metadata).encode()
            assert b"SUPERSECRET" not in blob
            assert b"correct horse" not in blob
    with pytest.raises(DecryptionError):
        async with Database(store_url, passphrase="wrong"):
            pass
    async with Database(store_url) as db:  # no passphrase at all
        res = db.resources["accounts"]
        with pytest.raises(EncryptionError):
            await res.insert({"user": "bob", "token": "x"})
        assert await res.count() == 1


async def test_connection_string_errors() -> None:
    from s3db_async.errors import ConnectionStringError

    for bad in ["ftp://x", "s3://", "http://host", "memory://ok?bogus=1", "s3://Bad_Bucket"]:
        with pytest.raises(ConnectionStringError) as info:
            Database(bad)
        assert info.value.suggestion
        assert info.value.metadata["part"]
