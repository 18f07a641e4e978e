"""The memory store's key index: listings see exactly the live keys after any mix of writes
and deletes (new keys are merged and removed ones dropped lazily, on the next listing)."""

from __future__ import annotations

import random

from s3db_async.stores import MemoryStore
from s3db_async.stores._memory import _Bucket


def test_key_index_matches_a_model_under_random_writes_and_deletes() -> None:
    rng = random.Random(1234)
    bucket, live = _Bucket(), set()
    for step in range(30_000):
        key = f"k{rng.randrange(400):03d}"
        roll = rng.random()
        if roll < 0.5:
            bucket.set(key, object())  # type: ignore[arg-type]
            live.add(key)
        elif roll < 0.92:
            assert bucket.remove(key) == (key in live)
            live.discard(key)
        else:
            assert bucket.keys == sorted(live), step
    assert bucket.keys == sorted(live)


async def test_listing_between_bursts_of_writes_and_deletes() -> None:
    store = MemoryStore("memory://index-test")
    for i in range(50):
        await store.put(f"a/{i:03d}", b"x")
    assert [e.key async for e in store.list("a/")] == [f"a/{i:03d}" for i in range(50)]
    await store.delete_many([f"a/{i:03d}" for i in range(0, 50, 2)])
    await store.put("a/000", b"back")  # removed, then written again before any listing
    for i in range(50, 70):
        await store.put(f"a/{i:03d}", b"x")
    expected = sorted(
        {"a/000"} | {f"a/{i:03d}" for i in range(1, 70, 2)} | {f"a/{i:03d}" for i in range(50, 70)}
    )
    assert [e.key async for e in store.list("a/")] == expected
