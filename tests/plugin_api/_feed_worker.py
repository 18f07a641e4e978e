"""A separate OS process writing to or consuming a watched resource, for the feed kill tests.

Run as ``python _feed_worker.py MODE URL [ARGS]``; it prints JSON lines on stdout.

- ``write URL PAUSE K N``: on resource ``orders``, run the write script of :func:`script`
  (``N`` records: insert, update, every third one deleted), printing ``{"ack": [...]}`` after
  each write returns. Before write number ``K`` it arms a pause; ``PAUSE`` says where the
  process then stops (printing ``{"paused": ...}`` and sleeping, for the test to SIGKILL it):
  ``intent`` (right after the intent PUT, before the record PUT), ``put`` (right after the
  record PUT, before the write returns), ``refused`` (write K, an update, loses its race: an
  update of the same record lands between its read and its conditional PUT, which answers
  412; the process stops before dropping its intent), ``none`` (never).
- ``consume URL OUT PAUSE_BATCH``: subscribe consumer ``c`` of ``orders`` (resuming its saved
  cursor) with batches of 3, appending a ``["batch", n]`` line and then each delivered
  change as a JSON line ``[change_id, op, id, after]`` to ``OUT``
  (flushed and fsynced); inside batch number ``PAUSE_BATCH`` (1-based, after writing it,
  before the handler returns, so its cursor is not saved) print ``{"paused": n}`` and
  sleep; ``0``: never. Prints ``{"done": delivered}`` when the backlog is empty.
- ``hammer URL WORKER ROUNDS``: ``ROUNDS`` updates of records ``k0``..``k3`` (contended by
  the other workers) with ``tag = "{WORKER}-{round}"``, printing each acknowledged one; it
  prints ``ready`` once connected and starts on a line of stdin (all workers at once).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from s3db_async import Database, Plugin
from s3db_async._resource.feed import changes_prefix
from s3db_async.plugin import Change


def say(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def script(n: int) -> list[tuple[str, str, int | None]]:
    """The writes of ``write`` mode: ``(op, id, value of n)``."""
    ops: list[tuple[str, str, int | None]] = []
    for i in range(n):
        ops += [("insert", f"w{i}", None), ("update", f"w{i}", 100 + i)]
        if i % 3 == 2:
            ops.append(("delete", f"w{i}", None))
    return ops


async def pause(where: str) -> None:
    say({"paused": where})
    await asyncio.sleep(3600)


async def write(url: str, where: str, k: int, n: int) -> None:
    async with Database(url) as db:
        orders = db.get_resource("orders")
        assert orders._writer.feed is not None, "the subscription is loaded at connect"
        store = db.store
        prefix = changes_prefix("orders")
        armed: dict[str, Any] = {"on": False, "key": None}
        real_put, real_delete = store.put, store.delete

        async def put(key: str, body: bytes, metadata: Any = None, **kw: Any) -> str:
            if armed["on"] and where == "refused" and key == armed["key"] and kw.get("if_match"):
                armed["on"] = False  # another write lands between our read and our PUT
                await orders.update(armed["id"], {"tag": "racer"})
                say({"ack": ["update", armed["id"], "racer"]})
                armed["drop"] = True
            etag = await real_put(key, body, metadata, **kw)
            if armed["on"]:
                if where == "intent" and key.startswith(prefix):
                    await pause(where)
                if where == "put" and key == armed["key"]:
                    await pause(where)
            return etag

        async def delete(key: str, **kw: Any) -> None:
            if armed.get("drop") and key.startswith(prefix):
                await pause(where)
            await real_delete(key, **kw)

        store.put = put  # type: ignore[method-assign]
        store.delete = delete  # type: ignore[method-assign]
        for i, (op, rid, value) in enumerate(script(n)):
            if i == k and where != "none":
                armed.update(on=True, key=orders.key_for(rid), id=rid)
            if op == "insert":
                await orders.insert({"id": rid, "item": rid})
            elif op == "update":
                await orders.update(rid, {"n": value})
            else:
                await orders.delete(rid)
            say({"ack": [op, rid, value]})
        say({"finished": True})


class Consumer(Plugin):
    """Hosts the ``c`` subscription."""


async def consume(url: str, out: str, pause_batch: int) -> None:
    async with Database(url) as db:
        plugin = await db.use_plugin(Consumer())
        batches = 0

        async def handler(changes: list[Change]) -> None:
            nonlocal batches
            batches += 1
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(["batch", batches]) + "\n")
                for c in changes:
                    f.write(json.dumps([c.change_id, c.op, c.id, c.after]) + "\n")
                f.flush()
                os.fsync(f.fileno())
            if batches == pause_batch:
                await pause(str(batches))

        sub = await plugin.subscribe("orders", handler, consumer="c", batch_size=3,
                                     poll_interval=None)  # fmt: skip
        while await sub.poll():
            pass
        say({"done": sub.stats().delivered})


async def hammer(url: str, worker: str, rounds: int) -> None:
    async with Database(url) as db:
        orders = db.get_resource("orders")
        say("ready")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for r in range(rounds):
            rid = f"k{r % 4}"
            await orders.update(rid, {"tag": f"{worker}-{r}"})
            say({"ack": [rid, f"{worker}-{r}"]})
        say({"finished": True})


if __name__ == "__main__":
    mode, url, *args = sys.argv[1:]
    if mode == "write":
        asyncio.run(write(url, args[0], int(args[1]), int(args[2])))
    elif mode == "consume":
        asyncio.run(consume(url, args[0], int(args[1])))
    elif mode == "hammer":
        asyncio.run(hammer(url, args[0], int(args[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
