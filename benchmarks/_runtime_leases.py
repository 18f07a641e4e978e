"""Leader lease figures for the ``runtime`` section (issue 18): failover time and renewal cost.

:func:`lease_failover` is called by the section module once per store. It measures

- ``killed``: a holder in another OS process (``tests/plugin_api/_runtime_worker.py hold``)
  is SIGKILLed; seconds until a contender in this process is elected (not on ``memory``,
  whose data lives in one process);
- ``stopped``: a holder in this process stops renewing (its task is cancelled without a
  release, as a hung process would); seconds until a contender is elected;
- ``requests_per_minute``: requests the holder (renewals) and a waiting contender (polls)
  send per minute at ``ttl`` / ``renew_every``, and the same scaled to the default
  ``ttl=30`` (renew every 10 s).

Failover is bounded by the ttl (the dead holder's term must run out first): the figures are
reported in seconds and as a fraction of the ttl.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BenchContext
from s3db_async import Database, Plugin
from s3db_async.plugin import Lease

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "plugin_api" / "_runtime_worker.py"
TTL = 3.0
RENEW = 1.0
WINDOW = 6.0  # seconds of steady state for the request rates


class _Runtime(Plugin):
    slug = "runtime"


async def _contender(url: str, alias: str) -> tuple[Database, Lease]:
    db = Database(url)
    await db.connect()
    plugin = await db.use_plugin(_Runtime(alias=alias))
    return db, plugin.leader("main", ttl=TTL, renew_every=RENEW, holder=alias)


async def _elected(lease: Lease) -> float:
    """Wall time at which ``lease`` was elected (polls its state; the lease runs itself)."""
    await lease.wait_elected()
    return time.time()


def _spawn_holder(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "hold", url, "doomed", str(TTL), str(RENEW)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def _killed_once(url: str) -> float:
    proc = _spawn_holder(url)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        loop = asyncio.get_running_loop()
        assert json.loads(await loop.run_in_executor(None, proc.stdout.readline)) == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        json.loads(await loop.run_in_executor(None, proc.stdout.readline))
        db, lease = await _contender(url, "heir")
        try:
            lease.start()
            await asyncio.sleep(RENEW * 2)  # the heir watches a live lease
            killed = time.time()
            os.kill(proc.pid, signal.SIGKILL)
            return await _elected(lease) - killed
        finally:
            await db.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()


async def _stopped_once(url: str) -> float:
    db_a, holder = await _contender(url, "holder")
    db_b, heir = await _contender(url, "heir")
    try:
        assert await holder.acquire()
        heir.start()
        await asyncio.sleep(RENEW * 1.5)
        runner = holder._runner
        assert runner is not None
        runner.cancel()  # stops renewing, no release: what a hung holder looks like
        await asyncio.gather(runner, return_exceptions=True)
        stopped = time.time()
        return await _elected(heir) - stopped
    finally:
        await db_b.disconnect()
        await db_a.disconnect()


async def _rates(url: str) -> dict[str, Any]:
    db_a, holder = await _contender(url, "holder")
    db_b, heir = await _contender(url, "heir")
    try:
        assert await holder.acquire()
        heir.start()
        await asyncio.sleep(RENEW)
        db_a.store.stats.reset()
        db_b.store.stats.reset()
        t0 = time.perf_counter()
        await asyncio.sleep(WINDOW)
        seconds = time.perf_counter() - t0
        held = db_a.store.stats.total() * 60 / seconds
        polled = db_b.store.stats.total() * 60 / seconds
        scale = RENEW / 10.0  # the default ttl=30 renews (and polls) every 10 s
        return {
            "ttl": TTL,
            "renew_every": RENEW,
            "holder": round(held, 1),
            "contender": round(polled, 1),
            "holder_at_default_ttl": round(held * scale, 1),
            "contender_at_default_ttl": round(polled * scale, 1),
            "holder_requests": db_a.store.stats.snapshot(),
            "contender_requests": db_b.store.stats.snapshot(),
        }
    finally:
        await db_b.disconnect()
        await db_a.disconnect()


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "seconds_median": round(statistics.median(samples), 3),
        "seconds_max": round(max(samples), 3),
        "ttl_fraction_max": round(max(samples) / TTL, 3),
        "samples": [round(s, 3) for s in samples],
    }


async def lease_failover(ctx: BenchContext, store: str) -> dict[str, Any]:
    """Failover time after SIGKILL / after a holder stops renewing, and renewal request
    rates, on ``store`` (a name of ``ctx.stores``)."""
    rounds = 1 if ctx.quick else max(2, ctx.rounds)
    out: dict[str, Any] = {"ttl": TTL, "renew_every": RENEW}
    stopped = [await _stopped_once(ctx.url(store)) for _ in range(rounds)]
    out["stopped"] = _summary(stopped)
    ctx.log(f"{store:9} lease failover after stop    {out['stopped']['seconds_median']:.2f}s")
    if store != "memory":
        killed = [await _killed_once(ctx.url(store)) for _ in range(rounds)]
        out["killed"] = _summary(killed)
        ctx.log(f"{store:9} lease failover after SIGKILL {out['killed']['seconds_median']:.2f}s")
    out["requests_per_minute"] = await _rates(ctx.url(store))
    ctx.log(
        f"{store:9} lease requests/min: holder {out['requests_per_minute']['holder']:.0f}, "
        f"contender {out['requests_per_minute']['contender']:.0f} (ttl {TTL:g}s)"
    )
    return out
