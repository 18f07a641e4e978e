"""A separate OS process driving a PluginStorage, for test_plugin_concurrency.

Run as ``python _storage_worker.py MODE URL SLUG WORKER [ARGS]``. Every mode prints ``ready``
after connecting, then waits for one line on stdin, so the test starts all workers at the
same moment; it prints one JSON line with its result when done.

- ``increment N``: ``increment("hits")`` N times; answers the values it got.
- ``sequence N``: ``next_sequence("order")`` N times; answers the values it got.
- ``lock ROUNDS HOLD``: ROUNDS times: take lock ``"critical"`` (ttl 60 s, waiting up to
  120 s), hold it HOLD seconds, release; enter/exit times go to storage key
  ``spans/{worker}-{round}``; answers the spans.
- ``hold TTL``: take lock ``"orphan"`` with ttl TTL, answer, then sleep forever (the test
  kills the process).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from s3db_async._plugin.storage import PluginStorage
from s3db_async.stores import open_store


def _say(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _go() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main(mode: str, url: str, slug: str, worker: str, args: list[str]) -> None:
    store = open_store(url)
    await store.connect()
    try:
        storage = PluginStorage(store, slug)
        await store.capabilities()
        _say("ready")
        await _go()
        if mode in ("increment", "sequence"):
            t0 = time.time()
            if mode == "increment":
                got = [await storage.increment("hits") for _ in range(int(args[0]))]
            else:
                got = [await storage.next_sequence("order") for _ in range(int(args[0]))]
            _say({"values": got, "window": [t0, time.time()], "stats": store.stats.snapshot()})
        elif mode == "lock":
            rounds, hold = int(args[0]), float(args[1])
            spans = []
            for i in range(rounds):
                async with storage.lock("critical", ttl=60, timeout=120, worker_id=worker):
                    enter = time.time()
                    await asyncio.sleep(hold)
                    leave = time.time()
                    await storage.set(f"spans/{worker}-{i}", {"enter": enter, "exit": leave})
                spans.append([enter, leave])
            _say({"spans": spans, "stats": store.stats.snapshot()})
        elif mode == "hold":
            lock = await storage.acquire_lock("orphan", ttl=float(args[0]), worker_id=worker)
            _say({"token": lock.token if lock else None})
            await asyncio.sleep(3600)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]))
