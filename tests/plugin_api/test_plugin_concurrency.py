"""Counters, sequences and locks are exact across real OS processes (FileStore, SeaweedFS).

Each test runs 4 worker processes through the public harness (``s3db_async.testing``) on
one store: each connects, waits at a barrier until all are connected, then races. Under
``CI=true`` a SeaweedFS that cannot start fails the run (the server fixture raises), it is
never skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from s3db_async import PluginStorage
from s3db_async.stores import open_store
from s3db_async.testing import WorkerContext, run_processes, spawn_processes

PROCESSES = 4
TIMEOUT = 150  # seconds per worker answer; SeaweedFS can hold contended keys 8-9 s

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


# -- the workers (each runs in its own OS process) --------------------------------------------
async def count(ctx: WorkerContext) -> dict[str, Any]:
    """``increment("hits")`` or ``next_sequence("order")`` ``ctx.args[1]`` times."""
    mode, n = ctx.args
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "conc")
        await store.capabilities()
        await ctx.barrier("connected")
        t0 = time.time()
        if mode == "increment":
            got = [await storage.increment("hits") for _ in range(n)]
        else:
            got = [await storage.next_sequence("order") for _ in range(n)]
        return {"values": got, "window": [t0, time.time()]}


async def lock_rounds(ctx: WorkerContext) -> list[list[float]]:
    """``ctx.args[0]`` times: take lock ``critical``, hold it ``ctx.args[1]`` s, release;
    enter/exit times also go to storage key ``spans/{worker}-{round}``."""
    rounds, hold = ctx.args
    worker = f"w{ctx.index}"
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "conc")
        await store.capabilities()
        await ctx.barrier("connected")
        spans = []
        for i in range(rounds):
            async with storage.lock("critical", ttl=60, timeout=120, worker_id=worker):
                enter = time.time()
                await asyncio.sleep(hold)
                leave = time.time()
                await storage.set(f"spans/{worker}-{i}", {"enter": enter, "exit": leave})
            spans.append([enter, leave])
        return spans


async def hold_orphan(ctx: WorkerContext) -> None:
    """Take lock ``orphan`` with ttl ``ctx.args[0]``, report its token, wait to be killed."""
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "conc")
        lock = await storage.acquire_lock("orphan", ttl=ctx.args[0], worker_id="doomed")
        await ctx.report("locked", lock.token if lock else None)
        await ctx.receive()  # never comes


# -- the tests ---------------------------------------------------------------------------------
async def _race(url: str, worker: Any, *args: Any) -> list[Any]:
    async with spawn_processes(worker, url, PROCESSES, args) as group:
        await group.release("connected")  # every worker connected: go at once
        return await group.results(timeout=TIMEOUT)


def _overlapped(answers: list[dict[str, Any]]) -> bool:
    """All workers were running at one moment (the race was real)."""
    return bool(max(a["window"][0] for a in answers) < min(a["window"][1] for a in answers))


async def test_increments_from_four_processes_are_exact(store_url: str) -> None:
    answers = await _race(store_url, count, "increment", 50)
    assert _overlapped(answers)
    values = sorted(v for a in answers for v in a["values"])
    assert values == list(range(1, 201))  # every increment counted once: exactly 200


async def test_sequences_from_four_processes_are_unique_and_gapless(store_url: str) -> None:
    answers = await _race(store_url, count, "sequence", 50)
    assert _overlapped(answers)
    for a in answers:
        assert a["values"] == sorted(a["values"])  # each worker sees increasing values
    values = sorted(v for a in answers for v in a["values"])
    assert values == list(range(1, 201))


async def test_lock_holders_never_overlap(store_url: str) -> None:
    answers = await _race(store_url, lock_rounds, 3, 0.15)
    async with open_store(store_url) as store:
        storage = PluginStorage(store, "conc")
        keys = await storage.list("spans/")
        assert len(keys) == PROCESSES * 3
        spans = sorted(
            (r.data["enter"], r.data["exit"], r.key) for r in await storage.batch_get(keys)
        )
    assert sorted(s for a in answers for s in map(tuple, a)) == [s[:2] for s in spans]
    for (_, prev_exit, prev), (enter, _, key) in itertools.pairwise(spans):
        assert enter >= prev_exit, f"{key} entered before {prev} left"


async def test_lock_of_a_killed_holder_is_taken_over_after_its_ttl(store_url: str) -> None:
    ttl = 2.0
    async with spawn_processes(hold_orphan, store_url, 1, (ttl,)) as group:
        _, token = await group.wait_for("locked")
        assert token
        taken = time.time()
        group.kill(0)
        (outcome,) = await group.outcomes()
        assert outcome.killed

    async with open_store(store_url) as store:
        storage = PluginStorage(store, "conc")
        assert await storage.is_locked("orphan")
        assert await storage.acquire_lock("orphan", ttl=10, timeout=0) is None
        lock = await storage.acquire_lock("orphan", ttl=10, timeout=30, worker_id="heir")
        assert lock is not None and lock.token != token
        assert time.time() - taken >= ttl - 0.05  # not before the dead holder's ttl ran out
        assert await storage.is_locked("orphan")
        assert await lock.release()


async def test_run_processes_is_the_short_form(store_url: str) -> None:
    """Without a barrier: the workers start together once all have imported."""
    answers = await run_processes(count_unsynced, store_url, 2, ("increment", 5))
    assert sorted(v for a in answers for v in a) == list(range(1, 11))


async def count_unsynced(ctx: WorkerContext) -> list[int]:
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "conc")
        return [await storage.increment("hits", 1) for _ in range(ctx.args[1])]
