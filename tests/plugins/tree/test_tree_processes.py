"""TreePlugin across real OS processes: 4 writers adding, moving and deleting nodes of one
nested-set tree at once stay serialized (s3db.js keeps its lock in a per-process map, so two
processes corrupt lft/rgt); ``verify()`` must find the structure intact afterwards.

Under ``CI=true`` a SeaweedFS that cannot start fails the run (the server fixture raises).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from s3db_async.plugins import TreePlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, run_processes, spawn_processes

PROCESSES, OPS = 4, 12

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


def plugin(driver: str) -> TreePlugin:
    return TreePlugin(resources={"cats": {"driver": driver}}, lock_ttl=30, lock_timeout=120)


async def writer(ctx: WorkerContext) -> int:
    """Add children under random nodes, move some subtrees, delete a few; returns the number
    of nodes this worker added minus those it deleted."""
    (driver,) = ctx.args
    rng = random.Random(ctx.index)
    async with Database(ctx.url, plugins=[plugin(driver)]) as db:
        tree = db.plugins.get(TreePlugin)
        await ctx.barrier("connected")
        mine: list[str] = []
        added = deleted = 0
        for i in range(OPS):
            roots = await tree.roots("cats")
            pool = [*roots, *mine]
            if i % 6 == 5 and mine:  # delete one node; its children move up
                victim = mine.pop(rng.randrange(len(mine)))
                deleted += len(await tree.delete("cats", victim, mode="reparent"))
            elif i % 4 == 3 and len(mine) > 2:
                node, target = rng.choice(mine), rng.choice(pool)
                try:
                    await tree.move("cats", node, target)
                except Exception as exc:  # moving under its own subtree, or a deleted node
                    assert type(exc).__name__ in {"ValidationError", "NotFoundError"}, exc
            else:
                try:
                    rec = await tree.add_child("cats", rng.choice(pool), {"name": f"{ctx.index}"})
                    mine.append(rec.id)
                    added += 1
                except Exception as exc:  # its parent was deleted by another process
                    assert type(exc).__name__ == "NotFoundError", exc
        return added - deleted


async def doomed(ctx: WorkerContext) -> None:
    """Insert a child of ``ctx.args[0]`` and stop at ``ctx.args[1]`` to be SIGKILLed:
    ``inserted`` (record written, not linked) or ``locked`` (holding the tree lock)."""
    parent, point = ctx.args
    tree = TreePlugin(resources={"cats": {}}, lock_ttl=1, lock_timeout=30)
    async with Database(ctx.url, plugins=[tree]):

        async def pause(*args: Any, **kwargs: Any) -> None:
            await ctx.report("paused", point)
            await ctx.receive()  # never comes: the test kills us here

        if point == "inserted":
            tree._mutate = pause  # type: ignore[method-assign]
        else:
            tree.get_storage().update = pause  # type: ignore[method-assign]
        await tree.add_child("cats", parent, {"name": "doomed"})


@pytest.mark.parametrize("point", ["inserted", "locked"])
async def test_a_sigkill_mid_write_leaves_a_consistent_tree_and_a_lock_others_take_over(
    store_url: str, point: str
) -> None:
    tree = TreePlugin(resources={"cats": {}}, lock_ttl=1, lock_timeout=30)
    async with Database(store_url, plugins=[tree]) as db:
        await db.create_resource("cats", attributes={"name": "string"})
        root = await tree.create_root("cats", {"name": "root"})
    async with spawn_processes(doomed, store_url, 1, (root.id, point)) as group:
        index, got = await group.wait_for("paused")
        assert got == point
        group.kill(index)
        (outcome,) = await group.outcomes()
    assert outcome.killed
    tree = TreePlugin(resources={"cats": {}}, lock_ttl=1, lock_timeout=30)
    async with Database(store_url, plugins=[tree]) as db:
        child = await tree.add_child("cats", root.id, {"name": "after"})  # waits out the lock
        assert await tree.descendants("cats", root.id) == [child.id]
        report = await tree.verify("cats")
        assert report.ok, report.errors
        assert len(report.untracked) == 1  # the doomed record, never linked
        assert await tree.purge_untracked("cats") == report.untracked
        assert (await tree.verify("cats")).untracked == []


@pytest.mark.parametrize("driver", ["nested_set", "adjacency"])
async def test_four_processes_writing_one_tree_leave_it_consistent(
    store_url: str, driver: str
) -> None:
    async with Database(store_url, plugins=[plugin(driver)]) as db:
        await db.create_resource("cats", attributes={"name": "string"})
        tree = db.plugins.get(TreePlugin)
        root = await tree.create_root("cats", {"name": "root"})
    added = await run_processes(writer, store_url, PROCESSES, args=(driver,), timeout=600)
    async with Database(store_url, plugins=[plugin(driver)]) as db:
        tree = db.plugins.get(TreePlugin)
        report = await tree.verify("cats")
        assert report.ok, report.errors
        assert report.untracked == []
        assert report.nodes == 1 + sum(added)
        everything = [root.id, *await tree.descendants("cats", root.id)]
        assert len(everything) == report.nodes  # nobody was moved out of the single tree
