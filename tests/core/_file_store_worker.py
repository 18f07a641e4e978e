"""Worker functions for the multi-process store tests, run by the public harness
(``s3db_async.testing.spawn_processes``), each in its own OS process on ``ctx.url``:

- :func:`race`: for each key the parent sends (``None`` ends it),
  ``put(key, pid, if_none_match=True)`` and report ``win`` or ``lose`` under the key.
- :func:`cas`: add 1 to the integer at ``ctx.args[0]`` ``ctx.args[1]`` times with
  compare-and-swap (retrying on PreconditionFailed); returns the number of retries.
- :func:`write_forever`: overwrite ``ctx.args[0]`` forever with bodies of ``ctx.args[1]``
  bytes, each filled with one byte value; reports ``ready`` after the first write (the test
  kills it).
"""

from __future__ import annotations

import os

from s3db_async.errors import PreconditionFailed
from s3db_async.stores import open_store
from s3db_async.testing import WorkerContext


async def race(ctx: WorkerContext) -> None:
    me = str(os.getpid()).encode()
    async with open_store(ctx.url) as store:
        await ctx.barrier("connected")
        while (key := await ctx.receive()) is not None:
            try:
                await store.put(key, me, if_none_match=True)
            except PreconditionFailed:
                await ctx.report(key, "lose")
            else:
                await ctx.report(key, "win")


async def cas(ctx: WorkerContext) -> int:
    key, n = ctx.args
    retries = 0
    async with open_store(ctx.url) as store:
        await ctx.barrier("connected")
        for _ in range(n):
            while True:
                obj = await store.get(key)
                try:
                    await store.put(key, str(int(obj.body) + 1).encode(), if_match=obj.etag)
                except PreconditionFailed:
                    retries += 1
                    continue
                break
    return retries


async def write_forever(ctx: WorkerContext) -> None:
    key, size = ctx.args
    async with open_store(ctx.url) as store:
        i = 0
        while True:
            await store.put(key, bytes([i % 256]) * size, {"version": str(i)})
            if i == 0:
                await ctx.report("ready")
            i += 1
