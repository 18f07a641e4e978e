"""PluginStorage: every method on every store (memory, file, moto, SeaweedFS)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from s3db_async import Database, Lock, PluginStorage
from s3db_async._clock import ManualClock, use_clock
from s3db_async.errors import (
    ConfigError,
    ConflictError,
    LockError,
    MetadataLimitError,
    UnsupportedCapabilityError,
    ValidationError,
)
from s3db_async.stores import Capabilities, MemoryStore

TTL = 60.0  # time is a ManualClock: expiry is exact and nothing sleeps


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock()) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


@pytest.fixture
async def storage(db: Database) -> PluginStorage:
    return PluginStorage(db, "my-plugin")


def _expire(clock: ManualClock) -> None:
    """Move time to the exact instant a ``TTL`` set now expires."""
    clock.advance(TTL)


# -- keys --------------------------------------------------------------------------------
def test_key_layout() -> None:
    s = PluginStorage(MemoryStore("memory://k/p"), "my-plugin")
    assert s.get_plugin_key(None, "config") == "plugin=my-plugin/config"
    assert s.get_plugin_key(None, "state", "current") == "plugin=my-plugin/state/current"
    assert s.get_plugin_key("users", "cache", "user-123") == (
        "resource=users/plugin=my-plugin/cache/user-123"
    )
    assert s.get_sequence_key("users", "orderId", "value") == (
        "resource=users/plugin=my-plugin/sequence=orderId/value"
    )
    assert s.get_sequence_key("users", "orderId", "lock") == (
        "resource=users/plugin=my-plugin/sequence=orderId/lock"
    )
    assert s.get_sequence_key(None, "globalCounter") == (
        "plugin=my-plugin/sequence=globalCounter/value"
    )
    assert s.get_lock_key("job") == "plugin=my-plugin/locks/job"
    assert s.get_lock_key("job", "users") == "resource=users/plugin=my-plugin/locks/job"
    ns = PluginStorage(MemoryStore("memory://k/p"), "recon", namespace="uptime")
    assert ns.get_plugin_key(None, "reports", "r1") == "plugin=recon/uptime/reports/r1"
    assert ns.get_plugin_key("hosts", "x") == "resource=hosts/plugin=recon/uptime/x"
    assert ns.get_plugin_key(None) == "plugin=recon/uptime"
    assert PluginStorage(MemoryStore("memory://k/p"), "c", namespace="default").namespace is None
    with pytest.raises(ConfigError):
        PluginStorage(MemoryStore("memory://k/p"), "bad slug")
    with pytest.raises(ConfigError):
        PluginStorage(MemoryStore("memory://k/p"), "c", namespace="bad space")


async def test_keys_outside_the_plugin_are_refused(storage: PluginStorage) -> None:
    for key in ("plugin=other/x", "resource=users/data/id=1", "resource=users/plugin=other/x"):
        with pytest.raises(ConfigError, match="outside"):
            await storage.set(key, 1)


# -- set / get / behaviors ---------------------------------------------------------------
async def test_set_get_roundtrip_keeps_camel_case(storage: PluginStorage) -> None:
    value = {
        "firstName": "Alice",
        "lastName": "Smith",
        "settings": {"maxRetries": 3, "timeoutMs": 30000, "nested": {"camelCase": True}},
        "tags": ["a", "B"],
        "unicode": "naïve \u2013 東京 🚀",
        "none": None,
        "ratio": 0.25,
    }
    key = storage.get_plugin_key(None, "config")
    await storage.set(key, value)
    assert await storage.get(key) == value
    raw = await storage.store.head(key)
    assert "d" in raw.metadata  # small: whole value in one metadata entry
    for plain in ("a string", 42, [1, 2], True, None):
        await storage.set("plain", plain)
        assert await storage.get("plain") == plain
    assert await storage.get("missing") is None


async def test_behaviors(storage: PluginStorage) -> None:
    big = {"huge": "data" * 1000}
    await storage.set("overflow", big)
    raw = await storage.store.get("plugin=my-plugin/overflow")
    assert "d" not in raw.metadata and raw.metadata.get("b") == "1"
    assert await storage.get("overflow") == big

    await storage.set("body", {"small": 1}, behavior="body-only")
    raw = await storage.store.get("plugin=my-plugin/body")
    assert "d" not in raw.metadata
    assert await storage.get("body") == {"small": 1}

    await storage.set("strict", {"enabled": True}, behavior="enforce-limits")
    assert await storage.get("strict") == {"enabled": True}
    with pytest.raises(MetadataLimitError):
        await storage.set("strict", big, behavior="enforce-limits")
    with pytest.raises(ConfigError, match="behavior"):
        await storage.set("x", 1, behavior="truncate-data")
    with pytest.raises(ValidationError):
        await storage.set("x", {"bad": object()})


async def test_every_write_changes_the_etag(storage: PluginStorage) -> None:
    await storage.set("same", {"v": 1})
    first = (await storage.store.head("plugin=my-plugin/same")).etag
    await storage.set("same", {"v": 1})
    assert (await storage.store.head("plugin=my-plugin/same")).etag != first


# -- list / delete -----------------------------------------------------------------------
async def test_list_and_list_for_resource(storage: PluginStorage) -> None:
    for name in ("config/general", "config/advanced", "state"):
        await storage.set(name, {"n": name})
    await storage.set(storage.get_plugin_key("users", "cache", "user-1"), {"name": "Alice"})
    await storage.set(storage.get_plugin_key("users", "cache", "user-2"), {"name": "Bob"})
    await storage.set(storage.get_plugin_key("products", "cache", "p-1"), {"title": "P"})

    assert await storage.list() == [
        "plugin=my-plugin/config/advanced",
        "plugin=my-plugin/config/general",
        "plugin=my-plugin/state",
    ]
    assert await storage.list("config") == [
        "plugin=my-plugin/config/advanced",
        "plugin=my-plugin/config/general",
    ]
    assert len(await storage.list("", limit=2)) == 2
    assert await storage.list(storage.get_plugin_key(None, "state")) == ["plugin=my-plugin/state"]
    assert await storage.list_for_resource("users") == [
        "resource=users/plugin=my-plugin/cache/user-1",
        "resource=users/plugin=my-plugin/cache/user-2",
    ]
    assert await storage.list_for_resource("users", "cache/user-2") == [
        "resource=users/plugin=my-plugin/cache/user-2"
    ]
    assert len(await storage.list_for_resource("users", "", limit=1)) == 1
    assert len(await storage.list_for_resource("products")) == 1

    await storage.delete("state")
    await storage.delete("state")  # missing is fine
    assert await storage.get("state") is None
    assert await storage.delete_all("users") == 2
    assert await storage.list_for_resource("users") == []
    assert len(await storage.list_for_resource("products")) == 1
    assert await storage.delete_all() == 3
    assert await storage.list() == []
    assert await storage.list_for_resource("products") == []


async def test_delete_all_leaves_other_plugins_and_records(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    await users.insert({"id": "u1", "name": "Ann"})
    mine, other = PluginStorage(db, "mine"), PluginStorage(db, "other")
    await mine.set(mine.get_plugin_key("users", "x"), 1)
    await other.set(other.get_plugin_key("users", "x"), 1)
    await other.set("g", 1)
    assert await mine.delete_all() == 1
    assert await other.get(other.get_plugin_key("users", "x")) == 1
    assert await other.get("g") == 1
    assert (await users.get("u1"))["name"] == "Ann"


# -- batches -----------------------------------------------------------------------------
async def test_batch_put_and_get(storage: PluginStorage) -> None:
    items: list[dict[str, Any]] = [{"key": f"item-{i}", "data": {"value": i}} for i in range(5)]
    items.append({"key": "ttl-item", "data": {"value": "t"}, "ttl": 60})
    items.append({"key": "bad", "data": {"nope": object()}})
    results = await storage.batch_put([*items, ("tuple-item", [1, 2])])
    assert [r.ok for r in results] == [True] * 6 + [False, True]
    assert isinstance(results[6].error, ValidationError)
    assert results[0].key == "item-0" and results[0].data == {"value": 0}

    got = await storage.batch_get(["item-0", "item-4", "ttl-item", "tuple-item", "missing"])
    assert [r.ok for r in got] == [True] * 5
    assert [r.data for r in got] == [{"value": 0}, {"value": 4}, {"value": "t"}, [1, 2], None]
    assert await storage.get_ttl("ttl-item") is not None
    bad = await storage.batch_get(["plugin=other/x"])
    assert not bad[0].ok and isinstance(bad[0].error, ConfigError)


# -- TTL ---------------------------------------------------------------------------------
async def test_ttl_lifecycle(storage: PluginStorage, store_kind: str, clock: ManualClock) -> None:
    await storage.set("session", {"userId": "user1"}, ttl=TTL)
    await storage.set("forever", {"x": 1})
    assert await storage.has("session")
    assert not await storage.is_expired("session")
    assert await storage.get_ttl("session") == TTL
    assert await storage.get_ttl("forever") is None
    assert await storage.get_ttl("missing") is None
    assert not await storage.touch("forever", 10)
    assert not await storage.touch("missing", 10)
    assert await storage.has("forever")
    assert not await storage.has("missing")

    clock.advance(TTL - 0.25)  # binary fractions: the clock's sums are exact
    assert not await storage.is_expired("session")
    assert await storage.get_ttl("session") == 0.25
    clock.advance(0.25)
    assert await storage.is_expired("session")
    assert await storage.get_ttl("session") is None
    assert await storage.get("session") is None  # lazy expiry
    assert not await storage.has("session")
    raw_left = await storage.store.exists("plugin=my-plugin/session")
    # deletes are conditional on memory/file; S3 keeps it for cleanup_expired()
    assert raw_left is (store_kind in ("moto", "seaweedfs"))
    assert await storage.get("forever") == {"x": 1}
    assert not await storage.is_expired("missing")


async def test_touch_extends(storage: PluginStorage, clock: ManualClock) -> None:
    await storage.set("s", {"token": "abc"}, ttl=TTL)
    await storage.set("s-meta", {"token": "abc"}, ttl=TTL, behavior="body-only")
    before = await storage.get_ttl("s")
    assert before is not None
    assert await storage.touch("s", 60)
    assert await storage.touch("s-meta", 60)
    assert await storage.get_ttl("s") == before + 60
    _expire(clock)
    assert await storage.get("s") == {"token": "abc"}
    assert await storage.get("s-meta") == {"token": "abc"}
    clock.advance(60)
    assert await storage.get("s") is None
    assert await storage.get("s-meta") is None
    with pytest.raises(ConfigError):
        await storage.touch("s", 0)


async def test_cleanup_expired(storage: PluginStorage, clock: ManualClock) -> None:
    await storage.set("a", 1, ttl=TTL)
    await storage.set(storage.get_plugin_key("users", "b"), 2, ttl=TTL)
    await storage.set("keep", 3, ttl=600)
    await storage.set("plain", 4)
    held = await storage.acquire_lock("stale", ttl=TTL)
    assert held is not None
    _expire(clock)
    assert await storage.cleanup_expired() == 3
    assert await storage.list() in (
        ["plugin=my-plugin/keep", "plugin=my-plugin/plain"],
        # S3: the expired lock became a tombstone (locks are never deleted blindly)
        ["plugin=my-plugin/keep", "plugin=my-plugin/locks/stale", "plugin=my-plugin/plain"],
    )
    assert await storage.list_for_resource("users") == []
    assert not await storage.is_locked("stale")
    assert await storage.acquire_lock("stale", ttl=5) is not None
    assert await storage.cleanup_expired() == 0


# -- locks -------------------------------------------------------------------------------
async def test_lock_basics(storage: PluginStorage) -> None:
    lock1 = await storage.acquire_lock("task1", ttl=5, worker_id=1234)
    assert isinstance(lock1, Lock)
    assert lock1.worker_id == "1234" and lock1.name == "task1" and not lock1.expired
    assert lock1.remaining == 5
    assert await storage.is_locked("task1")
    assert await storage.acquire_lock("task1", ttl=5, timeout=0) is None
    assert not await storage.is_locked("other")

    assert await storage.release_lock(lock1)
    assert not await storage.is_locked("task1")
    assert not await storage.release_lock(lock1)  # already released

    lock3 = await storage.acquire_lock("task1", ttl=5)
    assert lock3 is not None
    assert not await storage.release_lock("task1", "wrong-token")
    assert await storage.is_locked("task1")
    assert await storage.release_lock("task1", lock3.token)
    assert not await storage.is_locked("task1")
    with pytest.raises(ConfigError):
        await storage.release_lock("task1")

    scoped = await storage.acquire_lock("job", ttl=5, resource="users")
    assert scoped is not None and scoped.key == "resource=users/plugin=my-plugin/locks/job"
    assert await storage.is_locked("job", resource="users")
    assert not await storage.is_locked("job")
    await scoped.release()


async def test_lock_expiry_takeover_and_refresh(storage: PluginStorage, clock: ManualClock) -> None:
    first = await storage.acquire_lock("t", ttl=TTL)
    assert first is not None
    assert await first.refresh(ttl=TTL)
    _expire(clock)
    assert first.expired and not await storage.is_locked("t")
    second = await storage.acquire_lock("t", ttl=30)
    assert second is not None and second.token != first.token
    assert not await first.release()  # taken over: the old holder cannot release it
    assert not await first.refresh()
    assert await storage.is_locked("t")
    assert await second.release()


async def test_lock_waits_with_timeout(storage: PluginStorage, clock: ManualClock) -> None:
    held = await storage.acquire_lock("w", ttl=7200)
    assert held is not None
    released = asyncio.Event()

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        released.set()
        await held.release()

    task = asyncio.create_task(release_soon())
    got = await storage.acquire_lock("w", ttl=7200, timeout=600)
    await task
    assert got is not None and released.is_set()  # it waited for the release

    async def an_hour_passes() -> None:
        await asyncio.sleep(0.05)
        clock.advance(3600)  # the lock (ttl 7200) is still held; the wait (3000) is over

    task = asyncio.create_task(an_hour_passes())
    assert await storage.acquire_lock("w", ttl=60, timeout=3000) is None
    await task
    assert await storage.is_locked("w")
    await got.release()


async def test_lock_context_manager(storage: PluginStorage) -> None:
    async with storage.lock("cm", ttl=10) as lock:
        assert await storage.is_locked("cm")
        with pytest.raises(LockError):
            async with storage.lock("cm", ttl=10, timeout=0):
                pass
    assert lock.released and not await storage.is_locked("cm")
    with pytest.raises(RuntimeError):
        async with storage.lock("cm", ttl=10):
            raise RuntimeError("boom")
    assert not await storage.is_locked("cm")
    held = await storage.acquire_lock("cm2", ttl=10)
    assert held is not None
    async with held:
        pass
    assert not await storage.is_locked("cm2")


# -- counters and sequences --------------------------------------------------------------
async def test_counters(storage: PluginStorage, clock: ManualClock) -> None:
    await storage.set("counter", {"value": 0, "label": "kept"})
    assert await storage.increment("counter", 5) == 5
    assert await storage.increment("counter", 3) == 8
    assert await storage.decrement("counter", 2) == 6
    assert await storage.get("counter") == {"value": 6, "label": "kept"}

    assert await storage.increment("api-calls") == 1
    assert await storage.increment("api-calls") == 2
    assert await storage.decrement("available-slots", 3) == -3
    assert await storage.increment("ratio", 0.5) == 0.5

    assert await storage.increment("hourly", 1, ttl=TTL) == 1
    assert await storage.increment("hourly", 1) == 2
    clock.advance(1)
    assert await storage.increment("hourly") == 3
    assert await storage.get_ttl("hourly") == TTL - 1  # kept from creation
    clock.advance(TTL - 1)
    assert await storage.increment("hourly") == 1  # expired: starts again

    await storage.set("text", {"value": "abc"})
    with pytest.raises(ValidationError):
        await storage.increment("text")
    with pytest.raises(ConfigError):
        await storage.increment("counter", "1")  # type: ignore[arg-type]


async def test_concurrent_increments_are_exact(db: Database) -> None:
    # separate PluginStorage objects: no shared cache, every step is a real race
    storages = [PluginStorage(db, "race") for _ in range(4)]

    async def worker(s: PluginStorage) -> list[int | float]:
        return [await s.increment("hits") for _ in range(10)]

    results = await asyncio.gather(*(worker(s) for s in storages))
    values = sorted(v for r in results for v in r)
    assert values == list(range(1, 41))
    assert await storages[0].get("hits") == {"value": 40}


async def test_sequences(storage: PluginStorage) -> None:
    assert await storage.get_sequence("order") is None
    assert [await storage.next_sequence("order") for _ in range(3)] == [1, 2, 3]
    assert await storage.get_sequence("order") == 3
    assert await storage.next_sequence("inv", resource="orders", start=100, step=10) == 100
    assert await storage.next_sequence("inv", resource="orders", start=100, step=10) == 110
    assert await storage.get(storage.get_sequence_key("orders", "inv")) == {"value": 110}
    other = PluginStorage(storage._target, "my-plugin")
    assert await other.next_sequence("order") == 4
    with pytest.raises(ConfigError):
        await storage.next_sequence("order", step=1.5)  # type: ignore[arg-type]


# -- capabilities and request budget -----------------------------------------------------
async def test_store_without_conditional_writes_refuses_exact_primitives() -> None:
    store = MemoryStore("memory://nocas/p")
    store._capabilities = Capabilities(
        conditional_create=False, conditional_update=False, detail="probe failed"
    )
    s = PluginStorage(store, "p")
    await s.set("plain", 1)  # plain data still works
    assert await s.get("plain") == 1
    for call in (
        s.acquire_lock("l", ttl=5),
        s.increment("c"),
        s.decrement("c"),
        s.next_sequence("q"),
    ):
        with pytest.raises(UnsupportedCapabilityError, match="probe failed"):
            await call


@pytest.mark.stores("memory", "moto")
async def test_requests_per_operation(storage: PluginStorage, store_kind: str) -> None:
    stats = storage.store.stats
    await storage.increment("warm")
    cases = [
        ("set", storage.set("k", {"a": 1}), 1),
        ("get", storage.get("k"), 1),
        ("has", storage.has("k"), 1),
        ("increment (warm)", storage.increment("warm"), 1),
        ("increment (new)", storage.increment("fresh"), 2),
    ]
    for label, call, expected in cases:
        stats.reset()
        await call
        assert stats.total() == expected, (label, stats.snapshot())
    stats.reset()
    lock = await storage.acquire_lock("l", ttl=5)
    assert lock is not None
    # memory/file: one conditional create; S3 (tombstones stay): GET + conditional PUT
    assert stats.total() == (1 if store_kind == "memory" else 2), stats.snapshot()
    stats.reset()
    assert await lock.release()
    assert stats.total() == 1, stats.snapshot()
    stats.reset()
    again = await storage.acquire_lock("l", ttl=5)  # S3: swaps the tombstone it just wrote
    assert again is not None and stats.total() == 1, stats.snapshot()


async def test_key_that_is_also_a_prefix(storage: PluginStorage, store_kind: str) -> None:
    await storage.set("dir/child", 1)
    if store_kind == "seaweedfs":
        # SeaweedFS sees "dir" as an existing directory for If-None-Match: explained, not a hang
        with pytest.raises(ConflictError, match="refuses to create"):
            await storage.increment("dir")
    else:
        assert await storage.increment("dir") == 1
