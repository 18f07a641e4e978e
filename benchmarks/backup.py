"""Section ``backup``: what the BackupPlugin costs (issue 19).

100,000 records (10,000 with ``--quick``) backed up in full (gzip + AES-GCM) to a local
folder, then an incremental after 1% of them changed, then a restore into an empty
database: records/s, requests per record and the peak of Python memory allocated during
the backup (tracemalloc), which stays bounded however many records there are.

Then the same records backed up in full to the ``s3`` destination (a second namespace on
the same store, parts of 5 MiB so the archive goes up as a multipart upload once it is
larger than that) and verified from there (the archive streamed back down): records/s,
peak Python memory of each, and the requests the destination saw.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
import tracemalloc
from typing import Any

from s3db_async.plugins import BackupPlugin

from benchmarks._common import BenchContext
from s3db_async import Database
from s3db_async.stores import MIN_PART_SIZE

TITLE = "backup: full/incremental backup and restore of 100,000 records (rec/s, peak MiB)"
KEY = "bench passphrase"
ATTRIBUTES = {
    "name": "string|required",
    "email": "string|email",
    "age": "integer",
    "city": "string",
    "bio": "string",
    "tags": "array|items:string",
}
WORDS = (
    "able acid aged also area army away baby back ball band bank base bath bear beat been "
    "beer bell belt best bill bird blow blue boat body bomb bond bone book boom born boss "
    "both bowl bulk burn bush busy call calm came camp card care case cash cast cell chat "
    "chip city club coal coat code cold come cook cool cope copy core cost crew crop dark "
    "data date dawn days dead deal dean dear debt deep deny desk dial diet disc disk does "
    "done door dose down draw drew drop drug dual duke dust duty each earn ease east easy"
).split()
CITIES = ("Lisbon", "Porto", "Berlin", "Paris", "Madrid", "Rome", "Oslo", "Prague", "Vienna")


def _record(rng: random.Random, i: int) -> dict[str, Any]:
    """A user-like record of ~300 bytes (library-generated id), as compressible as text."""
    return {
        "name": f"User {i} {rng.choice(WORDS).title()}",
        "email": f"user{i}@example.com",
        "age": rng.randint(18, 90),
        "city": rng.choice(CITIES),
        "bio": " ".join(rng.choices(WORDS, k=rng.randint(25, 45))),
        "tags": rng.sample(WORDS, 3),
    }


def _mib(n: float) -> float:
    return round(n / 2**20, 2)


async def _s3_destination(ctx: BenchContext, store: str, db: Database, n: int) -> dict[str, Any]:
    """Full backup of ``db`` to the s3 destination, then verify (download) from it."""
    dest = {"driver": "s3", "url": ctx.url(store), "prefix": "bk/", "part_size": MIN_PART_SIZE}
    plugin = BackupPlugin(destination=dest, encryption_key=KEY, alias="backup_s3")
    await db.use_plugin(plugin)
    remote = plugin.destination.store  # type: ignore[attr-defined]
    db.store.stats.reset()
    remote.stats.reset()
    tracemalloc.start()
    started = time.perf_counter()
    info = await plugin.backup()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    source_requests = db.store.stats.total()
    uploaded = remote.stats.snapshot()
    remote.stats.reset()
    tracemalloc.start()
    started = time.perf_counter()
    await plugin.verify(info.id)
    verify_s = time.perf_counter() - started
    verify_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    downloaded = remote.stats.snapshot()
    await db.uninstall_plugin(plugin)
    return {
        "seconds": round(seconds, 2),
        "records_per_s": round(n / seconds, 1),
        "requests_per_record": round(source_requests / n, 2),
        "archive_mib": _mib(info.size),
        "part_mib": _mib(MIN_PART_SIZE),
        "parts": math.ceil(info.size / MIN_PART_SIZE) if info.size > MIN_PART_SIZE else 0,
        "peak_mib": _mib(peak),
        "destination_requests": uploaded,
        "verify": {
            "seconds": round(verify_s, 2),
            "records_per_s": round(n / verify_s, 1),
            "peak_mib": _mib(verify_peak),
            "destination_requests": downloaded,
        },
    }


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        plugin = BackupPlugin(destination=folder, encryption_key=KEY)
        async with Database(ctx.url(store), plugins=[plugin], parallelism=64) as db:
            res = await db.create_resource("items", attributes=ATTRIBUTES)
            rng = random.Random(19)
            ids: list[str] = []
            started = time.perf_counter()
            for start in range(0, n, 5000):
                batch = [_record(rng, i) for i in range(start, min(n, start + 5000))]
                result = await res.insert_many(batch)
                ids.extend(r["id"] for r in result.ok)
            ctx.log(f"backup {store}: {n} records inserted in {time.perf_counter() - started:.1f}s")
            db.store.stats.reset()
            tracemalloc.start()
            started = time.perf_counter()
            full = await plugin.backup()
            full_s = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            full_requests = db.store.stats.total()
            s3 = await _s3_destination(ctx, store, db, n)
            await res.update_many([{"id": rid, "age": 99} for rid in ids[::100]])
            db.store.stats.reset()
            started = time.perf_counter()
            inc = await plugin.backup(kind="incremental")
            inc_s = time.perf_counter() - started
            inc_requests = db.store.stats.total()
        target = BackupPlugin(destination=folder, encryption_key=KEY)
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
            "archive_mib": _mib(full.size),
            "peak_mib": _mib(peak),
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
        "s3_destination": s3,
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 10_000 if ctx.quick else 100_000
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        s3 = row["s3_destination"]
        ctx.log(
            f"backup {store}: full {n} records {row['full']['records_per_s']} rec/s "
            f"({row['full']['requests_per_record']} req/rec, peak {row['full']['peak_mib']} MiB), "
            f"incremental {row['incremental']['objects']} objects, "
            f"restore {row['restore']['records_per_s']} rec/s; "
            f"s3 destination: full {s3['records_per_s']} rec/s, archive {s3['archive_mib']} MiB "
            f"in {s3['parts']} parts, peak {s3['peak_mib']} MiB, destination requests "
            f"{s3['destination_requests']}; verify {s3['verify']['records_per_s']} rec/s, "
            f"peak {s3['verify']['peak_mib']} MiB, {s3['verify']['destination_requests']}"
        )
        out[store] = row
    return out
