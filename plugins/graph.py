"""GraphPlugin: vertices and edges on S3, neighbour lookups by LIST, traversals, paths.

::

    graph = GraphPlugin()                                   # plugin-owned resources, directed
    await db.use_plugin(graph)
    await graph.add_vertex("a", label="city", properties={"name": "Lisbon"})
    await graph.add_edge("a", "b", weight=3.5, label="road")
    path = await graph.shortest_path("a", "c")              # Dijkstra; algorithm="astar" too

How it works:

- **Records.** A vertex is a record of the vertex resource (``id``, ``label``,
  ``properties``), an edge a record of the edge resource (``source``, ``target``, ``label``,
  ``weight``, ``properties``). Both are plugin resources (``plg_graph_vertices``,
  ``plg_graph_edges``) unless ``vertices=``/``edges=`` name resources of your own, which
  must have those fields.
- **Adjacency index.** Every edge also writes one empty key per endpoint in the plugin's
  storage, ``adj/{out|in}/{vertex}/{neighbour}/{edge id}/{weight}/l{label}`` (each part
  percent-encoded). The neighbours of a vertex, their edge ids, weights and labels are
  therefore one LIST by prefix (one request per 1,000 edges), never a scan and never a GET:
  traversals and path searches read only LISTs. An undirected graph writes ``out`` keys in
  both directions.
- **Order of writes.** ``add_edge`` writes the edge record first and the index keys after;
  ``remove_edge`` deletes the index keys first and the record last. A process that dies in
  between leaves an edge record without (some of) its index keys: repeating the call
  finishes it, and :meth:`GraphPlugin.rebuild_index` rewrites the whole index from the
  edge records.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from s3db_async import Resource
from s3db_async.errors import ConfigError, NotFoundError, ValidationError
from s3db_async.plugin import Dependency, Plugin, require_dependencies

__all__ = ["Edge", "GraphPlugin", "PathResult", "Subgraph"]

DIRECTIONS = ("out", "in", "both")
ALGORITHMS = ("dijkstra", "astar")
_VERTEX_ATTRIBUTES = {"label": "string|optional", "properties": "json|optional"}
_EDGE_ATTRIBUTES = {
    "source": "string|required",
    "target": "string|required",
    "label": "string|optional",
    "weight": "number|optional",
    "properties": "json|optional",
}
Heuristic = Callable[[str, str], float | Awaitable[float]]


def _q(value: str) -> str:
    return quote(value, safe="").replace(".", "%2E")  # no '.'/'..' segment


def _bad_input(what: str, field_name: str, reason: str, suggestion: str, value: Any) -> Exception:
    return ValidationError(
        f"GraphPlugin.{what}: {field_name} {reason}",
        suggestion=suggestion,
        metadata={"field": field_name, "reason": reason, "value": repr(value)},
    )


def _check_id(what: str, field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad_input(what, field_name, "must be a non-empty string", "pass 'v1'", value)
    return value


def _check_weight(what: str, value: Any, name: str = "weight") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad_input(what, name, "must be a finite number", f"pass {name}=1.0", value)
    return float(value)


def _check_depth(what: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _bad_input(what, "max_depth", "must be an integer >= 0 or None", "pass 3", value)
    return value


def _check_properties(what: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise _bad_input(
            what, "properties", "must be a dict", "pass properties={'name': 'Lisbon'}", value
        )


def _check_direction(what: str, direction: str) -> str:
    if direction not in DIRECTIONS:
        raise _bad_input(
            what, "direction", "is not a direction", f"use one of {DIRECTIONS}", direction
        )
    return direction


@dataclass(frozen=True)
class Edge:
    """One edge as the adjacency index holds it (seen from ``vertex``)."""

    id: str
    vertex: str
    """The vertex whose adjacency list this came from."""
    neighbor: str
    weight: float
    label: str
    direction: str
    """``out`` (``vertex -> neighbor``) or ``in`` (``neighbor -> vertex``)."""


@dataclass(frozen=True)
class PathResult:
    """A path found by :meth:`GraphPlugin.shortest_path`."""

    path: list[str]
    """Vertex ids from source to target."""
    cost: float
    """Sum of the edge weights (the number of hops when ``weighted=False``)."""
    edges: list[str]
    """Edge ids along the path."""
    expanded: int
    """Vertices whose adjacency list was read (one LIST each)."""


@dataclass
class Subgraph:
    """Vertices (id -> record data) and edges (id -> record data) of part of the graph."""

    vertices: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)


class GraphPlugin(Plugin):
    """A property graph: vertex and edge resources, an adjacency index read by LIST, BFS/DFS,
    Dijkstra and A*, connected components, subgraphs and export to networkx.

    :param vertices: the vertex resource's name (default: the plugin resource ``vertices``).
    :param edges: the edge resource's name (default: the plugin resource ``edges``).
    :param directed: ``False`` makes every edge traversable both ways.
    :param default_weight: the weight of an edge added without one.
    :param concurrency: parallel requests when reading many adjacency lists or records.
    """

    name = "graph"
    dependencies = (Dependency("networkx", extra="graph", min_version="3"),)

    def __init__(
        self,
        *,
        vertices: str | None = None,
        edges: str | None = None,
        directed: bool = True,
        default_weight: float = 1.0,
        concurrency: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        for opt, value in (("vertices", vertices), ("edges", edges)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"GraphPlugin: {opt} must be a resource name",
                    suggestion=f"pass {opt}='my_{opt}' or leave it out for a plugin resource",
                    metadata={"field": opt, "reason": "not a name", "value": repr(value)},
                )
        if not isinstance(directed, bool):
            raise ConfigError(
                "GraphPlugin: directed must be True or False",
                suggestion="pass directed=False for an undirected graph",
                metadata={"field": "directed", "reason": "not a bool", "value": repr(directed)},
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(
                "GraphPlugin: concurrency must be a positive integer",
                suggestion="pass concurrency=16",
                metadata={"field": "concurrency", "reason": "not >= 1", "value": repr(concurrency)},
            )
        try:
            self.default_weight = _check_weight("__init__", default_weight, "default_weight")
        except ValidationError as exc:  # an option: a ConfigError like the others
            raise ConfigError(
                str(exc.args[0]) if exc.args else "GraphPlugin: bad default_weight",
                suggestion="pass default_weight=1.0",
                metadata=dict(exc.metadata),
            ) from None
        self.vertices_name = vertices
        self.edges_name = edges
        self.directed = directed
        self.concurrency = concurrency
        self._vertices: Resource | None = None
        self._edges: Resource | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def on_install(self) -> None:
        if self.vertices_name is None:
            self._vertices = await self.create_plugin_resource(
                "vertices", attributes=_VERTEX_ATTRIBUTES
            )
        if self.edges_name is None:
            self._edges = await self.create_plugin_resource("edges", attributes=_EDGE_ATTRIBUTES)

    def _graph_resource(self, which: str) -> Resource:
        cached = self._vertices if which == "vertices" else self._edges
        if cached is not None:
            return cached
        name = self.vertices_name if which == "vertices" else self.edges_name
        assert name is not None
        if not self.db.resource_exists(name):
            raise ConfigError(
                f"GraphPlugin: the {which} resource {name!r} does not exist",
                suggestion=f"create it first: await db.create_resource({name!r}, attributes=...)",
                metadata={"field": which, "reason": "missing resource", "value": name},
            )
        return self.db.get_resource(name)

    @property
    def vertices(self) -> Resource:
        """The vertex resource."""
        return self._graph_resource("vertices")

    @property
    def edges(self) -> Resource:
        """The edge resource."""
        return self._graph_resource("edges")

    # -- keys --------------------------------------------------------------------------
    async def _list(self, sub_prefix: str) -> list[str]:
        # straight to the store: one LIST request per 1,000 keys (PluginStorage.list would
        # first LIST the namespaces to leave out, which this plugin's keys never include)
        storage = self.get_storage()
        return list(await self.db.store.list_keys(storage.get_plugin_key(None) + "/" + sub_prefix))

    def _edge_keys(self, eid: str, src: str, dst: str, weight: float, label: str) -> list[str]:
        tail = (
            f"{_q(eid)}/{weight!r}/l{_q(label)}"  # 'l' prefix: an empty label is no empty segment
        )
        if self.directed:
            return [f"adj/out/{_q(src)}/{_q(dst)}/{tail}", f"adj/in/{_q(dst)}/{_q(src)}/{tail}"]
        keys = [f"adj/out/{_q(src)}/{_q(dst)}/{tail}", f"adj/out/{_q(dst)}/{_q(src)}/{tail}"]
        return sorted(set(keys))

    def _parse(self, full_key: str, direction: str) -> Edge:
        parts = full_key.split("/")
        vertex, neighbor, eid, weight, label = parts[-5:]
        return Edge(
            id=unquote(eid),
            vertex=unquote(vertex),
            neighbor=unquote(neighbor),
            weight=float(weight),
            label=unquote(label[1:]),
            direction=direction,
        )

    def edge_id(self, source: str, target: str, label: str = "") -> str:
        """The default id of the edge ``source -> target`` with ``label`` (deterministic, so
        adding the same edge twice is one edge; endpoints are sorted when undirected)."""
        a, b = (source, target) if self.directed else tuple(sorted((source, target)))
        digest = hashlib.sha256(f"{a}\0{b}\0{label}".encode()).hexdigest()
        return f"e{digest[:24]}"

    # -- vertices ----------------------------------------------------------------------
    async def add_vertex(
        self,
        vertex_id: str,
        *,
        label: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create or replace vertex ``vertex_id`` (an upsert: one PUT)."""
        _check_id("add_vertex", "vertex_id", vertex_id)
        _check_properties("add_vertex", properties)
        data: dict[str, Any] = {"id": vertex_id, **fields}
        if label is not None:
            data["label"] = label
        if properties is not None:
            data["properties"] = dict(properties)
        return dict(await self.vertices.upsert(data))

    async def get_vertex(self, vertex_id: str) -> dict[str, Any] | None:
        """The vertex record, or ``None``."""
        record = await self.vertices.get_or_none(_check_id("get_vertex", "vertex_id", vertex_id))
        return None if record is None else dict(record)

    async def remove_vertex(self, vertex_id: str) -> int:
        """Remove a vertex and every edge touching it; returns the number of edges removed."""
        _check_id("remove_vertex", "vertex_id", vertex_id)
        incident = await self.neighbors(vertex_id, direction="both", edges=True)
        removed = 0
        for edge in {e.id: e for e in incident}.values():
            if await self.remove_edge(edge.id):
                removed += 1
        await self.vertices.delete(vertex_id)
        self.emit("graph.vertex_removed", self._payload(id=vertex_id, edges=removed))
        return removed

    # -- edges -------------------------------------------------------------------------
    async def add_edge(
        self,
        source: str,
        target: str,
        *,
        weight: float | None = None,
        label: str = "",
        properties: Mapping[str, Any] | None = None,
        edge_id: str | None = None,
        create_vertices: bool = True,
    ) -> str:
        """Add (or replace) the edge ``source -> target``; returns its id.

        The edge record is written first, then its index keys (2 PUTs); replacing an edge
        whose weight or label changed drops its old index keys.

        :param create_vertices: upsert missing endpoints as bare vertices; ``False`` raises
            :class:`NotFoundError` when one is missing.
        """
        _check_id("add_edge", "source", source)
        _check_id("add_edge", "target", target)
        if not isinstance(label, str):
            raise _bad_input("add_edge", "label", "must be a string", "pass label='road'", label)
        _check_properties("add_edge", properties)
        w = self.default_weight if weight is None else _check_weight("add_edge", weight)
        eid = edge_id if edge_id is not None else self.edge_id(source, target, label)
        _check_id("add_edge", "edge_id", eid)
        ends = {source: "source"}
        ends.setdefault(target, "target")
        for vertex, end in ends.items():
            if not await self.vertices.exists(vertex):
                if not create_vertices:
                    raise NotFoundError(
                        f"GraphPlugin.add_edge: {end} vertex {vertex!r} does not exist",
                        suggestion="add_vertex() it first or pass create_vertices=True",
                        metadata={"field": end, "reason": "missing", "value": vertex},
                    )
                await self.vertices.upsert({"id": vertex})
        old = await self.edges.get_or_none(eid)
        data: dict[str, Any] = {
            "id": eid,
            "source": source,
            "target": target,
            "label": label,
            "weight": w,
        }
        if properties is not None:
            data["properties"] = dict(properties)
        await self.edges.upsert(data)
        new_keys = self._edge_keys(eid, source, target, w, label)
        storage = self.get_storage()
        await asyncio.gather(*(storage.set(key, 1) for key in new_keys))
        if old is not None:
            stale = set(self._record_keys(old)) - set(new_keys)
            await asyncio.gather(*(storage.delete(key) for key in stale))
        self.emit(
            "graph.edge_added",
            self._payload(id=eid, source=source, target=target, weight=w, label=label),
        )
        return eid

    def _record_keys(self, record: Mapping[str, Any]) -> list[str]:
        weight = record.get("weight")
        return self._edge_keys(
            str(record["id"]),
            str(record["source"]),
            str(record["target"]),
            self.default_weight if weight is None else float(weight),
            str(record.get("label") or ""),
        )

    async def get_edge(self, edge_id: str) -> dict[str, Any] | None:
        """The edge record, or ``None``."""
        record = await self.edges.get_or_none(_check_id("get_edge", "edge_id", edge_id))
        return None if record is None else dict(record)

    async def remove_edge(self, edge_id: str) -> bool:
        """Remove an edge: its index keys first, its record last. ``False`` if missing."""
        record = await self.edges.get_or_none(_check_id("remove_edge", "edge_id", edge_id))
        if record is None:
            return False
        storage = self.get_storage()
        await asyncio.gather(*(storage.delete(key) for key in self._record_keys(record)))
        await self.edges.delete(edge_id)
        self.emit(
            "graph.edge_removed",
            self._payload(id=edge_id, source=record["source"], target=record["target"]),
        )
        return True

    async def rebuild_index(self) -> int:
        """Rewrite the adjacency index from the edge records (after a crash, or for edges
        written straight to a resource of your own); returns the number of keys written.
        Index keys whose edge no longer exists are deleted."""
        storage = self.get_storage()
        wanted: set[str] = set()
        async for record in self.edges.stream():
            wanted.update(self._record_keys(record))
        root = len(storage.get_plugin_key(None)) + 1
        existing = {k[root:] for k in await self._list("adj/")}
        sem = asyncio.Semaphore(self.concurrency)

        async def put(key: str) -> None:
            async with sem:
                await storage.set(key, 1)

        async def drop(key: str) -> None:
            async with sem:
                await storage.delete(key)

        await asyncio.gather(*(put(k) for k in wanted - existing))
        await asyncio.gather(*(drop(k) for k in existing - wanted))
        return len(wanted - existing)

    # -- adjacency -----------------------------------------------------------------------
    async def _adjacent(self, vertex: str, direction: str) -> list[Edge]:
        dirs = (
            ["out"]
            if not self.directed
            else (["out", "in"] if direction == "both" else [direction])
        )
        out: list[Edge] = []
        for d in dirs:
            for key in await self._list(f"adj/{d}/{_q(vertex)}/"):
                out.append(self._parse(key, d))
        return out

    async def neighbors(
        self,
        vertex_id: str,
        *,
        direction: str = "out",
        label: str | None = None,
        edges: bool = False,
    ) -> Any:
        """Neighbour ids of a vertex (one LIST; two for ``direction="both"`` when directed).

        :param direction: ``out``, ``in`` or ``both`` (an undirected graph ignores it).
        :param label: only edges with this label.
        :param edges: return :class:`Edge` objects instead of ids.
        """
        _check_id("neighbors", "vertex_id", vertex_id)
        found = await self._adjacent(vertex_id, _check_direction("neighbors", direction))
        if label is not None:
            found = [e for e in found if e.label == label]
        if edges:
            return found
        return list(dict.fromkeys(e.neighbor for e in found))

    async def degree(self, vertex_id: str, *, direction: str = "both") -> int:
        """The number of edges at a vertex in ``direction`` (LISTs only)."""
        _check_id("degree", "vertex_id", vertex_id)
        return len(await self._adjacent(vertex_id, _check_direction("degree", direction)))

    # -- traversal -----------------------------------------------------------------------
    async def bfs(
        self, start: str, *, direction: str = "out", max_depth: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Breadth-first ``(vertex, depth)`` from ``start`` (``start`` first, depth 0); each
        level's adjacency lists are read in parallel."""
        _check_id("bfs", "start", start)
        _check_direction("bfs", direction)
        _check_depth("bfs", max_depth)
        seen = {start}
        level = [start]
        depth = 0
        yield start, 0
        while level and (max_depth is None or depth < max_depth):
            depth += 1
            lists = await self._gather_adjacent(level, direction)
            nxt: list[str] = []
            for adjacent in lists:
                for edge in adjacent:
                    if edge.neighbor not in seen:
                        seen.add(edge.neighbor)
                        nxt.append(edge.neighbor)
                        yield edge.neighbor, depth
            level = nxt

    async def dfs(
        self, start: str, *, direction: str = "out", max_depth: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Depth-first pre-order ``(vertex, depth)`` from ``start``, neighbours in key order."""
        _check_id("dfs", "start", start)
        _check_direction("dfs", direction)
        _check_depth("dfs", max_depth)
        seen: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            vertex, depth = stack.pop()
            if vertex in seen:
                continue
            seen.add(vertex)
            yield vertex, depth
            if max_depth is not None and depth >= max_depth:
                continue
            adjacent = await self._adjacent(vertex, direction)
            for edge in reversed(adjacent):
                if edge.neighbor not in seen:
                    stack.append((edge.neighbor, depth + 1))

    async def _gather_adjacent(self, vertices: Iterable[str], direction: str) -> list[list[Edge]]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(vertex: str) -> list[Edge]:
            async with sem:
                return await self._adjacent(vertex, direction)

        return list(await asyncio.gather(*(one(v) for v in vertices)))

    async def shortest_path(
        self,
        source: str,
        target: str,
        *,
        algorithm: str = "dijkstra",
        heuristic: Heuristic | None = None,
        weighted: bool = True,
        direction: str = "out",
        prefetch: int = 0,
    ) -> PathResult | None:
        """The cheapest path from ``source`` to ``target``, or ``None`` when unreachable.

        Dijkstra, or A* (``algorithm="astar"``) guided by ``heuristic(vertex, target)``
        (sync or async; it must never overestimate the remaining cost). Reads one adjacency
        LIST per expanded vertex and no record.

        :param prefetch: also LIST, in parallel, the adjacency of up to this many of the next
            vertices in the queue (most are expanded next, so on a store with latency a path
            takes fewer round trips, for a few LISTs that may go unused).

        :raises ValidationError: a negative edge weight on the way, an unknown algorithm,
            or ``astar`` without a heuristic.
        """
        _check_id("shortest_path", "source", source)
        _check_id("shortest_path", "target", target)
        _check_direction("shortest_path", direction)
        if algorithm not in ALGORITHMS:
            raise _bad_input(
                "shortest_path", "algorithm", "is unknown", f"use one of {ALGORITHMS}", algorithm
            )
        if algorithm == "astar" and heuristic is None:
            raise _bad_input(
                "shortest_path",
                "heuristic",
                "is required for A*",
                "pass heuristic=lambda v, target: 0.0 (or an estimate that never overestimates)",
                None,
            )

        async def estimate(vertex: str) -> float:
            if heuristic is None:
                return 0.0
            value = heuristic(vertex, target)
            if inspect.isawaitable(value):
                value = await value
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise _bad_input(
                    "shortest_path",
                    "heuristic",
                    f"returned {value!r} for {vertex!r}, not a number",
                    "return a float estimate that never overestimates the remaining cost",
                    value,
                )
            return float(value)

        best: dict[str, float] = {source: 0.0}
        previous: dict[str, tuple[str, str]] = {}
        done: set[str] = set()
        heap: list[tuple[float, int, str]] = [(await estimate(source), 0, source)]
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise _bad_input(
                "shortest_path", "prefetch", "must be an integer >= 0", "pass prefetch=8", prefetch
            )
        fetched: dict[str, asyncio.Task[list[Edge]]] = {}

        def fetch(vertex: str) -> asyncio.Task[list[Edge]]:
            task = fetched.get(vertex)
            if task is None:
                task = fetched[vertex] = asyncio.ensure_future(self._adjacent(vertex, direction))
            return task

        try:
            return await self._search(
                source, target, heap, best, previous, done, estimate, weighted, fetch, prefetch
            )
        finally:
            for task in fetched.values():
                task.cancel()
            await asyncio.gather(*fetched.values(), return_exceptions=True)

    async def _search(
        self,
        source: str,
        target: str,
        heap: list[tuple[float, int, str]],
        best: dict[str, float],
        previous: dict[str, tuple[str, str]],
        done: set[str],
        estimate: Callable[[str], Awaitable[float]],
        weighted: bool,
        fetch: Callable[[str], asyncio.Task[list[Edge]]],
        prefetch: int,
    ) -> PathResult | None:
        counter = len(heap)
        expanded = 0
        while heap:
            _, _, vertex = heapq.heappop(heap)
            if vertex in done:
                continue
            done.add(vertex)
            if vertex == target:
                path, edge_ids = [vertex], []
                while path[-1] != source:
                    prev, eid = previous[path[-1]]
                    path.append(prev)
                    edge_ids.append(eid)
                return PathResult(path[::-1], best[target], edge_ids[::-1], expanded)
            expanded += 1
            adjacent = fetch(vertex)
            if prefetch:
                ahead = [v for _, _, v in heapq.nsmallest(prefetch * 2, heap) if v not in done]
                for upcoming in list(dict.fromkeys(ahead))[:prefetch]:
                    fetch(upcoming)
            for edge in await adjacent:
                if edge.weight < 0 and weighted:
                    raise _bad_input(
                        "shortest_path",
                        "weight",
                        f"of edge {edge.id!r} is negative",
                        "Dijkstra and A* need weights >= 0; use weighted=False for hop counts",
                        edge.weight,
                    )
                cost = best[vertex] + (edge.weight if weighted else 1.0)
                if edge.neighbor not in done and cost < best.get(edge.neighbor, math.inf):
                    best[edge.neighbor] = cost
                    previous[edge.neighbor] = (vertex, edge.id)
                    counter += 1
                    priority = cost + await estimate(edge.neighbor)
                    heapq.heappush(heap, (priority, counter, edge.neighbor))
        return None

    # -- whole graph ---------------------------------------------------------------------
    async def all_edges(self) -> list[Edge]:
        """Every edge as the index holds it (LISTs of the ``out`` keys only)."""
        return [self._parse(key, "out") for key in await self._list("adj/out/")]

    async def connected_components(self) -> list[set[str]]:
        """Weakly connected components (edge direction ignored), largest first. Reads the
        vertex ids and the index by LIST only, no record."""
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for vid in await self.vertices.list_ids():
            find(vid)
        for edge in await self.all_edges():
            a, b = find(edge.vertex), find(edge.neighbor)
            if a != b:
                parent[a] = b
        groups: dict[str, set[str]] = {}
        for vertex in list(parent):
            groups.setdefault(find(vertex), set()).add(vertex)
        return sorted(groups.values(), key=lambda g: (-len(g), min(g)))

    async def subgraph(self, vertex_ids: Iterable[str]) -> Subgraph:
        """The vertices given and the edges between them (records read with ``get_many``)."""
        ids = list(dict.fromkeys(_check_id("subgraph", "vertex_ids", v) for v in vertex_ids))
        wanted = set(ids)
        lists = await self._gather_adjacent(ids, "out")
        edge_ids = sorted({e.id for adj in lists for e in adj if e.neighbor in wanted})
        vertices = await self.vertices.get_many(ids)
        edges = await self.edges.get_many(edge_ids) if edge_ids else None
        sub = Subgraph()
        for record in vertices.ok:
            sub.vertices[record["id"]] = dict(record)
        for record in edges.ok if edges is not None else []:
            sub.edges[record["id"]] = dict(record)
        return sub

    async def to_networkx(self, vertex_ids: Iterable[str] | None = None) -> Any:
        """A ``networkx.MultiDiGraph`` (``MultiGraph`` when undirected) of the whole graph or
        of ``subgraph(vertex_ids)``: vertex and edge records become attributes, the edge id is
        the edge key.

        :raises MissingDependencyError: networkx is not installed (``pip install
            's3db-async[graph]'``).
        """
        require_dependencies(type(self).dependencies, plugin=self.name)
        import networkx as nx  # type: ignore[import-untyped,unused-ignore]

        if vertex_ids is None:
            sub = Subgraph()
            async for vertex in self.vertices.stream():
                sub.vertices[vertex["id"]] = dict(vertex)
            async for edge in self.edges.stream():
                sub.edges[edge["id"]] = dict(edge)
        else:
            sub = await self.subgraph(vertex_ids)
        graph = nx.MultiDiGraph() if self.directed else nx.MultiGraph()
        for vid, data in sub.vertices.items():
            graph.add_node(vid, **{k: v for k, v in data.items() if k != "id"})
        for eid, data in sub.edges.items():
            weight = data.get("weight")
            attrs = {k: v for k, v in data.items() if k not in ("id", "source", "target")}
            attrs["weight"] = self.default_weight if weight is None else float(weight)
            graph.add_edge(data["source"], data["target"], key=eid, **attrs)
        return graph
