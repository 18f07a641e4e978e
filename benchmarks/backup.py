"""Section ``backup``: what the BackupPlugin costs (issue 19).

100,000 records (10,000 with ``--quick``) backed up in full (gzip + AES-GCM) to a local
folder, then an incremental after 1% of them changed, then a restore into an empty
database: records/s, requests per record and the peak of Python memory allocated during
the backup (tracemalloc), which stays bounded however many records there are.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from typing import Any

from s3db_async.plugins import BackupPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "backup: full/incremental backup and restore of 100,000 records (rec/s, peak MiB)"


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        plugin = BackupPlugin(destination=folder, encryption_key="bench passphrase")
        async with Database(ctx.url(store), plugins=[plugin], parallelism=64) as db:
            res = await db.create_resource("items", attributes={"v": "integer", "s": "string"})
            for start in range(0, n, 5000):
                batch = range(start, min(n, start + 5000))
                await res.insert_many([{"id": f"r{i:07d}", "v": i, "s": "x" * 40} for i in batch])
            db.store.stats.reset()
            tracemalloc.start()
            started = time.perf_counter()
            full = await plugin.backup()
            full_s = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            full_requests = db.store.stats.total()
            await res.update_many([{"id": f"r{i:07d}", "v": -i} for i in range(0, n, 100)])
            db.store.stats.reset()
            started = time.perf_counter()
            inc = await plugin.backup(kind="incremental")
            inc_s = time.perf_counter() - started
            inc_requests = db.store.stats.total()
        target = BackupPlugin(destination=folder, encryption_key="bench passphrase")
        async with Database(ctx.url(store), plugins=[target], parallelism=64) as other:
            other.store.stats.reset()
            started = time.perf_counter()
            report = await target.restore(inc.id)
            restore_s = time.perf_counter() - started
            restore_requests = other.store.stats.total()
            assert await other.get_resource("items").count() == n
    return {
        "records": n,
        "full": {
            "seconds": round(full_s, 2),
            "records_per_s": round(n / full_s, 1),
            "requests_per_record": round(full_requests / n, 2),
            "archive_mib": round(full.size / 2**20, 2),
            "peak_mib": round(peak / 2**20, 2),
        },
        "incremental": {
            "objects": inc.objects,
            "seconds": round(inc_s, 2),
            "requests_per_record": round(inc_requests / n, 3),
        },
        "restore": {
            "objects": report.written,
            "seconds": round(restore_s, 2),
            "records_per_s": round(n / restore_s, 1),
            "requests_per_record": round(restore_requests / n, 2),
        },
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 10_000 if ctx.quick else 100_000
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        ctx.log(
            f"backup {store}: full {n} records {row['full']['records_per_s']} rec/s "
            f"({row['full']['requests_per_record']} req/rec, peak {row['full']['peak_mib']} MiB), "
            f"incremental {row['incremental']['objects']} objects, "
            f"restore {row['restore']['records_per_s']} rec/s"
        )
        out[store] = row
    return out
