"""TreePlugin: hierarchies over a resource, nested-set or adjacency-list, safe across processes.

::

    tree = TreePlugin(resources={"categories": {"driver": "nested_set"}})
    root = await tree.create_root("categories", {"name": "All"})
    shoes = await tree.add_child("categories", root.id, {"name": "Shoes"})
    await tree.descendants("categories", root.id)        # one GET of the structure

How it works:

- **Records hold the data, one structure document holds the shape.** Each node is a record of
  the resource; the tree itself (parent, and for ``nested_set`` the ``lft``/``rgt``/``depth``
  numbers) is one JSON document in the plugin's storage, ``tree/{resource}``. Every query
  (children, descendants, ancestors, path, depth, roots, ``get_tree`` ids) is one GET of that
  document; ``records=True`` adds one ``get_many`` for the records themselves.
- **Drivers.** ``nested_set`` renumbers intervals on writes (a child insert shifts every
  number to its right by two, a move cuts and re-inserts an interval) and answers descendants
  and ancestors by interval containment; ``adjacency`` stores only ``parent`` and an insertion
  order, so writes touch one entry and queries walk the parent links.
- **Writers are serialized by a storage lock** (``tree-{resource}``, taken with
  ``If-None-Match``) and every write of the structure is a compare-and-swap on its etag, so two
  processes never interleave a renumbering, even if a lock expired under a stalled writer.
- **Order of writes.** A new node's record is inserted first and linked into the structure
  second; a delete unlinks first and deletes records second. A process dying in between leaves
  only records that are not in the tree, which :meth:`TreePlugin.verify` lists as ``untracked``
  (not as errors) and :meth:`TreePlugin.purge_untracked` removes.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from s3db_async import Record, Resource
from s3db_async.errors import ConfigError, NotFoundError, ValidationError
from s3db_async.plugin import Plugin

__all__ = ["DRIVERS", "TreePlugin", "TreeReport"]

DRIVERS = ("nested_set", "adjacency")
_RULE_KEYS = {"driver"}
_HEAD_MAX = 50  # attach_many checks up to this many new ids with HEADs, more with one listing


def _config_error(field_: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"TreePlugin: {field_} {reason}",
        suggestion=suggestion,
        metadata={"field": field_, "reason": reason, "value": repr(value)},
    )


def _invalid(field_: str, reason: str, suggestion: str, value: Any = None) -> ValidationError:
    return ValidationError(
        f"TreePlugin: {field_} {reason}",
        errors=[{"field": field_, "reason": reason, "value": repr(value)}],
        suggestion=suggestion,
        metadata={"field": field_, "reason": reason, "value": repr(value)},
    )


def _missing(resource: str, node_id: str) -> NotFoundError:
    return NotFoundError(
        f"TreePlugin: node {node_id!r} is not in the tree of {resource!r}",
        suggestion="create it with create_root() or add_child() first",
        metadata={"field": "node_id", "reason": "not in tree", "value": node_id},
    )


@dataclass
class TreeReport:
    """What :meth:`TreePlugin.verify` found (``ok`` when ``errors`` is empty)."""

    resource: str
    driver: str
    nodes: int = 0
    errors: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    """Records of the resource that are not in the tree (leftovers of an interrupted write)."""

    @property
    def ok(self) -> bool:
        """True when the structure is consistent."""
        return not self.errors


# -- the structure document ------------------------------------------------------------------
# {"driver": d, "seq": n, "nodes": {id: {"parent": p|None, "order": k, "lft"?, "rgt"?, "depth"?}}}


def _empty(driver: str) -> dict[str, Any]:
    return {"driver": driver, "seq": 0, "nodes": {}}


def _children_map(nodes: Mapping[str, Any], nested: bool) -> dict[str | None, list[str]]:
    kids: dict[str | None, list[str]] = {}
    for nid, node in nodes.items():
        kids.setdefault(node["parent"], []).append(nid)
    key = (lambda n: nodes[n]["lft"]) if nested else (lambda n: nodes[n]["order"])
    for ids in kids.values():
        ids.sort(key=key)
    return kids


def _renumber(doc: dict[str, Any]) -> None:
    """Recompute lft/rgt/depth from the parent links (children keep their order)."""
    nodes = doc["nodes"]
    kids = _children_map(nodes, nested=False)
    counter = 0
    stack: list[tuple[str, int, bool]] = [(n, 0, False) for n in reversed(kids.get(None, []))]
    while stack:
        nid, depth, done = stack.pop()
        if done:
            counter += 1
            nodes[nid]["rgt"] = counter
            continue
        counter += 1
        nodes[nid]["lft"], nodes[nid]["depth"] = counter, depth
        stack.append((nid, depth, True))
        stack.extend((c, depth + 1, False) for c in reversed(kids.get(nid, [])))


class TreePlugin(Plugin):
    """Trees over resources: roots, children, siblings, subtree moves and deletes, ancestors,
    descendants, paths, nested ``get_tree``, ``verify()`` and ``rebuild()``.
    """

    def __init__(
        self,
        *,
        resources: Mapping[str, Mapping[str, Any] | str] | None = None,
        resource: str | None = None,
        driver: str = "nested_set",
        lock_ttl: float = 30.0,
        lock_timeout: float = 60.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        rules: dict[str, str] = {}
        if resources is not None and not isinstance(resources, Mapping):
            raise _config_error(
                "resources",
                "must be a dict",
                "pass resources={'categories': 'nested_set'}",
                resources,
            )
        given = dict(resources or {})
        if resource is not None:
            given.setdefault(resource, {"driver": driver})
        for name, rule in given.items():
            if isinstance(rule, str):
                rule = {"driver": rule}
            if not isinstance(rule, Mapping):
                raise _config_error(
                    f"resources[{name!r}]", "must be a dict", "pass {'driver': 'nested_set'}", rule
                )
            unknown = sorted(set(rule) - _RULE_KEYS)
            if unknown:
                raise _config_error(unknown[0], "is not a tree option", "use: driver", unknown)
            chosen = rule.get("driver", driver)
            if chosen not in DRIVERS:
                raise _config_error("driver", "is not a driver", f"use one of {DRIVERS}", chosen)
            rules[name] = chosen
        if not rules:
            raise _config_error(
                "resources", "is empty", "pass resources={'categories': {'driver': 'nested_set'}}"
            )
        for name, value in (("lock_ttl", lock_ttl), ("lock_timeout", lock_timeout)):
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if (
                not number
                or not math.isfinite(value)
                or value < 0
                or (name == "lock_ttl" and not value)
            ):
                raise _config_error(
                    name,
                    "must be a positive number of seconds"
                    if name == "lock_ttl"
                    else "must be a number of seconds >= 0",
                    "pass lock_ttl=30, lock_timeout=60",
                    value,
                )
        self.drivers = rules
        self.lock_ttl = float(lock_ttl)
        self.lock_timeout = float(lock_timeout)

    # -- plumbing ----------------------------------------------------------------------------
    def _driver(self, resource: str) -> str:
        if resource not in self.drivers:
            raise _config_error(
                "resource",
                f"{resource!r} has no tree",
                f"configure it: TreePlugin(resources={{{resource!r}: {{}}}})",
                resource,
            )
        return self.drivers[resource]

    @staticmethod
    def _key(resource: str) -> str:
        return f"tree/{resource}"

    async def _doc(self, resource: str) -> dict[str, Any]:
        driver = self._driver(resource)
        doc = await self.get_storage().get(self._key(resource))
        return doc if isinstance(doc, dict) else _empty(driver)

    async def _mutate(self, resource: str, fn: Any) -> dict[str, Any]:
        """Apply ``fn(doc)`` (which edits the doc in place) under the lock, as a CAS."""
        driver = self._driver(resource)
        storage = self.get_storage()

        def step(current: Any) -> dict[str, Any]:
            doc = copy.deepcopy(current) if isinstance(current, dict) else _empty(driver)
            fn(doc)
            return doc

        async with storage.lock(f"tree-{resource}", ttl=self.lock_ttl, timeout=self.lock_timeout):
            result: dict[str, Any] = await storage.update(self._key(resource), step)
        return result

    def _res(self, resource: str) -> Resource:
        return self.db.get_resource(resource)

    @staticmethod
    def _node(doc: Mapping[str, Any], resource: str, node_id: str) -> dict[str, Any]:
        node = doc["nodes"].get(node_id)
        if node is None:
            raise _missing(resource, node_id)
        return dict(node)

    # -- writes ------------------------------------------------------------------------------
    def _link(self, doc: dict[str, Any], resource: str, nid: str, parent: str | None) -> None:
        nodes = doc["nodes"]
        if nid in nodes:
            return  # a retried CAS step: already linked
        if parent is not None and parent not in nodes:
            raise _missing(resource, parent)
        doc["seq"] += 1
        entry: dict[str, Any] = {"parent": parent, "order": doc["seq"]}
        if doc["driver"] == "nested_set":
            if parent is None:
                right = max((n["rgt"] for n in nodes.values()), default=0)
                entry.update(lft=right + 1, rgt=right + 2, depth=0)
            else:
                at = nodes[parent]["rgt"]
                for node in nodes.values():  # open a gap of two at the parent's right edge
                    if node["rgt"] >= at:
                        node["rgt"] += 2
                    if node["lft"] > at:
                        node["lft"] += 2
                entry.update(lft=at, rgt=at + 1, depth=nodes[parent]["depth"] + 1)
        nodes[nid] = entry

    async def _add(
        self, resource: str, parent: str | None, data: Mapping[str, Any] | None
    ) -> Record:
        self._driver(resource)
        if parent is not None:  # fail before inserting when the parent is unknown
            self._node(await self._doc(resource), resource, parent)
        record = await self._res(resource).insert(dict(data or {}))
        try:
            await self._mutate(resource, lambda doc: self._link(doc, resource, record.id, parent))
        except NotFoundError:  # the parent was deleted meanwhile: take the record back
            await self._res(resource).delete(record.id)
            raise
        self._announce("tree.node_added", resource=resource, id=record.id, parent=parent)
        return record

    async def create_root(self, resource: str, data: Mapping[str, Any] | None = None) -> Record:
        """Insert a record as a new root (a resource may have several trees)."""
        return await self._add(resource, None, data)

    async def add_child(
        self, resource: str, parent_id: str, data: Mapping[str, Any] | None = None
    ) -> Record:
        """Insert a record as the last child of ``parent_id``.

        :raises NotFoundError: ``parent_id`` is not in the tree.
        """
        return await self._add(resource, parent_id, data)

    async def add_sibling(
        self, resource: str, sibling_id: str, data: Mapping[str, Any] | None = None
    ) -> Record:
        """Insert a record as the last child of ``sibling_id``'s parent (a root's sibling is a
        new root)."""
        node = self._node(await self._doc(resource), resource, sibling_id)
        return await self._add(resource, node["parent"], data)

    async def attach(self, resource: str, node_id: str, parent_id: str | None = None) -> None:
        """Put an existing record into the tree (as a root when ``parent_id`` is None)."""
        if not await self._res(resource).exists(node_id):
            raise _invalid("node_id", "has no record", "insert the record first", node_id)
        await self._mutate(resource, lambda doc: self._link(doc, resource, node_id, parent_id))

    async def attach_many(self, resource: str, links: Mapping[str, str | None]) -> int:
        """Link many existing records at once (``{id: parent_id or None}``, parents may come in
        any order): one structure write, e.g. to import a tree built elsewhere. Records already
        in the tree keep their place. Returns the number of nodes linked.

        :raises ValidationError: a parent is neither in ``links`` nor in the tree, or the links
            form a cycle.
        """
        wanted = dict(links)

        def link_all(doc: dict[str, Any]) -> None:
            pending = {k: v for k, v in wanted.items() if k not in doc["nodes"]}
            while pending:
                ready = [k for k, p in pending.items() if p is None or p in doc["nodes"]]
                if not ready:
                    bad = sorted(pending)[0]
                    raise _invalid(
                        "links",
                        f"parent of {bad!r} is missing or the links form a cycle",
                        "link every parent, in links or already in the tree",
                        pending[bad],
                    )
                for k in ready:
                    self._link(doc, resource, k, pending.pop(k))

        self._driver(resource)
        current = await self._doc(resource)
        before = len(current["nodes"])
        await self._require_records(resource, [k for k in wanted if k not in current["nodes"]])
        doc = await self._mutate(resource, link_all)
        return len(doc["nodes"]) - before

    async def _require_records(self, resource: str, ids: list[str]) -> None:
        """Raise ``ValidationError`` naming the first of ``ids`` without a record: one HEAD
        per id (16 at a time) for a few ids, one listing of the resource's ids for many."""
        if not ids:
            return
        res = self._res(resource)
        if len(ids) > _HEAD_MAX:
            stored = set(await res.list_ids())
            missing = [i for i in ids if i not in stored]
        else:
            sem = asyncio.Semaphore(16)

            async def exists(nid: str) -> bool:
                async with sem:
                    return await res.exists(nid)

            found = await asyncio.gather(*(exists(i) for i in ids))
            missing = [i for i, ok in zip(ids, found, strict=True) if not ok]
        if missing:
            raise _invalid(
                "links",
                "names ids without a record",
                "insert the records first (attach_many links existing records)",
                missing[:20],
            )

    def _move(self, doc: dict[str, Any], resource: str, nid: str, new_parent: str | None) -> None:
        nodes = doc["nodes"]
        node = self._node(doc, resource, nid)
        if new_parent is not None:
            self._node(doc, resource, new_parent)
            walk: str | None = new_parent
            while walk is not None:
                if walk == nid:
                    raise _invalid(
                        "new_parent_id",
                        "is the node itself or one of its descendants",
                        "move the node under a node outside its subtree",
                        new_parent,
                    )
                walk = nodes[walk]["parent"]
        if node["parent"] == new_parent:
            return
        doc["seq"] += 1
        nodes[nid]["parent"], nodes[nid]["order"] = new_parent, doc["seq"]
        if doc["driver"] != "nested_set":
            return
        lft, rgt = node["lft"], node["rgt"]
        width = rgt - lft + 1
        inside = [k for k, n in nodes.items() if lft <= n["lft"] <= rgt]
        for k in inside:  # lift the subtree out to negative numbers
            nodes[k]["lft"] -= rgt
            nodes[k]["rgt"] -= rgt
        moved = set(inside)
        for k, n in nodes.items():  # close the gap it left
            if k in moved:
                continue
            if n["lft"] > rgt:
                n["lft"] -= width
            if n["rgt"] > rgt:
                n["rgt"] -= width
        if new_parent is None:
            at = max((n["rgt"] for k, n in nodes.items() if k not in moved), default=0) + 1
            depth = 0
        else:
            at = nodes[new_parent]["rgt"]
            depth = nodes[new_parent]["depth"] + 1
            for k, n in nodes.items():  # open a gap of ``width`` at the new parent's right edge
                if k in moved:
                    continue
                if n["rgt"] >= at:
                    n["rgt"] += width
                if n["lft"] > at:
                    n["lft"] += width
        shift, ddepth = at + width - 1, depth - node["depth"]
        for k in inside:
            nodes[k]["lft"] += shift
            nodes[k]["rgt"] += shift
            nodes[k]["depth"] += ddepth

    async def move(self, resource: str, node_id: str, new_parent_id: str | None) -> None:
        """Move ``node_id`` and its subtree under ``new_parent_id`` (last child), or make it a
        root with ``None``.

        :raises ValidationError: the new parent is inside the subtree.
        """
        await self._mutate(resource, lambda doc: self._move(doc, resource, node_id, new_parent_id))
        self._announce("tree.node_moved", resource=resource, id=node_id, parent=new_parent_id)

    def _unlink(
        self, doc: dict[str, Any], resource: str, nid: str, mode: str, out: list[str]
    ) -> None:
        out.clear()
        nodes = doc["nodes"]
        if nid not in nodes:
            return  # a retried CAS step, or already deleted
        node = nodes[nid]
        if mode == "subtree":
            gone = [nid, *self._descendant_ids(doc, nid)]
        else:
            gone = [nid]
            kids = _children_map(nodes, doc["driver"] == "nested_set")
            siblings = kids.get(node["parent"], [])
            at = siblings.index(nid)
            # the children take the deleted node's place among its siblings
            for k in [*siblings[:at], *kids.get(nid, []), *siblings[at + 1 :]]:
                doc["seq"] += 1
                nodes[k]["parent"], nodes[k]["order"] = node["parent"], doc["seq"]
        for k in gone:
            del nodes[k]
        out.extend(gone)
        if doc["driver"] == "nested_set":
            _renumber_after_unlink(nodes, node, mode, len(gone))

    async def delete(self, resource: str, node_id: str, *, mode: str = "subtree") -> list[str]:
        """Delete a node: ``mode="subtree"`` deletes it and every descendant, ``"reparent"``
        moves its children up to its parent. Returns the ids of the records deleted.

        :raises NotFoundError: ``node_id`` is not in the tree.
        """
        if mode not in ("subtree", "reparent"):
            raise _invalid("mode", "is not a delete mode", "use 'subtree' or 'reparent'", mode)
        self._node(await self._doc(resource), resource, node_id)
        gone: list[str] = []
        await self._mutate(resource, lambda doc: self._unlink(doc, resource, node_id, mode, gone))
        if gone:
            await self._res(resource).delete_many(gone)
        self._announce("tree.node_deleted", resource=resource, id=node_id, deleted=list(gone))
        return gone

    # -- queries (one GET of the structure each) --------------------------------------------
    @staticmethod
    def _descendant_ids(doc: Mapping[str, Any], nid: str) -> list[str]:
        nodes = doc["nodes"]
        if doc["driver"] == "nested_set":
            lft, rgt = nodes[nid]["lft"], nodes[nid]["rgt"]
            inside = [k for k, n in nodes.items() if lft < n["lft"] < rgt]
            return sorted(inside, key=lambda k: nodes[k]["lft"])
        kids = _children_map(nodes, nested=False)
        out: list[str] = []
        stack = list(reversed(kids.get(nid, [])))
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(reversed(kids.get(k, [])))
        return out

    @staticmethod
    def _ancestor_ids(doc: Mapping[str, Any], nid: str) -> list[str]:
        nodes = doc["nodes"]
        if doc["driver"] == "nested_set":
            lft, rgt = nodes[nid]["lft"], nodes[nid]["rgt"]
            above = [k for k, n in nodes.items() if n["lft"] < lft and n["rgt"] > rgt]
            return sorted(above, key=lambda k: nodes[k]["lft"])
        out: list[str] = []
        walk = nodes[nid]["parent"]
        while walk is not None and walk not in out:
            out.append(walk)
            walk = nodes[walk]["parent"]
        return out[::-1]

    async def _records(self, resource: str, ids: list[str]) -> list[Record]:
        if not ids:
            return []
        result = await self._res(resource).get_many(ids)
        by_id = {r.id: r for r in result.ok}
        return [by_id[i] for i in ids if i in by_id]

    async def _answer(self, resource: str, ids: list[str], records: bool) -> list[Any]:
        return await self._records(resource, ids) if records else ids

    async def get_children(
        self, resource: str, node_id: str, *, records: bool = False
    ) -> list[Any]:
        """Direct children in order (ids, or records with ``records=True``)."""
        doc = await self._doc(resource)
        self._node(doc, resource, node_id)
        kids = _children_map(doc["nodes"], doc["driver"] == "nested_set").get(node_id, [])
        return await self._answer(resource, kids, records)

    async def descendants(self, resource: str, node_id: str, *, records: bool = False) -> list[Any]:
        """Every node below ``node_id``, depth-first in order."""
        doc = await self._doc(resource)
        self._node(doc, resource, node_id)
        return await self._answer(resource, self._descendant_ids(doc, node_id), records)

    async def ancestors(self, resource: str, node_id: str, *, records: bool = False) -> list[Any]:
        """The nodes above ``node_id``, root first."""
        doc = await self._doc(resource)
        self._node(doc, resource, node_id)
        return await self._answer(resource, self._ancestor_ids(doc, node_id), records)

    async def path(self, resource: str, node_id: str, *, records: bool = False) -> list[Any]:
        """Root-to-node path, ``node_id`` included."""
        doc = await self._doc(resource)
        self._node(doc, resource, node_id)
        return await self._answer(resource, [*self._ancestor_ids(doc, node_id), node_id], records)

    async def depth(self, resource: str, node_id: str) -> int:
        """0 for a root, 1 for its children, ..."""
        doc = await self._doc(resource)
        node = self._node(doc, resource, node_id)
        if doc["driver"] == "nested_set":
            return int(node["depth"])
        return len(self._ancestor_ids(doc, node_id))

    async def parent(self, resource: str, node_id: str) -> str | None:
        """The parent's id (``None`` for a root)."""
        node = self._node(await self._doc(resource), resource, node_id)
        parent: str | None = node["parent"]
        return parent

    async def roots(self, resource: str, *, records: bool = False) -> list[Any]:
        """The roots in creation (or move) order."""
        doc = await self._doc(resource)
        kids = _children_map(doc["nodes"], doc["driver"] == "nested_set").get(None, [])
        return await self._answer(resource, kids, records)

    async def get_tree(
        self, resource: str, root_id: str | None = None, *, records: bool = True
    ) -> list[dict[str, Any]]:
        """The nested tree: ``[{"id", "record"?, "children": [...]}, ...]`` from ``root_id`` (or
        from every root)."""
        doc = await self._doc(resource)
        nested = doc["driver"] == "nested_set"
        kids = _children_map(doc["nodes"], nested)
        if root_id is None:
            tops = kids.get(None, [])
            ids = list(doc["nodes"])
        else:
            self._node(doc, resource, root_id)
            tops = [root_id]
            ids = [root_id, *self._descendant_ids(doc, root_id)]
        by_id = {r.id: r for r in await self._records(resource, ids)} if records else {}

        def build(nid: str) -> dict[str, Any]:
            out: dict[str, Any] = {"id": nid}
            if records:
                out["record"] = by_id.get(nid)
            out["children"] = [build(k) for k in kids.get(nid, [])]
            return out

        return [build(t) for t in tops]

    # -- maintenance -------------------------------------------------------------------------
    async def verify(self, resource: str) -> TreeReport:
        """Check the structure: parents exist, no cycles, and for ``nested_set`` that every
        interval is well formed, contiguous and matches the parent links and depths. Records
        without a tree node are listed in ``untracked``; tree nodes without a record are errors.
        """
        doc = await self._doc(resource)
        nodes = doc["nodes"]
        report = TreeReport(resource=resource, driver=doc["driver"], nodes=len(nodes))
        for nid, node in nodes.items():
            parent = node["parent"]
            if parent is not None and parent not in nodes:
                report.errors.append(f"{nid}: parent {parent} is not in the tree")
        for nid in nodes:
            seen: set[str] = set()
            walk: str | None = nid
            while walk is not None and walk in nodes:
                if walk in seen:
                    report.errors.append(f"{nid}: its ancestors form a cycle")
                    break
                seen.add(walk)
                walk = nodes[walk]["parent"]
        if doc["driver"] == "nested_set" and not report.errors:
            expected = {k: dict(v) for k, v in nodes.items()}
            _renumber({"nodes": _order_by_lft(expected)})
            for nid, node in nodes.items():
                want = expected[nid]
                got = (node.get("lft"), node.get("rgt"), node.get("depth"))
                if got != (want["lft"], want["rgt"], want["depth"]):
                    report.errors.append(
                        f"{nid}: lft/rgt/depth {got} should be "
                        f"{(want['lft'], want['rgt'], want['depth'])}"
                    )
        stored = set(await self._res(resource).list_ids())
        report.untracked = sorted(stored - set(nodes))
        report.errors.extend(f"{nid}: has no record" for nid in sorted(set(nodes) - stored))
        return report

    async def rebuild(self, resource: str) -> TreeReport:
        """Recompute ``lft``/``rgt``/``depth`` from the parent links (children keep their order)
        and re-verify. Nodes whose parent is missing become roots; a cycle is broken at the node
        found in it."""

        def fix(doc: dict[str, Any]) -> None:
            nodes = doc["nodes"]
            doc["driver"] = self.drivers[resource]
            for node in nodes.values():
                if node["parent"] is not None and node["parent"] not in nodes:
                    node["parent"] = None
            for nid in nodes:
                seen: set[str] = set()
                walk: str | None = nid
                while walk is not None:
                    if walk in seen:
                        nodes[walk]["parent"] = None
                        break
                    seen.add(walk)
                    walk = nodes[walk]["parent"]
            if doc["driver"] == "nested_set":
                if all("lft" in n for n in nodes.values()):
                    _order_by_lft(nodes)
                _renumber(doc)
            else:
                for node in nodes.values():
                    for k in ("lft", "rgt", "depth"):
                        node.pop(k, None)

        await self._mutate(resource, fix)
        return await self.verify(resource)

    async def purge_untracked(self, resource: str) -> list[str]:
        """Delete the records that are not in the tree (see :attr:`TreeReport.untracked`)."""
        report = await self.verify(resource)
        if report.untracked:
            await self._res(resource).delete_many(report.untracked)
        return report.untracked

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        if purge_data:
            storage = self.get_storage()
            for resource in self.drivers:
                await storage.delete(self._key(resource))


def _order_by_lft(nodes: dict[str, Any]) -> dict[str, Any]:
    """Set each node's ``order`` from its ``lft`` (so a renumbering keeps sibling order)."""
    for i, nid in enumerate(sorted(nodes, key=lambda k: (nodes[k].get("lft", 0), k))):
        nodes[nid]["order"] = i
    return nodes


def _renumber_after_unlink(
    nodes: dict[str, Any], node: Mapping[str, Any], mode: str, removed: int
) -> None:
    lft, rgt = node["lft"], node["rgt"]
    if mode == "reparent":  # the children's intervals move left by one and up one level
        for n in nodes.values():
            if lft < n["lft"] < rgt:
                n["lft"] -= 1
                n["rgt"] -= 1
                n["depth"] -= 1
    width = rgt - lft + 1 if mode == "subtree" else 2
    for n in nodes.values():
        if n["lft"] > rgt:
            n["lft"] -= width
        if n["rgt"] > rgt:
            n["rgt"] -= width
    del removed
