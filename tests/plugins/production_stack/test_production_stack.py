"""examples/production_stack.py (the seed's Production Stack: CachePlugin memory + filesystem,
BackupPlugin to a folder per day and a second bucket with daily/weekly/monthly retention,
AuditPlugin, MetricsPlugin, CostsPlugin and SchedulerPlugin's ``daily_cleanup``) runs as one
stack on memory, file and SeaweedFS, and each plugin does its job; the script itself runs
as a subprocess on the file store."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from s3db_async.plugins import BackupPlugin

from s3db_async import Database

pytestmark = pytest.mark.stores("memory", "file", "seaweedfs")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "production_stack.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("production_stack_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def other_url(make_store_url: Callable[[str], str]) -> str:
    """An empty place on the same store kind, for the restore."""
    return make_store_url("restored")


async def test_the_production_stack_runs_and_each_plugin_does_its_job(
    store_url: str, other_url: str, tmp_path: Path
) -> None:
    example = load()
    work = tmp_path / "work"
    out = await example.main(store_url, workdir=work)
    assert out["backup_url"] == example.backup_url_for(store_url) != store_url

    # cache: the reads after the first ones are hits, and hits send no request
    cache = out["cache"]
    assert cache["hits_checked"] == 2 and cache["hits_requests"] == 0
    assert (cache["hits"], cache["misses"]) == (6, 2)  # 4 gets + 4 lists, 1 miss each
    assert any((work / "cache").rglob("*")), "the filesystem layer holds entries too"

    # scheduler: daily_cleanup ran once, now, and is in the history
    job = out["job"]
    assert (job["status"], job["attempts"], job["scheduled"]) == ("succeeded", 1, False)
    assert [h["id"] for h in out["job_history"]] == [job["id"]]
    assert out["cleanup"]["expired_sessions"] == 2  # the job's work: expired sessions gone
    assert out["cleanup"]["metrics_snapshots"] == out["cleanup"]["costs_snapshots"] == 1
    assert len(out["records"]["sessions"]) == 1

    # audit: one entry per write, with who did it and the data
    ops: dict[str, int] = {}
    for entry in out["audit_entries"]:
        ops[entry["operation"]] = ops.get(entry["operation"], 0) + 1
    assert ops == {"insert": 9, "update": 2, "delete": 3}
    deleted_by_job = [e for e in out["audit_entries"] if e["actor"] == "scheduler:daily_cleanup"]
    assert [(e["resource"], e["operation"]) for e in deleted_by_job] == [("sessions", "delete")] * 2
    history = out["audit_history"]
    assert [(e["operation"], e["actor"]) for e in history] == [
        ("insert", "alice@ops"),
        ("update", "alice@ops"),
    ]
    assert (history[1]["before"]["plan"], history[1]["after"]["plan"]) == ("free", "pro")

    # metrics: every call counted, cache hits included (installed before the cache)
    figures = out["metrics"]["resources"]
    assert figures["customers"]["get"]["count"] == 4
    assert figures["orders"]["list"]["count"] == 5  # 4 by customer, 1 before the backup
    assert figures["orders"]["insert"]["count"] == 4
    assert figures["sessions"]["delete_many"]["count"] == 1
    assert out["metrics"]["totals"]["errors"] == 0
    assert 's3db_operations_total{operation="get",resource="customers"} 4.0' in out["prometheus"]

    # costs: exactly the requests the store counted, priced
    assert out["costs_requests"] == out["store_requests"] and out["store_requests"]["put"] > 0
    costs = out["costs"]
    assert costs["classes"]["delete"]["cost"] == 0.0 and costs["total"] > 0
    assert costs["storage"]["bytes"] > 0

    # backup: verified, in the day's folder and in the second bucket
    backup = out["backup"]
    assert backup["verified"] and backup["listed"] == [backup["id"]]
    assert {"customers", "orders", "sessions"} <= set(backup["resources"])
    day = f"{backup['id'][:4]}-{backup['id'][4:6]}-{backup['id'][6:8]}"
    assert (work / "backups" / day / backup["id"] / "manifest.json").is_file()

    # ... and restored into an empty database from the second copy alone
    shutil.rmtree(work / "backups")
    restorer = load().build_stack(tmp_path / "elsewhere", out["backup_url"]).backup
    async with Database(other_url, plugins=[restorer]) as target:
        assert isinstance(restorer, BackupPlugin)
        report = await restorer.restore(backup["id"])
        assert report.written == backup["objects"]
        for name, records in out["records"].items():
            restored = sorted(
                (dict(r) for r in await target.get_resource(name).list()), key=example.by_id
            )
            assert restored == records, name


@pytest.mark.stores("file")
def test_the_script_runs_on_the_file_store(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("S3DB_URL", "S3DB_BACKUP_URL")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = done.stdout
    assert report.startswith("production stack on file://./.s3db-production/db")
    for expected in (
        "the last 2 cached reads cost 0 S3 requests",
        "daily_cleanup succeeded after 1 attempt(s)",
        "'expired_sessions': 2",
        "verified=True",
        "14 entries",
        "update by alice@ops: plan: 'free' -> 'pro'",
        "customers.get x4",
    ):
        assert expected in report, (expected, report)
    costs_line = next(line for line in report.splitlines() if line.startswith("  costs"))
    sent, counted = costs_line.split()[1], costs_line.split("(")[1].split()[0]
    assert sent == counted  # the costs plugin counted every request the store sent
    data = tmp_path / ".s3db-production"
    assert list((data / "backups").glob("*/*/manifest.json"))  # a folder per day
    assert list((data / "db-backups").rglob("manifest.json*"))  # the second copy
