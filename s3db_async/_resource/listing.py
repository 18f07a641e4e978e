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

from .._cas import body_etag, conditional_put
from .._concurrency import bounded_gather, ordered_map
from .._record import Page, Record, RecordList
from ..errors import (
    ConfigError,
    CorruptRecordError,
    NotFoundError,
    PreconditionFailed,
    ValidationError,
)
from ..stores import ListEntry
from .partitions import (
    DEAD_REF,
    Partition,
    encode_partition_value,
    get_path,
    is_dead,
    is_missing,
)
from .query import check_group_field, check_password_conditions, compile_filter, equality_pins

if TYPE_CHECKING:
    from .resource import Resource

__all__ = ["Listing"]


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


class Listing:
    """Read-many operations of a resource: the ``*_impl`` methods that
    :class:`Resource` runs through its middlewares, and their helpers."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    # -- partition plumbing ---------------------------------------------------
    def partition(self, name: str) -> Partition:
        try:
            return self.resource.partitions[name]
        except KeyError:
            raise ConfigError(
                f"resource {self.resource.name!r} has no partition {name!r}",
                suggestion=f"use one of: {', '.join(self.resource.partitions) or '(none defined)'}",
                metadata={"resource": self.resource.name, "partition": name},
            ) from None

    def scope(
        self, partition: str | None, partition_values: Mapping[str, Any] | None
    ) -> tuple[str, Partition | None, dict[str, str]]:
        """(list prefix, partition, remaining encoded filters on the keys)."""
        if partition is None:
            if partition_values:
                raise ConfigError(
                    "partition_values given without partition",
                    suggestion="pass partition='<name>' too",
                    metadata={"resource": self.resource.name},
                )
            return self.resource.data_prefix, None, {}
        p = self.partition(partition)
        prefix, rest = p.prefix(self.resource.name, partition_values or {})
        return prefix, p, rest

    async def iter_ids(
        self,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        *,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[tuple[str, str]]:
        """Yield ``(key, id)`` in key order."""
        prefix, p, rest = self.scope(partition, partition_values)
        seen = 0
        async for entry in self.resource.db.store.list(
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
                if parsed is None or is_dead(entry.size):
                    continue
                values, rid = parsed
                if any(values.get(f) != v for f, v in rest.items()):
                    continue
            yield entry.key, rid
            seen += 1
            if limit is not None and seen >= limit:
                return

    # -- ids and counts ----------------------------------------------------------
    async def list_ids_impl(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        limit: int | None,
    ) -> builtins.list[str]:
        return [rid async for _, rid in self.iter_ids(partition, partition_values, limit=limit)]

    async def count_impl(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        by: str | None,
        *,
        strict: bool = False,
    ) -> int | dict[Any, int]:
        if by is not None:
            check_group_field(by, self.resource.schema.sensitive_fields)
        if partition is None and partition_values:
            self.scope(partition, partition_values)  # raises: values need a partition
        if by is None:
            if partition is None:
                return await self.count_records()
            n = 0
            async for _ in self.iter_ids(partition, partition_values):
                n += 1
            return n
        self.resource._check_path(by, where="count(by=)")
        if partition is None:
            groups = await self.count_by_partition(by)
            if groups is not None:
                return groups
        counts: dict[Any, int] = {}
        records = self.records(partition, partition_values, op="count", strict=strict)
        async for record in records:
            value: Any = get_path(record, by)
            value = None if is_missing(value) else value
            hashable = value if isinstance(value, str | int | float | bool | None) else repr(value)
            counts[hashable] = counts.get(hashable, 0) + 1
        return counts

    async def count_records(self) -> int:
        """Records of the resource: LIST only, counted a page at a time."""
        n = 0
        async for page in self.resource.db.store.list_pages(self.resource.data_prefix):
            n += len(page)  # no delimiter: every entry is a record key
        return n

    async def count_by_partition(self, by: str) -> dict[Any, int] | None:
        """Group counts from a single-field partition on ``by`` (LIST only), or ``None``.

        Used only when the partition keeps whole values (no ``maxlength``) of a type whose
        key form converts back exactly (text, integers, booleans), so the answer equals
        reading every record; records without a value are counted under ``None``.
        """
        spec = self.resource.schema.fields.get(by)
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
        for p in self.resource.partitions.values():
            if p.fields != ((by, None),):
                continue
            groups: dict[Any, int] = {}
            async for key, _ in self.iter_ids(p.name):
                parsed = p.parse_ref(key)
                if parsed is not None:
                    group = convert(p.decoded_values(parsed[0])[by])
                    groups[group] = groups.get(group, 0) + 1
            missing = await self.count_records() - sum(groups.values())
            if missing > 0:
                groups[None] = missing
            return groups
        return None

    # -- records ---------------------------------------------------------------
    async def fetch(
        self,
        rid: str,
        p: Partition | None,
        pins: Mapping[str, str],
        *,
        op: str = "list",
        strict: bool = False,
        skipped: builtins.list[CorruptRecordError] | None = None,
    ) -> Record | None:
        """Read a listed record; ``None`` if it vanished or no longer matches its partition.

        A corrupt record is ``None`` too, reported through :meth:`Corruption.report`.
        """
        try:
            _, record = await self.resource._records.read(rid)
        except NotFoundError:
            return None
        except CorruptRecordError as exc:
            self.resource._corrupt.report(exc, op=op, strict=strict, skipped=skipped)
            return None
        if p is not None:
            for path, maxlength in p.fields:
                if path in pins:
                    value = get_path(record, path)
                    if is_missing(value) or encode_partition_value(value, maxlength) != pins[path]:
                        return None  # stale reference left by a concurrent move
        return record

    async def records(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        *,
        op: str,
        strict: bool,
        skipped: builtins.list[CorruptRecordError] | None = None,
        limit: int | None = None,
        start_after_id: str | None = None,
        concurrency: int | None = None,
    ) -> AsyncIterator[Record]:
        """Records in id order, ``concurrency`` fetched at a time (:meth:`Resource.stream`);
        ``op`` names the operation in corruption reports, ``skipped`` collects them."""
        _, p, _ = self.scope(partition, partition_values)
        pins = self.pins(p, partition_values)
        start_after = (
            self.resource.key_for(start_after_id) if start_after_id and p is None else None
        )

        async def fetch(item: tuple[str, str]) -> Record | None:
            return await self.fetch(item[1], p, pins, op=op, strict=strict, skipped=skipped)

        n = 0
        async for record in ordered_map(
            fetch,
            self.iter_ids(partition, partition_values, start_after=start_after),
            concurrency or self.resource.db.parallelism,
        ):
            if record is not None:
                yield record
                n += 1
                if limit is not None and n >= limit:
                    return

    def pins(self, p: Partition | None, values: Mapping[str, Any] | None) -> dict[str, str]:
        if p is None or not values:
            return {}
        maxlen = dict(p.fields)
        return {f: encode_partition_value(v, maxlen[f]) for f, v in values.items() if v is not None}

    async def list_impl(
        self,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        limit: int | None,
        *,
        strict: bool = False,
    ) -> RecordList:
        options: dict[str, Any] = {
            "partition": partition,
            "partition_values": partition_values,
            "limit": limit,
        }
        if self.resource._hooks.has("before_list"):
            options = dict(await self.resource._hooks.run("before_list", options))
        p_name = options.get("partition")
        p_values = options.get("partition_values")
        ids = [rid async for _, rid in self.iter_ids(p_name, p_values)]
        p = self.resource.partitions.get(p_name) if p_name else None
        pins = self.pins(p, p_values)
        skipped: builtins.list[CorruptRecordError] = []
        fetched = await bounded_gather(
            lambda rid: self.fetch(rid, p, pins, strict=strict, skipped=skipped),
            ids,
            self.resource.db.parallelism,
        )
        records = [r for r in fetched if r is not None]
        lim = options.get("limit")
        if lim is not None:
            records = records[:lim]
        if self.resource._hooks.has("after_list"):
            records = await self.resource._hooks.run("after_list", records)
        return RecordList(records, sorted(skipped, key=lambda e: e.key))

    async def page_impl(
        self,
        size: int,
        cursor: str | None,
        page: int | None,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        *,
        strict: bool = False,
    ) -> Page:
        if not isinstance(size, int) or size < 1:
            raise ValidationError(
                f"page size must be a positive integer, got {size!r}",
                errors=[{"field": "size", "rule": "min:1", "message": "must be >= 1"}],
                metadata={"field": "size"},
            )
        prefix, p, _ = self.scope(partition, partition_values)
        start_after = _decode_cursor(cursor, prefix) if cursor else None
        skip = (page or 0) * size
        items: list[tuple[str, str]] = []
        async for item in self.iter_ids(
            partition, partition_values, start_after=start_after, limit=skip + size + 1
        ):
            items.append(item)
        window = items[skip : skip + size]
        more = len(items) > skip + size
        pins = self.pins(p, partition_values)
        skipped: builtins.list[CorruptRecordError] = []
        fetched = await bounded_gather(
            lambda it: self.fetch(it[1], p, pins, op="page", strict=strict, skipped=skipped),
            window,
            self.resource.db.parallelism,
        )
        next_cursor = _encode_cursor(window[-1][0]) if more and window else None
        skipped.sort(key=lambda e: e.key)
        return Page([r for r in fetched if r is not None], next_cursor, size, skipped)

    def explain(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        compile_filter(filter, check_path=self.resource._check_path)
        check_password_conditions(filter, self.resource.schema.sensitive_fields)
        partition, values = self.choose_partition(filter)
        return {
            "resource": self.resource.name,
            "partition": partition,
            "partition_values": values,
            "scan": partition is None,
        }

    async def estimate_query_cost(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        plan = self.explain(filter)
        prefix, p, rest = self.scope(plan["partition"], plan["partition_values"])
        listed = candidates = 0
        async for entry in self.resource.db.store.list(prefix):
            if not isinstance(entry, ListEntry):
                continue
            listed += 1
            if p is not None:
                parsed = p.parse_ref(entry.key)
                if (
                    parsed is None
                    or is_dead(entry.size)
                    or any(parsed[0].get(f) != v for f, v in rest.items())
                ):
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

    def choose_partition(
        self, flt: Mapping[str, Any] | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        pins = equality_pins(flt)
        best: Partition | None = None
        for p in self.resource.partitions.values():
            if all(f in pins for f in p.field_names) and (
                best is None or len(p.fields) > len(best.fields)
            ):
                best = p
        if best is None:
            return None, None
        return best.name, {f: pins[f] for f in best.field_names}

    async def query_impl(
        self,
        flt: Mapping[str, Any] | None,
        limit: int | None,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
        *,
        strict: bool = False,
    ) -> RecordList:
        predicate = compile_filter(flt, check_path=self.resource._check_path)
        check_password_conditions(flt, self.resource.schema.sensitive_fields)
        if partition is None:
            partition, partition_values = self.choose_partition(flt)
        out = RecordList()
        records = self.records(
            partition, partition_values, op="query", strict=strict, skipped=out.skipped
        )
        async for record in records:
            if predicate(record):
                out.append(record)
                if limit is not None and len(out) >= limit:
                    break
        return out

    # -- maintenance --------------------------------------------------------------
    async def rebuild_partitions(self) -> dict[str, int]:
        store = self.resource.db.store
        ids = [rid async for _, rid in self.iter_ids()]

        async def refs_of(rid: str) -> dict[str, str]:
            try:
                obj, record = await self.resource._records.read(rid)
            except (NotFoundError, CorruptRecordError):
                return {}  # unreadable: its references cannot lead anywhere, they go
            return self.resource._writer.ref_tokens(record, rid, obj.metadata)

        expected: dict[str, str] = {}
        for refs in await bounded_gather(refs_of, ids, self.resource.db.parallelism):
            expected.update(refs)
        listed: dict[str, str | None] = {}  # key -> etag of a live reference, None if dead
        async for entry in store.list(f"resource={self.resource.name}/partition="):
            if isinstance(entry, ListEntry):
                listed[entry.key] = None if is_dead(entry.size) else entry.etag

        async def fix(key: str) -> int:
            token = expected.get(key)
            etag = listed.get(key)
            body = DEAD_REF if token is None else token.encode()
            if etag == body_etag(body) or (token is None and etag is None):
                return 0
            try:
                await conditional_put(
                    store,
                    key,
                    body,
                    if_none_match=key not in listed,
                    if_match=None if key not in listed else etag or body_etag(DEAD_REF),
                )
            except PreconditionFailed:
                return 0  # changed meanwhile: a concurrent writer owns it now
            return 1 if token is None or etag is None else 0

        added = sum(await bounded_gather(fix, [k for k in expected], self.resource.db.parallelism))
        stale = [k for k in listed if k not in expected]
        # References of a partition no longer defined (dropped, or refused as it named a
        # secret field) are deleted outright: no writer puts them any more, and a killed
        # marker would keep the value in its key.
        base = f"resource={self.resource.name}/partition="
        undefined = [
            k for k in stale if k[len(base) :].split("/", 1)[0] not in self.resource.partitions
        ]
        if undefined:
            await store.delete_many(undefined)
        gone = set(undefined)
        removed = sum(
            await bounded_gather(
                fix, [k for k in stale if k not in gone], self.resource.db.parallelism
            )
        )
        removed += sum(1 for k in undefined if listed[k] is not None)
        return {"added": added, "removed": removed}
