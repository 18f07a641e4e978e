"""CachePlugin on memory, file and SeaweedFS stores, with every driver.

Request counts come from ``db.store.stats``: a hit costs no request, and a write drops
exactly the entries it can change (an unrelated partition's list stays cached).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import CachePlugin

from s3db_async import Database, Resource
from s3db_async.errors import ConfigError

pytestmark = pytest.mark.stores("memory", "file", "seaweedfs")

DRIVERS = ("memory", "filesystem", "s3", "redis", "multi")


def _driver_config(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "s3":  # on a store of its own, so db.store.stats counts the database alone
        store_kind = request.getfixturevalue("store_kind")
        if store_kind == "memory":
            return {"url": f"memory://cache{uuid.uuid4().hex[:10]}/entries"}
        if store_kind == "file":
            return {"url": f"file://{tmp_path / 'cache-store'}"}
        server = request.getfixturevalue(f"{store_kind}_server")
        return {"url": server.url(f"cache{uuid.uuid4().hex[:10]}")}
    if kind == "filesystem":
        return {"path": str(tmp_path / "cache")}
    if kind in ("redis", "multi"):
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        redis = {"url": url, "prefix": prefix}
        if kind == "redis":
            return redis
        return {
            "strategy": "all",
            "destinations": [
                {"driver": "memory", "config": {"max_entries": 100}},
                {"driver": "redis", "config": redis},
            ],
        }
    return {}


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return request.param, _driver_config(request.param, tmp_path, request)


@pytest.fixture
async def cached(
    store_url: str, driver: tuple[str, dict[str, Any]]
) -> AsyncIterator[tuple[Database, CachePlugin, Resource]]:
    cache = CachePlugin(driver=driver[0], config=driver[1], ttl=600)
    db = Database(store_url, plugins=[cache])
    await db.connect()
    try:
        users = await db.create_resource(
            "users",
            attributes={"name": "string", "region": "string", "tier": "string|optional"},
            partitions={
                "by_region": {"fields": {"region": "string"}},
                "by_region_tier": {"fields": {"region": "string", "tier": "string"}},
            },
        )
        yield db, cache, users
    finally:
        await db.uninstall_plugin(cache, purge_data=True)
        await db.disconnect()


def _requests(db: Database) -> int:
    return sum(db.store.stats.values())


async def _reads(users: Resource, region: str) -> list[Any]:
    """Every cached read over one partition value."""
    pv = {"region": region}
    page = await users.page(size=10, partition="by_region", partition_values=pv)
    return [
        sorted(r["id"] for r in await users.list(partition="by_region", partition_values=pv)),
        sorted(await users.list_ids(partition="by_region", partition_values=pv)),
        await users.count(partition="by_region", partition_values=pv),
        sorted(r["id"] for r in page.items),
        sorted(r["id"] for r in await users.query({"region": region})),
        await users.count(partition="by_region_tier", partition_values={"region": region}),
    ]


async def test_hit_costs_no_request(cached: tuple[Database, CachePlugin, Resource]) -> None:
    db, cache, users = cached
    u = await users.insert({"name": "Ann", "region": "eu"})
    db.store.stats.reset()
    assert (await users.get(u["id"]))["name"] == "Ann"
    first = _requests(db)
    assert first >= 1
    db.store.stats.reset()
    again = await users.get(u["id"])
    assert again == {"id": u["id"], "name": "Ann", "region": "eu"}
    assert again.etag == u.etag
    assert _requests(db) == 0
    again["name"] = "changed by the caller"  # a hit is a copy: the cache is not changed
    assert (await users.get(u["id"]))["name"] == "Ann"
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["misses"] == 1


async def test_write_drops_only_the_partitions_it_touched(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    db, _, users = cached
    eu = await users.insert({"name": "Ann", "region": "eu", "tier": "gold"})
    us = await users.insert({"name": "Bob", "region": "us", "tier": "gold"})
    before_us = await _reads(users, "us")
    before_eu = await _reads(users, "eu")
    total = await users.count()
    db.store.stats.reset()
    assert await _reads(users, "us") == before_us
    assert await _reads(users, "eu") == before_eu
    assert await users.count() == total
    assert _requests(db) == 0  # everything cached

    # an insert in eu: the us entries stay, the eu and whole-resource ones go
    eu2 = await users.insert({"name": "Cid", "region": "eu"})
    db.store.stats.reset()
    assert await _reads(users, "us") == before_us
    assert _requests(db) == 0
    after_eu = await _reads(users, "eu")
    assert after_eu[2] == 2 and eu2["id"] in after_eu[0]
    assert _requests(db) > 0
    db.store.stats.reset()
    assert await users.count() == total + 1
    assert db.store.stats["list"] >= 1

    # an update inside eu keeps us cached; the record's own get entry is refreshed
    await users.get(eu["id"])
    await users.update(eu["id"], {"name": "Anne"})
    db.store.stats.reset()
    assert await _reads(users, "us") == before_us
    assert _requests(db) == 0
    assert (await users.get(eu["id"]))["name"] == "Anne"
    assert db.store.stats["get"] == 1

    # a delete in eu keeps us cached
    await _reads(users, "eu")
    await users.delete(eu2["id"])
    db.store.stats.reset()
    assert await _reads(users, "us") == before_us
    assert _requests(db) == 0
    assert eu2["id"] not in (await _reads(users, "eu"))[0]
    assert us["id"] in (await _reads(users, "us"))[0]


async def test_update_moving_partitions_drops_old_and_new(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    db, _, users = cached
    a = await users.insert({"name": "Ann", "region": "eu"})
    await users.insert({"name": "Bob", "region": "us"})
    await users.insert({"name": "Cid", "region": "br"})
    assert (await _reads(users, "eu"))[2] == 1
    assert (await _reads(users, "us"))[2] == 1
    br = await _reads(users, "br")
    await users.update(a["id"], {"region": "us"})
    db.store.stats.reset()
    assert await _reads(users, "br") == br
    assert _requests(db) == 0
    assert (await _reads(users, "eu"))[2] == 0
    assert (await _reads(users, "us"))[2] == 2


async def test_get_many_uses_and_fills_get_entries(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    db, _, users = cached
    a = await users.insert({"name": "Ann", "region": "eu"})
    b = await users.insert({"name": "Bob", "region": "us"})
    await users.get(a["id"])
    db.store.stats.reset()
    result = await users.get_many([a["id"], b["id"], "missing"])
    assert [r.ok for r in result] == [True, True, False]
    assert db.store.stats["get"] == 2  # b and the missing one
    db.store.stats.reset()
    again = await users.get_many([b["id"], a["id"]])
    assert [r.data["name"] for r in again if r.data is not None] == ["Bob", "Ann"]
    assert _requests(db) == 0
    db.store.stats.reset()
    assert (await users.get(b["id"]))["name"] == "Bob"
    assert _requests(db) == 0


async def test_events_stats_clear_and_warm(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    db, cache, users = cached
    ids = [(await users.insert({"name": f"n{i}", "region": "eu"}))["id"] for i in range(5)]
    seen: list[tuple[str, str]] = []
    cache.on("cache.hit", lambda p: seen.append(("hit", p["op"])))
    cache.on("cache.miss", lambda p: seen.append(("miss", p["op"])))
    assert await cache.warm("users", lists=True) == 8  # list_ids, 5 gets, list, count
    db.store.stats.reset()
    for rid in ids:
        await users.get(rid)
    assert len(await users.list()) == 5
    assert await users.count() == 5
    assert _requests(db) == 0
    assert seen.count(("hit", "get")) == 5 and ("hit", "list") in seen
    assert cache.stats()["resources"]["users"]["get"]["hits"] == 5
    await cache.clear("users")
    db.store.stats.reset()
    await users.get(ids[0])
    assert db.store.stats["get"] == 1
    assert ("miss", "get") in seen
    await cache.clear()
    db.store.stats.reset()
    await users.get(ids[0])
    assert db.store.stats["get"] == 1


async def test_delete_all_and_unpartitioned_deletes(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    db, _, users = cached
    notes = await db.create_resource("notes", attributes={"text": "string"})
    n = await notes.insert({"text": "hi"})
    assert (await notes.get(n["id"]))["text"] == "hi"
    assert await notes.count() == 1
    await notes.delete(n["id"])
    assert await notes.get_or_none(n["id"]) is None
    assert await notes.count() == 0
    await notes.insert({"text": "again"})
    assert await notes.count() == 1
    await notes.delete_many([r for r in await notes.list_ids()])
    assert await notes.count() == 0
    await users.insert({"name": "Ann", "region": "eu"})
    assert await users.count() == 1
    await users.delete_all(confirm=True)
    for _ in range(100):  # the flush runs in the background; reads bypass it meanwhile
        if await users.count() == 0:
            break
        await asyncio.sleep(0.01)
    assert await users.count() == 0


async def test_read_racing_a_write_is_not_cached(
    cached: tuple[Database, CachePlugin, Resource],
) -> None:
    """A get that read the old record while an update landed must not store it."""
    _, _, users = cached
    a = await users.insert({"name": "Ann", "region": "eu"})
    read_done = asyncio.Event()
    go_on = asyncio.Event()

    async def slow(nxt: Any, *args: Any, **kwargs: Any) -> Any:
        result = await nxt(*args, **kwargs)
        read_done.set()
        await go_on.wait()
        return result

    users.use_middleware("get", slow)  # inside the cache's middleware
    reader = asyncio.create_task(users.get(a["id"]))
    await read_done.wait()
    await users.update(a["id"], {"name": "Anne"})
    go_on.set()
    assert (await reader)["name"] == "Ann"  # it read before the update
    users.remove_middleware("get", slow)
    assert (await users.get(a["id"]))["name"] == "Anne"


@pytest.mark.stores("memory")
async def test_config_errors(store_url: str) -> None:
    with pytest.raises(ConfigError, match="unknown cache driver"):
        CachePlugin(driver="nope")
    with pytest.raises(ConfigError, match="ttl"):
        CachePlugin(ttl=0)
    with pytest.raises(ConfigError, match="max_staleness"):
        CachePlugin(max_staleness=-1)
    with pytest.raises(ConfigError, match="cannot cache"):
        CachePlugin(operations=["insert"])
    with pytest.raises(ConfigError, match="max_entries"):
        CachePlugin(config={"max_entries": 0})
    with pytest.raises(ConfigError, match="strategy"):
        CachePlugin(
            driver="multi", config={"strategy": "any", "destinations": [{"driver": "memory"}]}
        )
    with pytest.raises(ConfigError, match="destinations"):
        CachePlugin(driver="multi", config={"destinations": []})
    with pytest.raises(ConfigError, match="bad option"):
        CachePlugin(config={"size": 3})
    with pytest.raises(ConfigError, match="Redis URL"):
        CachePlugin(pubsub="http://x")
    err = None
    try:
        CachePlugin(ttl="x")  # type: ignore[arg-type]
    except ConfigError as exc:
        err = exc
    assert err is not None and err.suggestion and err.metadata["field"] == "ttl"


@pytest.mark.stores("memory")
async def test_resources_exclude_and_secrets(store_url: str, tmp_path: Path) -> None:
    cache = CachePlugin(driver="filesystem", config={"path": str(tmp_path / "c")}, exclude=["logs"])
    async with Database(store_url, passphrase="pw-for-tests", plugins=[cache]) as db:
        logs = await db.create_resource("logs", attributes={"text": "string"})
        vault = await db.create_resource("vault", attributes={"token": "secret"})
        plain = await db.create_resource("plain", attributes={"text": "string"})
        for r in (logs, vault, plain):
            rec = await r.insert({"token": "s3cr3t"} if r is vault else {"text": "x"})
            await r.get(rec["id"])
            db.store.stats.reset()
            await r.get(rec["id"])
            assert db.store.stats["get"] == (0 if r is plain else 1), r.name
        assert not any(
            b"s3cr3t" in p.read_bytes() for p in (tmp_path / "c").rglob("*") if p.is_file()
        )


@pytest.mark.parametrize("error", ["unknown", "precondition"])
async def test_a_write_whose_answer_was_lost_still_invalidates(store_url: str, error: str) -> None:
    """The update's conditional PUT lands but its answer is lost (resolved by reading back):
    the cached record and its partition's list must not survive it."""
    from s3db_async.stores import open_store
    from tests._faults import LostReplyStore

    store = LostReplyStore(open_store(store_url))
    cache = CachePlugin()
    async with Database(store=store, plugins=[cache]) as db:
        users = await db.create_resource(
            "users",
            attributes={"name": "string", "region": "string"},
            partitions={"by_region": {"fields": {"region": "string"}}},
        )
        a = await users.insert({"name": "Ann", "region": "eu"})
        await users.get(a["id"])
        pv = {"region": "eu"}
        assert [
            r["name"] for r in await users.list(partition="by_region", partition_values=pv)
        ] == ["Ann"]
        store.lose(1, match=lambda key: "/data/" in key, error=error)
        await users.update(a["id"], {"name": "Anne"})
        assert store.lost
        assert (await users.get(a["id"]))["name"] == "Anne"
        rows = await users.list(partition="by_region", partition_values=pv)
        assert [r["name"] for r in rows] == ["Anne"]
