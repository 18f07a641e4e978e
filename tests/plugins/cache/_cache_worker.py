"""A separate OS process with a CachePlugin (memory driver), driven by JSON lines on stdin.

Run as ``python _cache_worker.py URL MAX_STALENESS PUBSUB`` (``-`` for none). Prints
``{"ready": true}`` once connected, then one JSON line per command:

- ``{"op": "insert", "data": {...}}`` -> ``{"id": ...}``
- ``{"op": "update", "id": ..., "changes": {...}}`` -> ``{"ok": true}``
- ``{"op": "get", "id": ...}`` -> ``{"value": record, "requests": n}``
- ``{"op": "count"}`` / ``{"op": "list", "region": r}`` -> ``{"value": ..., "requests": n}``
- ``{"op": "advance", "seconds": s}``: moves the plugin's clock
- ``{"op": "received"}`` -> ``{"value": messages received over pub/sub}``
- ``{"op": "quit"}``
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from s3db_async.plugins import CachePlugin

from s3db_async import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _say(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


async def main(url: str, max_staleness: str, pubsub: str) -> None:
    clock = Clock()
    cache = CachePlugin(
        max_staleness=None if max_staleness == "-" else float(max_staleness),
        pubsub=None if pubsub == "-" else pubsub,
        clock=clock,
    )
    async with Database(url, plugins=[cache]) as db:
        users = await db.create_resource(
            "users",
            attributes={"name": "string", "region": "string"},
            partitions={"by_region": {"fields": {"region": "string"}}},
        )
        _say({"ready": True})
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            cmd = json.loads(line)
            op = cmd["op"]
            db.store.stats.reset()
            if op == "quit":
                _say({"ok": True})
                return
            if op == "insert":
                _say({"id": (await users.insert(cmd["data"]))["id"]})
            elif op == "update":
                await users.update(cmd["id"], cmd["changes"])
                _say({"ok": True})
            elif op == "get":
                value: Any = dict(await users.get(cmd["id"]))
                _say({"value": value, "requests": sum(db.store.stats.values())})
            elif op == "count":
                value = await users.count()
                _say({"value": value, "requests": sum(db.store.stats.values())})
            elif op == "list":
                pv = {"region": cmd["region"]}
                rows = await users.list(partition="by_region", partition_values=pv)
                value = sorted(r["name"] for r in rows)
                _say({"value": value, "requests": sum(db.store.stats.values())})
            elif op == "advance":
                clock.now += float(cmd["seconds"])
                _say({"ok": True})
            elif op == "received":
                bus = cache._bus
                _say({"value": bus.received if bus is not None else 0})


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
