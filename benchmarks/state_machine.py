"""Section ``state_machine``: what a transition of the StateMachinePlugin costs (issue 20).

- ``send``: 500 entities (100 with ``--quick``) each walked through 3 transitions at
  concurrency 16: transitions/s and requests per transition (state GET + conditional PUT +
  history row), with and without history.
- ``race``: 8 concurrent conflicting events on each of 50 entities: exactly one applies per
  entity; requests per applied transition (the losers' re-reads included).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from s3db_async.plugins import StateMachinePlugin
from s3db_async.plugins.state_machine import TransitionError

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "state_machine: requests and time per transition, conflicting events racing"

MACHINE = {
    "initial": "a",
    "states": {
        "a": {"on": {"GO": "b", **{f"E{i}": "z" for i in range(8)}}},
        "b": {"on": {"GO": "c"}},
        "c": {"on": {"GO": "d"}},
        "d": {"type": "final"},
        "z": {"type": "final"},
    },
}


async def _walk(sm: StateMachinePlugin, n: int) -> float:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            for _ in range(3):
                await sm.send("m", f"e{i:05d}", "GO")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for history in (True, False):
        sm = StateMachinePlugin(machines={"m": MACHINE}, history=history, tick_interval=10**6)
        async with Database(ctx.url(store), plugins=[sm], parallelism=64) as db:
            db.store.stats.reset()
            seconds = await _walk(sm, n)
            out["history" if history else "no_history"] = {
                "transitions_per_s": round(3 * n / seconds, 1),
                "requests_per_transition": round(db.store.stats.total() / (3 * n), 2),
            }
            db.store.stats.reset()
            results = await asyncio.gather(
                *(sm.send("m", f"r{e}", f"E{k}") for e in range(50) for k in range(8)),
                return_exceptions=True,
            )
            applied = sum(isinstance(r, dict) for r in results)
            assert applied == 50, applied
            assert all(isinstance(r, dict | TransitionError) for r in results)
            if history:
                out["race"] = {
                    "entities": 50,
                    "events": len(results),
                    "applied": applied,
                    "requests_per_applied": round(db.store.stats.total() / applied, 2),
                }
    return out


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 100 if ctx.quick else 500
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        ctx.log(
            f"state_machine {store}: {row['history']['transitions_per_s']} transitions/s, "
            f"{row['history']['requests_per_transition']} requests/transition "
            f"({row['no_history']['requests_per_transition']} without history); race: "
            f"{row['race']['requests_per_applied']} requests per applied event"
        )
        out[store] = row
    return out
