"""CachePlugin does what docs/plugins/cache.md says (issue 19 audit): secrets stay out of
shared drivers even for resources named in ``resources``, ``cache.cleared`` names the
resource, and an unreadable entry is a miss, never a failed read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import CachePlugin

from s3db_async import Database

pytestmark = pytest.mark.stores("memory", "file")


async def test_a_named_resource_with_secrets_is_not_cached_in_a_shared_driver(
    store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "c"
    cache = CachePlugin(driver="filesystem", config={"path": str(path)}, resources=["vault"])
    async with Database(store_url, passphrase="pw-for-tests", plugins=[cache]) as db:
        vault = await db.create_resource("vault", attributes={"token": "secret"})
        rec = await vault.insert({"token": "s3cr3t"})
        await vault.get(rec["id"])
        db.store.stats.reset()
        await vault.get(rec["id"])
        assert db.store.stats["get"] == 1  # not cached: it would be stored decrypted
        assert not any(b"s3cr3t" in p.read_bytes() for p in path.rglob("*") if p.is_file())

    opted_in = CachePlugin(
        driver="filesystem",
        config={"path": str(tmp_path / "d")},
        resources=["vault"],
        cache_secrets=True,
    )
    async with Database(store_url, passphrase="pw-for-tests", plugins=[opted_in]) as db:
        vault = db.resources["vault"]
        await vault.get(rec["id"])
        db.store.stats.reset()
        await vault.get(rec["id"])
        assert db.store.stats["get"] == 0


async def test_cleared_event_names_the_resource_given_as_an_object(store_url: str) -> None:
    cache = CachePlugin()
    events: list[dict[str, Any]] = []
    cache.on("cache.cleared", events.append)
    async with Database(store_url, plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        await cache.clear(notes)
        await cache.clear("notes")
        await cache.clear()
    assert [e["resource"] for e in events] == ["notes", "notes", None]


# after the filesystem driver's 8-byte expiry (far future): a value shorter than the
# plugin's header, then a header followed by something that does not unpickle
@pytest.mark.parametrize(
    "garbage",
    [b"\x7f" * 8 + b"short", b"\x7f" * 8 + b"\x00" * 16 + b"not a pickle"],
    ids=["short", "not-a-pickle"],
)
async def test_an_unreadable_entry_is_a_miss_not_a_failed_read(
    store_url: str, tmp_path: Path, garbage: bytes
) -> None:
    path = tmp_path / "c"
    cache = CachePlugin(driver="filesystem", config={"path": str(path)})
    async with Database(store_url, plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        rec = await notes.insert({"text": "x"})
        await notes.get(rec["id"])
        entries = [p for p in path.rglob("*") if p.is_file()]
        assert len(entries) == 1
        entries[0].write_bytes(garbage)  # a truncated or foreign file
        db.store.stats.reset()
        assert (await notes.get(rec["id"]))["text"] == "x"
        assert db.store.stats["get"] == 1
        assert cache.stats()["errors"] == 1
        db.store.stats.reset()
        assert (await notes.get(rec["id"]))["text"] == "x"  # stored again, good this time
        assert db.store.stats["get"] == 0


@pytest.mark.stores("memory")
@pytest.mark.parametrize("bad", [5, ["sessions"], "sessions"])
def test_resource_ttl_must_be_a_dict(bad: Any) -> None:
    from s3db_async.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        CachePlugin(resource_ttl=bad)
    assert err.value.metadata["field"] == "resource_ttl" and err.value.suggestion


@pytest.mark.stores("memory")
@pytest.mark.parametrize("field", ["operations", "resources", "exclude"])
def test_a_string_where_a_list_is_due_names_its_field(field: str) -> None:
    from s3db_async.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        CachePlugin(**{field: "get"})
    assert err.value.metadata["field"] == field
    assert err.value.suggestion == f"{field}=['get']"


async def test_warm_fills_get_entries_when_only_get_is_cached(store_url: str) -> None:
    cache = CachePlugin(operations=["get"])
    async with Database(store_url, plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        ids = [(await notes.insert({"text": t}))["id"] for t in "abc"]
        assert await cache.warm("notes", [*ids, "missing"]) == 3
        db.store.stats.reset()
        for rid in ids:
            await notes.get(rid)
        assert db.store.stats["get"] == 0
