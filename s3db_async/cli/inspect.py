"""What ``s3db stats`` and ``s3db schema-diff`` report, as plain JSON-able dicts.

::

    report = await database_stats(db)          # one LIST pass per resource, no GET
    diff = schema_diff(db, "users", "v1", "v3")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..stores import ListEntry

if TYPE_CHECKING:
    from .._database import Database
    from .._resource.resource import Resource

__all__ = ["database_stats", "flatten_attributes", "resource_stats", "schema_diff"]


def _version_number(version: str) -> int:
    digits = version[1:] if version[:1] == "v" else version
    return int(digits) if digits.isdigit() else 0


def _versions(db: Database, name: str) -> dict[str, Any]:
    db.get_resource(name)  # ResourceNotFoundError with the usual suggestion
    entry = db.metadata.get("resources", {}).get(name) or {}
    versions = entry.get("versions") or {}
    return dict(sorted(versions.items(), key=lambda kv: _version_number(kv[0])))


async def resource_stats(resource: Resource) -> dict[str, Any]:
    """Counts of one resource from a single LIST of ``resource={name}/`` (no GET).

    ``records`` (objects under ``data/``), ``partitions`` (references per partition,
    including partitions no longer defined), ``objects`` and ``bytes`` (every object of
    the resource, from the LIST sizes) and ``by_prefix`` (objects and bytes per
    top-level folder: ``data``, ``partition=...``, ``content``, ``plugin=...``).
    """
    base = f"resource={resource.name}/"
    partitions = dict.fromkeys(resource.partitions, 0)
    by_prefix: dict[str, dict[str, int]] = {}
    records = objects = size = 0
    async for entry in resource.db.store.list(base):
        if not isinstance(entry, ListEntry):
            continue
        objects += 1
        size += entry.size
        head = entry.key[len(base) :].split("/", 1)[0]
        if head == "data":
            records += 1
        elif head.startswith("partition="):
            name = head[len("partition=") :]
            partitions[name] = partitions.get(name, 0) + 1
        group = by_prefix.setdefault(head, {"objects": 0, "bytes": 0})
        group["objects"] += 1
        group["bytes"] += entry.size
    versions = list(_versions(resource.db, resource.name))
    return {
        "name": resource.name,
        "version": resource.version,
        "versions": versions,
        "behavior": resource.behavior,
        "records": records,
        "partitions": partitions,
        "objects": objects,
        "bytes": size,
        "by_prefix": dict(sorted(by_prefix.items())),
    }


async def database_stats(db: Database) -> dict[str, Any]:
    """:func:`resource_stats` of every resource, and the requests the store has sent so far
    (since the database connected: the whole command for the CLI)."""
    resources = [await resource_stats(db.resources[name]) for name in db.list_resources()]
    requests = dict(sorted(db.store.stats.snapshot().items()))
    return {
        "url": db.url,
        "resources": resources,
        "totals": {
            "records": sum(r["records"] for r in resources),
            "objects": sum(r["objects"] for r in resources),
            "bytes": sum(r["bytes"] for r in resources),
        },
        "requests": {**requests, "total": sum(requests.values())},
    }


def flatten_attributes(attributes: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Stored (canonical) attributes as ``{dotted path: rule dict}``.

    A nested object gives an entry of its own (``{"type": "object"}`` plus its ``$$``
    modifiers) and one per field.
    """
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if key.startswith("$$"):
            continue
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, str):
            out[path] = {"type": value}
        elif isinstance(value, Mapping) and isinstance(value.get("type"), str):
            out[path] = dict(value)
        elif isinstance(value, Mapping):
            out[path] = {"type": "object", **{k: v for k, v in value.items() if k[:2] == "$$"}}
            out.update(flatten_attributes(value, path))
        else:
            out[path] = {"type": repr(value)}
    return out


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{key: [old, new]}`` for every key whose value differs (absent is ``None``)."""
    return {
        k: [old.get(k), new.get(k)]
        for k in sorted(set(old) | set(new), key=str)
        if old.get(k) != new.get(k)
    }


def _section(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    added = {k: new[k] for k in new if k not in old}
    removed = {k: old[k] for k in old if k not in new}
    changed: dict[str, Any] = {}
    for k in old:
        if k in new and old[k] != new[k]:
            a, b = old[k], new[k]
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                changed[k] = {"from": a, "to": b, "changes": _changes(a, b)}
            else:
                changed[k] = {"from": a, "to": b, "changes": {}}
    return {"added": added, "removed": removed, "changed": changed}


def schema_diff(
    db: Database, name: str, from_version: str | None = None, to_version: str | None = None
) -> dict[str, Any]:
    """Differences between two stored versions of a resource's definition.

    Defaults: ``to_version`` is the current version, ``from_version`` the one before it
    (the same version when there is only one). Reports ``fields`` (added, removed, and
    changed with ``changes: {rule: [old, new]}``), ``partitions`` likewise, and ``options``
    (``behavior``, ``timestamps``, ``id_generator``... as ``{option: [old, new]}``).

    :raises ConfigError: unknown version.
    """
    versions = _versions(db, name)
    order = list(versions)
    current = db.get_resource(name).version
    to_v = to_version or current
    if to_v not in versions:
        raise ConfigError(
            f"resource {name!r} has no version {to_v!r}",
            suggestion=f"versions: {', '.join(order)}",
            metadata={"resource": name, "version": to_v},
        )
    if from_version is None:
        earlier = order[: order.index(to_v)]
        from_v = earlier[-1] if earlier else to_v
    else:
        from_v = from_version
    if from_v not in versions:
        raise ConfigError(
            f"resource {name!r} has no version {from_v!r}",
            suggestion=f"versions: {', '.join(order)}",
            metadata={"resource": name, "version": from_v},
        )
    old = versions[from_v].get("definition") or {}
    new = versions[to_v].get("definition") or {}
    fields = _section(
        flatten_attributes(old.get("attributes") or {}),
        flatten_attributes(new.get("attributes") or {}),
    )
    partitions = _section(old.get("partitions") or {}, new.get("partitions") or {})
    rest_old = {k: v for k, v in old.items() if k not in ("attributes", "partitions")}
    rest_new = {k: v for k, v in new.items() if k not in ("attributes", "partitions")}
    options = _changes(rest_old, rest_new)
    identical = not options and not any(fields.values()) and not any(partitions.values())
    return {
        "resource": name,
        "from": from_v,
        "to": to_v,
        "versions": order,
        "fields": fields,
        "partitions": partitions,
        "options": options,
        "identical": identical,
    }
