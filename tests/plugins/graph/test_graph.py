"""GraphPlugin (issue 20): vertices, edges, the adjacency index read by one LIST, BFS/DFS,
Dijkstra and A* checked against networkx on a random graph, connected components, subgraph,
export, typed errors and a crash between an edge record and its index keys.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import networkx as nx
import pytest
from s3db_async.plugins import GraphPlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, NotFoundError, ValidationError

Opener = Callable[..., Awaitable[tuple[Database, GraphPlugin]]]


@pytest.fixture
async def open_db(store_url: str) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(**options: Any) -> tuple[Database, GraphPlugin]:
        db = Database(store_url)
        await db.connect()
        opened.append(db)
        plugin = GraphPlugin(**options)
        await db.use_plugin(plugin)
        return db, plugin

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


async def collect(it: AsyncIterator[tuple[str, int]]) -> list[tuple[str, int]]:
    return [item async for item in it]


# -- configuration and bad input ---------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"vertices": ""}, "vertices"),
        ({"directed": "yes"}, "directed"),
        ({"concurrency": 0}, "concurrency"),
        ({"default_weight": "1"}, "default_weight"),  # was a ValidationError naming "weight"
    ],
)
def test_bad_options_are_typed_errors(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        GraphPlugin(**options)
    assert info.value.metadata["field"] == field and info.value.suggestion


async def test_bad_input_is_typed(open_db: Opener) -> None:
    _, g = await open_db()
    with pytest.raises(ValidationError) as info:
        await g.add_edge("a", "b", weight=float("nan"))
    assert info.value.metadata["field"] == "weight" and info.value.suggestion
    with pytest.raises(ValidationError) as info:
        await g.neighbors("a", direction="sideways")
    assert info.value.metadata["field"] == "direction"
    with pytest.raises(ValidationError) as info:
        await g.shortest_path("a", "b", algorithm="astar")
    assert info.value.metadata["field"] == "heuristic"
    with pytest.raises(ValidationError) as info:
        await g.shortest_path("a", "b", prefetch=-1)
    assert info.value.metadata["field"] == "prefetch"
    with pytest.raises(NotFoundError):
        await g.add_edge("x", "y", create_vertices=False)
    await g.add_edge("a", "b", weight=-1)
    with pytest.raises(ValidationError) as info:
        await g.shortest_path("a", "b")
    assert info.value.metadata["field"] == "weight"
    assert (await g.shortest_path("a", "b", weighted=False)) is not None


# -- vertices, edges, neighbours ---------------------------------------------------------
async def test_neighbors_degree_and_one_list_per_lookup(open_db: Opener) -> None:
    db, g = await open_db()
    await g.add_vertex("a", label="city", properties={"name": "A/1"})
    await g.add_edge("a", "b", weight=2, label="road")
    await g.add_edge("a", "c", weight=5, label="rail")
    await g.add_edge("c", "a", weight=1)
    await g.add_edge("we.ird id", "a")
    assert (await g.get_vertex("a"))["properties"] == {"name": "A/1"}  # type: ignore[index]
    assert await g.get_vertex("b") is not None  # endpoints are created
    db.store.stats.reset()
    assert sorted(await g.neighbors("a")) == ["b", "c"]
    assert db.store.stats.snapshot() == {"list": 1}  # never a scan, never a GET
    assert await g.neighbors("a", label="rail") == ["c"]
    assert sorted(await g.neighbors("a", direction="in")) == ["c", "we.ird id"]
    assert await g.degree("a") == 4
    assert await g.degree("a", direction="out") == 2
    edges = await g.neighbors("a", edges=True)
    assert {(e.neighbor, e.weight, e.label) for e in edges} == {
        ("b", 2.0, "road"),
        ("c", 5.0, "rail"),
    }
    # same edge again = same id, replaced; a new weight moves its index key
    eid = await g.add_edge("a", "b", weight=7, label="road")
    assert eid == g.edge_id("a", "b", "road")
    assert {e.weight for e in await g.neighbors("a", edges=True) if e.neighbor == "b"} == {7.0}
    assert await g.remove_edge(eid) and not await g.remove_edge(eid)
    assert await g.neighbors("a") == ["c"]
    assert await g.neighbors("b", direction="in") == []
    assert await g.remove_vertex("a") == 3
    assert await g.get_vertex("a") is None
    assert await g.neighbors("c", direction="both") == []


async def test_undirected_graph(open_db: Opener) -> None:
    _, g = await open_db(directed=False)
    eid = await g.add_edge("a", "b", weight=3)
    assert await g.add_edge("b", "a", weight=3) == eid  # one edge either way
    assert await g.neighbors("a") == ["b"] and await g.neighbors("b") == ["a"]
    assert (await g.shortest_path("b", "a")).cost == 3  # type: ignore[union-attr]

    async def zero(vertex: str, target: str) -> float:
        return 0.0

    found = await g.shortest_path("a", "b", algorithm="astar", heuristic=zero)
    assert found is not None and found.edges == [eid] and found.path == ["a", "b"]
    assert await g.shortest_path("a", "nowhere") is None
    await g.remove_edge(eid)
    assert await g.neighbors("b") == []


async def test_user_resources(open_db: Opener, store_url: str) -> None:
    db, g = await open_db(vertices="people", edges="knows")
    with pytest.raises(ConfigError):
        await g.add_vertex("p1")
    await db.create_resource("people", attributes={"name": "string|optional"})
    await db.create_resource(
        "knows",
        attributes={
            "source": "string",
            "target": "string",
            "label": "string|optional",
            "weight": "number|optional",
        },
    )
    await g.add_vertex("p1", name="Ana")
    await g.add_edge("p1", "p2")
    assert (await db.get_resource("people").get("p1"))["name"] == "Ana"
    assert await db.get_resource("knows").count() == 1
    # edges written straight to the resource become traversable after rebuild_index()
    await db.get_resource("knows").insert({"id": "k2", "source": "p2", "target": "p3"})
    assert await g.neighbors("p2") == []
    assert await g.rebuild_index() == 2
    assert await g.neighbors("p2") == ["p3"]


# -- traversals and paths ------------------------------------------------------------------
async def test_bfs_dfs_components_subgraph(open_db: Opener) -> None:
    _, g = await open_db()
    for a, b in [("r", "a"), ("r", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("x", "y")]:
        await g.add_edge(a, b)
    await g.add_vertex("lonely")
    bfs = await collect(g.bfs("r"))
    assert bfs[0] == ("r", 0) and sorted(bfs[1:3]) == [("a", 1), ("b", 1)]
    assert bfs[3:] == [("c", 2), ("d", 3)]
    assert await collect(g.bfs("r", max_depth=1)) == bfs[:3]
    dfs = await collect(g.dfs("r"))
    assert dfs == [("r", 0), ("a", 1), ("c", 2), ("d", 3), ("b", 1)]
    assert [v for v, _ in await collect(g.bfs("d", direction="in"))][-1] == "r"
    components = await g.connected_components()
    assert components == [{"r", "a", "b", "c", "d"}, {"x", "y"}, {"lonely"}]
    sub = await g.subgraph(["a", "c", "d", "missing"])
    assert set(sub.vertices) == {"a", "c", "d"}
    assert {(e["source"], e["target"]) for e in sub.edges.values()} == {("a", "c"), ("c", "d")}
    nxg = await g.to_networkx()
    assert isinstance(nxg, nx.MultiDiGraph)
    assert nxg.number_of_nodes() == 8 and nxg.number_of_edges() == 6
    assert (await g.to_networkx(["a", "c"])).number_of_edges() == 1


async def test_shortest_paths_match_networkx(open_db: Opener) -> None:
    db, g = await open_db()
    rng = random.Random(20)
    n = 40
    coords = {f"v{i:02d}": (rng.random() * 10, rng.random() * 10) for i in range(n)}
    reference = nx.DiGraph()
    reference.add_nodes_from(coords)
    for _ in range(120):
        a, b = rng.sample(sorted(coords), 2)
        (xa, ya), (xb, yb) = coords[a], coords[b]
        # weight >= euclidean distance, so the distance is an admissible A* heuristic
        weight = round(((xa - xb) ** 2 + (ya - yb) ** 2) ** 0.5 * (1 + rng.random()), 3)
        if reference.has_edge(a, b):
            continue
        reference.add_edge(a, b, weight=weight)
        await g.add_edge(a, b, weight=weight)

    def distance(v: str, target: str) -> float:
        (xa, ya), (xb, yb) = coords[v], coords[target]
        return float(((xa - xb) ** 2 + (ya - yb) ** 2) ** 0.5)

    checked = 0
    for _ in range(12):
        s, t = rng.sample(sorted(coords), 2)
        try:
            expected = nx.dijkstra_path_length(reference, s, t)
        except nx.NetworkXNoPath:
            assert await g.shortest_path(s, t) is None
            continue
        db.store.stats.reset()
        found = await g.shortest_path(s, t)
        assert found is not None and found.cost == pytest.approx(expected)
        assert db.store.stats.snapshot() == {"list": found.expanded}  # LISTs only
        assert found.path[0] == s and found.path[-1] == t
        assert sum(
            reference[a][b]["weight"] for a, b in zip(found.path, found.path[1:], strict=False)
        ) == (pytest.approx(expected))
        astar = await g.shortest_path(s, t, algorithm="astar", heuristic=distance)
        assert astar is not None and astar.cost == pytest.approx(expected)
        assert astar.expanded <= found.expanded
        db.store.stats.reset()
        ahead = await g.shortest_path(s, t, prefetch=4)
        assert ahead is not None and ahead.cost == pytest.approx(expected)
        assert ahead.expanded == found.expanded  # same search, lists fetched earlier
        assert db.store.stats["list"] >= found.expanded and set(db.store.stats) == {"list"}
        hops = await g.shortest_path(s, t, weighted=False)
        assert hops is not None and hops.cost == nx.shortest_path_length(reference, s, t)
        checked += 1
    assert checked >= 5


# -- faults --------------------------------------------------------------------------------
async def test_crash_between_edge_record_and_index_is_repaired(
    open_db: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, g = await open_db()
    storage = g.get_storage()
    real_set = storage.set

    async def dying_set(key: str, data: Any, **kw: Any) -> None:
        raise ConnectionError("process died before the index write")

    monkeypatch.setattr(storage, "set", dying_set)
    with pytest.raises(ConnectionError):
        await g.add_edge("a", "b", weight=4)
    monkeypatch.setattr(storage, "set", real_set)
    # the record is there, the index is not: harmless (not traversable), and repairable
    assert await g.get_edge(g.edge_id("a", "b")) is not None
    assert await g.neighbors("a") == []
    assert await g.rebuild_index() == 2
    assert await g.neighbors("a") == ["b"] and await g.neighbors("b", direction="in") == ["a"]
    # a crash during remove_edge (index gone, record left) is finished by repeating it
    real_delete = g.edges.delete

    async def dying_delete(record_id: str, **kw: Any) -> bool:
        raise ConnectionError("process died before the record delete")

    monkeypatch.setattr(g.edges, "delete", dying_delete)
    with pytest.raises(ConnectionError):
        await g.remove_edge(g.edge_id("a", "b"))
    monkeypatch.setattr(g.edges, "delete", real_delete)
    assert await g.neighbors("a") == []
    assert await g.remove_edge(g.edge_id("a", "b"))
    assert await g.get_edge(g.edge_id("a", "b")) is None
    assert await g.rebuild_index() == 0


async def test_state_is_shared_between_databases(open_db: Opener) -> None:
    _, g1 = await open_db()
    _, g2 = await open_db()
    await g1.add_edge("a", "b")
    await g2.add_edge("b", "c")
    path = await g2.shortest_path("a", "c")
    assert path is not None and path.path == ["a", "b", "c"]


async def test_events(open_db: Opener) -> None:
    _, g = await open_db()
    seen: list[tuple[str, str]] = []
    for name in ("graph.edge_added", "graph.edge_removed", "graph.vertex_removed"):
        g.on(name, lambda e, name=name: seen.append((name, e["id"])))
    eid = await g.add_edge("a", "b")
    await g.remove_vertex("a")
    assert seen == [
        ("graph.edge_added", eid),
        ("graph.edge_removed", eid),
        ("graph.vertex_removed", "a"),
    ]


async def test_namespaces_are_separate_graphs_and_purge_drops_everything(
    open_db: Opener,
) -> None:
    db, plain = await open_db()
    _, social = await open_db(namespace="social")
    await plain.add_edge("a", "b")
    await social.add_edge("a", "c")
    assert await plain.neighbors("a") == ["b"] and await social.neighbors("a") == ["c"]
    assert [e.id for e in await plain.all_edges()] == [plain.edge_id("a", "b")]
    vertices, edges = plain.vertices.name, plain.edges.name
    await plain.uninstall(purge_data=True)
    assert not db.resource_exists(vertices) and not db.resource_exists(edges)
    assert await db.store.list_keys("plugin=graph/adj/") == []
    assert await social.neighbors("a") == ["c"]


# -- audit (issue 20): what the page promises --------------------------------------------
async def test_bad_arguments_name_their_field(open_db: Opener) -> None:
    _, g = await open_db()
    await g.add_vertex("a")
    with pytest.raises(NotFoundError) as missing:
        await g.add_edge("a", "b", create_vertices=False)
    assert missing.value.metadata["field"] == "target" and missing.value.metadata["value"] == "b"
    with pytest.raises(NotFoundError) as missing:
        await g.add_edge("c", "a", create_vertices=False)
    assert missing.value.metadata["field"] == "source"
    for call in (
        lambda: g.add_vertex("v", properties=["name"]),  # type: ignore[arg-type]
        lambda: g.add_edge("a", "b", properties="heavy"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as info:
            await call()
        assert info.value.metadata["field"] == "properties" and info.value.suggestion
    with pytest.raises(ValidationError) as info:  # was a TypeError from `await "far"`
        await g.shortest_path("a", "b", algorithm="astar", heuristic=lambda v, t: "far")
    assert info.value.metadata["field"] == "heuristic"
    for walk in (g.bfs, g.dfs):
        with pytest.raises(ValidationError) as info:
            await collect(walk("a", max_depth="2"))  # type: ignore[arg-type]
        assert info.value.metadata["field"] == "max_depth"


async def test_to_networkx_and_subgraph_take_vertex_ids_as_documented(open_db: Opener) -> None:
    _, g = await open_db()
    await g.add_edge("a", "b")
    await g.add_edge("b", "c")
    part = await g.to_networkx(vertex_ids=["a", "b"])
    assert sorted(part.nodes) == ["a", "b"] and part.number_of_edges() == 1
    assert sorted((await g.subgraph(vertex_ids=["b", "c"])).vertices) == ["b", "c"]
