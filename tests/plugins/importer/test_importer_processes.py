"""ImporterPlugin across real OS processes (file, SeaweedFS).

- An importer SIGKILLed mid-import (wherever the kill lands: between records, between a
  batch's records and its checkpoint) is resumed by another process with the same job_id:
  every row ends up stored exactly once, under its deterministic id.
- Two processes importing the same file with ``id_field`` write each record once: the
  conditional insert refuses the second writer, whose row counts as skipped.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import ImporterPlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

N = 300
ATTRS = {"name": "string", "n": "integer"}


def write_file(tmp_path: Path) -> Path:
    f = tmp_path / "rows.ndjson"
    f.write_text("".join(json.dumps({"name": f"r{i}", "n": i}) + "\n" for i in range(N)))
    return f


async def importer(ctx: WorkerContext) -> dict[str, Any]:
    path, job_id, id_field = ctx.args
    plugin = ImporterPlugin(batch_size=10, concurrency=4)
    tasks: set[asyncio.Task[None]] = set()

    def on_batch(payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(ctx.report("batch", payload["rows"]))
        tasks.add(task)

    plugin.on("import.batch", on_batch)
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.barrier("go")
        report = await plugin.import_file(path, resource="rows", job_id=job_id, id_field=id_field)
        return {"inserted": report.inserted, "skipped": report.skipped, "failed": report.failed}


async def test_killed_import_is_resumed_without_loss_or_duplicates(
    store_url: str, tmp_path: Path
) -> None:
    f = write_file(tmp_path)
    plugin = ImporterPlugin(batch_size=10)
    async with Database(store_url, plugins=[plugin]) as db:
        rows = await db.create_resource("rows", attributes=ATTRS)
        async with spawn_processes(
            importer, store_url, 1, (str(f), "nightly", None), auto_release=True
        ) as group:
            await group.wait_for("batch", index=0)
            group.kill(0)
            outcomes = await group.outcomes()
        assert outcomes[0].killed
        saved = await plugin.checkpoint("nightly")
        assert saved is not None and not saved["done"] and 0 < saved["rows"] < N
        report = await plugin.import_file(f, resource="rows", job_id="nightly")
        assert report.done and report.rows == N and report.failed == 0
        assert report.resumed_from == saved["rows"]
        ids = await rows.list_ids()
        assert sorted(ids) == sorted(f"nightly-{i}" for i in range(1, N + 1))
        assert {r["n"] for r in await rows.list()} == set(range(N))


async def test_two_processes_same_file_each_record_once(store_url: str, tmp_path: Path) -> None:
    f = write_file(tmp_path)
    async with Database(store_url) as db:
        rows = await db.create_resource("rows", attributes=ATTRS)
        async with spawn_processes(
            importer, store_url, 2, (str(f), None, "name"), auto_release=True
        ) as group:
            outcomes = await group.outcomes()
        results = [o.value for o in outcomes]
        assert all(o.error is None for o in outcomes), [o.traceback for o in outcomes]
        assert sum(r["inserted"] for r in results) == N
        assert sum(r["skipped"] for r in results) == N
        assert await rows.count() == N
