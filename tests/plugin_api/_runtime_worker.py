"""A separate OS process running leader leases and jobs, for test_leases_processes and
test_jobs.

Run as ``python _runtime_worker.py MODE URL WORKER [ARGS]``. Every mode prints ``ready``
after connecting, then waits for one line on stdin (so the test starts all workers at the
same moment), and prints JSON lines with its results.

- ``contend ROUNDS TTL RENEW HOLD``: ROUNDS times: acquire lease ``main``, make two fenced
  writes during HOLD seconds, release. Every term is recorded from the lease's own events
  (``leader.elected`` at the moment the term was won, ``leader.lost`` with the moment it
  ended by the holder's clock). Answers ``{"terms": [[epoch, start, end], ...]}``.
- ``hold TTL RENEW``: acquire lease ``main``, answer ``{"epoch", "elected"}``, keep renewing
  until killed.
- ``wait TTL RENEW``: acquire lease ``main`` (waiting as long as it takes), answer
  ``{"epoch", "elected"}``, hold it 0.2 s, release, answer ``"done"``.
- ``job PERIOD LEASE_TTL``: schedule ``every(PERIOD, tick, leader=True)``; each run stores
  ``runs/{tick ms}/{worker}``; runs until stdin closes or says ``stop``, then answers
  ``{"runs": n}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from s3db_async import Database, Plugin
from s3db_async.plugin import JobRun, Lease


class Runtime(Plugin):
    slug = "runtime"


def _say(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def contend(plugin: Runtime, worker: str, args: list[str]) -> None:
    rounds, ttl, renew, hold = int(args[0]), float(args[1]), float(args[2]), float(args[3])
    terms: dict[int, list[float]] = {}
    plugin.on("leader.elected", lambda p: terms.setdefault(p["epoch"], [time.time(), 0.0]))
    plugin.on("leader.lost", lambda p: terms[p["epoch"]].__setitem__(1, p["ended"]))
    lease = plugin.leader("main", ttl=ttl, renew_every=renew, holder=worker)
    for _ in range(rounds):
        await lease.acquire()
        for _ in range(2):
            await lease.fenced_set("fenced", {"worker": worker, "epoch": lease.epoch})
            await asyncio.sleep(hold / 2)
        await lease.release()
        await asyncio.sleep(0.05)  # let the others in
    _say({"terms": [[epoch, *span] for epoch, span in sorted(terms.items())]})


async def hold(plugin: Runtime, worker: str, args: list[str], *, forever: bool) -> None:
    lease: Lease = plugin.leader("main", ttl=float(args[0]), renew_every=float(args[1]))
    await lease.acquire()
    _say({"epoch": lease.epoch, "elected": time.time(), "worker": worker})
    if forever:
        await asyncio.sleep(3600)
    await asyncio.sleep(0.2)
    await lease.release()
    _say("done")


async def job(plugin: Runtime, worker: str, args: list[str]) -> None:
    period, lease_ttl = float(args[0]), float(args[1])
    storage = plugin.get_storage()

    async def tick(run: JobRun) -> None:
        ms = round(run.tick.timestamp() * 1000)
        epoch = run.fence.epoch if run.fence else None
        await storage.set(f"runs/{ms}/{worker}", {"epoch": epoch, "at": time.time()})

    job = plugin.every(period, tick, name="tick", leader=True, lease_ttl=lease_ttl)
    while (await _line()).strip() not in ("stop", ""):
        pass
    _say({"runs": job.runs, "failures": job.failures})


async def main(mode: str, url: str, worker: str, args: list[str]) -> None:
    async with Database(url) as db:
        plugin = await db.use_plugin(Runtime())
        _say("ready")
        await _line()
        if mode == "contend":
            await contend(plugin, worker, args)
        elif mode in ("hold", "wait"):
            await hold(plugin, worker, args, forever=mode == "hold")
        elif mode == "job":
            await job(plugin, worker, args)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
