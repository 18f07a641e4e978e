"""Counters, sequences and locks are exact across real OS processes (FileStore, SeaweedFS).

Each test starts 4 worker processes (``_storage_worker.py``) on one store, waits until all
are connected, then releases them at the same moment. Under ``CI=true`` a SeaweedFS that
cannot start fails the run (the server fixture raises), it is never skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3db_async import PluginStorage
from s3db_async.stores import open_store

WORKER = Path(__file__).with_name("_storage_worker.py")
REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
TIMEOUT = 150  # seconds per worker answer; SeaweedFS can hold contended keys 8-9 s

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


def _spawn(mode: str, url: str, worker: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, url, "conc", worker, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _answer(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"worker exited with {proc.returncode} without answering")
    return json.loads(line)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        for f in (p.stdin, p.stdout):
            if f is not None:
                f.close()


def _overlapped(answers: list[dict[str, Any]]) -> bool:
    """All workers were running at one moment (the race was real)."""
    return bool(max(a["window"][0] for a in answers) < min(a["window"][1] for a in answers))


def _run(
    procs: list[subprocess.Popen[str]], mode: str, url: str, *args: str
) -> list[dict[str, Any]]:
    procs.extend(_spawn(mode, url, f"w{i}", *args) for i in range(PROCESSES))
    for p in procs:
        assert _answer(p) == "ready"
    for p in procs:  # release every worker at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    answers = [_answer(p) for p in procs]
    for p in procs:
        assert p.wait(timeout=TIMEOUT) == 0
    return answers


def test_increments_from_four_processes_are_exact(
    store_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    answers = _run(workers, "increment", store_url, "50")
    assert _overlapped(answers)
    values = sorted(v for a in answers for v in a["values"])
    assert values == list(range(1, 201))  # every increment counted once: exactly 200


def test_sequences_from_four_processes_are_unique_and_gapless(
    store_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    answers = _run(workers, "sequence", store_url, "50")
    assert _overlapped(answers)
    for a in answers:
        assert a["values"] == sorted(a["values"])  # each worker sees increasing values
    values = sorted(v for a in answers for v in a["values"])
    assert values == list(range(1, 201))


async def test_lock_holders_never_overlap(
    store_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    answers = _run(workers, "lock", store_url, "3", "0.15")
    store = open_store(store_url)
    await store.connect()
    try:
        storage = PluginStorage(store, "conc")
        keys = await storage.list("spans/")
        assert len(keys) == PROCESSES * 3
        spans = sorted(
            (r.data["enter"], r.data["exit"], r.key) for r in await storage.batch_get(keys)
        )
    finally:
        await store.close()
    assert sorted(s for a in answers for s in map(tuple, a["spans"])) == [s[:2] for s in spans]
    for (_, prev_exit, prev), (enter, _, key) in itertools.pairwise(spans):
        assert enter >= prev_exit, f"{key} entered before {prev} left"


async def test_lock_of_a_killed_holder_is_taken_over_after_its_ttl(
    store_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    ttl = 2.0
    holder = _spawn("hold", store_url, "doomed", str(ttl))
    workers.append(holder)
    assert _answer(holder) == "ready"
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    token = _answer(holder)["token"]
    assert token
    taken = time.time()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    store = open_store(store_url)
    await store.connect()
    try:
        storage = PluginStorage(store, "conc")
        assert await storage.is_locked("orphan")
        assert await storage.acquire_lock("orphan", ttl=10, timeout=0) is None
        lock = await storage.acquire_lock("orphan", ttl=10, timeout=30, worker_id="heir")
        assert lock is not None and lock.token != token
        assert time.time() - taken >= ttl - 0.05  # not before the dead holder's ttl ran out
        assert await storage.is_locked("orphan")
        assert await lock.release()
    finally:
        await store.close()
