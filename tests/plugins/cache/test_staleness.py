"""Several databases (as separate processes would) with memory caches on one store:
``max_staleness`` bounds what they serve after another one wrote, and Redis pub/sub drops
their entries at once. The same with real OS processes is in test_processes.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from s3db_async.plugins import CachePlugin

from s3db_async import Database
from s3db_async.errors import ConfigError

from .conftest import FakeClock

pytestmark = pytest.mark.stores("memory", "file", "seaweedfs")

ATTRS = {"name": "string", "region": "string"}
PARTS = {"by_region": {"fields": {"region": "string"}}}


@pytest.fixture
async def pair(
    store_url: str, clock: FakeClock
) -> AsyncIterator[tuple[Database, CachePlugin, Database]]:
    reader_cache = CachePlugin(max_staleness=5, clock=clock)
    reader = Database(store_url, plugins=[reader_cache])
    writer = Database(store_url)
    await writer.connect()
    await writer.create_resource("users", attributes=ATTRS, partitions=PARTS)
    await reader.connect()
    try:
        yield reader, reader_cache, writer
    finally:
        await reader.disconnect()
        await writer.disconnect()


async def test_max_staleness_bounds_what_another_writer_leaves_stale(
    pair: tuple[Database, CachePlugin, Database], clock: FakeClock
) -> None:
    reader, cache, writer = pair
    users_r, users_w = reader.resources["users"], writer.resources["users"]
    a = await users_w.insert({"name": "Ann", "region": "eu"})
    assert (await users_r.get(a["id"]))["name"] == "Ann"
    assert await users_r.count() == 1
    await users_w.update(a["id"], {"name": "Anne"})
    await users_w.insert({"name": "Bob", "region": "eu"})
    clock.advance(4)  # within the bound: the entries may still be served
    reader.store.stats.reset()
    assert (await users_r.get(a["id"]))["name"] == "Ann"
    assert await users_r.count() == 1
    assert sum(reader.store.stats.values()) == 0
    clock.advance(1.5)  # past the bound: a get is revalidated (HEAD), a count read again
    assert (await users_r.get(a["id"]))["name"] == "Anne"
    assert await users_r.count() == 2
    assert reader.store.stats["head"] == 1 and reader.store.stats["get"] == 1
    assert cache.stats()["stale"] == 2


async def test_revalidation_keeps_an_unchanged_record_for_one_head(
    pair: tuple[Database, CachePlugin, Database], clock: FakeClock
) -> None:
    reader, cache, writer = pair
    users_r = reader.resources["users"]
    a = await writer.resources["users"].insert({"name": "Ann", "region": "eu"})
    await users_r.get(a["id"])
    clock.advance(6)
    reader.store.stats.reset()
    assert (await users_r.get(a["id"]))["name"] == "Ann"
    assert dict(reader.store.stats) == {"head": 1}
    assert cache.stats()["revalidated"] == 1
    reader.store.stats.reset()
    clock.advance(4)  # stamped again at the HEAD: fresh for another max_staleness
    await users_r.get(a["id"])
    assert sum(reader.store.stats.values()) == 0


async def test_pubsub_drops_other_processes_entries_at_once(store_url: str, redis_url: str) -> None:
    caches = [CachePlugin(pubsub=redis_url, max_staleness=3600) for _ in range(2)]
    dbs = [Database(store_url, plugins=[c]) for c in caches]
    for db in dbs:
        await db.connect()
    try:
        users_a = await dbs[0].create_resource("users", attributes=ATTRS, partitions=PARTS)
        users_b = await dbs[1].create_resource("users", attributes=ATTRS, partitions=PARTS)
        a = await users_a.insert({"name": "Ann", "region": "eu"})
        us = await users_a.insert({"name": "Bob", "region": "us"})
        sender, bus = caches[0]._bus, caches[1]._bus
        assert sender is not None and bus is not None

        async def delivered() -> None:  # every message sent so far (loopback; bounded wait)
            for _ in range(1000):
                if bus.received >= sender.published:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{bus.received} of {sender.published} messages arrived")

        await delivered()
        assert (await users_b.get(a["id"]))["name"] == "Ann"
        assert (
            len(await users_b.list(partition="by_region", partition_values={"region": "us"})) == 1
        )
        assert await users_b.count(partition="by_region", partition_values={"region": "eu"}) == 1
        received = bus.received
        await users_a.update(a["id"], {"name": "Anne"})
        await delivered()
        assert bus.received > received
        dbs[1].store.stats.reset()
        assert (
            len(await users_b.list(partition="by_region", partition_values={"region": "us"})) == 1
        )
        assert sum(dbs[1].store.stats.values()) == 0  # another partition: still cached
        assert (await users_b.get(a["id"]))["name"] == "Anne"
        assert await users_b.count(partition="by_region", partition_values={"region": "eu"}) == 1
        assert dbs[1].store.stats["get"] == 1 and dbs[1].store.stats["list"] == 1
        assert us["id"]
    finally:
        for db in dbs:
            await db.disconnect()


@pytest.mark.stores("memory")
async def test_entries_expire_after_ttl(store_url: str, clock: FakeClock) -> None:
    cache = CachePlugin(ttl=10, resource_ttl={"tokens": 3}, clock=clock)
    async with Database(store_url, plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        tokens = await db.create_resource("tokens", attributes={"text": "string"})
        n = await notes.insert({"text": "hi"})
        t = await tokens.insert({"text": "t"})
        await notes.get(n["id"])
        await tokens.get(t["id"])
        clock.advance(2)
        db.store.stats.reset()
        await tokens.get(t["id"])
        assert sum(db.store.stats.values()) == 0
        clock.advance(2)  # past the tokens' 3 s, within the notes' 10 s
        await tokens.get(t["id"])
        assert db.store.stats["get"] == 1
        clock.advance(5)
        db.store.stats.reset()
        await notes.get(n["id"])
        assert sum(db.store.stats.values()) == 0
        clock.advance(2)
        await notes.get(n["id"])
        assert db.store.stats["get"] == 1
    with pytest.raises(ConfigError, match="resource_ttl"):
        CachePlugin(resource_ttl={"x": 0})


@pytest.mark.stores("memory")
async def test_a_lost_pubsub_connection_drops_the_memory_entries(
    store_url: str, redis_url: str
) -> None:
    """Messages may have been missed while disconnected: the process forgets what it holds
    in memory, then subscribes again."""
    cache = CachePlugin(pubsub=redis_url)
    async with Database(store_url, plugins=[cache]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        n = await notes.insert({"text": "hi"})
        await notes.get(n["id"])
        bus = cache._bus
        assert bus is not None and bus.pubsub is not None
        await bus.pubsub.connection.disconnect()  # the server side is gone
        for _ in range(500):
            if bus.reconnects >= 1 and bus.pubsub is not None:
                break
            await asyncio.sleep(0.01)
        assert bus.reconnects >= 1
        db.store.stats.reset()
        await notes.get(n["id"])
        assert db.store.stats["get"] == 1


class _AbsorbingPubSub:
    """A pub/sub whose read swallows a cancel, as redis-py's read timeout (asyncio.timeout
    on Python 3.11) does when the cancel lands in the same turn as the timeout expires."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_message(self, timeout: float) -> None:
        self.reads += 1
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            return None  # absorbed: the caller sees an ordinary "no message"
        return None

    async def aclose(self) -> None:
        return None


async def test_the_listener_stops_even_when_a_read_absorbs_the_cancel(redis_url: str) -> None:
    """Seen in CI: Database.disconnect() waited forever for a listener whose cancel redis-py
    had absorbed. A cancel still pending after a read ends the listener."""
    from s3db_async.plugins.cache.pubsub import InvalidationBus

    bus = InvalidationBus(CachePlugin(pubsub=redis_url), redis_url, channel="absorbing")
    fake = _AbsorbingPubSub()
    bus.pubsub = fake
    listener = asyncio.create_task(bus.listen())
    while fake.reads == 0:
        await asyncio.sleep(0)
    listener.cancel()
    done, _ = await asyncio.wait({listener}, timeout=5)
    assert done and listener.cancelled() and fake.reads == 1
    await bus.close()
