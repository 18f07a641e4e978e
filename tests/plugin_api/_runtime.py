"""Shared pieces of the plugin-runtime tests (leases, jobs, change feed): a bare runtime
plugin, a store that can lose replies or go down, in-process "nodes" (one database and plugin
each, on one shared store), and the line protocol of the subprocess workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from s3db_async import Database, Plugin
from s3db_async.errors import StoreError
from s3db_async.stores import ObjectInfo, StoredObject, open_store

from .._faults import LostReplyStore

REPO = Path(__file__).resolve().parents[2]
RUNTIME_WORKER = Path(__file__).with_name("_runtime_worker.py")
TIMEOUT = 180  # seconds for a worker's answer; SeaweedFS can hold contended keys 8-9 s
N = TypeVar("N")


class Runtime(Plugin):
    """A plugin that only uses the runtime."""

    slug = "runtime"


class FlakyStore(LostReplyStore):
    """Loses replies like LostReplyStore; while ``down`` every request fails."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreError("store unreachable (test)", retriable=True)

    async def put(self, key: str, body: bytes, *args: Any, **kwargs: Any) -> str:
        self._check()
        return await super().put(key, body, *args, **kwargs)

    async def get(self, key: str) -> StoredObject:
        self._check()
        return await super().get(key)

    async def head(self, key: str) -> ObjectInfo:
        self._check()
        return await super().head(key)


@contextlib.asynccontextmanager
async def node_factory(
    store_url: str, node: Callable[[Database, FlakyStore, Runtime], N]
) -> AsyncIterator[Callable[[], Awaitable[N]]]:
    """``make()`` opens one more 'process' (a database behind its own FlakyStore on the shared
    store, with a Runtime plugin aliased ``n1``, ``n2`` ...); all are closed on exit."""
    opened: list[Database] = []

    async def make() -> N:
        store = FlakyStore(open_store(store_url))
        db = Database(store=store)
        await db.connect()
        opened.append(db)
        plugin = await db.use_plugin(Runtime(alias=f"n{len(opened)}"))
        return node(db, store, plugin)

    try:
        yield make
    finally:
        for db in opened:
            if isinstance(db._store, FlakyStore):
                db._store.down = False
            await db.disconnect()


async def until(check: Callable[[], bool], what: str = "condition") -> None:
    """Let background tasks run until ``check()`` holds (real seconds, bounded)."""
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# -- subprocess workers (one JSON answer per line on stdout, commands on stdin) ----------------
def spawn(worker: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``python worker *args`` from the repository root."""
    return subprocess.Popen(
        [sys.executable, str(worker), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def spawn_runtime(mode: str, url: str, worker: str, *args: str) -> subprocess.Popen[str]:
    """A ``_runtime_worker.py`` process (lease and job modes)."""
    return spawn(RUNTIME_WORKER, mode, url, worker, *args)


def answer(proc: subprocess.Popen[str]) -> Any:
    """The worker's next JSON line."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"worker exited with {proc.returncode} without answering")
    return json.loads(line)


def go(*procs: subprocess.Popen[str], line: str = "go") -> None:
    """Send ``line`` to each worker."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()


@contextlib.contextmanager
def reaped() -> Iterator[list[subprocess.Popen[str]]]:
    """A list to put workers in; whatever still runs at the end is killed and reaped."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()
