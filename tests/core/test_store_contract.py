"""The ObjectStore contract, run against every store of the matrix."""

from __future__ import annotations

import anyio
import pytest

from s3db_async.errors import (
    InvalidKeyError,
    MetadataLimitError,
    NotFoundError,
    PreconditionFailed,
    UnsupportedCapabilityError,
)
from s3db_async.stores import METADATA_LIMIT, CommonPrefix, ListEntry, ObjectStore


async def test_put_get_head_roundtrip(store: ObjectStore) -> None:
    etag = await store.put(
        "resource=users/data/id=1",
        b'{"x": 1}',
        {"A": "1", "name": "ann"},
        content_type="application/json",
    )
    assert etag
    obj = await store.get("resource=users/data/id=1")
    assert obj.body == b'{"x": 1}'
    assert obj.metadata == {"a": "1", "name": "ann"}  # keys lowercased like S3
    assert obj.etag == etag
    assert obj.size == 8
    assert obj.content_type == "application/json"
    assert obj.last_modified.tzinfo is not None
    info = await store.head("resource=users/data/id=1")
    assert info.metadata == obj.metadata
    assert info.etag == etag
    assert info.size == 8


async def test_missing_key_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        await store.get("nope")
    with pytest.raises(NotFoundError):
        await store.head("nope")
    with pytest.raises(KeyError):  # NotFoundError is a KeyError too
        await store.get("nope")
    assert not await store.exists("nope")


async def test_empty_body_and_overwrite(store: ObjectStore) -> None:
    e1 = await store.put("k", b"", {})
    e2 = await store.put("k", b"second", {"v": "2"})
    assert e1 != e2
    obj = await store.get("k")
    assert obj.body == b"second"
    assert obj.metadata == {"v": "2"}


async def test_unicode_metadata_and_keys(store: ObjectStore) -> None:
    key = "resource=notes/data/id=café-日本"
    value = "Zoë 😀 - ünïcødé"
    await store.put(key, b"x", {"title": value, "blank": " padded "})
    obj = await store.get(key)
    assert obj.metadata["title"] == value
    assert obj.metadata["blank"] == " padded "
    assert [e.key async for e in store.list("resource=notes/")] == [key]


async def test_metadata_limit_edge(store: ObjectStore) -> None:
    # exactly 2048 bytes: key "m" (1 byte) + 2047-byte value
    await store.put("edge", b"", {"m": "v" * (METADATA_LIMIT - 1)})
    assert len((await store.head("edge")).metadata["m"]) == METADATA_LIMIT - 1
    with pytest.raises(MetadataLimitError):
        await store.put("over", b"", {"m": "v" * METADATA_LIMIT})
    assert not await store.exists("over")


async def test_conditional_create(store: ObjectStore) -> None:
    await store.put("lock", b"a", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await store.put("lock", b"b", if_none_match=True)
    assert (await store.get("lock")).body == b"a"


async def test_compare_and_swap(store: ObjectStore) -> None:
    e1 = await store.put("cas", b"1")
    e2 = await store.put("cas", b"2", if_match=e1)
    with pytest.raises(PreconditionFailed):
        await store.put("cas", b"3", if_match=e1)  # stale etag
    assert (await store.get("cas")).body == b"2"
    with pytest.raises(PreconditionFailed):
        await store.put("missing", b"x", if_match=e2)  # If-Match on a missing key
    assert not await store.exists("missing")


async def test_conditional_delete(store: ObjectStore) -> None:
    caps = await store.capabilities()
    e1 = await store.put("d", b"1")
    await store.put("d", b"2")
    if not caps.conditional_delete:
        with pytest.raises(UnsupportedCapabilityError):
            await store.delete("d", if_match=e1)
        return
    with pytest.raises(PreconditionFailed):
        await store.delete("d", if_match=e1)
    current = (await store.head("d")).etag
    await store.delete("d", if_match=current)
    assert not await store.exists("d")


async def test_delete_is_idempotent(store: ObjectStore) -> None:
    await store.put("x", b"1")
    await store.delete("x")
    await store.delete("x")
    assert not await store.exists("x")


async def test_copy(store: ObjectStore) -> None:
    await store.put("src", b"body", {"k": "v"}, content_type="text/plain")
    etag = await store.copy("src", "dir/dst")
    dst = await store.get("dir/dst")
    assert dst.body == b"body"
    assert dst.metadata == {"k": "v"}
    assert dst.etag == etag
    with pytest.raises(NotFoundError):
        await store.copy("absent", "dst2")


async def test_list_prefix_start_after_limit_and_delimiter(store: ObjectStore) -> None:
    keys = [
        "p/a",
        "p/b/1",
        "p/b/2",
        "p/c",
        "p/d/x/y",
        "q/z",
    ]
    for k in keys:
        await store.put(k, b"12345")
    entries = [e async for e in store.list("p/")]
    assert all(isinstance(e, ListEntry) for e in entries)
    assert [e.key for e in entries] == keys[:-1]
    assert all(e.size == 5 and e.etag for e in entries if isinstance(e, ListEntry))
    assert [e.key async for e in store.list("p/", start_after="p/b/1")] == keys[2:-1]
    assert [e.key async for e in store.list("p/", limit=2)] == keys[:2]
    shallow = [e async for e in store.list("p/", delimiter="/")]
    assert [
        (type(e).__name__, e.prefix if isinstance(e, CommonPrefix) else e.key) for e in shallow
    ] == [
        ("ListEntry", "p/a"),
        ("CommonPrefix", "p/b/"),
        ("ListEntry", "p/c"),
        ("CommonPrefix", "p/d/"),
    ]
    assert await store.list_keys("nothing/") == []


async def test_a_key_can_be_object_and_prefix(store: ObjectStore) -> None:
    await store.put("a", b"1")
    await store.put("a/b", b"2")
    assert (await store.get("a")).body == b"1"
    assert (await store.get("a/b")).body == b"2"
    assert await store.list_keys("a") == ["a", "a/b"]


async def _put_empty(store: ObjectStore, keys: list[str]) -> None:
    """Write an empty object at every key, 64 at a time."""
    limiter = anyio.CapacityLimiter(64)

    async def put(k: str) -> None:
        async with limiter:
            await store.put(k, b"")

    async with anyio.create_task_group() as tg:
        for k in keys:
            tg.start_soon(put, k)


@pytest.mark.slow
async def test_list_paginates_past_1000_and_delete_many_batches(store: ObjectStore) -> None:
    n = 2100
    keys = [f"many/{i:05d}" for i in range(n)]
    await _put_empty(store, keys)
    store.stats.reset()
    listed = await store.list_keys("many/")
    assert listed == keys
    assert store.stats["list"] == 3  # pages of 1000
    assert [e.key async for e in store.list("many/", start_after="many/01999")] == keys[2000:]
    store.stats.reset()
    assert await store.delete_many(keys) == n
    assert store.stats["delete_many"] == 3  # one request per 1000 keys
    assert await store.list_keys("many/") == []


async def test_request_accounting(store: ObjectStore) -> None:
    store.stats.reset()
    etag = await store.put("r", b"1")
    await store.get("r")
    await store.head("r")
    await store.put("r", b"2", if_match=etag)
    assert store.stats.snapshot() == {"put": 2, "get": 1, "head": 1}
    assert store.stats.total() == 4


async def test_unsafe_keys_rejected(store: ObjectStore) -> None:
    for bad in ["", "/abs", "a/../b", "../up", "a/./b", "nul\x00", "tab\tkey", "a//b"]:
        with pytest.raises(InvalidKeyError):
            await store.put(bad, b"x")


async def test_capabilities_probe(store: ObjectStore) -> None:
    caps = await store.capabilities()
    assert caps.conditional_create and caps.conditional_update
    assert caps.conditional_writes


@pytest.mark.slow
async def test_concurrent_conditional_create_one_winner(store: ObjectStore) -> None:
    """50 concurrent creators of one key, 3 rounds: exactly one winner per round."""
    for rnd in range(3):
        wins: list[int] = []
        fails: list[int] = []

        async def attempt(i: int, key: str, wins: list[int], fails: list[int]) -> None:
            try:
                await store.put(key, str(i).encode(), if_none_match=True)
                wins.append(i)
            except PreconditionFailed:
                fails.append(i)

        key = f"race/{rnd}"
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(attempt, i, key, wins, fails)
        assert len(wins) == 1, wins
        assert len(fails) == 49
        assert (await store.get(key)).body == str(wins[0]).encode()


@pytest.mark.slow
async def test_concurrent_compare_and_swap_one_winner(store: ObjectStore) -> None:
    """50 writers holding the same etag race to swap it, 3 rounds: exactly one wins each."""
    await store.put("counter", b"0")
    for rnd in range(3):
        current = await store.get("counter")
        assert int(current.body) == rnd
        wins: list[int] = []

        async def swap(i: int, etag: str, value: int, wins: list[int]) -> None:
            try:
                await store.put("counter", f"{value}".encode(), {"w": str(i)}, if_match=etag)
                wins.append(i)
            except PreconditionFailed:
                pass

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(swap, i, current.etag, rnd + 1, wins)
        assert len(wins) == 1, wins
        assert (await store.get("counter")).metadata == {"w": str(wins[0])}
    assert int((await store.get("counter")).body) == 3


@pytest.mark.slow
@pytest.mark.parametrize("n", [1001, 2001])
async def test_list_whose_last_page_holds_one_key(store: ObjectStore, n: int) -> None:
    """1,001 and 2,001 keys: the final page holds exactly one key, which must not be lost."""
    keys = [f"edge/{i:05d}" for i in range(n)]
    await _put_empty(store, keys)
    store.stats.reset()
    assert await store.list_keys("edge/") == keys
    assert store.stats["list"] == n // 1000 + 1
    assert [e.key async for e in store.list("edge/", limit=n)] == keys
    tail = [e.key async for e in store.list("edge/", start_after=keys[n - 1001])]
    assert tail == keys[n - 1000 :]
    assert [e.key async for e in store.list("edge/", start_after=keys[-2])] == keys[-1:]
    store.stats.reset()
    assert await store.delete_many(keys) == n
    assert store.stats["delete_many"] == n // 1000 + 1
    assert await store.list_keys("edge/") == []
