"""PluginStorage.update: the public compare-and-swap read-modify-write (every store)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s3db_async import Database, PluginStorage
from s3db_async.stores import open_store
from s3db_async.testing import WorkerContext, run_processes


async def test_update_creates_swaps_and_skips(db: Database) -> None:
    storage = PluginStorage(db, "upd")
    seen: list[Any] = []

    def step(current: Any) -> Any:
        seen.append(current)
        return {"n": (current or {"n": 0})["n"] + 1}

    assert await storage.update("k", step) == {"n": 1}
    assert await storage.update("k", step) == {"n": 2}
    assert seen == [None, {"n": 1}]
    db.store.stats.reset()
    assert await storage.update("k", lambda current: None) == {"n": 2}  # no write
    assert dict(db.store.stats) == {"get": 1}

    async def async_step(current: Any) -> Any:
        await asyncio.sleep(0)
        return {"n": current["n"] * 10}

    assert await storage.update("k", async_step) == {"n": 20}
    assert await storage.get("k") == {"n": 20}


async def test_concurrent_updates_lose_nothing(db: Database) -> None:
    storage = PluginStorage(db, "upd")

    async def bump(_: int) -> None:
        await storage.update("c", lambda cur: {"n": (cur or {"n": 0})["n"] + 1})

    await asyncio.gather(*(bump(i) for i in range(20)))
    assert await storage.get("c") == {"n": 20}


async def bump_many(ctx: WorkerContext) -> None:
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "upd")
        await ctx.barrier()
        for _ in range(ctx.args[0]):
            await storage.update("c", lambda cur: {"n": (cur or {"n": 0})["n"] + 1})


@pytest.mark.stores("file", "seaweedfs")
@pytest.mark.slow
async def test_updates_from_four_processes_are_exact(store_url: str) -> None:
    await run_processes(bump_many, store_url, 4, (15,), timeout=300)
    async with open_store(store_url) as store:
        assert await PluginStorage(store, "upd").get("c") == {"n": 60}
