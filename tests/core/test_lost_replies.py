"""Issue 16 items 1 and 9b: a conditional write whose answer is lost is applied exactly once.

:class:`tests._faults.LostReplyStore` applies the request on the real store and then
raises what the client sees when the reply is lost. Mode ``unknown`` is what S3Store raises
now (:class:`WriteOutcomeUnknownError`); mode ``precondition`` is what a store that blindly
resent the request got back (412 for its own write): the layers that can tell their own
write (counters by their op token, locks by their token) must still be exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from s3db_async import Database, PluginStorage
from s3db_async._cas import RETRY, Backoff, body_etag, cas_loop, conditional_put
from s3db_async.errors import ConflictError, PreconditionFailed, WriteOutcomeUnknownError
from s3db_async.stores import FileStore, MemoryStore, ObjectStore, S3Store, open_store

from .._faults import LostReplyStore


@pytest.fixture
async def faulty(store_url: str) -> AsyncIterator[tuple[Database, LostReplyStore]]:
    store = LostReplyStore(open_store(store_url))
    database = Database(store=store, passphrase="test-passphrase")
    await database.connect()
    try:
        yield database, store
    finally:
        await database.disconnect()


def _data(key: str) -> bool:
    return "/data/" in key


async def test_update_applied_once_after_lost_reply(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    res = await db.create_resource("counters", attributes={"n": "integer|required"})
    rec = await res.insert({"id": "c", "n": 0})
    store.lose(1, match=_data)
    updated = await res.update(rec["id"], lambda r: {"n": r["n"] + 1})
    assert store.lost == ["resource=counters/data/id=c"]
    assert updated["n"] == 1
    assert (await res.get("c"))["n"] == 1


async def test_insert_returns_record_after_lost_reply(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    res = await db.create_resource(
        "things",
        attributes={"kind": "string"},
        partitions={"by_kind": {"fields": {"kind": "string"}}},
    )
    store.lose(1, match=_data)
    rec = await res.insert({"id": "k", "kind": "a"})
    assert store.lost and rec["id"] == "k"
    assert (await res.get("k"))["kind"] == "a"
    assert await res.count(partition="by_kind", partition_values={"kind": "a"}) == 1
    store.lose(1, match=_data)
    generated = await res.insert({"kind": "b"})  # generated id: no duplicate
    assert await res.list_ids() == sorted(["k", generated["id"]])


async def test_partition_ref_writes_survive_lost_replies(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    res = await db.create_resource(
        "things",
        attributes={"kind": "string"},
        partitions={"by_kind": {"fields": {"kind": "string"}}},
    )
    rec = await res.insert({"kind": "a"})
    store.lose(10, match=lambda k: "/partition=" in k)  # new ref, then the old one's kill
    await res.update(rec["id"], {"kind": "b"})
    assert len(store.lost) == 2
    assert await res.list_ids(partition="by_kind", partition_values={"kind": "b"}) == [rec["id"]]
    assert await res.count(partition="by_kind", partition_values={"kind": "a"}) == 0


@pytest.mark.parametrize("error", ["unknown", "precondition"])
async def test_sequence_and_counter_exact_after_lost_replies(
    faulty: tuple[Database, LostReplyStore], error: str
) -> None:
    db, store = faulty
    storage = PluginStorage(db, "seq")
    store.lose(100, match=lambda k: "sequence=" in k or k.endswith("hits"), error=error)
    assert [await storage.next_sequence("orders") for _ in range(3)] == [1, 2, 3]
    assert [await storage.increment("hits", 5) for _ in range(3)] == [5, 10, 15]
    assert len(store.lost) == 6  # every write's answer was lost, none applied twice
    assert await storage.get_sequence("orders") == 3
    assert await storage.get("hits") == {"value": 15}


async def test_incremental_ids_after_lost_replies(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    res = await db.create_resource("orders", attributes={"a": "string"}, id_generator="incremental")
    store.lose(100)  # every conditional write: sequence steps and record creates
    ids = [(await res.insert({"a": "x"}))["id"] for _ in range(3)]
    assert ids == ["1", "2", "3"] and len(store.lost) == 6
    assert await res.list_ids() == ["1", "2", "3"]


@pytest.mark.parametrize("error", ["unknown", "precondition"])
async def test_lock_acquire_after_lost_reply(
    faulty: tuple[Database, LostReplyStore], error: str
) -> None:
    db, store = faulty
    storage = PluginStorage(db, "locks")
    store.lose(1, match=lambda k: "/locks/" in k, error=error)
    lock = await storage.acquire_lock("job", ttl=30)
    assert lock is not None and store.lost
    assert await storage.is_locked("job")
    assert await storage.acquire_lock("job", ttl=30) is None  # held by us, exactly once
    assert await lock.release() is True
    again = await storage.acquire_lock("job", ttl=30)
    assert again is not None
    await again.release()


async def test_s3db_json_write_after_lost_reply(
    faulty: tuple[Database, LostReplyStore],
) -> None:
    db, store = faulty
    store.lose(1, match=lambda k: k == "s3db.json")
    res = await db.create_resource("t", attributes={"a": "string"})
    assert store.lost == ["s3db.json"]
    fresh = Database(store=store.inner, passphrase="test-passphrase")
    await fresh.connect()
    try:
        assert [r if isinstance(r, str) else r["name"] for r in fresh.list_resources()] == ["t"]
        assert list(fresh.resources["t"].versions) == [res.version]
    finally:
        await fresh.disconnect()


# -- conditional_put's decisions -----------------------------------------------------------
class _Racing(LostReplyStore):
    """Loses the answer, and another writer overwrites the key before we can look."""

    async def put(self, key: str, body: bytes, metadata=None, **kw):  # type: ignore[no-untyped-def]
        try:
            return await super().put(key, body, metadata, **kw)
        except WriteOutcomeUnknownError:
            await self.inner.put(key, b"someone else")
            raise


@pytest.mark.stores("memory", "file")
async def test_conditional_put_decisions(store_url: str) -> None:
    inner = open_store(store_url)
    await inner.connect()
    try:
        store = LostReplyStore(inner)
        etag = await inner.put("k", b"v1")
        store.lose(1)
        assert await conditional_put(store, "k", b"v2", if_match=etag) == body_etag(b"v2")
        store.lose(1, error="precondition")  # a 412 with no ambiguity before is an answer
        with pytest.raises(PreconditionFailed):
            await conditional_put(store, "k", b"v3", if_match=body_etag(b"v2"))
        assert (await inner.get("k")).body == b"v3"  # (the wrapper applied it)
        with pytest.raises(PreconditionFailed):
            await conditional_put(store, "k", b"v4", if_match=etag)  # stale: a plain 412

        racing = _Racing(inner)
        racing.lose(1)
        current = (await inner.head("k")).etag
        with pytest.raises(WriteOutcomeUnknownError) as info:
            await conditional_put(racing, "k", b"v4", if_match=current)
        assert info.value.metadata["key"] == "k" and info.value.retriable
    finally:
        await inner.close()


class _NotApplied(LostReplyStore):
    """Raises the ambiguous error *without* applying: conditional_put must resend once."""

    async def put(self, key: str, body: bytes, metadata=None, **kw):  # type: ignore[no-untyped-def]
        if self._left > 0:
            self._left -= 1
            raise WriteOutcomeUnknownError("reset before the server read it")
        return await self.inner.put(key, body, metadata, **kw)


async def test_conditional_put_resends_what_provably_did_not_land() -> None:
    inner = MemoryStore("memory://cas/p")
    store = _NotApplied(inner)
    store.lose(1)
    assert await conditional_put(store, "new", b"a", if_none_match=True) == body_etag(b"a")
    etag = (await inner.head("new")).etag
    store.lose(1)
    await conditional_put(store, "new", b"b", if_match=etag)
    assert (await inner.get("new")).body == b"b"
    assert inner.stats["put"] == 2 and inner.stats["head"] == 3


async def test_cas_loop_deadline_and_attempts() -> None:
    ticks = iter(range(1000))
    calls = []

    async def lose(n: int) -> object:
        calls.append(n)
        return RETRY

    with pytest.raises(ConflictError) as info:
        await cas_loop(
            lose, what="k", backoff=Backoff(base=0, deadline=3.0), clock=lambda: next(ticks)
        )
    assert calls == [0, 1, 2] and info.value.metadata["attempts"] == 3
    calls.clear()
    with pytest.raises(ConflictError):
        await cas_loop(lose, what="k", backoff=Backoff(base=0, attempts=2))
    assert calls == [0, 1]


def test_only_in_process_stores_skip_the_read_back() -> None:
    """A conditional PUT resolves lost answers on every store that may lose one: S3 and
    any wrapper (the default), not the in-process stores that always answer."""
    assert MemoryStore.always_answers and FileStore.always_answers
    assert not S3Store.always_answers and not ObjectStore.always_answers
    assert not LostReplyStore.always_answers
