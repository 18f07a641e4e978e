"""GraphPlugin across real OS processes (file, SeaweedFS).

3 processes add overlapping edge sets at once (shared edges are the same id, written by
several processes) while a 4th is SIGKILLed in the middle of adding edges. Afterwards one
``rebuild_index()`` leaves the index equal to the edge records, every edge of the three
builders is traversable, and shortest paths match networkx on the same edges.
"""

from __future__ import annotations

import asyncio
import random

import networkx as nx
import pytest
from s3db_async.plugins import GraphPlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

N = 12


def planned_edges(index: int) -> list[tuple[str, str, float, str]]:
    """Builder ``index``'s edges: a ring shared by all (same ids), plus its own chords."""
    ring = [(f"v{i}", f"v{(i + 1) % N}", 1.0, "ring") for i in range(N)]
    rng = random.Random(index)
    chords = []
    for _ in range(4):
        a, b = rng.sample(range(N), 2)
        chords.append((f"v{a}", f"v{b}", round(rng.uniform(0.5, 6), 2), f"b{index}"))
    return ring + chords


async def builder(ctx: WorkerContext) -> int:
    plugin = GraphPlugin()
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.barrier("go")
        for source, target, weight, label in planned_edges(ctx.index):
            await plugin.add_edge(source, target, weight=weight, label=label)
    return 0


async def doomed(ctx: WorkerContext) -> None:
    plugin = GraphPlugin()
    async with Database(ctx.url, plugins=[plugin]):
        i = 0
        while True:
            await plugin.add_edge(f"k{i}", f"k{i + 1}", label="doomed")
            i += 1
            if i == 3:
                await ctx.report("writing")


async def test_concurrent_builders_and_a_killed_writer(store_url: str) -> None:
    graph = GraphPlugin()
    async with Database(store_url, plugins=[graph]) as db:
        async with spawn_processes(doomed, store_url, 1) as killed:
            await killed.wait_for("writing", index=0)
            await asyncio.sleep(0.05)
            killed.kill(0)
            assert all(o.killed for o in await killed.outcomes())
        async with spawn_processes(builder, store_url, 3, auto_release=True) as group:
            outcomes = await group.outcomes()
        assert [o.value for o in outcomes] == [0, 0, 0], [o.traceback for o in outcomes]
        await graph.rebuild_index()
        records = {r["id"]: r async for r in graph.edges.stream()}
        indexed = await graph.all_edges()
        assert sorted(e.id for e in indexed) == sorted(records)  # index == records
        reference = nx.DiGraph()
        for index in range(3):
            for source, target, weight, label in planned_edges(index):
                eid = graph.edge_id(source, target, label)
                assert records[eid]["source"] == source and records[eid]["weight"] == weight
                old = reference.get_edge_data(source, target, {"weight": float("inf")})
                reference.add_edge(source, target, weight=min(weight, old["weight"]))
        # the killed writer's chain is whole up to where it died
        chain = sorted(int(r["source"][1:]) for r in records.values() if r["label"] == "doomed")
        assert chain == list(range(len(chain))) and len(chain) >= 3
        for target in range(1, N):
            found = await graph.shortest_path("v0", f"v{target}")
            expected = nx.dijkstra_path_length(reference, "v0", f"v{target}")
            assert found is not None and found.cost == pytest.approx(expected)
        assert len(await db.get_resource(graph.vertices.name).list_ids()) >= N
