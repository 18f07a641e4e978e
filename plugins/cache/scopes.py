"""Cache keys and invalidation groups of the CachePlugin.

Every cached value lives under a key ``{resource}/{group tag}/{leaf}``; a *group* is the key
without its leaf. A write drops whole groups, so the drivers only need "delete every key of
these groups":

- ``rec-{hash(id)}``: the ``get`` entry of one record (``get_many`` is served from these);
- ``all``: list/list_ids/count/page/query entries over the whole resource;
- ``p-{hash(partition, pinned values)}``: those entries over one partition, for the values
  the call pinned (a call may pin only some of a partition's fields).

A written record belongs to ``all`` and, for each partition it is in, to the group of every
subset of that partition's fields pinned to the record's values (up to
:data:`MAX_SUBSET_FIELDS` fields; a wider partition uses one group for all its listings). A
write therefore drops exactly the entries whose result it can change: a list of another
partition value stays cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import Any

from s3db_async import Resource

__all__ = [
    "ALL",
    "MAX_SUBSET_FIELDS",
    "entry_key",
    "group_of",
    "leaf",
    "record_groups",
    "record_tag",
    "scope_tag",
    "write_groups",
]

ALL = "all"
MAX_SUBSET_FIELDS = 4


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def record_tag(record_id: str) -> str:
    """The group tag of one record's ``get`` entry."""
    return "rec-" + _digest(record_id)


def leaf(op: str, args: tuple[Any, ...]) -> str:
    """The leaf of an entry: the operation and a digest of its arguments."""
    return f"{op}-{_digest(repr(args))}"


def entry_key(resource: str, tag: str, leaf_name: str) -> str:
    """``{resource}/{tag}/{leaf}``."""
    return f"{resource}/{tag}/{leaf_name}"


def group_of(key: str) -> str:
    """The group of an entry key (the key without its leaf)."""
    return key.rpartition("/")[0]


def _partition_tag(name: str, pinned: Mapping[str, str]) -> str:
    return "p-" + _digest(repr((name, sorted(pinned.items()))))


def scope_tag(
    resource: Resource, partition: str | None, partition_values: Mapping[str, Any] | None
) -> str | None:
    """The group tag of a listing over ``partition``/``partition_values``.

    ``None`` when the arguments are invalid (the call goes through uncached and raises).
    """
    if partition is None:
        return None if partition_values else ALL
    p = resource.partitions.get(partition)
    if p is None:
        return None
    try:
        prefix, rest = p.prefix(resource.name, partition_values or {})
    except Exception:
        return None
    if len(p.fields) > MAX_SUBSET_FIELDS:
        return _partition_tag(p.name, {})
    pinned: dict[str, str] = dict(rest)
    for segment in prefix[len(p.base(resource.name)) :].split("/"):
        field, sep, value = segment.partition("=")
        if sep:
            pinned[field] = value
    return _partition_tag(p.name, pinned)


def record_groups(resource: Resource, record: Mapping[str, Any] | None) -> set[str]:
    """The partition tags a record (as stored) belongs to."""
    if record is None:
        return set()
    tags: set[str] = set()
    rid = str(record.get("id", ""))
    for p in resource.partitions.values():
        key = p.ref_key(resource.name, record, rid or "_")
        if key is None:
            continue
        parsed = p.parse_ref(key)
        if parsed is None:
            continue
        values = parsed[0]
        if len(p.fields) > MAX_SUBSET_FIELDS:
            tags.add(_partition_tag(p.name, {}))
            continue
        names = list(values)
        for n in range(len(names) + 1):
            for subset in combinations(names, n):
                tags.add(_partition_tag(p.name, {f: values[f] for f in subset}))
    return tags


def write_groups(
    resource: Resource, record_id: str | None, records: Iterable[Mapping[str, Any] | None]
) -> set[str]:
    """Every group a write of ``record_id`` (old and new versions in ``records``) touches."""
    tags = {ALL}
    if record_id is not None:
        tags.add(record_tag(record_id))
    for record in records:
        tags |= record_groups(resource, record)
        if record is not None and "id" in record:
            tags.add(record_tag(str(record["id"])))
    return {f"{resource.name}/{t}" for t in tags}
