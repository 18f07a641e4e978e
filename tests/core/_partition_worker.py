"""A separate OS process moving partition values, for the partition property tests.

``python _partition_worker.py URL SEED COROUTINES ROUNDS``: waits for a line on stdin, then
runs COROUTINES coroutines that each do ROUNDS operations on the ``moves`` resource (see
:func:`define`): mostly ``update`` setting ``region`` to a random value on a random
record, sometimes a partition read or count (results are not checked here: the test
checks the property after quiescence). Answers ``done`` (or is killed by the test).
"""

from __future__ import annotations

import random
import sys

import anyio
import anyio.to_thread

from s3db_async import Database, Resource

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


async def main(argv: list[str]) -> None:
    url, seed, coroutines, rounds = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    async with Database(url) as db:
        res = await define(db)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        async with anyio.create_task_group() as tg:
            for i in range(coroutines):
                tg.start_soon(_worker, res, random.Random(seed * 1000 + i), rounds)
    sys.stdout.write("done\n")
    sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
