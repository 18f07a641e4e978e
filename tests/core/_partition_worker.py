"""The worker moving partition values for the partition property tests, run in separate OS
processes by the public harness (``s3db_async.testing.spawn_processes``).

:func:`move` waits at barrier ``connected``, then runs ``ctx.args[1]`` coroutines that each
do ``ctx.args[2]`` operations on the ``moves`` resource (see :func:`define`), seeded with
``ctx.args[0] + ctx.index`` (each process its own seed): mostly ``update`` setting
``region`` to a random value on a random record, sometimes a partition read or count
(results are not checked here: the test checks the property after quiescence). Returns
``"done"`` (or is killed by the test).
"""

from __future__ import annotations

import random

import anyio

from s3db_async import Database, Resource
from s3db_async.testing import WorkerContext

REGIONS = ("eu", "us", "asia", "sa")
IDS = tuple(f"r{i}" for i in range(6))


async def define(db: Database) -> Resource:
    """The resource the workers and the test share."""
    return await db.create_resource(
        "moves",
        attributes={"region": "string", "n": "integer"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )


async def _worker(res: Resource, rng: random.Random, rounds: int) -> None:
    for _ in range(rounds):
        roll = rng.random()
        rid = rng.choice(IDS)
        region = rng.choice(REGIONS)
        if roll < 0.8:
            await res.update(rid, lambda r, v=region: {"region": v, "n": r["n"] + 1})
        elif roll < 0.9:
            await res.list(partition="by_region", partition_values={"region": region})
        else:
            await res.count(partition="by_region", partition_values={"region": region})


async def move(ctx: WorkerContext) -> str:
    base_seed, coroutines, rounds = ctx.args
    seed = base_seed + ctx.index
    async with Database(ctx.url) as db:
        res = await define(db)
        await ctx.barrier("connected")
        async with anyio.create_task_group() as tg:
            for i in range(coroutines):
                tg.start_soon(_worker, res, random.Random(seed * 1000 + i), rounds)
    return "done"
