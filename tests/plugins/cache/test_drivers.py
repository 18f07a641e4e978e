"""The CachePlugin's drivers on their own: LRU caps and ttl of the memory driver, group
deletes on every driver, and the missing-``redis`` error."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import CachePlugin
from s3db_async.plugins.cache.drivers import (
    CacheDriver,
    FilesystemCache,
    MemoryCache,
    make_driver,
)

from s3db_async import Database
from s3db_async.errors import MissingDependencyError

from .conftest import FakeClock


async def test_memory_lru_entry_cap() -> None:
    cache = MemoryCache(max_entries=3)
    for k in ("r/a/1", "r/a/2", "r/b/1"):
        await cache.set(k, b"x")
    assert await cache.get("r/a/1") == b"x"  # now most recently used
    await cache.set("r/c/1", b"y")
    assert await cache.get("r/a/2") is None  # the least recently used went
    assert await cache.get("r/a/1") == b"x"
    assert cache.info()["entries"] == 3 and cache.evictions == 1


async def test_memory_byte_cap_and_oversized_values() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=100)
    await cache.set("r/g/a", b"1" * 40)
    await cache.set("r/g/b", b"2" * 40)
    assert cache.bytes == 2 * (40 + 5)
    await cache.set("r/g/c", b"3" * 40)  # 135 bytes > 100: the oldest goes
    assert await cache.get("r/g/a") is None
    assert cache.bytes <= 100
    await cache.set("r/g/big", b"4" * 200)  # never fits: not stored, nothing else evicted
    assert await cache.get("r/g/big") is None
    assert await cache.get("r/g/c") is not None


async def test_memory_ttl_with_a_fake_clock(clock: FakeClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.set("r/g/a", b"v", ttl=10)
    clock.advance(9.9)
    assert await cache.get("r/g/a") == b"v"
    clock.advance(0.2)
    assert await cache.get("r/g/a") is None
    assert cache.info()["entries"] == 0


@pytest.fixture(params=["memory", "filesystem", "s3", "redis"])
async def any_driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheDriver]:
    kind = request.param
    config: dict[str, Any] = {}
    if kind == "filesystem":
        config = {"path": str(tmp_path / "fs")}
    elif kind == "redis":
        config = {
            "url": request.getfixturevalue("redis_url"),
            "prefix": request.getfixturevalue("redis_prefix"),
        }
    cache = CachePlugin(driver=kind, config=config)
    async with Database("memory://drivers/t", plugins=[cache]) as db:
        await db.create_resource("r", attributes={"x": "string"})
        yield cache.driver
        await cache.driver.clear()


async def test_group_deletes(any_driver: CacheDriver) -> None:
    d = any_driver
    for key in ("r/g1/a", "r/g1/b", "r/g2/a", "r/g3/a"):
        await d.set(key, key.encode(), ttl=60)
    assert await d.get("r/g1/b") == b"r/g1/b"
    assert await d.delete_groups(["r/g1", "r/g3"]) == 3
    assert await d.get("r/g1/a") is None and await d.get("r/g1/b") is None
    assert await d.get("r/g3/a") is None
    assert await d.get("r/g2/a") == b"r/g2/a"
    assert await d.exists("r/g2/a")
    await d.clear(namespace="r/")
    assert await d.get("r/g2/a") is None


async def test_filesystem_expiry(tmp_path: Path, clock: FakeClock) -> None:
    cache = FilesystemCache(path=tmp_path, clock=clock)
    await cache.set("r/g/a", b"v", ttl=5)
    assert await cache.get("r/g/a") == b"v"
    clock.advance(6)
    assert await cache.get("r/g/a") is None


def test_missing_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError) as info:
        make_driver("redis", {})
    assert "s3db-async[cache-redis]" in str(info.value)
    with pytest.raises(MissingDependencyError):
        make_driver("multi", {"destinations": [{"driver": "redis"}]})


def test_missing_aiocache_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = __import__("importlib").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "aiocache" else real(name)
    )
    with pytest.raises(MissingDependencyError) as info:
        CachePlugin()
    assert "s3db-async[cache]" in str(info.value)


async def test_an_unreachable_cache_never_fails_reads_or_writes() -> None:
    cache = CachePlugin(driver="redis", config={"url": "redis://127.0.0.1:1/0"})
    async with Database("memory://drivers/down", plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        n = await notes.insert({"text": "hi"})
        assert (await notes.get(n["id"]))["text"] == "hi"
        await notes.update(n["id"], {"text": "ho"})
        assert (await notes.get(n["id"]))["text"] == "ho"
        assert await notes.count() == 1
        stats = cache.stats()
        assert stats["errors"] >= 4 and stats["hits"] == 0


async def test_uninstall_removes_the_cache(tmp_path: Path) -> None:
    cache = CachePlugin(driver="filesystem", config={"path": str(tmp_path / "c")})
    async with Database("memory://drivers/uninstall", plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        n = await notes.insert({"text": "hi"})
        await notes.get(n["id"])
        assert any(p.is_file() for p in (tmp_path / "c").rglob("*"))
        await db.uninstall_plugin(cache, purge_data=True)
        assert not any(p.is_file() for p in (tmp_path / "c").rglob("*"))
        db.store.stats.reset()
        await notes.get(n["id"])
        await notes.get(n["id"])
        assert db.store.stats["get"] == 2  # no middleware left


async def test_two_databases_sharing_a_filesystem_path_never_see_each_others_entries(
    tmp_path: Path,
) -> None:
    """The seed's production stack gives every database ``path: './cache'``: entries live in
    a folder per database under it (they used to share one, so a second database served the
    first one's record of the same id)."""
    path = str(tmp_path / "cache")
    dbs = []
    try:
        for name in ("first", "second"):
            cache = CachePlugin(driver="filesystem", config={"path": path})
            db = Database(f"memory://shared-path-{name}/db", plugins=[cache])
            await db.connect()
            dbs.append(db)
            notes = await db.create_resource("notes", attributes={"text": "string"})
            await notes.insert({"id": "n1", "text": name})
            assert (await notes.get("n1"))["text"] == name  # stored in this db's folder
        for db, name in zip(dbs, ("first", "second"), strict=True):
            db.store.stats.reset()
            assert (await db.get_resource("notes").get("n1"))["text"] == name
            assert db.store.stats["get"] == 0  # a hit, from its own entry
        assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    finally:
        for db in dbs:
            await db.disconnect()


async def test_two_databases_sharing_an_s3_cache_url_never_see_each_others_entries() -> None:
    """The s3 driver with its own ``url`` (another bucket) keeps each database's entries
    under a namespace of its own."""
    dbs = []
    try:
        for name in ("first", "second"):
            cache = CachePlugin(driver="s3", config={"url": "memory://shared-cache-bucket/c"})
            db = Database(f"memory://shared-url-{name}/db", plugins=[cache])
            await db.connect()
            dbs.append(db)
            notes = await db.create_resource("notes", attributes={"text": "string"})
            await notes.insert({"id": "n1", "text": name})
            assert (await notes.get("n1"))["text"] == name
        for db, name in zip(dbs, ("first", "second"), strict=True):
            db.store.stats.reset()
            assert (await db.get_resource("notes").get("n1"))["text"] == name
            assert db.store.stats["get"] == 0  # a hit, from its own entry
    finally:
        for db in dbs:
            await db.disconnect()
