"""Two real OS processes with memory caches on one store (file, SeaweedFS).

Without pub/sub, ``max_staleness`` bounds how long the reader serves what the writer has
changed; with Redis pub/sub, the reader drops exactly the entries the write touched as soon
as the message arrives (another partition's list stays cached).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("_cache_worker.py")
REPO = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


class Worker:
    def __init__(self, url: str, max_staleness: str = "-", pubsub: str = "-") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url, max_staleness, pubsub],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self._read() == {"ready": True}

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise AssertionError(f"worker exited with {self.proc.returncode}")
        return json.loads(line)

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self("quit")
            self.proc.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        try:
            w.close()
        finally:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(timeout=30)
            for pipe in (w.proc.stdin, w.proc.stdout):
                if pipe is not None:
                    pipe.close()


def test_max_staleness_bounds_a_memory_cache_across_processes(
    store_url: str, workers: list[Worker]
) -> None:
    writer = Worker(store_url)
    workers.append(writer)
    reader = Worker(store_url, max_staleness="5")
    workers.append(reader)
    rid = writer("insert", data={"name": "Ann", "region": "eu"})["id"]
    assert reader("get", id=rid)["value"]["name"] == "Ann"
    assert reader("count")["value"] == 1
    writer("update", id=rid, changes={"name": "Anne"})
    writer("insert", data={"name": "Bob", "region": "eu"})
    reader("advance", seconds=4.5)  # within the bound: may still serve the old data
    got = reader("get", id=rid)
    assert (got["value"]["name"], got["requests"]) == ("Ann", 0)
    reader("advance", seconds=1)  # past it: never the old data again
    got = reader("get", id=rid)
    assert got["value"]["name"] == "Anne" and got["requests"] == 2  # HEAD, then GET
    assert reader("count") == {"value": 2, "requests": 1}
    assert reader("get", id=rid)["requests"] == 0


def test_pubsub_invalidates_other_processes_exactly(
    store_url: str, redis_url: str, workers: list[Worker]
) -> None:
    writer = Worker(store_url, pubsub=redis_url)
    workers.append(writer)
    rid = writer("insert", data={"name": "Ann", "region": "eu"})["id"]
    writer("insert", data={"name": "Bob", "region": "us"})
    reader = Worker(store_url, max_staleness="3600", pubsub=redis_url)
    workers.append(reader)
    assert reader("get", id=rid)["value"]["name"] == "Ann"
    assert reader("list", region="us")["value"] == ["Bob"]
    assert reader("list", region="eu")["value"] == ["Ann"]
    writer("update", id=rid, changes={"name": "Anne"})
    deadline = time.monotonic() + 30  # loopback delivery; the bound is asserted, not slept
    while reader("received")["value"] < 1:
        assert time.monotonic() < deadline, "the invalidation never arrived"
        time.sleep(0.02)
    assert reader("list", region="us") == {"value": ["Bob"], "requests": 0}
    got = reader("get", id=rid)
    assert got["value"]["name"] == "Anne" and got["requests"] == 1
    eu = reader("list", region="eu")
    assert eu["value"] == ["Anne"] and eu["requests"] >= 1
