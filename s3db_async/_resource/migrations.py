"""Schema migrations: upgrade records written under older schema versions.

``create_resource(..., migrations={2: fn2, 3: fn3})`` keys each function by the version it
produces: ``fn2`` turns a v1 record (a ``dict`` with its ``id``) into a v2 record, ``fn3``
a v2 record into a v3 one. Functions may be sync or async; ``None`` marks a step that
needs no function. They live in memory only (code cannot be stored): ``s3db.json``
records which steps exist, so a process that reads an old record without having
registered them gets a :class:`SchemaError` instead of a record in the wrong shape.

The highest key is the definition's version number: a new database created from the
same code starts that resource at ``v3`` (so keys mean the same everywhere), and a key
one past an unchanged definition creates that version (a data-only migration).

- **Lazily**, every read (``get``, ``list``, ``stream``, ``query``, ``history`` ...) decodes
  an old record with the codec of its own version, runs the chain up to the current
  version and validates the result. Nothing is written back on read: reads stay one GET,
  never race writers and work with read-only credentials. The next write of the record
  (``update`` ...) stores it under the current version.
- **Eagerly**, :meth:`Migrations.migrate` rewrites every record below the current
  version with ``If-Match`` (bounded concurrency). A record's ``_v`` says whether it is
  done, so a crashed or cancelled run resumes where it stopped, and a second run writes
  nothing. A checkpoint (``resource={name}/plugin=migrations/checkpoint``, every
  1000 records) lets a resumed run skip the records it already went through.

A step is needed for every version between a record's and the current one. Without any
migration (``migrations`` never given) records are only decoded with their old codec, as
before. Once migrations are given, a step whose attributes changed must have an entry:
a missing one raises :class:`SchemaError` naming the version. Steps that changed no
attribute (behavior, history, partitions ...) need none.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import re
import sys
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .._cas import RETRY, Backoff, _Retry, cas_loop
from .._codec.codec import record_version
from .._concurrency import ordered_map
from .._record import Record
from ..errors import (
    ConfigError,
    NotFoundError,
    S3dbError,
    SchemaError,
    ValidationError,
)

if TYPE_CHECKING:
    from .resource import Resource

__all__ = [
    "MigrationFn",
    "Migrations",
    "UpgradedRecord",
    "declare_steps",
    "load_migrations",
    "normalize_migrations",
    "version_number",
]

MigrationFn = Callable[[dict[str, Any]], Any]
"""``fn(previous_record) -> next_record`` (or an awaitable of it)."""

_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_MISSING: Any = object()
CHECKPOINT_EVERY = 1000


def version_number(version: str | None) -> int | None:
    """``3`` for ``"v3"``; ``None`` for anything else."""
    m = _VERSION.match(version or "")
    return int(m.group(1)) if m else None


def normalize_migrations(
    migrations: Mapping[Any, MigrationFn | None] | None, *, resource: str
) -> dict[int, MigrationFn | None] | None:
    """Check a ``migrations`` mapping: keys are target versions (``2`` or ``"v2"``, at
    least 2), values callables or ``None``. An empty mapping counts as none given.

    :raises SchemaError: a bad key or value.
    """
    if migrations is None:
        return None
    if not isinstance(migrations, Mapping):
        raise SchemaError(
            f"migrations for {resource!r} must be a mapping, not {type(migrations).__name__}",
            suggestion="pass migrations={2: v1_to_v2, 3: v2_to_v3}",
            metadata={"resource": resource},
        )
    out: dict[int, MigrationFn | None] = {}
    for key, fn in migrations.items():
        number = (
            key
            if isinstance(key, int) and not isinstance(key, bool)
            else version_number(key)
            if isinstance(key, str)
            else None
        )
        if number is None or number < 2:
            raise SchemaError(
                f"invalid migration key {key!r} for {resource!r}",
                suggestion="key each function by the version it produces: 2 turns v1 "
                "records into v2 records",
                metadata={"resource": resource, "migration": repr(key)},
            )
        if fn is not None and not callable(fn):
            raise SchemaError(
                f"migration to v{number} of {resource!r} is not callable",
                suggestion="pass a function (sync or async) or None for 'no change'",
                metadata={"resource": resource, "migration": number},
            )
        out[number] = fn
    return out or None


def declare_steps(
    changed: bool,
    doc: dict[str, Any],
    name: str,
    steps: list[int] | None,
    *,
    before: str | None,
    versioning: bool = True,
) -> bool:
    """Record the migration steps on the current version of ``name`` in ``s3db.json``.

    Runs inside ``create_resource``'s compare-and-swap after its own change (``changed``;
    ``before`` is the version that was current before it); raising here aborts the write.
    The steps are not part of the definition's hash. The highest step is the number of
    the definition: a version this call creates takes that number (a database created
    from today's code starts at the same number as one that went through every version),
    and an unchanged definition below it gets a new version with that number (a
    data-only migration).

    :raises SchemaError: a step beyond the current version without ``versioning``.
    """
    if steps is None:
        return changed
    entry = doc["resources"][name]
    current = entry["current_version"]
    top = max(steps)
    if top > (version_number(current) or 1):
        if not versioning and before is not None:
            raise SchemaError(
                f"migration to v{top} given, but {name!r} is at {current} and versioning is off",
                suggestion="open the Database with versioning=True to add versions",
                metadata={"resource": name, "migration": top, "version": current},
            )
        target = f"v{top}"
        if before != current:  # this call created the version: number it after the steps
            entry["versions"][target] = entry["versions"].pop(current)
        else:  # same definition, higher step: a data-only migration
            entry["versions"][target] = {
                **entry["versions"][current],
                "created_at": datetime.now(UTC).isoformat(),
            }
        entry["current_version"] = current = target
        changed = True
    version = entry["versions"][current]
    if version["definition"].get("migrations") == steps:
        return changed
    entry["versions"][current] = {
        **version,
        "definition": {**version["definition"], "migrations": steps},
    }
    return True


def load_migrations(spec: str) -> Mapping[Any, MigrationFn | None]:
    """Import ``package.module:NAME`` (``NAME`` defaults to ``MIGRATIONS``).

    The current directory is importable, as for ``python -m``.

    :raises ConfigError: the module or attribute is missing, or not a mapping.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "MIGRATIONS"
    if not module_name:
        raise ConfigError(
            f"bad migrations reference {spec!r}", suggestion="write package.module:MIGRATIONS"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r}: {exc}",
            suggestion="make the module importable from the current directory or PYTHONPATH",
        ) from None
    value = getattr(module, attr, None)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{module_name}:{attr} is not a mapping of migrations",
            suggestion="define MIGRATIONS = {2: v1_to_v2, ...} in that module",
        )
    return value


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class UpgradedRecord(Record):
    """A record read from an older schema version and upgraded on the fly.

    ``stored`` is the record as it is stored (decoded with its own version's codec):
    partition references are computed from it, since they were written from it.
    """

    __slots__ = ("stored",)

    def __init__(
        self,
        data: Any = (),
        *,
        etag: str | None = None,
        version: str | None = None,
        stored: Mapping[str, Any] | None = None,
    ) -> None:
        masked = stored.masked if isinstance(stored, Record) else None
        super().__init__(data, etag=etag, version=version, masked=masked)
        self.stored: Mapping[str, Any] = stored if stored is not None else {}


class Migrations:
    """Lazy and eager record upgrades of a resource."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.migration_fns: Mapping[int, MigrationFn | None] = MappingProxyType({})

    def set_migrations(self, migrations: Mapping[Any, MigrationFn | None] | None) -> None:
        fns = normalize_migrations(migrations, resource=self.resource.name) or {}
        current = version_number(self.resource.version) or 1
        beyond = sorted(n for n in fns if n > current)
        if beyond:
            raise SchemaError(
                f"migration to v{beyond[0]} given, "
                f"but {self.resource.name!r} is at {self.resource.version}",
                suggestion="key each function by the version it produces",
                metadata={"resource": self.resource.name, "migration": beyond[0]},
            )
        self.migration_fns = MappingProxyType(fns)

    @property
    def migrations(self) -> Mapping[int, MigrationFn | None]:
        return self.migration_fns

    def declared_steps(self) -> set[int]:
        steps: set[int] = set()
        for entry in self.resource._versions.values():
            steps.update(entry.get("definition", {}).get("migrations") or ())
        return steps

    def migration_chain(self, version: str) -> list[tuple[int, MigrationFn | None]]:
        """The steps from ``version`` to the current one (empty if none are needed).

        :raises SchemaError: a needed step is missing.
        """
        start, end = version_number(version), version_number(self.resource.version)
        if start is None or end is None or start >= end:
            return []
        declared = self.declared_steps()
        strict = bool(self.migration_fns) or bool(declared)
        chain: list[tuple[int, MigrationFn | None]] = []
        for n in range(start + 1, end + 1):
            fn = self.migration_fns.get(n, _MISSING)
            if fn is not _MISSING:
                chain.append((n, fn))
            elif n in declared:
                raise SchemaError(
                    f"{self.resource.name} records at {version} need the migration to v{n}: it is "
                    "declared in s3db.json but not registered in this process",
                    suggestion="pass the same migrations= to create_resource() in every "
                    "process, or call resource.set_migrations(...)",
                    metadata={
                        "resource": self.resource.name,
                        "version": version,
                        "missing": f"v{n}",
                    },
                )
            elif strict and not self.same_attributes(n):
                raise SchemaError(
                    f"no migration to v{n}: {self.resource.name} records at {version} cannot be "
                    f"upgraded to {self.resource.version}",
                    suggestion=f"add {n}: <function> to migrations (or {n}: None when v{n} "
                    "records need no change)",
                    metadata={
                        "resource": self.resource.name,
                        "version": version,
                        "missing": f"v{n}",
                    },
                )
            else:
                chain.append((n, None))
        return chain

    def same_attributes(self, n: int) -> bool:
        before = self.resource._versions.get(f"v{n - 1}", {}).get("definition")
        after = self.resource._versions.get(f"v{n}", {}).get("definition")
        return (
            before is not None
            and after is not None
            and before.get("attributes") == after.get("attributes")
        )

    async def run_chain(
        self, record: Mapping[str, Any], chain: list[tuple[int, MigrationFn | None]], version: str
    ) -> dict[str, Any]:
        """Apply ``chain`` to a stored record and validate the result (without ``id``)."""
        rid = str(record["id"])
        data: dict[str, Any] = copy.deepcopy(dict(record))
        for n, fn in chain:
            if fn is None:
                continue
            try:
                result = await _maybe_await(fn(data))
            except S3dbError:
                raise
            except Exception as exc:
                raise SchemaError(
                    f"the migration to v{n} failed on {self.resource.name} record {rid!r}: "
                    f"{type(exc).__name__}: {exc}",
                    suggestion="fix the migration function, then read or migrate() again",
                    metadata={"resource": self.resource.name, "id": rid, "migration": f"v{n}"},
                ) from exc
            if not isinstance(result, Mapping):
                raise SchemaError(
                    f"the migration to v{n} returned {type(result).__name__}, not a mapping",
                    suggestion="return the upgraded record as a dict",
                    metadata={"resource": self.resource.name, "id": rid, "migration": f"v{n}"},
                )
            data = dict(result)
            if str(data.setdefault("id", rid)) != rid:
                raise SchemaError(
                    f"the migration to v{n} changed the id of {self.resource.name} record {rid!r}",
                    suggestion="migrations cannot change ids",
                    metadata={"resource": self.resource.name, "id": rid, "migration": f"v{n}"},
                )
        data.pop("id", None)
        try:
            return self.resource.schema.validate(data)
        except ValidationError as exc:
            raise ValidationError(
                f"{self.resource.name} record {rid!r} upgraded from {version} does not satisfy "
                f"{self.resource.version}: {exc.message}",
                errors=exc.errors,
                suggestion="make the migrations return records valid under the current schema",
                metadata={"resource": self.resource.name, "id": rid, "version": version},
            ) from None

    async def upgrade(self, record: Record) -> Record:
        """Lazy upgrade of a record read from an older version (once migrations exist)."""
        if not (self.migration_fns or self.declared_steps()):
            return record
        version = record.version or self.resource.version
        chain = self.migration_chain(version)
        if not chain:
            return record
        data = await self.run_chain(record, chain, version)
        out = UpgradedRecord({"id": record["id"]}, etag=record.etag, version=version, stored=record)
        out.update(data)
        return out

    # -- eager ---------------------------------------------------------------------
    @property
    def checkpoint_key(self) -> str:
        return f"resource={self.resource.name}/plugin=migrations/checkpoint"

    async def migrate(
        self,
        *,
        on_progress: Callable[[dict[str, Any]], Any] | None = None,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        target = version_number(self.resource.version)
        stats: dict[str, Any] = {
            "resource": self.resource.name,
            "version": self.resource.version,
            "total": None,
            "done": 0,
            "migrated": 0,
            "skipped": 0,
        }
        if target is None:
            return stats
        checkpoint = await self.read_checkpoint()
        start_after = checkpoint.get("after") if checkpoint else None
        if on_progress is not None:
            total = before = 0
            async for key, _ in self.resource._listing.iter_ids():
                total += 1
                if start_after is not None and key <= start_after:
                    before += 1
            stats["total"], stats["done"] = total, before

        async def one(item: tuple[str, str]) -> tuple[str, str]:
            key, rid = item
            try:
                return key, await self.migrate_one(key, rid, target)
            except Exception as exc:
                exc.add_note(f"while migrating {self.resource.name} record {rid!r}")
                raise

        since = 0
        saved = False
        results = cast(
            "AsyncGenerator[tuple[str, str], None]",
            ordered_map(
                one,
                self.resource._listing.iter_ids(start_after=start_after),
                concurrency or self.resource.db.parallelism,
            ),
        )
        async with aclosing(results):  # an error here cancels the records in flight
            async for key, outcome in results:
                stats[outcome] += 1
                stats["done"] += 1
                since += 1
                if since >= CHECKPOINT_EVERY and stats["migrated"]:
                    await self.write_checkpoint(key)  # only runs that write leave one
                    since, saved = 0, True
                if on_progress is not None:
                    await _maybe_await(on_progress(dict(stats)))
        if checkpoint is not None or saved:
            await self.resource.db.store.delete(self.checkpoint_key)
        if stats["total"] is None:
            stats["total"] = stats["done"]
        return stats

    async def read_checkpoint(self) -> dict[str, Any] | None:
        try:
            obj = await self.resource.db.store.get(self.checkpoint_key)
        except NotFoundError:
            return None
        try:
            doc = msgspec.json.decode(obj.body)
        except msgspec.DecodeError:
            return {}
        if not isinstance(doc, dict) or doc.get("version") != self.resource.version:
            return {}  # another target version: start over (and drop it when done)
        return doc

    async def write_checkpoint(self, key: str) -> None:
        body = msgspec.json.encode(
            {"version": self.resource.version, "after": key, "at": datetime.now(UTC).isoformat()}
        )
        await self.resource.db.store.put(self.checkpoint_key, body, content_type="application/json")

    async def migrate_one(self, key: str, rid: str, target: int) -> str:
        """Upgrade one record; ``"migrated"`` or ``"skipped"`` (current, newer or gone)."""
        store = self.resource.db.store

        async def attempt(_: int) -> str | _Retry:
            try:
                obj = await store.get(key)
            except NotFoundError:
                return "skipped"
            version = record_version(obj.metadata) or self.resource.version
            number = version_number(version)
            if number is None or number >= target:
                return "skipped"
            stored = Record(
                {"id": rid}, etag=obj.etag, version=version, masked=self.resource._masked
            )
            stored.update(self.resource._codec_for(version).decode(obj.metadata, obj.body))
            record = await self.run_chain(stored, self.migration_chain(version), version)
            encoded = self.resource._records.encode(record, rid)
            etag = await self.resource._writer.swap(rid, obj, stored, encoded, record)
            if etag is None:
                return RETRY  # written meanwhile: look again (probably current now)
            result = Record(
                {"id": rid}, etag=etag, version=self.resource.version, masked=self.resource._masked
            )
            result.update(record)
            self.resource.emit("updated", result, stored)
            return "migrated"

        return await cas_loop(
            attempt,
            what=f"{self.resource.name} record {rid!r} (migrate)",
            backoff=Backoff(attempts=self.resource.conflict_retries + 1),
            suggestion="run migrate() again",
            metadata={"resource": self.resource.name, "id": rid},
        )
