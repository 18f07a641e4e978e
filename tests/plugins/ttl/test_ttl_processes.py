"""TTLPlugin across real OS processes (file, SeaweedFS).

- Writers SIGKILLed right after their inserts lose nothing: the sweeper (another process)
  finds every record through the durable change feed and expires it.
- 4 processes run the plugin with a short sweep interval: each expired record is handled
  exactly once (callback mode counts calls per record by compare-and-swap).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from s3db_async.plugins import TTLPlugin

from s3db_async import Database, PluginStorage
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

WAIT = 180.0


async def writer(ctx: WorkerContext) -> None:
    async with Database(ctx.url) as db:  # no plugin here: the feed still records each write
        s = db.get_resource("s")
        for i in range(10):
            await s.insert({"id": f"w{ctx.index}-{i}", "v": i, "expires_at": time.time() - 1})
        await ctx.report("written")
        await asyncio.sleep(3600)  # killed here, without a clean disconnect


async def counted(db: Database, resource: str, record: dict[str, Any]) -> None:
    await PluginStorage(db, "ttl-calls").increment(f"calls/{record['id']}")


async def sweeper(ctx: WorkerContext) -> int:
    plugin = TTLPlugin(
        resources={"s": {"field": "expires_at", "on_expire": "callback", "callback": counted}},
        sweep_interval=ctx.args[0],
        lease_ttl=ctx.args[1],
    )
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.report("ready")
        await ctx.receive()
    return 0


async def test_writers_killed_after_their_writes_lose_nothing(store_url: str) -> None:
    plugin = TTLPlugin(resources={"s": {"field": "expires_at"}}, sweep_interval=3600)
    async with Database(store_url, plugins=[plugin]) as db:
        await db.create_resource("s", attributes={"v": "integer", "expires_at": "number"})
        async with spawn_processes(writer, store_url, 3, auto_release=True) as group:
            for i in range(3):
                await group.wait_for("written", index=i)
            for i in range(3):
                group.kill(i)
            outcomes = await group.outcomes()
        assert all(o.killed for o in outcomes)
        report = await plugin.sweep()
        assert report.expired == 30 and report.errors == 0
        with plugin.including_expired():
            assert await db.get_resource("s").list() == []


async def test_four_sweepers_expire_each_record_once(store_url: str, store_kind: str) -> None:
    interval, lease_ttl = (1.0, 6.0) if store_kind == "seaweedfs" else (0.5, 3.0)
    async with Database(store_url) as db:
        s = await db.create_resource("s", attributes={"v": "integer", "expires_at": "number"})
        calls = PluginStorage(db, "ttl-calls")
        async with spawn_processes(
            sweeper, store_url, 4, (interval, lease_ttl), auto_release=True
        ) as group:
            for i in range(4):
                await group.wait_for("ready", index=i)
            await db.reload()
            for i in range(40):
                await s.insert({"id": f"r{i:02d}", "v": i, "expires_at": time.time() - 1})
            for _ in range(int(WAIT / 0.25)):
                if len(await calls.list("calls/")) >= 40:
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(3 * interval)  # time for a wrong second call to show
            for i in range(4):
                group.send(i, "stop")
            await group.outcomes()
        keys = await calls.list("calls/")
        values = [e.data["value"] for e in await calls.batch_get(keys)]
    assert len(keys) == 40 and set(values) == {1}, values
