"""BackupPlugin's scheduled mode across 3 real OS processes (file, SeaweedFS): every tick
is backed up by exactly one process (a leader job), and every scheduled backup verifies."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import BackupPlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

WAIT = 180.0


async def backup_worker(ctx: WorkerContext) -> dict[str, Any]:
    folder, period = ctx.args
    plugin = BackupPlugin(destination=folder, schedule=period, compression="gzip")
    taken: list[str] = []
    plugin.on("backup.completed", lambda info: taken.append(info.id))
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.report("ready")
        await ctx.receive()  # "stop"
        failures = plugin.scheduler.failures
    return {"taken": taken, "failures": failures}


async def test_each_scheduled_tick_is_backed_up_once_across_processes(
    store_url: str, store_kind: str, tmp_path: Path
) -> None:
    period = 2.0 if store_kind == "seaweedfs" else 1.0
    folder = str(tmp_path / "backups")
    async with Database(store_url) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        await notes.insert_many([{"id": f"n{i}", "text": "x"} for i in range(20)])
        reader = BackupPlugin(destination=folder)
        await db.use_plugin(reader)
        async with spawn_processes(
            backup_worker, store_url, 3, (folder, period), auto_release=True
        ) as group:
            for i in range(3):
                await group.wait_for("ready", index=i)
            for _ in range(int(WAIT / 0.2)):
                if len(await reader.list_backups()) >= 3:
                    break
                await asyncio.sleep(0.2)
            for i in range(3):
                group.send(i, "stop")
            outcomes = await group.outcomes()
        backups = await reader.list_backups()
        assert len(backups) >= 3
        ticks = Counter(b.extra["tick"] for b in backups)
        assert max(ticks.values()) == 1, f"a tick was backed up twice: {ticks}"
        taken = [bid for o in outcomes for bid in o.value["taken"]]
        assert sorted(taken) == sorted(b.id for b in backups)
        assert all(o.value["failures"] == 0 for o in outcomes)
        for info in backups:
            assert (await reader.verify(info.id)).resources == {"notes": 20}
