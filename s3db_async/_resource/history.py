"""Record history: every earlier version of a record, kept as its own object.

With ``create_resource(..., history=True)`` each update, patch, replace, restore, migration
rewrite and delete first preserves the object it is about to supersede::

    resource={name}/history/id={id}/rev={n:010d}

Revision numbers: a record is revision 1 when inserted; every write that supersedes it
stores the old content as entry ``n`` and the new content carries ``_r = n + 1`` in its
metadata (so finding the next number costs no request). The entry is written with
``If-None-Match`` *before* the ``If-Match`` write of the new version:

- two writers racing on revision ``n`` both try to create entry ``n``: one creates it, the
  other finds it already preserves the very etag it read (one GET) and goes on; then
  exactly one ``If-Match`` write wins. No revision is lost or duplicated.
- a writer that dies between the two writes leaves entry ``n`` preserving the *current*
  object (an orphan). It is harmless: :meth:`History.history` hides an entry whose
  etag is the current one, and the next writer adopts it instead of writing it again.
- an entry ``n`` that preserves another etag belongs to an earlier life of the id (deleted,
  then inserted again): the writer lists the history and moves to the next free number.

Request budget: history adds exactly one PUT per update (1 GET + 2 PUT); a delete is
1 GET + 1 PUT + the deletes. Binary content (``set_content``) is not versioned.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .._cas import RETRY, Backoff, _Retry, cas_loop, conditional_put
from .._codec.codec import record_version
from .._concurrency import bounded_gather
from .._record import ItemResult, Record
from ..errors import (
    ConflictError,
    DecryptionError,
    NotFoundError,
    PreconditionFailed,
    S3dbError,
)
from ..stores import ListEntry, StoredObject
from .partitions import kill_refs
from .timestamps import keep_stamps, touch

if TYPE_CHECKING:
    from .._codec.crypto import SecretBox
    from .resource import Resource

__all__ = ["REVISION_METADATA_BYTES", "History", "RecordRevision"]

REVISION_KEY = "_r"
REVISION_METADATA_BYTES = len(REVISION_KEY) + 10
"""Metadata bytes a history resource reserves for ``_r`` (up to 10 digits)."""
_JSON = "application/json"


class RecordRevision(Record):
    """One revision of a record (a :class:`Record` with its place in the history).

    ``revision`` is its number (1 = as inserted); ``superseded_at`` is when it was
    preserved, just before the write that replaced it (``None`` for the current revision).
    ``etag`` is the etag the record had while this revision was current.
    """

    __slots__ = ("revision", "superseded_at")

    def __init__(
        self,
        data: Any = (),
        *,
        etag: str | None = None,
        version: str | None = None,
        revision: int = 0,
        superseded_at: datetime | None = None,
    ) -> None:
        super().__init__(data, etag=etag, version=version)
        self.revision = revision
        self.superseded_at = superseded_at

    def __repr__(self) -> str:
        return f"RecordRevision({self.revision}, {dict.__repr__(self)})"


class _Entry(msgspec.Struct, frozen=True):
    """The stored form of a history entry: the superseded object, verbatim."""

    etag: str
    at: str
    metadata: dict[str, str]
    body: bytes


_encode_entry = msgspec.json.Encoder().encode
_decode_entry = msgspec.json.Decoder(_Entry).decode


def revision_of(metadata: Mapping[str, str]) -> int:
    """The revision number stored in a record's metadata (1 when absent)."""
    raw = metadata.get(REVISION_KEY)
    try:
        return max(1, int(raw)) if raw is not None else 1
    except ValueError:
        return 1


class History:
    """``history``/``get_revision``/``restore``/``purge_history`` of a resource."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    # -- keys ------------------------------------------------------------------
    def history_prefix(self, record_id: str) -> str:
        return f"resource={self.resource.name}/history/id={record_id}/"

    def history_key(self, record_id: str, revision: int) -> str:
        return f"{self.history_prefix(record_id)}rev={revision:010d}"

    async def history_keys(self, rid: str) -> list[tuple[int, str]]:
        """``(revision, key)`` of every stored entry, oldest first (LIST only)."""
        prefix = self.history_prefix(rid)
        out = []
        async for entry in self.resource.db.store.list(prefix):
            if isinstance(entry, ListEntry) and entry.key[len(prefix) :].startswith("rev="):
                try:
                    out.append((int(entry.key[len(prefix) + 4 :]), entry.key))
                except ValueError:
                    continue
        return out

    async def load_entry(self, key: str) -> _Entry | None:
        try:
            obj = await self.resource.db.store.get(key)
        except NotFoundError:
            return None
        return _decode_entry(obj.body)

    # -- writing -----------------------------------------------------------------
    async def preserve(self, rid: str, obj: StoredObject) -> int:
        """Store ``obj`` (the current object of ``rid``) as a history entry; its revision.

        1 PUT. When the number is taken: 1 GET (a racing writer preserved the same object:
        adopt it); otherwise the number belongs to an earlier life of the id, and the entry
        goes after the last one (LIST, GET of the last, HEAD). If ``obj`` is no longer
        current then, nothing is written: the caller's ``If-Match`` write will fail.
        """
        revision = revision_of(obj.metadata)
        store = self.resource.db.store
        body = _encode_entry(
            _Entry(
                etag=obj.etag,
                at=datetime.now(UTC).isoformat(),
                metadata=dict(obj.metadata),
                body=obj.body,
            )
        )
        for _ in range(10):
            try:
                await conditional_put(
                    store,
                    self.history_key(rid, revision),
                    body,
                    content_type=_JSON,
                    if_none_match=True,
                )
                return revision
            except PreconditionFailed:
                pass
            existing = await self.load_entry(self.history_key(rid, revision))
            if existing is not None and existing.etag == obj.etag:
                return revision  # a racing (or crashed) writer preserved this very object
            last = max([n for n, _ in await self.history_keys(rid)], default=revision)
            if last > revision:
                existing = await self.load_entry(self.history_key(rid, last))
                if existing is not None and existing.etag == obj.etag:
                    return last  # preserved after an earlier life by a racing writer
            try:
                current = (await store.head(self.resource.key_for(rid))).etag
            except NotFoundError:
                current = None
            if current != obj.etag:
                return revision  # superseded meanwhile: keep nothing, the write will fail
            revision = max(revision, last) + 1
        raise ConflictError(
            f"{self.resource.name} record {rid!r}: could not find a free history revision",
            suggestion="retry; the record's history is being written by many processes",
            metadata={"resource": self.resource.name, "id": rid},
        )

    async def stamp_revision(self, rid: str, obj: StoredObject, encoded: Any) -> None:
        """Preserve ``obj`` and number the object about to replace it (``_r``)."""
        encoded.metadata[REVISION_KEY] = str(await self.preserve(rid, obj) + 1)

    async def delete_keeping_history(self, rid: str, *, must_exist: bool) -> Record | None:
        """Delete ``rid`` after preserving its last version; the deleted record or ``None``.

        Uses a conditional delete where the store has one, so an update racing the delete
        is never deleted unseen (S3 through obstore has none: there the window between
        the read and the delete stays open).
        """
        store = self.resource.db.store
        conditional = (await store.capabilities()).conditional_delete

        async def attempt(_: int) -> Record | _Retry | None:
            try:
                obj, record = await self.resource._records.read(rid)
            except NotFoundError:
                if must_exist:
                    raise
                return None
            if self.resource._hooks.has("before_delete"):
                await self.resource._hooks.run("before_delete", record)
            await self.preserve(rid, obj)
            intent = await self.resource._writer.deleting(rid, obj)
            if conditional:
                try:
                    await store.delete(self.resource.key_for(rid), if_match=obj.etag)
                except PreconditionFailed:
                    await self.resource._writer.not_deleted(intent)
                    return RETRY
                await store.delete_many([self.resource.content_key_for(rid)])
            else:
                await store.delete_many(
                    [self.resource.key_for(rid), self.resource.content_key_for(rid)]
                )
            refs = self.resource._writer.ref_tokens(record, rid, obj.metadata)
            await kill_refs(store, refs, self.resource.db.parallelism)
            await self.resource._records.after_delete(record)
            return record

        return await cas_loop(
            attempt,
            what=f"{self.resource.name} record {rid!r} (delete)",
            backoff=Backoff(attempts=self.resource.conflict_retries + 1),
            metadata={"resource": self.resource.name, "id": rid},
        )

    async def delete_many_keeping_history(self, ids: builtins.list[str]) -> list[ItemResult]:
        async def one(rid: str) -> ItemResult:
            try:
                record = await self.delete_keeping_history(rid, must_exist=True)
            except S3dbError as exc:
                return ItemResult(rid, False, error=exc)
            return ItemResult(rid, True, record)

        return await bounded_gather(one, ids, self.resource.db.parallelism)

    # -- reading -----------------------------------------------------------------
    async def revision(self, rid: str, revision: int, entry: _Entry) -> RecordRevision:
        version = record_version(entry.metadata) or self.resource.version
        data = self.resource._codec_for(version).decode(entry.metadata, entry.body)
        record = Record({"id": rid}, etag=entry.etag, version=version, masked=self.resource._masked)
        record.update(data)
        record = await self.resource._migrations.upgrade(record)
        return RecordRevision(
            record,
            etag=entry.etag,
            version=version,
            revision=revision,
            superseded_at=datetime.fromisoformat(entry.at),
        )

    async def history(self, record_id: str) -> builtins.list[RecordRevision]:
        rid = self.resource._id(record_id)
        keys = await self.history_keys(rid)
        if not keys:
            return []
        try:
            current: str | None = (
                await self.resource.db.store.head(self.resource.key_for(rid))
            ).etag
        except NotFoundError:
            current = None

        async def load(item: tuple[int, str]) -> RecordRevision | None:
            entry = await self.load_entry(item[1])
            if entry is None or entry.etag == current:
                return None  # purged meanwhile, or an orphan preserving the current version
            return await self.revision(rid, item[0], entry)

        found = await bounded_gather(load, keys, self.resource.db.parallelism)
        return [r for r in found if r is not None]

    async def get_revision(self, record_id: str, revision: int) -> RecordRevision:
        rid = self.resource._id(record_id)
        entry = await self.load_entry(self.history_key(rid, int(revision)))
        if entry is not None:
            return await self.revision(rid, int(revision), entry)
        try:
            obj, current = await self.resource._records.read(rid)
        except NotFoundError:
            obj = None
        if obj is None or revision_of(obj.metadata) != revision:
            raise NotFoundError(
                f"{self.resource.name} record {rid!r} has no revision {revision}",
                suggestion="list the revisions with history(id)",
                metadata={"resource": self.resource.name, "id": rid, "revision": revision},
            )
        return RecordRevision(current, etag=obj.etag, version=current.version, revision=revision)

    # -- restore, purge ------------------------------------------------------------
    async def restore(self, record_id: str, revision: int, *, retries: int | None = None) -> Record:
        rid = self.resource._id(record_id)
        target = await self.get_revision(rid, revision)
        data = await self.resource._records.before_update(
            rid, {k: v for k, v in target.items() if k != "id"}
        )
        for f in ("created_at", "updated_at") if self.resource.timestamps else ():
            data.pop(f, None)

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            new = dict(data)
            if self.resource.timestamps:
                keep_stamps(new, current or target)
                touch(new, current)
            return self.resource.schema.validate(new)

        for _ in range(self.resource.conflict_retries + 1):
            try:
                return await self.resource._records.modify(
                    rid, build, if_match=None, retries=retries
                )
            except NotFoundError:
                pass
            try:
                return await self.recreate(rid, build({}))
            except PreconditionFailed:
                continue  # re-inserted meanwhile: restore over it
        raise ConflictError(
            f"{self.resource.name} record {rid!r} kept appearing and vanishing during restore",
            metadata={"resource": self.resource.name, "id": rid},
        )

    async def recreate(self, rid: str, record: dict[str, Any]) -> Record:
        """Write a deleted record back, numbered after its last preserved revision."""
        taken = [n for n, _ in await self.history_keys(rid)]
        encoded = self.resource._records.encode(record, rid)
        encoded.metadata[REVISION_KEY] = str(max(taken, default=0) + 1)
        etag = await self.resource._writer.create(rid, record, encoded)
        result = Record(
            {"id": rid}, etag=etag, version=self.resource.version, masked=self.resource._masked
        )
        result.update(record)
        self.resource.emit("inserted", result)
        return result

    async def rotate_history(self, new_box: SecretBox) -> int:
        """Re-encrypt the secrets kept in history entries under ``new_box`` (passphrase
        rotation; the database's box reads both keys meanwhile). Resumable: an entry that
        already decrypts under ``new_box`` is left alone. Returns the entries rewritten."""
        store = self.resource.db.store
        keys = [
            e.key
            async for e in store.list(f"resource={self.resource.name}/history/")
            if isinstance(e, ListEntry)
        ]

        async def one(key: str) -> int:
            return await cas_loop(
                functools.partial(rewrite, key),
                what=f"history entry {key!r}",
                backoff=Backoff(attempts=20),
                metadata={"key": key},
            )

        async def rewrite(key: str, _: int) -> int | _Retry:
            try:
                obj = await store.get(key)
            except NotFoundError:
                return 0
            entry = _decode_entry(obj.body)
            version = record_version(entry.metadata) or self.resource.version
            try:
                self.resource.make_codec(version, new_box).decode(entry.metadata, entry.body)
                return 0  # no secret, or already under the new key
            except DecryptionError:
                pass
            codec = self.resource._codec_for(version)
            encoded = codec.encode(codec.decode(entry.metadata, entry.body))
            if REVISION_KEY in entry.metadata:
                encoded.metadata[REVISION_KEY] = entry.metadata[REVISION_KEY]
            rewritten = _Entry(entry.etag, entry.at, encoded.metadata, encoded.body)
            try:
                await conditional_put(
                    store, key, _encode_entry(rewritten), content_type=_JSON, if_match=obj.etag
                )
            except PreconditionFailed:
                return RETRY
            return 1

        return sum(await bounded_gather(one, keys, self.resource.db.parallelism))

    async def purge_history(self, record_id: str) -> int:
        rid = self.resource._id(record_id)
        keys = [key for _, key in await self.history_keys(rid)]
        if not keys:
            return 0
        return await self.resource.db.store.delete_many(keys)
