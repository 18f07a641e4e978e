"""Shared pieces of the benchmark harness: the context sections get and a timing helper."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s3db_async.stores import RequestStats
    from tests._servers import S3Server

Op = Callable[[int], Awaitable[Any]]

BODY = b'{"bio": "' + b"x" * 178 + b'"}'  # ~200 bytes
METADATA = {"name": "Ann Example", "email": "ann@example.com", "age": "42", "region": "eu"}


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


async def run_ops(op: Op, n: int, concurrency: int) -> float:
    """Run ``op(0) .. op(n-1)`` with ``concurrency`` workers; return the seconds taken."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await op(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return time.perf_counter() - t0


@dataclass
class BenchContext:
    """What a section's ``run(ctx)`` gets."""

    stores: list[str]
    servers: dict[str, S3Server]
    tmpdir: Path
    quick: bool = False
    target_seconds: float = 1.5
    rounds: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, store: str, prefix: str | None = None) -> str:
        """A connection string to a fresh, empty namespace on ``store``."""
        prefix = prefix or f"bench-{uuid.uuid4().hex[:10]}"
        if store == "memory":
            return f"memory://bench/{prefix}"
        if store == "file":
            return f"file://{self.tmpdir / 'file-store' / prefix}"
        return self.servers[store].url(prefix)

    def log(self, msg: str) -> None:
        log(msg)

    async def measure(
        self,
        op: Op,
        *,
        concurrency: int,
        stats: RequestStats | None = None,
        max_n: int = 200_000,
        min_n: int = 20,
    ) -> dict[str, Any]:
        """ops/s of ``op`` at ``concurrency``, sized to take about ``target_seconds``.

        A short calibration run picks ``n``; with ``stats`` the result also has the
        requests sent per operation.
        """
        warm = max(min_n, concurrency * 2)
        seconds = await run_ops(op, warm, concurrency)
        rate = warm / max(seconds, 1e-6)
        n = int(min(max_n, max(min_n, rate * self.target_seconds)))
        if stats is not None:
            stats.reset()
        seconds = await run_ops(op, n, concurrency)
        out: dict[str, Any] = {
            "ops_per_s": round(n / seconds, 1),
            "n": n,
            "seconds": round(seconds, 3),
            "concurrency": concurrency,
        }
        if stats is not None:
            out["requests_per_op"] = round(stats.total() / n, 3)
            out["requests"] = stats.snapshot()
        return out
