"""Listing, counting, paging, streaming and querying for :class:`Resource`.

Everything pages through LIST (1000 keys per request) and fetches records with
bounded concurrency (the database's ``parallelism``); nothing is capped silently and
memory stays bounded by that concurrency when streaming.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ._concurrency import bounded_gather, ordered_map
from ._partitions import Partition, encode_partition_value, get_path, is_missing
from ._query import compile_filter, equality_pins
from ._record import Page, Record
from .errors import ConfigError, NotFoundError, ValidationError
from .stores import ListEntry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ._database import Database
    from ._events import HookRegistry
    from ._record import Record as _Record
    from ._schema import Schema

__all__ = ["ListingMixin"]


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key.startswith(prefix):
        raise ValidationError(
            "invalid page cursor",
            errors=[{"field": "cursor", "rule": "cursor", "message": "not from this listing"}],
            suggestion="pass the next_cursor of a previous page of the same listing",
            metadata={"field": "cursor"},
        )
    return key


class ListingMixin:
    """Read-many operations of a resource."""

    if TYPE_CHECKING:
        name: str
        db: Database
        partitions: dict[str, Partition]
        schema: Schema
        _hooks: HookRegistry

        @property
        def data_prefix(self) -> str: ...
        def key_for(self, record_id: str) -> str: ...
        def _ref_keys(self, record: Mapping[str, Any], record_id: str) -> dict[str, str]: ...
        async def _put_refs(self, keys: Iterable[str]) -> None: ...
        async def _read(self, rid: str) -> tuple[Any, _Record]: ...
        async def _call(
            self, method: str, impl: Callable[..., Awaitable[Any]], *a: Any, **kw: Any
        ) -> Any: ...

    # -- partition plumbing ---------------------------------------------------
    def _partition(self, name: str) -> Partition:
        try:
            return self.partitions[name]
        except KeyError:
            raise ConfigError(
                f"resource {self.name!r} has no partition {name!r}",
                suggestion=f"use one of: {', '.join(self.partitions) or '(none defined)'}",
                metadata={"resource": self.name, "partition": name},
            ) from None

    def _scope(
        self, partition: str | None, partition_values: Mapping[str, Any] | None
    ) -> tuple[str, Partition | None, dict[str, str]]:
        """(list prefix, partition, remaining encoded filters on the keys)."""
        if partition is None:
            if partition_values:
                raise ConfigError(
                    "partition_values given without partition",
                    suggestion="pass partition='<name>' too",
                    metadata={"resource": self.name},
                )
            return self.data_prefix, None, {}
        p = self._partition(partition)
        prefix, rest = p.prefix(self.name, partition_values or {})
        return prefix, p, rest

    async def _iter_ids(
        self,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[tuple[str, str]]:
        """Yield ``(key, id)`` in key order."""
        prefix, p, rest = self._scope(partition, partition_values)
        seen = 0
        async for entry in self.db.store.list(
            prefix, start_after=start_after, limit=None if rest else limit
        ):
            if not isinstance(entry, ListEntry):
                continue
            if p is None:
                rid = entry.key[len(prefix) :]
                if rid.startswith("id="):
                    rid = rid[3:]
            else:
                parsed = p.parse_ref(entry.key)
                if parsed is None:
                    continue
                values, rid = parsed
                if any(values.get(f) != v for f, v in rest.items()):
                    continue
            yield entry.key, rid
            seen += 1
            if limit is not None and seen >= limit:
                return

    # -- ids and counts ----------------------------------------------------------
    async def list_ids(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> builtins.list[str]:
        """Ids of the records (LIST only), optionally inside a partition."""
        return await self._call(  # type: ignore[no-any-return]
            "list_ids", self._list_ids, partition, partition_values, limit
        )

    async def _list_ids(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        limit: int | None,
    ) -> builtins.list[str]:
        return [rid async for _, rid in self._iter_ids(partition, partition_values, limit=limit)]

    async def count(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        by: str | None = None,
    ) -> Any:
        """How many records (LIST only). With ``by``, a ``{value: count}`` mapping.

        ``by`` uses a partition on that single field when one exists (LIST only);
        otherwise it reads the records.
        """
        return await self._call("count", self._count, partition, partition_values, by)

    async def _count(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        by: str | None,
    ) -> int | dict[Any, int]:
        if by is None:
            if partition is None:
                return await self._count_records()
            n = 0
            async for _ in self._iter_ids(partition, partition_values):
                n += 1
            return n
        if partition is None:
            groups = await self._count_by_partition(by)
            if groups is not None:
                return groups
        counts: dict[Any, int] = {}
        async for record in self.stream(partition=partition, partition_values=partition_values):
            value: Any = get_path(record, by)
            value = None if is_missing(value) else value
            hashable = value if isinstance(value, str | int | float | bool | None) else repr(value)
            counts[hashable] = counts.get(hashable, 0) + 1
        return counts

    async def _count_records(self) -> int:
        """Records of the resource: LIST only, counted a page at a time."""
        n = 0
        async for page in self.db.store.list_pages(self.data_prefix):
            n += len(page)  # no delimiter: every entry is a record key
        return n

    async def _count_by_partition(self, by: str) -> dict[Any, int] | None:
        """Group counts from a single-field partition on ``by`` (LIST only), or ``None``.

        Used only when the partition keeps whole values (no ``maxlength``) of a type whose
        key form converts back exactly (text, integers, booleans), so the answer equals
        reading every record; records without a value are counted under ``None``.
        """
        spec = self.schema.fields.get(by)
        kind = getattr(spec, "type", None)
        convert: Any
        if kind in ("string", "email", "url"):
            convert = str
        elif kind == "integer":
            convert = int
        elif kind == "boolean":
            convert = "true".__eq__
        else:
            return None
        for p in self.partitions.values():
            if p.fields != ((by, None),):
                continue
            groups: dict[Any, int] = {}
            async for key, _ in self._iter_ids(p.name):
                parsed = p.parse_ref(key)
                if parsed is not None:
                    group = convert(p.decoded_values(parsed[0])[by])
                    groups[group] = groups.get(group, 0) + 1
            missing = await self._count_records() - sum(groups.values())
            if missing > 0:
                groups[None] = missing
            return groups
        return None

    # -- records ---------------------------------------------------------------
    async def _fetch(self, rid: str, p: Partition | None, pins: Mapping[str, str]) -> Record | None:
        """Read a listed record; ``None`` if it vanished or no longer matches its partition."""
        try:
            _, record = await self._read(rid)
        except NotFoundError:
            return None
        if p is not None:
            for path, maxlength in p.fields:
                if path in pins:
                    value = get_path(record, path)
                    if is_missing(value) or encode_partition_value(value, maxlength) != pins[path]:
                        return None  # stale reference left by a concurrent move
        return record

    async def stream(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
        start_after_id: str | None = None,
        concurrency: int | None = None,
    ) -> AsyncIterator[Record]:
        """Yield records in id order, fetching ``concurrency`` (default ``parallelism``) at a time.

        Memory stays bounded whatever the number of records.
        """
        _, p, _ = self._scope(partition, partition_values)
        pins = self._pins(p, partition_values)
        start_after = self.key_for(start_after_id) if start_after_id and p is None else None

        async def fetch(item: tuple[str, str]) -> Record | None:
            return await self._fetch(item[1], p, pins)

        n = 0
        async for record in ordered_map(
            fetch,
            self._iter_ids(partition, partition_values, start_after=start_after),
            concurrency or self.db.parallelism,
        ):
            if record is not None:
                yield record
                n += 1
                if limit is not None and n >= limit:
                    return

    def _pins(self, p: Partition | None, values: Mapping[str, Any] | None) -> dict[str, str]:
        if p is None or not values:
            return {}
        maxlen = dict(p.fields)
        return {f: encode_partition_value(v, maxlen[f]) for f, v in values.items() if v is not None}

    async def list(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Record]:
        """Every record (or the first ``limit``), optionally inside a partition."""
        return await self._call("list", self._list, partition, partition_values, limit)  # type: ignore[no-any-return]

    async def _list(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        limit: int | None,
    ) -> builtins.list[Record]:
        options: dict[str, Any] = {
            "partition": partition,
            "partition_values": partition_values,
            "limit": limit,
        }
        if self._hooks.has("before_list"):
            options = dict(await self._hooks.run("before_list", options))
        p_name = options.get("partition")
        p_values = options.get("partition_values")
        ids = [rid async for _, rid in self._iter_ids(p_name, p_values)]
        p = self.partitions.get(p_name) if p_name else None
        pins = self._pins(p, p_values)
        fetched = await bounded_gather(
            lambda rid: self._fetch(rid, p, pins), ids, self.db.parallelism
        )
        records = [r for r in fetched if r is not None]
        lim = options.get("limit")
        if lim is not None:
            records = records[:lim]
        if self._hooks.has("after_list"):
            records = await self._hooks.run("after_list", records)
        return records

    async def page(
        self,
        *,
        size: int = 100,
        cursor: str | None = None,
        page: int | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> Page:
        """One page of records. Pass the previous ``next_cursor`` (opaque) for the next one,
        or ``page=N`` (0-based) to skip ``N * size`` ids (LIST only for the skipped ones).
        """
        return await self._call(  # type: ignore[no-any-return]
            "page", self._page, size, cursor, page, partition, partition_values
        )

    async def _page(
        self,
        size: int,
        cursor: str | None,
        page: int | None,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
    ) -> Page:
        if not isinstance(size, int) or size < 1:
            raise ValidationError(
                f"page size must be a positive integer, got {size!r}",
                errors=[{"field": "size", "rule": "min:1", "message": "must be >= 1"}],
                metadata={"field": "size"},
            )
        prefix, p, _ = self._scope(partition, partition_values)
        start_after = _decode_cursor(cursor, prefix) if cursor else None
        skip = (page or 0) * size
        items: list[tuple[str, str]] = []
        async for item in self._iter_ids(
            partition, partition_values, start_after=start_after, limit=skip + size + 1
        ):
            items.append(item)
        window = items[skip : skip + size]
        more = len(items) > skip + size
        pins = self._pins(p, partition_values)
        fetched = await bounded_gather(
            lambda it: self._fetch(it[1], p, pins), window, self.db.parallelism
        )
        next_cursor = _encode_cursor(window[-1][0]) if more and window else None
        return Page([r for r in fetched if r is not None], next_cursor, size)

    async def query(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> builtins.list[Record]:
        """Records matching ``filter`` (see :mod:`s3db_async._query`); all of them unless ``limit``.

        When the filter pins every field of a partition, only that partition is read.
        """
        return await self._call(  # type: ignore[no-any-return]
            "query", self._query, filter, limit, partition, partition_values
        )

    def explain(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Which partition a query would use (no request)."""
        partition, values = self._choose_partition(filter)
        return {
            "resource": self.name,
            "partition": partition,
            "partition_values": values,
            "scan": partition is None,
        }

    async def estimate_query_cost(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`explain` plus the requests :meth:`query` would send: runs its LIST only.

        ``list_requests`` (pages of 1000 keys over the partition or the data prefix, counted
        from the keys listed), ``candidate_records`` (one GET each: ``get_requests``) and
        ``total_requests``; a ``limit`` can only make the query cheaper.
        """
        plan = self.explain(filter)
        prefix, p, rest = self._scope(plan["partition"], plan["partition_values"])
        listed = candidates = 0
        async for entry in self.db.store.list(prefix):
            if not isinstance(entry, ListEntry):
                continue
            listed += 1
            if p is not None:
                parsed = p.parse_ref(entry.key)
                if parsed is None or any(parsed[0].get(f) != v for f, v in rest.items()):
                    continue
            candidates += 1
        list_requests = max(1, -(-listed // 1000))
        return {
            **plan,
            "listed_keys": listed,
            "list_requests": list_requests,
            "candidate_records": candidates,
            "get_requests": candidates,
            "total_requests": list_requests + candidates,
        }

    def _choose_partition(
        self, flt: Mapping[str, Any] | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        pins = equality_pins(flt)
        best: Partition | None = None
        for p in self.partitions.values():
            if all(f in pins for f in p.field_names) and (
                best is None or len(p.fields) > len(best.fields)
            ):
                best = p
        if best is None:
            return None, None
        return best.name, {f: pins[f] for f in best.field_names}

    async def _query(
        self,
        flt: Mapping[str, Any] | None,
        limit: int | None,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
    ) -> builtins.list[Record]:
        predicate = compile_filter(flt)
        if partition is None:
            partition, partition_values = self._choose_partition(flt)
        out: list[Record] = []
        async for record in self.stream(partition=partition, partition_values=partition_values):
            if predicate(record):
                out.append(record)
                if limit is not None and len(out) >= limit:
                    break
        return out

    # -- maintenance --------------------------------------------------------------
    async def rebuild_partitions(self) -> dict[str, int]:
        """Make partition references match the records: add missing, delete stale ones.

        Repairs what a crash between a record write and its reference writes left.
        Returns ``{"added": n, "removed": m}``.
        """
        expected: set[str] = set()
        async for record in self.stream():
            expected.update(self._ref_keys(record, record.id).values())
        existing: set[str] = set()
        for p in self.partitions.values():
            async for entry in self.db.store.list(p.base(self.name)):
                if isinstance(entry, ListEntry):
                    existing.add(entry.key)
        async for entry in self.db.store.list(f"resource={self.name}/partition="):
            if isinstance(entry, ListEntry) and entry.key not in existing:
                existing.add(entry.key)  # references of partitions no longer defined
        missing = sorted(expected - existing)
        stale = sorted(existing - expected)
        if missing:
            await self._put_refs(missing)
        if stale:
            await self.db.store.delete_many(stale)
        return {"added": len(missing), "removed": len(stale)}
