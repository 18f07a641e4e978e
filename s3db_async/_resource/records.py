"""The record operations of a resource: read, insert, update, patch, replace, upsert, delete.

Request budget: see :mod:`s3db_async._resource.resource`. The partition-reference protocol of
each write is :class:`~s3db_async._resource.writes.RecordWriter`; lost replies are resolved
by :mod:`s3db_async._cas`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._cas import DEFAULT_BACKOFF, RETRY, Backoff, _Retry, cas_loop, conditional_put
from .._codec.codec import EncodedRecord
from .._concurrency import bounded_gather
from .._record import BatchResult, ItemResult, Record, new_record
from ..errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    CorruptObjectError,
    CorruptRecordError,
    DecryptionError,
    NotFoundError,
    PreconditionFailed,
    S3dbError,
)
from ..stores import StoredObject
from .partitions import (
    kill_refs,
)
from .timestamps import (
    TIMESTAMP_FIELDS,
    Unchanged,
    keep_stamps,
    stamp_new,
    touch,
    unchanged,
)

if TYPE_CHECKING:
    from .resource import Resource


__all__ = ["Records"]


class Records:
    """Reading, creating, changing and deleting the records of one resource: the ``*_impl``
    methods that :class:`Resource` runs through its middlewares, and their helpers."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    # -- writes ------------------------------------------------------------------
    async def validate(self, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Validate; password hashing (~0.1 s of CPU) runs in a worker thread, off the loop."""
        if self.resource.schema.has_passwords:
            return await anyio.to_thread.run_sync(
                functools.partial(self.resource.schema.validate, data, partial=partial)
            )
        return self.resource.schema.validate(data, partial=partial)

    async def insert_impl(
        self, data: Mapping[str, Any], *, preserve_timestamps: bool = False
    ) -> Record:
        res = self.resource
        data = dict(data)
        if res._hooks.has("before_insert"):
            data = dict(await res._hooks.run("before_insert", data))
        raw_id = data.pop("id", None)
        if raw_id is not None:
            rid = res._id(raw_id)
        else:
            generated = res._id_generator()
            if type(generated) is not str and inspect.isawaitable(generated):
                generated = await generated
            rid = generated if res._ids_checked else res._id(generated)
        if res.timestamps:
            stamp_new(data, preserve=preserve_timestamps)
        schema = res.schema
        record = (
            await self.validate(data) if schema.has_passwords else schema.validate(data)
        )  # no coroutine unless a password is hashed in a worker thread
        encoded = self.encode(record, rid)
        try:
            etag = await res._writer.create(rid, record, encoded)
        except ConflictError:
            raise
        except PreconditionFailed:
            raise AlreadyExistsError(
                f"{res.name} record {rid!r} already exists",
                suggestion="use update() or upsert(), or omit 'id' to get a new one",
                metadata={"resource": res.name, "id": rid},
            ) from None
        result = new_record(rid, record, etag=etag, version=res.version, masked=res._masked)
        if res._hooks.has("after_insert"):
            result = await res._hooks.run("after_insert", result)
        res.emit("inserted", result)
        return result

    def encode(self, record: Mapping[str, Any], rid: str) -> Any:
        encoded = self.resource.codec.encode(record)
        if not (encoded.overflowed or encoded.truncated):
            return encoded
        if encoded.overflowed and self.resource.behavior == "user-managed":
            self.resource.emit("limits_exceeded", {"id": rid, "fields": list(encoded.overflowed)})
        if encoded.truncated:
            self.resource.emit("truncated", {"id": rid, "fields": list(encoded.truncated)})
        return encoded

    async def put_encoded(
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
                self.resource.db.store,
                key,
                encoded.body,
                encoded.metadata,
                content_type=encoded.content_type,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        return await self.resource.db.store.put(
            key, encoded.body, encoded.metadata, content_type=encoded.content_type
        )

    async def insert_many_impl(
        self, items: list[Mapping[str, Any]], *, preserve_timestamps: bool = False
    ) -> BatchResult:
        call, insert = self.resource._call, self.insert_impl

        async def one(item: Mapping[str, Any]) -> ItemResult:
            try:  # each item is an "insert" call (its middlewares run), minus the facade layer
                rec = await call("insert", insert, item, preserve_timestamps=preserve_timestamps)
                return ItemResult(rec["id"], True, rec)
            except S3dbError as exc:
                return ItemResult(item.get("id"), False, error=exc)

        return BatchResult(await bounded_gather(one, items, self.resource.db.parallelism))

    # -- reads -------------------------------------------------------------------
    async def get_impl(self, record_id: str) -> Record:
        rid = self.resource._id(record_id)
        if self.resource._hooks.has("before_get"):
            rid = self.resource._id(
                (await self.resource._hooks.run("before_get", {"id": rid}))["id"]
            )
        _, record = await self.read(rid)
        if self.resource._hooks.has("after_get"):
            record = await self.resource._hooks.run("after_get", record)
        return record

    async def get_many_impl(self, ids: list[str], *, strict: bool = False) -> BatchResult:
        async def one(rid: str) -> ItemResult:
            try:
                return ItemResult(rid, True, await self.get_impl(rid))
            except CorruptRecordError as exc:
                self.resource._corrupt.report(exc, op="get_many", strict=strict)
                return ItemResult(str(rid), False, error=exc)
            except S3dbError as exc:
                return ItemResult(str(rid), False, error=exc)

        return BatchResult(await bounded_gather(one, ids, self.resource.db.parallelism))

    async def exists_impl(self, record_id: str) -> bool:
        try:
            return await self.resource.db.store.exists(
                self.resource.key_for(self.resource._id(record_id))
            )
        except CorruptObjectError:
            return True  # there, though unreadable (a damaged file)

    async def fetch(self, rid: str) -> StoredObject:
        """The stored object of record ``rid`` (one GET), undecoded.

        :raises NotFoundError: no such record.
        :raises CorruptRecordError: the object cannot be read.
        """
        try:
            return await self.resource.db.store.get(self.resource.key_for(rid))
        except NotFoundError:
            raise self.not_found(rid) from None
        except CorruptObjectError as exc:
            raise self.resource._corrupt.unreadable(rid, exc) from exc

    def not_found(self, rid: str) -> NotFoundError:
        return NotFoundError(
            f"{self.resource.name} record {rid!r} not found",
            suggestion="check the id, or use get_or_none()",
            metadata={"resource": self.resource.name, "id": rid},
        )

    async def read(self, rid: str) -> tuple[StoredObject, Record]:
        try:  # fetch() inline: the read path has no coroutine layer to spare
            obj = await self.resource.db.store.get(self.resource.key_for(rid))
        except NotFoundError:
            raise self.not_found(rid) from None
        except CorruptObjectError as exc:
            raise self.resource._corrupt.unreadable(rid, exc) from exc
        res = self.resource
        stored = obj.metadata.get("_v")
        if stored != res.version and stored not in res._versions:  # seldom: no await else
            await res._corrupt.learn_version(obj.metadata)
        record = self.decode(rid, obj.metadata, obj.body, obj.etag)
        return obj, (
            record
            if record.version == self.resource.version
            else await self.resource._migrations.upgrade(record)
        )

    def version_of(self, rid: str, metadata: Mapping[str, str]) -> str:
        """The schema version a stored record names; corrupt when missing or unknown."""
        version = metadata.get("_v")
        if version == self.resource.version:  # the current version needs no checks
            return version
        return self.resource._corrupt.stored_version(rid, metadata)

    def decode(self, rid: str, metadata: Mapping[str, str], body: bytes, etag: str) -> Record:
        """Decode a stored record; :class:`CorruptRecordError` when it cannot be."""
        version = self.version_of(rid, metadata)
        try:
            data = self.resource._codec_for(version).decode(metadata, body)
        except DecryptionError:
            raise
        except Exception as exc:  # anything a damaged object makes the codec raise
            raise self.resource._corrupt.decode_failed(rid, exc) from exc
        return new_record(rid, data, etag=etag, version=version, masked=self.resource._masked)

    async def modify(
        self,
        record_id: object,
        build: Callable[[Record], dict[str, Any] | Awaitable[dict[str, Any]]],
        *,
        if_match: str | None,
        retries: int | None,
    ) -> Record:
        """Read-modify-write with If-Match; retries lost races (backoff until a deadline,
        or ``retries`` more attempts), then ConflictError."""
        rid = self.resource._id(record_id)

        async def attempt(_: int) -> Record | _Retry:
            obj, current = await self.read(rid)
            if if_match is not None and obj.etag != if_match:
                raise self.etag_changed(rid, if_match, obj.etag)
            built = build(current)
            record = await built if inspect.isawaitable(built) else built
            encoded = self.encode(record, rid)
            etag = await self.resource._writer.swap(rid, obj, current, encoded, record)
            if etag is None:
                if if_match is not None:
                    raise self.etag_changed(rid, if_match, None)
                return RETRY
            result = new_record(
                rid, record, etag=etag, version=self.resource.version, masked=self.resource._masked
            )
            if self.resource._hooks.has("after_update"):
                result = await self.resource._hooks.run("after_update", result, current)
            self.resource.emit("updated", result, current)
            return result

        return await cas_loop(
            attempt,
            what=f"{self.resource.name} record {rid!r}",
            backoff=self.backoff(retries),
            suggestion="retry later, or pass a larger retries=",
            metadata={"resource": self.resource.name, "id": rid},
        )

    @staticmethod
    def backoff(retries: int | None) -> Backoff:
        """The default deadline, or exactly ``retries`` more attempts when given."""
        return DEFAULT_BACKOFF if retries is None else Backoff(attempts=retries + 1)

    def etag_changed(self, rid: str, expected: str, current: str | None) -> PreconditionFailed:
        return PreconditionFailed(
            f"{self.resource.name} record {rid!r} changed since etag {expected}",
            suggestion="re-read the record and apply your change again",
            metadata={"resource": self.resource.name, "id": rid, "etag": current},
        )

    async def before_update(self, rid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        changes = dict(changes)
        given = changes.pop("id", rid)
        if str(given) != rid:
            raise ConfigError(
                f"cannot change the id of {self.resource.name} record {rid!r} to {given!r}",
                suggestion="insert a new record and delete the old one",
                metadata={"resource": self.resource.name, "id": rid},
            )
        if self.resource._hooks.has("before_update"):
            changes = dict(await self.resource._hooks.run("before_update", {"id": rid, **changes}))
            changes.pop("id", None)
        return changes

    def merge(
        self, current: Mapping[str, Any], changes: Mapping[str, Any], base: str = ""
    ) -> dict[str, Any]:
        out = {k: v for k, v in current.items() if k != "id"} if not base else dict(current)
        for k, v in changes.items():
            path = f"{base}.{k}" if base else k
            old = out.get(k)
            if (
                isinstance(v, Mapping)
                and isinstance(old, Mapping)
                and path not in self.resource.schema.fields
            ):
                out[k] = self.merge(old, v, path)
            else:
                out[k] = v
        return out

    @staticmethod
    def changes(changes: Any, fields: Mapping[str, Any]) -> Any:
        if callable(changes):
            if fields:
                raise ConfigError("pass either a function or field changes, not both")
            return changes
        return {**(changes or {}), **fields}

    async def update_impl(
        self,
        record_id: str,
        changes: Any,
        *,
        if_match: str | None,
        retries: int | None,
        full: bool,
    ) -> Record:
        rid = self.resource._id(record_id)
        compute = changes if callable(changes) else None
        if compute is None:
            changes = await self.before_update(rid, changes)
        checked = changes if full or compute else await self.validate(changes, partial=True)

        async def build(current: Record) -> dict[str, Any]:
            delta = checked
            if compute is not None:
                delta = dict(compute(Record(current)))
                delta.pop("id", None)
                if not full:
                    delta = await self.validate(delta, partial=True)
            merged = self.merge(current, delta)
            if self.resource.timestamps:
                keep_stamps(merged, current)
            record = await self.validate(merged) if full else merged
            return self.changed(current, record)

        try:
            return await self.modify(rid, build, if_match=if_match, retries=retries)
        except Unchanged as same:
            return same.record

    def changed(self, current: Record, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` to write, its ``updated_at`` bumped; raises :class:`Unchanged` when it
        equals the stored record (same schema version): such a write is skipped."""
        if current.version == self.resource.version and unchanged(current, record):
            raise Unchanged(current)
        if self.resource.timestamps:
            touch(record, current)
        return record

    async def replace_impl(
        self, record_id: str, data: Mapping[str, Any], *, if_match: str | None, retries: int | None
    ) -> Record:
        rid = self.resource._id(record_id)
        data = await self.before_update(rid, data)
        for f in TIMESTAMP_FIELDS if self.resource.timestamps else ():
            data.pop(f, None)
        checked = await self.validate(data)  # fail before any request, hash passwords once

        def build(current: Record) -> dict[str, Any]:
            new = dict(checked)
            if self.resource.timestamps:
                keep_stamps(new, current)
            return self.changed(current, new)

        try:
            return await self.modify(rid, build, if_match=if_match, retries=retries)
        except Unchanged as same:
            return same.record

    async def upsert_impl(
        self, data: Mapping[str, Any], *, preserve_timestamps: bool = False
    ) -> Record:
        if data.get("id") is None:
            return await self.resource.insert(data, preserve_timestamps=preserve_timestamps)
        rid = self.resource._id(data["id"])
        changes = {k: v for k, v in data.items() if k != "id"}
        for _ in range(self.resource.conflict_retries + 1):
            try:
                return await self.resource.update(rid, changes)
            except NotFoundError:
                pass
            try:
                return await self.resource.insert(
                    {**changes, "id": rid}, preserve_timestamps=preserve_timestamps
                )
            except AlreadyExistsError:
                continue  # created meanwhile: update it
        raise ConflictError(
            f"{self.resource.name} record {rid!r} kept appearing and vanishing during upsert",
            metadata={"resource": self.resource.name, "id": rid},
        )

    async def update_many(self, changes: Iterable[Mapping[str, Any]]) -> BatchResult:

        async def one(item: Mapping[str, Any]) -> ItemResult:
            rid = item.get("id")
            try:
                rec = await self.resource.update(
                    str(rid), {k: v for k, v in item.items() if k != "id"}
                )
                return ItemResult(rec["id"], True, rec)
            except S3dbError as exc:
                return ItemResult(None if rid is None else str(rid), False, error=exc)

        return BatchResult(await bounded_gather(one, list(changes), self.resource.db.parallelism))

    # -- deletes ---------------------------------------------------------------
    def delete_observed(self) -> bool:
        """Whether a delete must read the record first (its references, or someone who
        gets it); if not, it is one blind DELETE."""
        return bool(self.resource.partitions) or self.delete_sees_record()

    def delete_sees_record(self) -> bool:
        """Whether something gets the deleted record (hooks, ``deleted`` listeners, the
        change feed); if not, a delete decodes only its partition fields."""
        res = self.resource
        return bool(
            res._hooks.has("before_delete")
            or res._hooks.has("after_delete")
            or res.has_listeners("deleted")
            or res._writer.feed is not None
        )

    async def delete_impl(self, record_id: str, *, must_exist: bool) -> bool:
        rid = self.resource._id(record_id)
        res = self.resource
        store = res.db.store
        record: Record | None = None
        try:
            if res.keeps_history:
                return (
                    await res._history.delete_keeping_history(rid, must_exist=must_exist)
                    is not None
                )
            if not (must_exist or self.delete_observed()):
                await store.delete_many([res.key_for(rid), res.content_key_for(rid)])
                return True
            try:
                if self.delete_sees_record():
                    obj, record = await self.read(rid)
                    refs = res._writer.ref_tokens(record, rid, obj.metadata)
                else:
                    refs = await self.stored_refs(rid)
            except NotFoundError:
                if must_exist:
                    raise
                return False
        except CorruptRecordError:
            await res._corrupt.delete(rid)
            return True
        if record is not None:
            if res._hooks.has("before_delete"):
                await res._hooks.run("before_delete", record)
            if res._writer.feed is not None:
                await res._writer.deleting(rid, obj)
        await store.delete_many([res.key_for(rid), res.content_key_for(rid)])
        await kill_refs(store, refs, res.db.parallelism)
        if record is not None:
            await self.after_delete(record)
        return True

    async def stored_refs(self, rid: str) -> dict[str, str]:
        """``{reference key: token}`` of a stored record, decoding only its partition
        fields (the whole record when they cannot be read alone).

        :raises NotFoundError: no such record.
        :raises CorruptRecordError: it cannot be decoded.
        """
        res = self.resource
        obj = await self.fetch(rid)
        stored = obj.metadata.get("_v")
        if stored != res.version and stored not in res._versions:  # as in read()
            await res._corrupt.learn_version(obj.metadata)
        codec = res._codec_for(self.version_of(rid, obj.metadata))
        paths = [f for p in res.partitions.values() for f, _ in p.fields]
        try:
            fields = codec.decode_fields(obj.metadata, paths)
        except Exception as exc:  # anything a damaged object makes the codec raise
            raise res._corrupt.decode_failed(rid, exc) from exc
        if fields is None:
            fields = self.decode(rid, obj.metadata, obj.body, obj.etag)
        return res._writer.ref_tokens(fields, rid, obj.metadata)

    async def after_delete(self, record: Record) -> None:
        if self.resource._hooks.has("after_delete"):
            record = await self.resource._hooks.run("after_delete", record)
        self.resource.emit("deleted", record)

    async def delete_many_impl(self, ids: list[str]) -> BatchResult:
        results: list[ItemResult] = []
        valid: list[str] = []
        for raw in ids:
            try:
                valid.append(self.resource._id(raw))
            except S3dbError as exc:
                results.append(ItemResult(str(raw), False, error=exc))
        if self.resource.keeps_history:
            kept = await self.resource._history.delete_many_keeping_history(valid)
            return BatchResult(results + await self.resource._corrupt.delete_items(kept))
        if not self.delete_observed():
            keys = [
                k
                for rid in valid
                for k in (self.resource.key_for(rid), self.resource.content_key_for(rid))
            ]
            await self.resource.db.store.delete_many(keys)
            return BatchResult(results + [ItemResult(rid, True) for rid in valid])

        async def read(rid: str) -> tuple[StoredObject, Record] | ItemResult:
            try:
                return await self.read(rid)
            except NotFoundError as exc:
                return ItemResult(rid, False, error=exc)
            except CorruptRecordError:
                return ItemResult(rid, True, await self.resource._corrupt.delete(rid))

        found: list[Record] = []
        stored: list[StoredObject] = []
        refs: dict[str, str] = {}
        for item in await bounded_gather(read, valid, self.resource.db.parallelism):
            if isinstance(item, ItemResult):
                results.append(item)
                continue
            obj, rec = item
            if self.resource._hooks.has("before_delete"):
                await self.resource._hooks.run("before_delete", rec)
            found.append(rec)
            stored.append(obj)
            refs.update(self.resource._writer.ref_tokens(rec, rec.id, obj.metadata))
        if self.resource._writer.feed is not None:
            await bounded_gather(
                lambda pair: self.resource._writer.deleting(pair[0].id, pair[1]),
                list(zip(found, stored, strict=True)),
                self.resource.db.parallelism,
            )
        keys = [
            k
            for rec in found
            for k in (self.resource.key_for(rec.id), self.resource.content_key_for(rec.id))
        ]
        if keys:
            await self.resource.db.store.delete_many(keys)
        await kill_refs(self.resource.db.store, refs, self.resource.db.parallelism)
        for rec in found:
            await self.after_delete(rec)
            results.append(ItemResult(rec.id, True, rec))
        return BatchResult(results)

    async def delete_all(self, *, confirm: bool = False) -> int:
        if confirm is not True:
            raise ConfigError(
                f"delete_all() on {self.resource.name!r} deletes every record",
                suggestion="call delete_all(confirm=True) if you mean it",
                metadata={"resource": self.resource.name},
            )
        count = 0
        batch: list[str] = []
        prefix = f"resource={self.resource.name}/"
        plugin_prefix = f"resource={self.resource.name}/plugin="
        async for entry in self.resource.db.store.list(prefix):
            key = getattr(entry, "key", None)
            if key is None or key.startswith(plugin_prefix):
                continue
            batch.append(key)
            if len(batch) == 1000:
                count += await self.resource.db.store.delete_many(batch)
                batch = []
        if batch:
            count += await self.resource.db.store.delete_many(batch)
        self.resource.emit("deleted_all", {"resource": self.resource.name, "keys": count})
        return count
