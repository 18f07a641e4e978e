"""Section ``importer``: 100,000 CSV rows (10,000 with ``--quick``) imported by the
ImporterPlugin (issue 19): rows/s and requests per row, with and without a resumable
checkpoint (``job_id``: one more PluginStorage write per batch of 500).
"""

from __future__ import annotations

import time
from typing import Any

from s3db_async.plugins import ImporterPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "importer: 100,000 CSV rows (rows/s, requests per row)"


def _write_csv(ctx: BenchContext, n: int) -> str:
    path = ctx.tmpdir / f"importer-{n}.csv"
    if not path.exists():
        with path.open("w", encoding="utf-8") as f:
            f.write("email,name,age,active\n")
            for i in range(n):
                f.write(
                    f"user{i}@example.com,User {i},{20 + i % 60},{'true' if i % 2 else 'false'}\n"
                )
    return str(path)


async def _store(ctx: BenchContext, store: str, path: str, n: int, job: bool) -> dict[str, Any]:
    plugin = ImporterPlugin(batch_size=500, concurrency=64)
    async with Database(ctx.url(store), plugins=[plugin], parallelism=64) as db:
        await db.create_resource(
            "users",
            attributes={"email": "string", "name": "string", "age": "integer", "active": "boolean"},
        )
        db.store.stats.reset()
        started = time.perf_counter()
        report = await plugin.import_file(
            path, resource="users", id_field="email", job_id="bench" if job else None
        )
        seconds = time.perf_counter() - started
        requests = db.store.stats.total()
        assert report.inserted == n and report.failed == 0, report
    return {
        "rows": n,
        "seconds": round(seconds, 3),
        "rows_per_s": round(n / seconds, 1),
        "requests_per_row": round(requests / n, 3),
    }


async def _baseline(ctx: BenchContext, store: str, n: int) -> float:
    """Rows/s of plain ``insert_many`` (rows already parsed) at the same parallelism."""
    async with Database(ctx.url(store), parallelism=64) as db:
        users = await db.create_resource(
            "users",
            attributes={"email": "string", "name": "string", "age": "integer", "active": "boolean"},
        )
        rows = [
            {
                "id": f"user{i}@example.com",
                "email": f"user{i}@example.com",
                "name": f"User {i}",
                "age": 20 + i % 60,
                "active": bool(i % 2),
            }
            for i in range(n)
        ]
        started = time.perf_counter()
        result = await users.insert_many(rows)
        seconds = time.perf_counter() - started
        assert len(result.ok) == n
    return round(n / seconds, 1)


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 10_000 if ctx.quick else 100_000
    path = _write_csv(ctx, n)
    out: dict[str, Any] = {}
    for store in ctx.stores:
        plain = await _store(ctx, store, path, n, job=False)
        resumable = await _store(ctx, store, path, n, job=True)
        baseline = await _baseline(ctx, store, 2_000)
        ctx.log(
            f"importer {store}: {n} CSV rows {plain['rows_per_s']} rows/s, "
            f"{plain['requests_per_row']} requests/row "
            f"(with job_id: {resumable['rows_per_s']} rows/s, "
            f"{resumable['requests_per_row']} requests/row; "
            f"plain insert_many: {baseline} rows/s)"
        )
        out[store] = {"plain": plain, "job_id": resumable, "insert_many_rows_per_s": baseline}
    return out
