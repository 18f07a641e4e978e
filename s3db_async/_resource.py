"""Resource: a collection of records stored as S3 objects.

Request budget (asserted in tests): ``insert`` = 1 conditional PUT (+1 PUT per
partition reference, written first; 2 when reviving a dead reference), ``get`` = 1 GET,
``exists`` = 1 HEAD, ``update``/``patch``/``replace`` = 1 GET + 1 conditional PUT (+1 PUT
of the new reference before and 1 PUT killing the old one after, per partition whose value
moves; only the GET when the result equals the stored record), ``delete`` = 1 batched
DELETE, plus 1 GET first when the delete is observed (partitions, delete hooks or
``deleted`` listeners) and 1 PUT killing each reference.
Writes whose answer is lost are resolved by :mod:`s3db_async._cas` (see
docs/reliability.md); partition references follow :mod:`s3db_async._partitions`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import anyio.to_thread

from ._cas import DEFAULT_BACKOFF, RETRY, Backoff, _Retry, cas_loop, conditional_put
from ._codec import AttributeRegistry, EncodedRecord, RecordCodec
from ._concurrency import bounded_gather
from ._content import ContentMixin
from ._corrupt import CorruptionMixin
from ._crypto import SecretBox
from ._events import EventEmitter, HookRegistry, Middleware
from ._extensions import MIDDLEWARE_METHODS, ExtensionMixin
from ._field_paths import check_field_path
from ._history import REVISION_METADATA_BYTES, HistoryMixin
from ._ids import IdGenerator, make_id_generator, parse_incremental, validate_id
from ._listing import ListingMixin
from ._migrations import MigrationMixin
from ._partitions import (
    Partition,
    kill_refs,
    parse_partitions,
    tokens_size,
)
from ._record import BatchResult, ItemResult, Record
from ._schema import Schema
from ._timestamps import (
    TIMESTAMP_FIELDS,
    TIMESTAMP_RULE,
    Unchanged,
    keep_stamps,
    preserve_kw,
    stamp_new,
    touch,
    unchanged,
)
from ._writes import RecordWriter
from .errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    CorruptObjectError,
    CorruptRecordError,
    DecryptionError,
    NotFoundError,
    PreconditionFailed,
    S3dbError,
    SchemaError,
)
from .stores import StoredObject

if TYPE_CHECKING:
    from ._database import Database

__all__ = ["HOOK_NAMES", "MIDDLEWARE_METHODS", "Resource"]

HOOK_NAMES = tuple(
    f"{when}_{op}"
    for op in ("insert", "update", "delete", "get", "list")
    for when in ("before", "after")
)


class Resource(
    ExtensionMixin,
    ListingMixin,
    ContentMixin,
    HistoryMixin,
    MigrationMixin,
    CorruptionMixin,
    EventEmitter,
):
    """A named collection of records with a schema, partitions, hooks and events.

    Get one from :meth:`Database.create_resource` or ``db.resources[name]``::

        users = await db.create_resource("users", attributes={"email": "string|required|email"})
        user = await users.insert({"email": "a@b.co"})
        await users.update(user["id"], {"email": "c@d.co"})
    """

    event_names = frozenset(
        {"inserted", "updated", "deleted", "deleted_all", "limits_exceeded", "truncated", "error"}
    )
    renamed_events: ClassVar[Mapping[str, str]] = {"exceeds_limits": "limits_exceeded"}

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        definition: Mapping[str, Any],
        version: str,
        versions: Mapping[str, Mapping[str, Any]],
        registry: AttributeRegistry,
        id_generator: IdGenerator | None = None,
    ) -> None:
        EventEmitter.__init__(self, logger=logging.getLogger(f"s3db_async.resource.{name}"))
        self.db = db
        self.name = name
        self.log = logging.getLogger(f"s3db_async.resource.{name}")
        self._supervisor = db._supervisor
        self._hooks = HookRegistry(HOOK_NAMES, owner=f"resource {name!r}")
        self._middlewares: dict[str, list[Middleware]] = {}
        self._chains: dict[str, Callable[..., Awaitable[Any]]] = {}
        self._methods: dict[str, str | None] = {}
        self._plugin_attributes: dict[str, tuple[Any, str]] = {}
        self.registry = registry
        self._custom_id_generator = id_generator
        self._writer = RecordWriter(self)
        self._unknown_versions: set[str] = set()
        self._version_lock: asyncio.Lock | None = None
        self._apply(definition, version, versions)

    # -- definition -----------------------------------------------------------
    def _apply(
        self,
        definition: Mapping[str, Any],
        version: str,
        versions: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """(Re)build schema, codecs and partitions from a stored definition."""
        self.definition: dict[str, Any] = dict(definition)
        self.version = version
        self._versions = {v: dict(d) for v, d in versions.items()}
        self.behavior: str = definition.get("behavior", "body-overflow")
        self.timestamps: bool = bool(definition.get("timestamps", False))
        self.conflict_retries: int = int(definition.get("conflict_retries", 5))
        self.keeps_history: bool = bool(definition.get("history", False))
        gen = definition.get("id_generator") or "nanoid"
        start = parse_incremental(gen)
        if start is not None:
            self._id_generator = self._incremental_ids(start)
        elif gen == "custom" and self._custom_id_generator:
            self._id_generator = self._custom_id_generator
        else:
            self._id_generator = make_id_generator(
                "nanoid" if gen == "custom" else gen, size=definition.get("id_size")
            )
        self.schema = self._build_schema(definition)
        self.partitions: dict[str, Partition] = parse_partitions(
            definition.get("partitions"),
            known_fields=set(self.schema.fields),
            resource=self.name,
            strict=self.db.strict_validation,
            sensitive=self.schema.sensitive_fields,
            drop_sensitive=True,
        )
        self._masked = tuple(self.schema.sensitive_fields)
        self._codecs: dict[str, RecordCodec] = {}
        self.codec = self._codec_for(version)

    def _incremental_ids(self, start: int) -> IdGenerator:
        """Ids 1, 2, 3 ... from a sequence at ``resource={name}/plugin=s3db/sequence=id``."""
        from ._plugin_storage import PluginStorage

        storage = PluginStorage(self.db, "s3db")

        async def next_id() -> str:
            return str(await storage.next_sequence("id", resource=self.name, start=start))

        return next_id

    @staticmethod
    def attributes_of(definition: Mapping[str, Any]) -> dict[str, Any]:
        """User attributes plus timestamps, as the schema sees them."""
        attributes = dict(definition.get("attributes") or {})
        if definition.get("timestamps"):
            for f in TIMESTAMP_FIELDS:
                attributes.setdefault(f, TIMESTAMP_RULE)
        return attributes

    def _build_schema(self, definition: Mapping[str, Any]) -> Schema:
        return Schema(
            self.attributes_of(definition),
            plugin_attributes={n: d for n, (d, _) in self._plugin_attributes.items()} or None,
            allow_extra=bool(definition.get("allow_extra", False)),
        )

    def _codec_for(self, version: str) -> RecordCodec:
        codec = self._codecs.get(version)
        if codec is None:
            codec = self._codecs[version] = self.make_codec(version, self.db._secret_box)
        return codec

    def make_codec(self, version: str, secret_box: SecretBox | None) -> RecordCodec:
        """A codec for records stored under schema ``version`` with a given secret box."""
        definition = self._versions.get(version, {}).get("definition")
        schema = (
            self.schema
            if version == self.version or definition is None
            else self._build_schema(definition)
        )
        return RecordCodec(
            schema,
            self.registry,
            version=version,
            behavior=(definition or self.definition).get("behavior", self.behavior),
            secret_box=secret_box,
            reserved_metadata=(REVISION_METADATA_BYTES if self.keeps_history else 0)
            + tokens_size(list(self.partitions)),
            resource=self.name,
        )

    def _reset_codecs(self) -> None:
        """Forget cached codecs (after the database's secret box changed)."""
        self._codecs.clear()
        self.codec = self._codec_for(self.version)

    @property
    def versions(self) -> dict[str, dict[str, Any]]:
        """Every schema version of this resource (``{"v1": {"definition": ..., "hash": ...}}``)."""
        return self._versions

    # -- keys ------------------------------------------------------------------
    @property
    def data_prefix(self) -> str:
        """Key prefix of the records: ``resource={name}/data/``."""
        return f"resource={self.name}/data/"

    def key_for(self, record_id: str) -> str:
        """Object key of a record."""
        return f"resource={self.name}/data/id={record_id}"

    def _id(self, value: object) -> str:
        return validate_id(value, resource=self.name)

    def _check_path(self, path: str, *, where: str = "query filter") -> None:
        """Refuse a field path (filter, ``count(by=)``) that no schema version knows."""
        older = (self._codec_for(v).schema for v in self._versions if v != self.version)
        check_field_path(self.schema, path, where=where, resource=self.name, older=older)

    def _ref_keys(self, record: Mapping[str, Any], record_id: str) -> dict[str, str]:
        record = getattr(record, "stored", record)  # an upgraded record's refs: as stored
        refs = {}
        for name, p in self.partitions.items():
            key = p.ref_key(self.name, record, record_id)
            if key is not None:
                refs[name] = key
        return refs

    # -- writes ------------------------------------------------------------------
    async def insert(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        preserve_timestamps: bool = False,
        **fields: Any,
    ) -> Record:
        """Validate and store a new record; returns it with its ``id``.

        :param preserve_timestamps: keep the ``created_at``/``updated_at`` given (aware
            datetimes or ISO strings with a zone) instead of now (imports, restores).
        :raises ValidationError: the data does not satisfy the schema (nothing is written).
        :raises AlreadyExistsError: a record with this id exists (it is not overwritten).
        """
        payload = {**(data or {}), **fields}
        return await self._call("insert", self._insert, payload, **preserve_kw(preserve_timestamps))

    async def _validate(self, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Validate; password hashing (~0.1 s of CPU) runs in a worker thread, off the loop."""
        if self.schema.has_passwords:
            return await anyio.to_thread.run_sync(
                functools.partial(self.schema.validate, data, partial=partial)
            )
        return self.schema.validate(data, partial=partial)

    async def _insert(
        self, data: Mapping[str, Any], *, preserve_timestamps: bool = False
    ) -> Record:
        data = dict(data)
        if self._hooks.has("before_insert"):
            data = dict(await self._hooks.run("before_insert", data))
        raw_id = data.pop("id", None)
        if raw_id is not None:
            rid = self._id(raw_id)
        else:
            generated = self._id_generator()
            rid = self._id(await generated if inspect.isawaitable(generated) else generated)
        if self.timestamps:
            stamp_new(data, preserve=preserve_timestamps)
        record = await self._validate(data)
        encoded = self._encode(record, rid)
        try:
            etag = await self._create(rid, record, encoded)
        except ConflictError:
            raise
        except PreconditionFailed:
            raise AlreadyExistsError(
                f"{self.name} record {rid!r} already exists",
                suggestion="use update() or upsert(), or omit 'id' to get a new one",
                metadata={"resource": self.name, "id": rid},
            ) from None
        result = Record({"id": rid}, etag=etag, version=self.version, masked=self._masked)
        result.update(record)
        if self._hooks.has("after_insert"):
            result = await self._hooks.run("after_insert", result)
        self.emit("inserted", result)
        return result

    def _encode(self, record: Mapping[str, Any], rid: str) -> Any:
        encoded = self.codec.encode(record)
        if encoded.overflowed and self.behavior == "user-managed":
            self.emit("limits_exceeded", {"id": rid, "fields": list(encoded.overflowed)})
        if encoded.truncated:
            self.emit("truncated", {"id": rid, "fields": list(encoded.truncated)})
        return encoded

    async def _put_encoded(
        self,
        key: str,
        encoded: EncodedRecord,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """PUT an encoded record (one request, conditional as asked); returns the etag.

        A conditional PUT whose answer is lost is resolved by reading the key back.
        """
        if if_match is not None or if_none_match:
            return await conditional_put(
                self.db.store,
                key,
                encoded.body,
                encoded.metadata,
                content_type=encoded.content_type,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        return await self.db.store.put(
            key, encoded.body, encoded.metadata, content_type=encoded.content_type
        )

    # -- partition references: see _writes.RecordWriter -------------------------------------
    def _ref_tokens(
        self, record: Mapping[str, Any], rid: str, metadata: Mapping[str, str]
    ) -> dict[str, str]:
        return self._writer.ref_tokens(record, rid, metadata)

    async def _create(self, rid: str, record: Mapping[str, Any], encoded: EncodedRecord) -> str:
        return await self._writer.create(rid, record, encoded)

    async def _swap(
        self,
        rid: str,
        obj: StoredObject,
        before: Mapping[str, Any],
        encoded: EncodedRecord,
        after: Mapping[str, Any],
    ) -> str | None:
        return await self._writer.swap(rid, obj, before, encoded, after)

    async def insert_many(
        self, items: Iterable[Mapping[str, Any]], *, preserve_timestamps: bool = False
    ) -> BatchResult:
        """Insert many records concurrently; per-item results, the batch never fails as a whole.

        :param preserve_timestamps: as in :meth:`insert`.
        """
        return await self._call(
            "insert_many", self._insert_many, list(items), **preserve_kw(preserve_timestamps)
        )

    async def _insert_many(
        self, items: list[Mapping[str, Any]], *, preserve_timestamps: bool = False
    ) -> BatchResult:
        async def one(item: Mapping[str, Any]) -> ItemResult:
            try:
                rec = await self.insert(item, preserve_timestamps=preserve_timestamps)
                return ItemResult(rec["id"], True, rec)
            except S3dbError as exc:
                return ItemResult(item.get("id"), False, error=exc)

        return BatchResult(await bounded_gather(one, items, self.db.parallelism))

    async def _read(self, rid: str) -> tuple[StoredObject, Record]:
        try:
            obj = await self.db.store.get(self.key_for(rid))
        except NotFoundError:
            raise NotFoundError(
                f"{self.name} record {rid!r} not found",
                suggestion="check the id, or use get_or_none()",
                metadata={"resource": self.name, "id": rid},
            ) from None
        except CorruptObjectError as exc:
            raise self._unreadable(rid, exc) from exc
        await self._learn_version(obj.metadata)
        record = self._decode(rid, obj.metadata, obj.body, obj.etag)
        return obj, (record if record.version == self.version else await self._upgrade(record))

    def _decode(self, rid: str, metadata: Mapping[str, str], body: bytes, etag: str) -> Record:
        """Decode a stored record; :class:`CorruptRecordError` when it cannot be."""
        version = self._stored_version(rid, metadata)
        try:
            data = self._codec_for(version).decode(metadata, body)
        except DecryptionError:
            raise
        except Exception as exc:  # anything a damaged object makes the codec raise
            raise self._decode_failed(rid, exc) from exc
        rec = Record({"id": rid}, etag=etag, version=version, masked=self._masked)
        rec.update(data)
        return rec

    async def _modify(
        self,
        record_id: object,
        build: Callable[[Record], dict[str, Any] | Awaitable[dict[str, Any]]],
        *,
        if_match: str | None,
        retries: int | None,
    ) -> Record:
        """Read-modify-write with If-Match; retries lost races (backoff until a deadline,
        or ``retries`` more attempts), then ConflictError."""
        rid = self._id(record_id)

        async def attempt(_: int) -> Record | _Retry:
            obj, current = await self._read(rid)
            if if_match is not None and obj.etag != if_match:
                raise self._etag_changed(rid, if_match, obj.etag)
            built = build(current)
            record = await built if inspect.isawaitable(built) else built
            encoded = self._encode(record, rid)
            etag = await self._swap(rid, obj, current, encoded, record)
            if etag is None:
                if if_match is not None:
                    raise self._etag_changed(rid, if_match, None)
                return RETRY
            result = Record({"id": rid}, etag=etag, version=self.version, masked=self._masked)
            result.update(record)
            if self._hooks.has("after_update"):
                result = await self._hooks.run("after_update", result, current)
            self.emit("updated", result, current)
            return result

        return await cas_loop(
            attempt,
            what=f"{self.name} record {rid!r}",
            backoff=self._backoff(retries),
            suggestion="retry later, or pass a larger retries=",
            metadata={"resource": self.name, "id": rid},
        )

    @staticmethod
    def _backoff(retries: int | None) -> Backoff:
        """The default deadline, or exactly ``retries`` more attempts when given."""
        return DEFAULT_BACKOFF if retries is None else Backoff(attempts=retries + 1)

    def _etag_changed(self, rid: str, expected: str, current: str | None) -> PreconditionFailed:
        return PreconditionFailed(
            f"{self.name} record {rid!r} changed since etag {expected}",
            suggestion="re-read the record and apply your change again",
            metadata={"resource": self.name, "id": rid, "etag": current},
        )

    async def _before_update(self, rid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        changes = dict(changes)
        given = changes.pop("id", rid)
        if str(given) != rid:
            raise ConfigError(
                f"cannot change the id of {self.name} record {rid!r} to {given!r}",
                suggestion="insert a new record and delete the old one",
                metadata={"resource": self.name, "id": rid},
            )
        if self._hooks.has("before_update"):
            changes = dict(await self._hooks.run("before_update", {"id": rid, **changes}))
            changes.pop("id", None)
        return changes

    def _merge(
        self, current: Mapping[str, Any], changes: Mapping[str, Any], base: str = ""
    ) -> dict[str, Any]:
        out = {k: v for k, v in current.items() if k != "id"} if not base else dict(current)
        for k, v in changes.items():
            path = f"{base}.{k}" if base else k
            old = out.get(k)
            if (
                isinstance(v, Mapping)
                and isinstance(old, Mapping)
                and path not in self.schema.fields
            ):
                out[k] = self._merge(old, v, path)
            else:
                out[k] = v
        return out

    @staticmethod
    def _changes(changes: Any, fields: Mapping[str, Any]) -> Any:
        if callable(changes):
            if fields:
                raise ConfigError("pass either a function or field changes, not both")
            return changes
        return {**(changes or {}), **fields}

    async def update(
        self,
        record_id: str,
        changes: Mapping[str, Any] | Callable[[Record], Mapping[str, Any]] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Merge ``changes`` into a record (nested objects merge too) and validate the result.

        ``changes`` may be a function of the current record returning the changes; it is
        re-applied to the fresh record after a lost race, so increments never get lost::

            await counters.update(cid, lambda r: {"hits": r["hits"] + 1})

        One GET and one conditional PUT; a lost race re-reads and re-applies the change,
        with backoff for up to 30 s (or ``retries`` more attempts when given). With
        ``if_match`` the write happens only if the record still has that etag. A change
        that leaves the record as it is writes nothing and returns the stored record (no
        ``updated`` event); ``created_at`` never changes, ``updated_at`` only with the record.

        :raises NotFoundError: no such record.
        :raises ConflictError: the record kept changing.
        :raises PreconditionFailed: ``if_match`` did not match.
        """
        return await self._call(
            "update",
            self._update,
            record_id,
            self._changes(changes, fields),
            if_match=if_match,
            retries=retries,
            full=True,
        )

    async def patch(
        self,
        record_id: str,
        changes: Mapping[str, Any] | Callable[[Record], Mapping[str, Any]] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Like :meth:`update`, but validates only the changed fields.

        Use it to touch records written under an older, laxer schema.
        """
        return await self._call(
            "patch",
            self._update,
            record_id,
            self._changes(changes, fields),
            if_match=if_match,
            retries=retries,
            full=False,
        )

    async def _update(
        self,
        record_id: str,
        changes: Any,
        *,
        if_match: str | None,
        retries: int | None,
        full: bool,
    ) -> Record:
        rid = self._id(record_id)
        compute = changes if callable(changes) else None
        if compute is None:
            changes = await self._before_update(rid, changes)
        checked = changes if full or compute else await self._validate(changes, partial=True)

        async def build(current: Record) -> dict[str, Any]:
            delta = checked
            if compute is not None:
                delta = dict(compute(Record(current)))
                delta.pop("id", None)
                if not full:
                    delta = await self._validate(delta, partial=True)
            merged = self._merge(current, delta)
            if self.timestamps:
                keep_stamps(merged, current)
            record = await self._validate(merged) if full else merged
            return self._changed(current, record)

        try:
            return await self._modify(rid, build, if_match=if_match, retries=retries)
        except Unchanged as same:
            return same.record

    def _changed(self, current: Record, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` to write, its ``updated_at`` bumped; raises :class:`Unchanged` when it
        equals the stored record (same schema version): such a write is skipped."""
        if current.version == self.version and unchanged(current, record):
            raise Unchanged(current)
        if self.timestamps:
            touch(record, current)
        return record

    async def replace(
        self,
        record_id: str,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Replace a whole record (fields not given are dropped); no lost updates.

        :raises NotFoundError: no such record (use :meth:`upsert` to create).
        """
        return await self._call(
            "replace",
            self._replace,
            record_id,
            {**(data or {}), **fields},
            if_match=if_match,
            retries=retries,
        )

    async def _replace(
        self, record_id: str, data: Mapping[str, Any], *, if_match: str | None, retries: int | None
    ) -> Record:
        rid = self._id(record_id)
        data = await self._before_update(rid, data)
        for f in TIMESTAMP_FIELDS if self.timestamps else ():
            data.pop(f, None)
        checked = await self._validate(data)  # fail before any request, hash passwords once

        def build(current: Record) -> dict[str, Any]:
            new = dict(checked)
            if self.timestamps:
                keep_stamps(new, current)
            return self._changed(current, new)

        try:
            return await self._modify(rid, build, if_match=if_match, retries=retries)
        except Unchanged as same:
            return same.record

    async def upsert(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        preserve_timestamps: bool = False,
        **fields: Any,
    ) -> Record:
        """Insert the record, or update (merge) it if its ``id`` exists.

        An update never changes ``created_at``; ``preserve_timestamps`` applies to an insert.
        """
        return await self._call(
            "upsert", self._upsert, {**(data or {}), **fields}, **preserve_kw(preserve_timestamps)
        )

    async def _upsert(
        self, data: Mapping[str, Any], *, preserve_timestamps: bool = False
    ) -> Record:
        if data.get("id") is None:
            return await self.insert(data, preserve_timestamps=preserve_timestamps)
        rid = self._id(data["id"])
        changes = {k: v for k, v in data.items() if k != "id"}
        for _ in range(self.conflict_retries + 1):
            try:
                return await self.update(rid, changes)
            except NotFoundError:
                pass
            try:
                return await self.insert(
                    {**changes, "id": rid}, preserve_timestamps=preserve_timestamps
                )
            except AlreadyExistsError:
                continue  # created meanwhile: update it
        raise ConflictError(
            f"{self.name} record {rid!r} kept appearing and vanishing during upsert",
            metadata={"resource": self.name, "id": rid},
        )

    async def update_many(self, changes: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Apply many updates (each mapping carries its ``id``); per-item results."""

        async def one(item: Mapping[str, Any]) -> ItemResult:
            rid = item.get("id")
            try:
                rec = await self.update(str(rid), {k: v for k, v in item.items() if k != "id"})
                return ItemResult(rec["id"], True, rec)
            except S3dbError as exc:
                return ItemResult(None if rid is None else str(rid), False, error=exc)

        return BatchResult(await bounded_gather(one, list(changes), self.db.parallelism))

    # -- deletes ---------------------------------------------------------------
    def _delete_observed(self) -> bool:
        return bool(
            self.partitions
            or self._hooks.has("before_delete")
            or self._hooks.has("after_delete")
            or self.has_listeners("deleted")
        )

    async def delete(self, record_id: str, *, must_exist: bool = False) -> bool:
        """Delete a record, its partition references and its content.

        Deletes are idempotent like S3's: a missing id is not an error unless
        ``must_exist``. ``before_delete``/``after_delete`` hooks and ``deleted`` events
        run only for a record that existed, after the store confirmed the delete.

        :returns: ``True`` if the record existed (or was not checked), ``False`` if not.
        :raises NotFoundError: ``must_exist`` and no such record.
        """
        return await self._call("delete", self._delete, record_id, must_exist=must_exist)

    async def _delete(self, record_id: str, *, must_exist: bool) -> bool:
        rid = self._id(record_id)
        try:
            return await self._delete_read(rid, must_exist=must_exist)
        except CorruptRecordError:
            await self._delete_corrupt(rid)
            return True

    async def _delete_read(self, rid: str, *, must_exist: bool) -> bool:
        if self.keeps_history:
            return await self._delete_keeping_history(rid, must_exist=must_exist) is not None
        if not (must_exist or self._delete_observed()):
            await self.db.store.delete_many([self.key_for(rid), self.content_key_for(rid)])
            return True
        try:
            obj, record = await self._read(rid)
        except NotFoundError:
            if must_exist:
                raise
            return False
        if self._hooks.has("before_delete"):
            await self._hooks.run("before_delete", record)
        await self.db.store.delete_many([self.key_for(rid), self.content_key_for(rid)])
        await kill_refs(
            self.db.store, self._ref_tokens(record, rid, obj.metadata), self.db.parallelism
        )
        await self._after_delete(record)
        return True

    async def _after_delete(self, record: Record) -> None:
        if self._hooks.has("after_delete"):
            record = await self._hooks.run("after_delete", record)
        self.emit("deleted", record)

    async def delete_many(self, ids: Iterable[str]) -> BatchResult:
        """Delete many records with batched requests (1 per 1000 keys); per-item results."""
        return await self._call("delete_many", self._delete_many, list(ids))

    async def _delete_many(self, ids: list[str]) -> BatchResult:
        results: list[ItemResult] = []
        valid: list[str] = []
        for raw in ids:
            try:
                valid.append(self._id(raw))
            except S3dbError as exc:
                results.append(ItemResult(str(raw), False, error=exc))
        if self.keeps_history:
            kept = await self._delete_many_keeping_history(valid)
            return BatchResult(results + await self._delete_corrupt_items(kept))
        if not self._delete_observed():
            keys = [k for rid in valid for k in (self.key_for(rid), self.content_key_for(rid))]
            await self.db.store.delete_many(keys)
            return BatchResult(results + [ItemResult(rid, True) for rid in valid])

        async def read(rid: str) -> tuple[StoredObject, Record] | ItemResult:
            try:
                return await self._read(rid)
            except NotFoundError as exc:
                return ItemResult(rid, False, error=exc)
            except CorruptRecordError:
                return ItemResult(rid, True, await self._delete_corrupt(rid))

        found: list[Record] = []
        refs: dict[str, str] = {}
        for item in await bounded_gather(read, valid, self.db.parallelism):
            if isinstance(item, ItemResult):
                results.append(item)
                continue
            obj, rec = item
            if self._hooks.has("before_delete"):
                await self._hooks.run("before_delete", rec)
            found.append(rec)
            refs.update(self._ref_tokens(rec, rec.id, obj.metadata))
        keys = [k for rec in found for k in (self.key_for(rec.id), self.content_key_for(rec.id))]
        if keys:
            await self.db.store.delete_many(keys)
        await kill_refs(self.db.store, refs, self.db.parallelism)
        for rec in found:
            await self._after_delete(rec)
            results.append(ItemResult(rec.id, True, rec))
        return BatchResult(results)

    async def delete_all(self, *, confirm: bool = False) -> int:
        """Delete every record, reference and content of this resource; returns keys deleted.

        :raises ConfigError: unless ``confirm=True`` (no accidental wipe).
        """
        if confirm is not True:
            raise ConfigError(
                f"delete_all() on {self.name!r} deletes every record",
                suggestion="call delete_all(confirm=True) if you mean it",
                metadata={"resource": self.name},
            )
        count = 0
        batch: list[str] = []
        prefix = f"resource={self.name}/"
        plugin_prefix = f"resource={self.name}/plugin="
        async for entry in self.db.store.list(prefix):
            key = getattr(entry, "key", None)
            if key is None or key.startswith(plugin_prefix):
                continue
            batch.append(key)
            if len(batch) == 1000:
                count += await self.db.store.delete_many(batch)
                batch = []
        if batch:
            count += await self.db.store.delete_many(batch)
        self.emit("deleted_all", {"resource": self.name, "keys": count})
        return count

    # -- reads -------------------------------------------------------------------
    async def get(self, record_id: str) -> Record:
        """Read a record (one request).

        :raises NotFoundError: no such record.
        :raises CorruptRecordError: the stored object cannot be decoded.
        """
        return await self._call("get", self._get, record_id)

    async def _get(self, record_id: str) -> Record:
        rid = self._id(record_id)
        if self._hooks.has("before_get"):
            rid = self._id((await self._hooks.run("before_get", {"id": rid}))["id"])
        _, record = await self._read(rid)
        if self._hooks.has("after_get"):
            record = await self._hooks.run("after_get", record)
        return record

    async def get_or_none(self, record_id: str) -> Record | None:
        """Like :meth:`get`, but ``None`` for a missing record."""
        try:
            return await self.get(record_id)
        except NotFoundError:
            return None

    async def verify_password(self, record_id: str, field: str, candidate: str) -> bool:
        """True if ``candidate`` matches the hash in the ``password`` field ``field``
        (a dotted path for nested fields) of a record; False when it does not, or when the
        record has no password there. One GET; the hash library's constant-time check runs
        in a worker thread.

        :raises SchemaError: ``field`` is not a ``password`` field of this resource.
        :raises NotFoundError: no record with that id.
        """
        from ._passwords import verify_password

        spec = self.schema.fields.get(field)
        if spec is None or spec.type != "password":
            raise SchemaError(
                f"{field!r} is not a password field of resource {self.name!r}",
                suggestion="password fields: " + (", ".join(self.schema.password_fields) or "none"),
                metadata={"resource": self.name, "field": field},
            )
        value: Any = await self.get(record_id)
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return await anyio.to_thread.run_sync(verify_password, value, candidate)

    async def get_with_etag(self, record_id: str) -> tuple[Record, str]:
        """The record and its etag, for ``update(..., if_match=etag)``."""
        record = await self.get(record_id)
        return record, str(record.etag)

    async def get_many(self, ids: Iterable[str], *, strict: bool = False) -> BatchResult:
        """Read many records concurrently (``parallelism`` at a time); per-item results.

        A corrupt record is a failed item (its error also in ``skipped`` and emitted as
        ``error``); ``strict=True`` raises :class:`CorruptRecordError` instead.
        """
        return await self._call("get_many", self._get_many, list(ids), strict=strict)

    async def _get_many(self, ids: list[str], *, strict: bool = False) -> BatchResult:
        async def one(rid: str) -> ItemResult:
            try:
                return ItemResult(rid, True, await self._get(rid))
            except CorruptRecordError as exc:
                self._report_corrupt(exc, op="get_many", strict=strict)
                return ItemResult(str(rid), False, error=exc)
            except S3dbError as exc:
                return ItemResult(str(rid), False, error=exc)

        return BatchResult(await bounded_gather(one, ids, self.db.parallelism))

    async def exists(self, record_id: str) -> bool:
        """True when the record exists (one HEAD)."""
        return await self._call("exists", self._exists, record_id)

    async def _exists(self, record_id: str) -> bool:
        try:
            return await self.db.store.exists(self.key_for(self._id(record_id)))
        except CorruptObjectError:
            return True  # there, though unreadable (a damaged file)

    # -- misc ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<Resource {self.name!r} {self.version} partitions={list(self.partitions)}>"

    async def stream_raw(self, prefix: str | None = None) -> AsyncIterator[str]:
        """Keys under this resource (or ``prefix`` inside it), for maintenance tools."""
        async for entry in self.db.store.list(f"resource={self.name}/" + (prefix or "")):
            key = getattr(entry, "key", None)
            if key is not None:
                yield key
