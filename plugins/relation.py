"""RelationPlugin: has_one, has_many, belongs_to and belongs_to_many between resources.

::

    rel = RelationPlugin(relations={
        "users": {
            "posts": {"type": "has_many", "resource": "posts", "foreign_key": "user_id",
                      "on_delete": "cascade"},
            "profile": {"type": "has_one", "resource": "profiles", "foreign_key": "user_id"},
        },
        "posts": {
            "author": {"type": "belongs_to", "resource": "users", "foreign_key": "user_id"},
            "tags": {"type": "belongs_to_many", "resource": "tags", "through": "post_tags",
                     "foreign_key": "post_id", "other_key": "tag_id"},
        },
    }, check_references=True)

How it works:

- **Eager loading without N+1.** ``await users.get(id, include=["posts.tags"])`` (and
  ``get_or_none``, ``get_many``, ``list``, ``page``, ``query`` of every resource with
  relations, through the core's operation options; also ``rel.get``, ``rel.list``,
  ``rel.query``, ``rel.load``) loads each relation level for all parent records at once: a
  ``belongs_to`` level is one ``get_many`` of the distinct foreign keys; a
  ``has_many``/``has_one`` level is one ``query`` of the target with ``{fk: {"$in": ids}}``;
  a ``belongs_to_many`` level is one query of the junction resource plus one ``get_many``.
  When the related resource has a partition on exactly the foreign key and a level has at
  most ``partition_keys_max`` distinct keys, the query becomes one LIST per key's partition
  plus one ``get_many`` of the children (no scan of the related resource).
  The request count of a level does not depend on the number of parent records.
- **Accessors.** Each resource with relations gets ``resource.related(id, name)`` and
  ``resource.include(records, include)``.
- **On delete** (``has_one``/``has_many``: ``cascade``, ``restrict``, ``set_null``;
  ``belongs_to_many`` always drops the junction rows of the deleted record) runs in a
  middleware on ``delete`` before the record itself is deleted: a crash in between leaves
  the record with fewer children, and deleting it again finishes the job.
- **Referential checks** (``check_references=True``): an ``insert``, ``upsert``,
  ``update``, ``patch`` or ``replace`` whose ``belongs_to`` foreign key names a missing
  record raises :class:`ValidationError` before anything is written (one HEAD per key).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from s3db_async import BatchResult, Page, Record, Resource
from s3db_async.errors import AlreadyExistsError, ConfigError, ConflictError, ValidationError
from s3db_async.plugin import Plugin

__all__ = ["Relation", "RelationPlugin"]

KINDS = ("has_one", "has_many", "belongs_to", "belongs_to_many")
ON_DELETE = ("cascade", "restrict", "set_null", "none")
_KEYS = {"type", "resource", "foreign_key", "local_key", "through", "other_key", "on_delete"}

Include = str | Sequence[str] | Mapping[str, Any] | None

INCLUDE_METHODS = ("get", "get_or_none", "get_many", "list", "page", "query")
"""The resource methods that take ``include=`` (those that return records)."""


def _bad(where: str, field: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"RelationPlugin {where}: {field} {reason}",
        suggestion=suggestion,
        metadata={"field": field, "reason": reason, "relation": where, "value": repr(value)},
    )


@dataclass(frozen=True)
class Relation:
    """One declared relation of ``owner`` named ``name`` (validated from the config dict).

    - ``has_one``/``has_many``: ``target.foreign_key`` holds ``owner.local_key`` (default id).
    - ``belongs_to``: ``owner.foreign_key`` holds the id of a ``target`` record.
    - ``belongs_to_many``: junction rows of ``through`` hold ``foreign_key`` (the owner's
      id) and ``other_key`` (the target's id).
    """

    owner: str
    name: str
    kind: str
    target: str
    foreign_key: str
    local_key: str = "id"
    through: str | None = None
    other_key: str | None = None
    on_delete: str = "none"

    @classmethod
    def from_config(cls, owner: str, name: str, config: Mapping[str, Any]) -> Relation:
        """Validate one relation.

        :raises ConfigError: unknown keys, a bad type or on_delete, missing keys.
        """
        where = f"{owner}.{name}"
        if not isinstance(config, Mapping):
            raise _bad(where, "config", "must be a dict", "pass {'type': ..., 'resource': ...}")
        unknown = sorted(set(config) - _KEYS)
        if unknown:
            raise _bad(where, unknown[0], "is not a relation option", f"use: {sorted(_KEYS)}")
        kind = config.get("type")
        if kind not in KINDS:
            raise _bad(where, "type", "is not a relation type", f"use one of {KINDS}", kind)
        target = config.get("resource")
        if not isinstance(target, str) or not target:
            raise _bad(where, "resource", "is required", "name the related resource", target)
        fk = config.get("foreign_key")
        if not isinstance(fk, str) or not fk:
            raise _bad(where, "foreign_key", "is required", "name the foreign key field", fk)
        on_delete = config.get("on_delete", "none")
        if on_delete not in ON_DELETE:
            raise _bad(where, "on_delete", "is not valid", f"use one of {ON_DELETE}", on_delete)
        if on_delete != "none" and kind not in ("has_one", "has_many"):
            raise _bad(
                where,
                "on_delete",
                f"does not apply to {kind}",
                "declare on_delete on the has_one/has_many side",
                on_delete,
            )
        through, other = config.get("through"), config.get("other_key")
        if kind == "belongs_to_many":
            if not isinstance(through, str) or not through:
                raise _bad(where, "through", "is required", "name the junction resource", through)
            if not isinstance(other, str) or not other:
                raise _bad(where, "other_key", "is required", "name the junction's target key")
        elif through is not None or other is not None:
            raise _bad(where, "through", f"does not apply to {kind}", "use belongs_to_many")
        if "local_key" in config and kind == "belongs_to":
            raise _bad(
                where,
                "local_key",
                "does not apply to belongs_to",
                "a belongs_to foreign key holds the related record's id; omit local_key",
                config["local_key"],
            )
        local_key = config.get("local_key", "id")
        if not isinstance(local_key, str) or not local_key:
            raise _bad(where, "local_key", "must be a field name", "omit it to use id", local_key)
        return cls(owner, name, kind, target, fk, local_key, through, other, on_delete)


def _records_of(result: Any) -> builtins.list[Record]:
    """The records of what a read returned: a record, ``None``, a batch, a page or a list."""
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [cast(Record, result)]
    if isinstance(result, BatchResult):
        return [r for r in result.ok if isinstance(r, Mapping)]
    if isinstance(result, Page):
        return list(result.items)
    return list(result)


def _parse_include(include: Include) -> dict[str, dict[str, Any]]:
    """``"a"``, ``["a.b", "c"]`` or ``{"a": ["b"]}`` -> ``{"a": {"b": {}}, "c": {}}``."""
    if include is None:
        return {}
    if isinstance(include, str):
        include = [include]
    tree: dict[str, dict[str, Any]] = {}
    if not isinstance(include, Mapping | Sequence | set | frozenset):
        raise ConfigError(
            f"include={include!r} is not a list of relation names",
            suggestion='pass "posts", ["posts.comments", "author"] or {"posts": ["comments"]}',
            metadata={"field": "include", "reason": "bad type", "value": repr(include)},
        )
    if isinstance(include, Mapping):
        for name, sub in include.items():
            tree.setdefault(str(name), {}).update(_parse_include(sub))
        return tree
    for item in include:
        if not isinstance(item, str) or not item:
            raise ConfigError(
                f"include entry {item!r} is not a relation name",
                suggestion='pass names like "posts" or "posts.comments"',
                metadata={"field": "include", "reason": "bad entry", "value": repr(item)},
            )
        head, _, rest = item.partition(".")
        node = tree.setdefault(head, {})
        if rest:
            node.update(_parse_include(rest))
    return tree


class RelationPlugin(Plugin):
    """ORM-like relations between resources, eager loading in batches, cascades on delete."""

    def __init__(
        self,
        *,
        relations: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        check_references: bool = False,
        partition_keys_max: int = 32,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(partition_keys_max, bool) or not isinstance(partition_keys_max, int):
            raise _bad(
                "options",
                "partition_keys_max",
                "must be an int",
                "pass e.g. 32",
                partition_keys_max,
            )
        if partition_keys_max < 0:
            raise _bad(
                "options",
                "partition_keys_max",
                "must be >= 0",
                "pass 0 to always scan",
                partition_keys_max,
            )
        self.partition_keys_max = partition_keys_max
        self.relations: dict[str, dict[str, Relation]] = {}
        if relations is not None and not isinstance(relations, Mapping):
            raise _bad(
                "options",
                "relations",
                "must be a dict",
                "pass relations={'users': {'posts': {'type': 'has_many', ...}}}",
                relations,
            )
        for owner, rels in (relations or {}).items():
            if not isinstance(rels, Mapping):
                raise _bad(owner, "relations", "must be a dict", "map names to relation dicts")
            self.relations[owner] = {
                name: Relation.from_config(owner, name, cfg) for name, cfg in rels.items()
            }
        self.check_references = bool(check_references)

    async def on_install(self) -> None:
        for owner in self.relations:
            await self.when_resource(owner, self._attach)

    def _attach(self, resource: Resource) -> None:
        rels = self.relations[resource.name]
        name = resource.name

        async def related(record_id: str, relation: str) -> Any:
            return await self.related(name, record_id, relation)

        async def include(records: Any, spec: Include) -> Any:
            return await self.load(name, records, spec)

        self.add_resource_method(resource, "related", related)
        self.add_resource_method(resource, "include", include)
        self.add_operation_option(
            resource,
            "include",
            self._include_handler(name),
            methods=INCLUDE_METHODS,
            description="load relations into the records read (RelationPlugin)",
        )
        if any(r.kind != "belongs_to" for r in rels.values()):
            self.add_middleware(resource, "delete", self._delete_middleware(name))
            self.add_middleware(resource, "delete_many", self._delete_many_middleware(name))
        if self.check_references and any(r.kind == "belongs_to" for r in rels.values()):
            for method in ("insert", "upsert"):
                self.add_middleware(resource, method, self._insert_middleware(name))
            for method in ("update", "patch", "replace"):
                self.add_middleware(resource, method, self._update_middleware(name))

    def _include_handler(self, resource: str) -> Any:
        """The handler of ``include=`` on the reads of ``resource``: the include is checked
        before the read (an unknown relation sends no request), then loaded level by level
        into the records the read returned (after every middleware, e.g. a cache's)."""

        async def handler(next_: Any, include: Include, *args: Any, **kwargs: Any) -> Any:
            tree = self.include_tree(resource, include)
            result = await next_(*args, **kwargs)
            await self._load_tree(resource, _records_of(result), tree)
            return result

        return handler

    def include_tree(self, resource: str, include: Include) -> dict[str, dict[str, Any]]:
        """``include`` parsed into a tree, every name checked against the relations.

        :raises ConfigError: a malformed include, or a name (at any depth) that is not a
            relation of its resource (``metadata``: ``field="include"``, ``reason``,
            ``resource``, ``value``; the suggestion lists the known relations).
        """
        tree = _parse_include(include)
        self._check_tree(resource, tree)
        return tree

    def _check_tree(self, resource: str, tree: Mapping[str, Mapping[str, Any]]) -> None:
        for name, sub in tree.items():
            self._check_tree(self.relation(resource, name).target, sub)

    # -- lookups --------------------------------------------------------------------------
    def relation(self, resource: str, name: str) -> Relation:
        """The relation ``name`` of ``resource``.

        :raises ConfigError: no such relation.
        """
        rel = self.relations.get(resource, {}).get(name)
        if rel is None:
            known = sorted(self.relations.get(resource, {}))
            raise ConfigError(
                f"resource {resource!r} has no relation {name!r}",
                suggestion=f"use one of {known} or declare {name!r} in relations=",
                metadata={
                    "field": "include",
                    "reason": "unknown relation",
                    "resource": resource,
                    "value": name,
                    "relations": known,
                },
            )
        return rel

    async def related(self, resource: str, record_id: str, name: str) -> Any:
        """The records related to one record: a list (many) or a record or ``None`` (one)."""
        owner = await self.db.get_resource(resource).get(record_id)
        await self._load_level(self.relation(resource, name), [owner], {})
        return owner[name]

    async def get(self, resource: str, record_id: str, *, include: Include = None) -> Record:
        """``resource.get(id)`` with the relations of ``include`` loaded into the record."""
        tree = self.include_tree(resource, include)
        record = await self.db.get_resource(resource).get(record_id)
        await self._load_tree(resource, [record], tree)
        return record

    async def list(
        self, resource: str, *, include: Include = None, **options: Any
    ) -> builtins.list[Record]:
        """``resource.list(**options)`` with the relations of ``include`` loaded."""
        tree = self.include_tree(resource, include)
        records = list(await self.db.get_resource(resource).list(**options))
        await self._load_tree(resource, records, tree)
        return records

    async def query(
        self,
        resource: str,
        filter: Mapping[str, Any] | None = None,
        *,
        include: Include = None,
        **options: Any,
    ) -> builtins.list[Record]:
        """``resource.query(filter, **options)`` with the relations of ``include`` loaded."""
        tree = self.include_tree(resource, include)
        records = list(await self.db.get_resource(resource).query(filter, **options))
        await self._load_tree(resource, records, tree)
        return records

    async def load(self, resource: str, records: Any, include: Include) -> Any:
        """Load the relations of ``include`` into ``records`` (one record or a list), in place.

        Many-relations become lists, one-relations a record or ``None``. Each level costs
        the same number of requests whatever the number of records (no N+1).
        """
        tree = self.include_tree(resource, include)
        await self._load_tree(resource, _records_of(records), tree)
        return records

    async def _load_tree(
        self, resource: str, records: builtins.list[Record], tree: Mapping[str, Mapping[str, Any]]
    ) -> None:
        if not records or not tree:
            return
        rels = [self.relation(resource, name) for name in tree]

        async def one(rel: Relation) -> None:
            children = await self._load_level(rel, records, tree[rel.name])
            await self._load_tree(rel.target, children, tree[rel.name])

        await asyncio.gather(*(one(rel) for rel in rels))

    async def _by_field(
        self, resource: str, field: str, values: Iterable[Any]
    ) -> builtins.list[Record]:
        wanted = sorted({v for v in values if v is not None}, key=str)
        if not wanted:
            return []
        res = self.db.get_resource(resource)
        if field == "id":
            return list((await res.get_many(wanted)).ok)
        partition = self._partition_on(res, field)
        if partition is not None and len(wanted) <= self.partition_keys_max:
            # one LIST per key in the partition of the foreign key, then one get_many
            ids = await asyncio.gather(
                *(res.list_ids(partition=partition, partition_values={field: v}) for v in wanted)
            )
            found = list((await res.get_many(sorted({i for part in ids for i in part}))).ok)
            keys = {str(v) for v in wanted}  # a partition key is the value's text
            return [r for r in found if str(r.get(field)) in keys]
        return list(await res.query({field: {"$in": wanted}}))

    @staticmethod
    def _partition_on(resource: Resource, field: str) -> str | None:
        """A partition of ``resource`` on exactly ``field`` (untruncated), if any."""
        for name, part in resource.partitions.items():
            if part.fields == ((field, None),):
                return name
        return None

    async def _load_level(
        self, rel: Relation, records: builtins.list[Record], sub: Mapping[str, Any]
    ) -> builtins.list[Record]:
        """Attach ``rel`` to every record; returns the distinct loaded children."""
        if rel.kind == "belongs_to":
            found = await self._by_field(
                rel.target, "id", (r.get(rel.foreign_key) for r in records)
            )
            by_id: dict[Any, Record] = {c.id: c for c in found}
            for r in records:
                r[rel.name] = by_id.get(r.get(rel.foreign_key))
            return found
        keys = [r.get(rel.local_key) for r in records]
        if rel.kind in ("has_one", "has_many"):
            found = await self._by_field(rel.target, rel.foreign_key, keys)
            groups: dict[Any, list[Record]] = {}
            for c in sorted(found, key=lambda c: c.id):
                groups.setdefault(c.get(rel.foreign_key), []).append(c)
            for r in records:
                group = groups.get(r.get(rel.local_key), [])
                r[rel.name] = group if rel.kind == "has_many" else (group[0] if group else None)
            return found
        assert rel.through is not None and rel.other_key is not None
        rows = await self._by_field(rel.through, rel.foreign_key, keys)
        found = await self._by_field(rel.target, "id", (row.get(rel.other_key) for row in rows))
        by_id = {c.id: c for c in found}
        links: dict[Any, list[Record]] = {}
        for row in sorted(rows, key=lambda row: row.id):
            target = by_id.get(row.get(rel.other_key))
            if target is not None:
                links.setdefault(row.get(rel.foreign_key), []).append(target)
        for r in records:
            r[rel.name] = links.get(r.get(rel.local_key), [])
        return found

    # -- writes ---------------------------------------------------------------------------
    def _many(self, resource: str, name: str) -> Relation:
        rel = self.relation(resource, name)
        if rel.kind != "belongs_to_many":
            raise ConfigError(
                f"{resource}.{name} is a {rel.kind} relation, not belongs_to_many",
                suggestion="attach/detach apply to belongs_to_many; write the foreign key instead",
                metadata={"field": name, "reason": "not belongs_to_many", "value": rel.kind},
            )
        return rel

    @staticmethod
    def junction_id(owner_id: str, target_id: str) -> str:
        """The id of the junction row linking two records (``owner~target``)."""
        return f"{owner_id}~{target_id}"

    async def attach(self, resource: str, record_id: str, name: str, *target_ids: str) -> int:
        """Link a record to targets of a ``belongs_to_many`` relation; returns rows created.

        Targets already linked are skipped (one read of the record's junction rows); each
        new link is one junction row with the id :meth:`junction_id`, written with an
        if-none-match insert, so two processes attaching the same pair create one row.

        :raises ConfigError: ``name`` is not a belongs_to_many relation of ``resource``.
        """
        rel = self._many(resource, name)
        assert rel.through is not None and rel.other_key is not None
        junction = self.db.get_resource(rel.through)
        key = await self._local_value(rel, record_id)
        linked = {
            r.get(rel.other_key) for r in await self._by_field(rel.through, rel.foreign_key, [key])
        }
        rows = [
            {"id": self.junction_id(record_id, t), rel.foreign_key: key, rel.other_key: t}
            for t in dict.fromkeys(target_ids)
            if t not in linked
        ]
        if self.check_references:
            missing = [
                t for t in dict.fromkeys(target_ids) if not await self._exists(rel.target, t)
            ]
            if missing:
                raise ValidationError(
                    f"{resource}.{name}: no such {rel.target} record(s) {missing}",
                    suggestion=f"insert the {rel.target} records first",
                    metadata={"field": rel.other_key, "reason": "missing reference"},
                )
        results = await junction.insert_many(rows)
        created = 0
        for item in results:
            if item.ok:
                created += 1
            elif item.error is not None and not isinstance(item.error, AlreadyExistsError):
                raise item.error
        return created

    async def _local_value(self, rel: Relation, record_id: str) -> Any:
        """What the junction's foreign key holds for record ``record_id``: its id, or the
        value of ``local_key`` (one GET of the record) when the relation names one."""
        if rel.local_key == "id":
            return record_id
        owner = await self.db.get_resource(rel.owner).get(record_id)
        value = owner.get(rel.local_key)
        if value is None:
            raise ValidationError(
                f"{rel.owner} {record_id!r} has no {rel.local_key!r}, the local_key of "
                f"{rel.owner}.{rel.name}",
                errors=[{"field": rel.local_key, "rule": "required", "message": "missing"}],
                suggestion=f"set {rel.local_key!r} on the record before linking it",
                metadata={"field": rel.local_key, "reason": "missing local key"},
            )
        return value

    async def _exists(self, resource: str, record_id: str) -> bool:
        return await self.db.get_resource(resource).exists(record_id)

    async def detach(self, resource: str, record_id: str, name: str, *target_ids: str) -> int:
        """Unlink targets (all of them when none is given); returns junction rows deleted."""
        rel = self._many(resource, name)
        assert rel.through is not None and rel.other_key is not None
        key = await self._local_value(rel, record_id)
        rows = await self._by_field(rel.through, rel.foreign_key, [key])
        wanted = set(target_ids)
        ids = [r.id for r in rows if not wanted or r.get(rel.other_key) in wanted]
        if ids:
            await self.db.get_resource(rel.through).delete_many(ids)
        return len(ids)

    def _delete_middleware(self, resource: str) -> Any:
        async def middleware(next_: Any, record_id: str, *args: Any, **kwargs: Any) -> Any:
            await self.before_delete(resource, record_id)
            return await next_(record_id, *args, **kwargs)

        return middleware

    def _delete_many_middleware(self, resource: str) -> Any:
        async def middleware(next_: Any, ids: Any, *args: Any, **kwargs: Any) -> Any:
            ids = list(ids)
            await asyncio.gather(*(self.before_delete(resource, rid) for rid in ids))
            return await next_(ids, *args, **kwargs)

        return middleware

    async def before_delete(self, resource: str, record_id: str) -> None:
        """Apply every ``on_delete`` rule of ``resource`` for one record about to be deleted.

        ``restrict`` rules are checked first along the whole cascade, so a refused delete
        changes nothing (a record added concurrently after the check is not seen).

        :raises ConflictError: a ``restrict`` relation still has records.
        """
        rels = list(self.relations.get(resource, {}).values())
        if not rels:
            return
        owner = await self.db.get_resource(resource).get_or_none(record_id)
        if owner is None:
            return
        await self._check_restrict(resource, owner)
        for rel in rels:
            key = owner.get(rel.local_key)
            if rel.kind == "belongs_to_many":
                assert rel.through is not None
                rows = await self._by_field(rel.through, rel.foreign_key, [key])
                if rows:
                    await self.db.get_resource(rel.through).delete_many([r.id for r in rows])
            elif rel.on_delete in ("cascade", "set_null"):
                children = await self._by_field(rel.target, rel.foreign_key, [key])
                target = self.db.get_resource(rel.target)
                if rel.on_delete == "cascade":  # through delete(): the children cascade too
                    await asyncio.gather(*(target.delete(c.id) for c in children))
                else:
                    await asyncio.gather(
                        *(target.patch(c.id, {rel.foreign_key: None}) for c in children)
                    )
                if children:
                    self.emit(
                        f"relation.{rel.on_delete}",
                        self._payload(
                            resource=resource,
                            id=record_id,
                            relation=rel.name,
                            target=rel.target,
                            ids=[c.id for c in children],
                        ),
                    )

    async def _check_restrict(self, resource: str, owner: Record) -> None:
        """Raise if deleting ``owner`` (and what it cascades to) would break a ``restrict``."""
        for rel in self.relations.get(resource, {}).values():
            if rel.on_delete not in ("restrict", "cascade"):
                continue
            children = await self._by_field(rel.target, rel.foreign_key, [owner.get(rel.local_key)])
            if children and rel.on_delete == "restrict":
                raise ConflictError(
                    f"cannot delete {resource} {owner.id!r}: {len(children)} {rel.target} "
                    f"record(s) still reference it through {rel.name!r}",
                    suggestion=f"delete or reassign the {rel.target} records first",
                    metadata={
                        "field": rel.name,
                        "reason": "restrict",
                        "resource": resource,
                        "id": owner.id,
                        "children": [c.id for c in children[:20]],
                    },
                )
            for child in children:
                await self._check_restrict(rel.target, child)

    def _insert_middleware(self, resource: str) -> Any:
        async def middleware(next_: Any, data: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
            await self.check(resource, data)
            return await next_(data, *args, **kwargs)

        return middleware

    def _update_middleware(self, resource: str) -> Any:
        async def middleware(next_: Any, record_id: str, changes: Any, *a: Any, **kw: Any) -> Any:
            if isinstance(changes, Mapping):  # a function of the record is not checked
                await self.check(resource, changes)
            return await next_(record_id, changes, *a, **kw)

        return middleware

    async def check(self, resource: str, data: Mapping[str, Any]) -> None:
        """Check that every ``belongs_to`` foreign key of ``data`` names an existing record.

        :raises ValidationError: a foreign key names a missing record (``None`` is allowed).
        """
        for rel in self.relations.get(resource, {}).values():
            value = data.get(rel.foreign_key)
            if rel.kind != "belongs_to" or value is None:
                continue
            if not await self.db.get_resource(rel.target).exists(str(value)):
                raise ValidationError(
                    f"{resource}.{rel.foreign_key} = {value!r}: no such {rel.target} record",
                    errors=[
                        {
                            "field": rel.foreign_key,
                            "rule": "reference",
                            "message": f"no {rel.target} record {value!r}",
                            "value_type": type(value).__name__,
                        }
                    ],
                    suggestion=f"insert the {rel.target} record first or fix {rel.foreign_key}",
                    metadata={"field": rel.foreign_key, "reason": "missing reference"},
                )
