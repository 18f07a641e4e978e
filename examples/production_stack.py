"""Production stack: cache, backups, audit trail, metrics, costs and a nightly job, together
(the seed's "Production Stack").

Run it with ``python examples/production_stack.py`` (data, cache and backups in
``./.s3db-production``), or give another store: ``python examples/production_stack.py URL``
(or ``S3DB_URL=...``), e.g. SeaweedFS at ``http://KEY:SECRET@127.0.0.1:8333/bucket/app``.
The second backup copy goes to ``S3DB_BACKUP_URL`` (second argument), by default the store
next to the database's (``.../app-backups``). The stack:

- ``MetricsPlugin``: counts, errors, latency histograms, slow operations (installed first, so
  it also measures the reads the cache answers);
- ``CachePlugin``: two layers, memory (1,000 entries) then a folder on disk;
- ``BackupPlugin``: to a folder per day (``backups/{date}/``) and to a second bucket, kept
  7 daily / 4 weekly / 12 monthly;
- ``AuditPlugin``: every insert, update and delete, with the record before and after;
- ``CostsPlugin``: what the S3 traffic and storage would cost on AWS;
- ``SchedulerPlugin``: ``daily_cleanup`` at 03:00 UTC (expired sessions go, the day's
  metrics and costs are saved as snapshots).

A small account service runs on it: customers, orders and sessions are created, updated and
deleted, reads go through the cache, ``daily_cleanup`` runs once now, a backup is taken and
verified; it prints a short report and :func:`main` returns the figures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from s3db_async.plugins import (
    AuditPlugin,
    BackupPlugin,
    CachePlugin,
    CostsPlugin,
    MetricsPlugin,
    SchedulerPlugin,
)
from s3db_async.plugins.scheduler import JobContext

from s3db_async import Database, Plugin, actor

WORKDIR = Path(".s3db-production")
URL = f"file://./{WORKDIR}/db"
USER_RESOURCES = ("customers", "orders", "sessions")


def backup_url_for(url: str) -> str:
    """The store next to the database's: the last part of its path gets ``-backups``
    (``memory://b/app`` -> ``memory://b/app-backups``); a bare bucket gets ``/backups``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    bucket_only = parts.scheme in ("http", "https") and path.count("/") <= 1
    if not path or bucket_only:
        path += "/backups"
    else:
        path += "-backups"
    return urlunsplit(parts._replace(path=path))


class Stack:
    """The six plugins, in install order (``plugins``), and what the nightly job did."""

    def __init__(
        self,
        metrics: MetricsPlugin,
        cache: CachePlugin,
        backup: BackupPlugin,
        audit: AuditPlugin,
        costs: CostsPlugin,
        scheduler: SchedulerPlugin,
        cleanups: list[dict[str, int]],
    ) -> None:
        self.metrics, self.cache, self.backup = metrics, cache, backup
        self.audit, self.costs, self.scheduler = audit, costs, scheduler
        self.cleanups = cleanups

    @property
    def plugins(self) -> list[Plugin]:
        """Metrics first: it then also measures the reads the cache answers."""
        return [self.metrics, self.cache, self.backup, self.audit, self.costs, self.scheduler]


def build_stack(workdir: str | Path = WORKDIR, backup_url: str | None = None) -> Stack:
    """The production plugins; the cache folder and the daily backup folders go under
    ``workdir``, the second backup copy to ``backup_url`` (a store connection string)."""
    workdir = Path(workdir)
    metrics = MetricsPlugin(slow_threshold_ms=250, flush_interval=None)
    cache = CachePlugin(
        driver="multi",
        config={
            "strategy": "all",
            "destinations": [
                {"driver": "memory", "config": {"max_entries": 1000}},
                {"driver": "filesystem", "config": {"path": str(workdir / "cache")}},
            ],
        },
    )
    destinations: list[dict[str, Any]] = [
        {"driver": "filesystem", "path": str(workdir / "backups" / "{date}")}
    ]
    if backup_url is not None:
        destinations.append({"driver": "s3", "url": backup_url, "prefix": "backups/"})
    backup = BackupPlugin(
        destination={"driver": "multi", "strategy": "all", "destinations": destinations},
        retention={"daily": 7, "weekly": 4, "monthly": 12},
    )
    audit = AuditPlugin(
        include_data=True,
        operations=["inserted", "updated", "deleted"],
        poll_interval=None,  # a script: entries are written by flush(); a service keeps 1.0
    )
    costs = CostsPlugin(region="us-east-1")
    cleanups: list[dict[str, int]] = []

    async def daily_cleanup(db: Database, ctx: JobContext) -> dict[str, int]:
        """Nightly maintenance: expired sessions go and the day's figures are saved (audit
        and metrics prune their own old data with their retention jobs)."""
        sessions = db.get_resource("sessions")
        expired = await sessions.query({"expires_at": {"$lt": time.time()}})
        with actor("scheduler:daily_cleanup"):
            if expired:
                await sessions.delete_many([s["id"] for s in expired])
        done = {
            "expired_sessions": len(expired),
            "metrics_snapshots": int(await metrics.flush()),
            "costs_snapshots": int(await costs.flush()),
        }
        cleanups.append(done)
        return done

    scheduler = SchedulerPlugin(
        jobs={"daily_cleanup": {"schedule": "0 3 * * *", "action": daily_cleanup, "timeout": 300}}
    )
    return Stack(metrics, cache, backup, audit, costs, scheduler, cleanups)


def reads(db: Database) -> int:
    """GET, HEAD and LIST requests sent so far (what a cached read would have cost)."""
    return sum(db.store.stats.get(op, 0) for op in ("get", "head", "list"))


async def main(
    url: str = URL, *, workdir: str | Path = WORKDIR, backup_url: str | None = None
) -> dict[str, Any]:
    """Run the service on ``url``; returns what each plugin did (see the module doc)."""
    backup_url = backup_url or backup_url_for(url)
    stack = build_stack(workdir, backup_url)
    out: dict[str, Any] = {"url": url, "backup_url": backup_url}
    async with Database(url, plugins=stack.plugins) as db:
        costs_before, store_before = stack.costs.requests(), dict(db.store.stats)
        customers = await db.create_resource(
            "customers",
            attributes={"name": "string|min:2", "email": "string|email", "plan": "string"},
            timestamps=True,
        )
        orders = await db.create_resource(
            "orders",
            attributes={"customer_id": "string", "item": "string", "total": "number|min:0"},
            partitions={"by_customer": {"fields": {"customer_id": "string"}}},
        )
        sessions = await db.create_resource(
            "sessions", attributes={"customer_id": "string", "expires_at": "number"}
        )

        # -- writes, by a named user (the audit trail records who) ------------------------
        now = time.time()
        with actor("alice@ops"):
            ann = await customers.insert({"name": "Ann", "email": "ann@x.example", "plan": "free"})
            bob = await customers.insert({"name": "Bob", "email": "bob@x.example", "plan": "pro"})
            placed = [
                await orders.insert({"customer_id": ann["id"], "item": item, "total": total})
                for item, total in (("tea", 4.5), ("mug", 12.0), ("pot", 30.0))
            ]
            await orders.insert({"customer_id": bob["id"], "item": "tea", "total": 4.5})
            for customer, ttl in ((ann, -3600), (bob, -60), (ann, 3600)):  # two expired
                await sessions.insert({"customer_id": customer["id"], "expires_at": now + ttl})
            await customers.update(ann["id"], {"plan": "pro"})  # Ann upgrades
            await orders.update(placed[0]["id"], {"total": 5.0})  # a price correction
            await orders.delete(placed[2]["id"])  # the pot is cancelled

        # -- reads through the cache --------------------------------------------------------
        for _ in range(3):
            await customers.get(ann["id"])
            await orders.list(partition="by_customer", partition_values={"customer_id": ann["id"]})
        before_hits, before = stack.cache.stats()["hits"], reads(db)
        profile = await customers.get(ann["id"])
        ann_orders = await orders.list(
            partition="by_customer", partition_values={"customer_id": ann["id"]}
        )
        out["cache"] = {
            "hits_requests": reads(db) - before,  # the two reads just above: both hits
            "hits_checked": stack.cache.stats()["hits"] - before_hits,
            **{k: v for k, v in stack.cache.stats().items() if k != "resources"},
        }
        assert profile["plan"] == "pro" and len(ann_orders) == 2

        # -- the nightly job, once, now ------------------------------------------------------
        out["job"] = await stack.scheduler.run_job("daily_cleanup")
        out["job_history"] = await stack.scheduler.get_history("daily_cleanup")
        out["cleanup"] = stack.cleanups[-1]

        # -- a backup, verified -------------------------------------------------------------
        out["records"] = {
            name: sorted((dict(r) for r in await db.get_resource(name).list()), key=by_id)
            for name in USER_RESOURCES
        }
        info = await stack.backup.backup()
        verified = await stack.backup.verify(info.id)
        out["backup"] = {
            "id": info.id,
            "objects": info.objects,
            "size": info.size,
            "resources": info.resources,
            "verified": verified.id == info.id,
            "listed": [b.id for b in await stack.backup.list_backups()],
        }

        # -- the audit trail of one record --------------------------------------------------
        await stack.audit.flush()
        out["audit_history"] = await stack.audit.get_record_history("customers", ann["id"])
        out["audit_entries"] = await stack.audit.get_audit_logs()

        # -- metrics and costs ----------------------------------------------------------------
        out["metrics"] = stack.metrics.get_metrics()
        out["prometheus"] = stack.metrics.prometheus_text()
        out["costs"] = stack.costs.summary()
        costs_after, store_after = stack.costs.requests(), dict(db.store.stats)
        out["costs_requests"] = delta(costs_before, costs_after)
        out["store_requests"] = delta(store_before, store_after)
        out["customer_id"] = ann["id"]
    print_report(out)
    return out


def by_id(record: dict[str, Any]) -> str:
    return str(record["id"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: n - before.get(op, 0) for op, n in sorted(after.items()) if n - before.get(op, 0)}


def print_report(out: dict[str, Any]) -> None:
    """A short readable report of what each plugin did."""
    cache, job, bk, m, costs = out["cache"], out["job"], out["backup"], out["metrics"], out["costs"]
    counts = {name: len(rows) for name, rows in out["records"].items()}
    print(f"production stack on {out['url']}")
    print(f"  data       {counts}")
    print(
        f"  cache      {cache['hits']} hits, {cache['misses']} misses "
        f"(hit rate {cache['hit_rate']:.0%}); the last {cache['hits_checked']} cached reads "
        f"cost {cache['hits_requests']} S3 requests"
    )
    print(
        f"  scheduler  daily_cleanup {job['status']} after {job['attempts']} attempt(s): "
        f"{out['cleanup']}; history: {len(out['job_history'])} run(s)"
    )
    print(
        f"  backup     {bk['id']}: {bk['objects']} objects, {bk['size']:,} bytes, "
        f"verified={bk['verified']}, kept {len(bk['listed'])} (daily 7, weekly 4, monthly 12)"
    )
    print(f"  audit      {len(out['audit_entries'])} entries; customer {out['customer_id']}:")
    for e in out["audit_history"]:
        print(f"               {e['at'][:19]} {e['operation']:<6} by {e['actor']}: {describe(e)}")
    totals = m["totals"]
    get = m["resources"]["customers"]["get"]
    print(
        f"  metrics    {totals['count']} operations, {totals['errors']} errors, "
        f"{totals['slow']} slow; customers.get x{get['count']} p50 {get['p50_ms']} ms"
    )
    lines = [ln for ln in out["prometheus"].splitlines() if ln.startswith("s3db_operations_total")]
    print(f"  prometheus {len(lines)} operation series, e.g. {lines[0] if lines else '-'}")
    sent = sum(out["store_requests"].values())
    print(
        f"  costs      {sent} S3 requests in this run ({sum(out['costs_requests'].values())} "
        f"counted by costs), ${costs['total']:.6f} since install: requests "
        f"${costs['request_cost']:.6f}, storage ${costs['storage']['cost']:.9f} "
        f"({costs['storage']['bytes']:,} bytes), transfer ${costs['transfer_out']['cost']:.9f}"
    )


def describe(entry: dict[str, Any]) -> str:
    """One audit entry in a line: the fields set by an insert, or what an update changed."""
    skip = {"id", "created_at", "updated_at"}
    before, after = entry.get("before") or {}, entry.get("after") or {}
    if entry["operation"] == "insert":
        return ", ".join(f"{k}={v!r}" for k, v in after.items() if k not in skip)
    if entry["operation"] == "delete":
        return "deleted"
    changed = [f for f in entry["changed"] if f not in skip]
    return ", ".join(f"{f}: {before.get(f)!r} -> {after.get(f)!r}" for f in changed)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("S3DB_URL", URL)
    second = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("S3DB_BACKUP_URL")
    if target == URL:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    asyncio.run(main(target, backup_url=second))
