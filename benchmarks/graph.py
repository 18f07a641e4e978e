"""Section ``graph``: what a shortest path costs with the GraphPlugin (issue 20).

A random directed graph of 5,000 vertices (1,000 with ``--quick``) and 4 out-edges per
vertex with random weights is imported (``insert_many`` of the records, then
``rebuild_index()``); then Dijkstra runs between 10 random pairs. Reported per path
found: requests (all LISTs, one per expanded vertex), vertices expanded and seconds, also
with ``prefetch=8`` (the next vertices' LISTs in parallel); every cost is checked against
networkx's Dijkstra on the same graph. A pair with no path (its target has no way in) is
reported apart: proving it reads the adjacency of every vertex reachable from the source.
"""

from __future__ import annotations

import random
import time
from typing import Any

import networkx as nx
from s3db_async.plugins import GraphPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "graph: Dijkstra on a 5,000-vertex graph (requests and time per path, vs networkx)"
OUT_DEGREE = 4
PAIRS = 10
PREFETCH = 8


async def _store(ctx: BenchContext, store: str, n: int) -> dict[str, Any]:
    rng = random.Random(20)
    reference = nx.DiGraph()
    edges: list[dict[str, Any]] = []
    for i in range(n):
        for j in rng.sample(range(n), OUT_DEGREE):
            if j != i and not reference.has_edge(f"v{i}", f"v{j}"):
                w = round(rng.uniform(1, 100), 2)
                reference.add_edge(f"v{i}", f"v{j}", weight=w)
                edges.append({"id": f"e{i}-{j}", "source": f"v{i}", "target": f"v{j}", "weight": w})
    graph = GraphPlugin(concurrency=64)
    async with Database(ctx.url(store), plugins=[graph], parallelism=64) as db:
        started = time.perf_counter()
        await graph.vertices.insert_many({"id": f"v{i}"} for i in range(n))
        await graph.edges.insert_many(edges)
        await graph.rebuild_index()
        build_s = time.perf_counter() - started
        rows = []
        for _ in range(PAIRS):
            s, t = rng.sample(range(n), 2)
            db.store.stats.reset()
            started = time.perf_counter()
            found = await graph.shortest_path(f"v{s}", f"v{t}")
            seconds = time.perf_counter() - started
            requests = db.store.stats.total()
            db.store.stats.reset()
            started = time.perf_counter()
            ahead = await graph.shortest_path(f"v{s}", f"v{t}", prefetch=PREFETCH)
            ahead_seconds = time.perf_counter() - started
            ahead_requests = db.store.stats.total()
            assert (ahead is None) == (found is None)
            nx_started = time.perf_counter()
            try:
                expected: float | None = nx.dijkstra_path_length(reference, f"v{s}", f"v{t}")
            except nx.NetworkXNoPath:
                expected = None
            nx_seconds = time.perf_counter() - nx_started
            got = None if found is None else found.cost
            assert (got is None) == (expected is None) and (
                got is None or expected is None or abs(got - expected) < 1e-6
            ), (s, t, got, expected)
            rows.append(
                {
                    "found": found is not None,
                    "requests": requests,
                    "expanded": 0 if found is None else found.expanded,
                    "seconds": seconds,
                    "prefetch_requests": ahead_requests,
                    "prefetch_seconds": ahead_seconds,
                    "networkx_seconds": nx_seconds,
                }
            )
    # A pair with no path costs a LIST per vertex reachable from the source (the whole
    # search proves there is none): reported apart, not averaged into the paths found.
    unreachable = [r for r in rows if not r["found"]]
    rows = [r for r in rows if r["found"]]
    count = len(rows)
    return {
        "vertices": n,
        "edges": len(edges),
        "build_seconds": round(build_s, 2),
        "pairs": PAIRS,
        "unreachable_pairs": len(unreachable),
        "requests_per_unreachable_pair": [r["requests"] for r in unreachable],
        "paths": count,
        "requests_per_path": round(sum(r["requests"] for r in rows) / count, 1),
        "expanded_per_path": round(sum(r["expanded"] for r in rows) / count, 1),
        "seconds_per_path": round(sum(r["seconds"] for r in rows) / count, 3),
        "prefetch": PREFETCH,
        "prefetch_requests_per_path": round(sum(r["prefetch_requests"] for r in rows) / count, 1),
        "prefetch_seconds_per_path": round(sum(r["prefetch_seconds"] for r in rows) / count, 3),
        "networkx_seconds_per_path": round(sum(r["networkx_seconds"] for r in rows) / count, 5),
        "costs_match_networkx": True,
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    n = 1_000 if ctx.quick else 5_000
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, n)
        ctx.log(
            f"graph {store}: Dijkstra on {n} vertices / {row['edges']} edges: "
            f"{row['requests_per_path']} requests (LIST) and {row['seconds_per_path']} s per "
            f"path found ({row['paths']} of {PAIRS} pairs; {row['expanded_per_path']} "
            f"vertices expanded; prefetch={PREFETCH}: "
            f"{row['prefetch_requests_per_path']} requests, {row['prefetch_seconds_per_path']} s;"
            f" networkx "
            f"{row['networkx_seconds_per_path']} s in memory), costs equal to networkx; "
            f"build {row['build_seconds']} s; unreachable pairs: {row['unreachable_pairs']} "
            f"(LISTs to prove it: {row['requests_per_unreachable_pair']})"
        )
        out[store] = row
    return out
