"""The ``vs_s3dbjs`` bench section: s3db.js 19.5.10 and s3db-async on one plan, side by side.

The end-to-end test runs the section as ``make bench`` does (``--quick``, memory only).
It needs node and npm: locally it skips without them, under ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import core, vs_s3dbjs
from benchmarks._common import BenchContext

REPO = Path(__file__).resolve().parents[2]
QUICK_MEMORY = ("--only", "vs_s3dbjs", "--quick", "--stores", "memory")


def _need_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} not on PATH: the vs_s3dbjs bench cannot run under CI")
        pytest.skip(f"{missing} not on PATH")


def _check_row(name: str, row: dict[str, Any], *, compared: bool) -> None:
    batch = name in ("insert_many_c64", "list_1000")
    assert row["unit"] == ("records/s" if batch else "ops/s"), name
    per = "requests_per_record" if batch else "requests_per_op"
    assert row[per]["ours"] > 0, name
    assert row["ours"] > 0, name
    if not compared:
        assert (row["s3dbjs"], row["ratio"], row["meets_3x"]) == (None, None, None), name
        return
    assert row["s3dbjs"] > 0, name
    assert row["ratio"] == round(row["ours"] / row["s3dbjs"], 2), name
    assert row["meets_3x"] is (row["ratio"] >= 3.0), name


def test_quick_run_on_memory_prints_both_sides_per_row() -> None:
    _need_node()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *QUICK_MEMORY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,  # a fresh clone runs `npm ci` first
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)  # stdout is the JSON document and nothing else
    assert doc["errors"] == {}
    section = doc["sections"]["vs_s3dbjs"]
    assert section["s3dbjs"]["available"] is True
    assert section["s3dbjs"]["version"] == "19.5.10"
    assert section["plan"]["records"] == 200
    assert [r["name"] for r in section["plan"]["rows"]] == [
        r.name for r in core.plan(True, only=vs_s3dbjs.ROWS)[1]
    ]
    assert list(section["stores"]) == ["memory"]
    assert section["s3dbjs_failed"] == {}
    table = section["stores"]["memory"]
    assert set(table) == set(vs_s3dbjs.ROWS)
    for name, row in table.items():
        _check_row(name, row, compared=True)
    summary = section["summary"]
    assert summary["rows"] == len(vs_s3dbjs.ROWS)
    assert summary["not_compared"] == []
    below = {f"memory/{n}" for n, r in table.items() if not r["meets_3x"]}
    assert set(summary["below_3x"]) == below
    assert summary["meets_3x"] == len(table) - len(below)


async def test_without_node_it_measures_ours_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vs_s3dbjs.shutil, "which", lambda tool: None)
    ctx = BenchContext(stores=["memory", "file"], servers={}, tmpdir=tmp_path, quick=True, rounds=1)
    out = await vs_s3dbjs.run(ctx)
    assert out["s3dbjs"] == {"available": False, "reason": "node not found on PATH"}
    assert list(out["stores"]) == ["memory"]  # s3db.js has no counterpart of `file` here
    for name, row in out["stores"]["memory"].items():
        _check_row(name, row, compared=False)
    assert out["summary"]["not_compared"] == [f"memory/{n}" for n in out["stores"]["memory"]]
    assert out["summary"]["meets_3x"] == 0
    assert out["s3dbjs_failed"] == {}


async def test_a_failed_s3dbjs_run_is_reported_and_ours_still_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: BenchContext, store: str, plan_path: Path) -> dict[str, Any]:
        raise RuntimeError(f"bench.mjs on {store} exited 1")

    monkeypatch.setattr(vs_s3dbjs, "ensure_node_deps", lambda: None)
    monkeypatch.setattr(vs_s3dbjs, "_s3dbjs_info", lambda: {"version": "19.5.10"})
    monkeypatch.setattr(vs_s3dbjs, "_run_js", broken)
    ctx = BenchContext(stores=["memory"], servers={}, tmpdir=tmp_path, quick=True, rounds=1)
    out = await vs_s3dbjs.run(ctx)
    assert out["s3dbjs"]["available"] is True
    assert out["s3dbjs_failed"] == {"memory": "bench.mjs on memory exited 1"}
    for name, row in out["stores"]["memory"].items():
        _check_row(name, row, compared=False)


def test_ratio_and_flag_per_row() -> None:
    ours = {
        "get_c1": {"ops_per_s": 300.0, "requests_per_op": 1.0, "n": 10, "concurrency": 1},
        "list_1000": {"records_per_s": 29.0, "requests_per_record": 0.01, "n": 5, "concurrency": 1},
    }
    theirs = {
        "get_c1": {"ops_per_s": 100.0, "requests_per_op": 1.0},
        "list_1000": {"records_per_s": 10.0, "requests_per_record": 2.0},
    }
    table = vs_s3dbjs.compare(ours, theirs)
    assert table["get_c1"]["ratio"] == 3.0 and table["get_c1"]["meets_3x"] is True
    assert table["list_1000"]["ratio"] == 2.9 and table["list_1000"]["meets_3x"] is False
    assert table["list_1000"]["requests_per_record"] == {"ours": 0.01, "s3dbjs": 2.0}
    assert table["list_1000"]["unit"] == "records/s"


def test_figures_from_another_workload_are_refused() -> None:
    doc = {
        "s3dbjs": "19.5.10",
        "workload": {"attributes": dict.fromkeys(core.ATTRIBUTES), "sample_record": core.record(7)},
    }
    vs_s3dbjs._check_same_workload(doc)
    with pytest.raises(RuntimeError, match="other records"):
        vs_s3dbjs._check_same_workload(
            {**doc, "workload": {**doc["workload"], "sample_record": core.record(8)}}
        )
    with pytest.raises(RuntimeError, match=r"19\.5\.10 expected"):
        vs_s3dbjs._check_same_workload({**doc, "s3dbjs": "21.6.2"})


def test_plan_keeps_the_rows_that_write_the_working_set() -> None:
    records, rows = core.plan(False, only=["get_c16"])
    assert records == 1000
    assert [r.name for r in rows] == ["insert_many_c64", "get_c16"]
    assert rows[0].batch == records and rows[1].n == 2 * records
    with pytest.raises(ValueError, match="unknown bench rows"):
        core.plan(True, only=["get_c2"])
