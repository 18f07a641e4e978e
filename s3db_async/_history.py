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
  object (an orphan). It is harmless: :meth:`HistoryMixin.history` hides an entry whose
  etag is the current one, and the next writer adopts it instead of writing it again.
- an entry ``n`` that preserves another etag belongs to an earlier life of the id (deleted,
  then inserted again): the writer lists the history and moves to the next free number.

Request budget: history adds exactly one PUT per update (1 GET + 2 PUT); a delete is
1 GET + 1 PUT + the deletes. Binary content (``set_content``) is not versioned.
"""

from __future__ import annotations

import builtins
import functools
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ._cas import RETRY, Backoff, _Retry, cas_loop, conditional_put
from ._codec import record_version
from ._concurrency import bounded_gather
from ._partitions import kill_refs
from ._record import ItemResult, Record
from ._timestamps import keep_stamps, touch
from .errors import (
    ConflictError,
    DecryptionError,
    NotFoundError,
    PreconditionFailed,
    S3dbError,
)
from .stores import ListEntry, StoredObject

if TYPE_CHECKING:
    from ._codec import RecordCodec
    from ._crypto import SecretBox
    from ._database import Database
    from ._events import HookRegistry
    from ._schema import Schema

__all__ = ["REVISION_METADATA_BYTES", "HistoryMixin", "RecordRevision"]

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


class HistoryMixin:
    """``history``/``get_revision``/``restore``/``purge_history`` of a resource."""

    if TYPE_CHECKING:
        name: str
        db: Database
        version: str
        schema: Schema
        timestamps: bool
        conflict_retries: int
        keeps_history: bool
        _hooks: HookRegistry
        _masked: tuple[str, ...]

        def key_for(self, record_id: str) -> str: ...
        def content_key_for(self, record_id: str) -> str: ...
        def _id(self, value: object) -> str: ...
        def _codec_for(self, version: str) -> RecordCodec: ...
        def make_codec(self, version: str, secret_box: SecretBox | None) -> RecordCodec: ...
        def _encode(self, record: Mapping[str, Any], rid: str) -> Any: ...
        async def _put_encoded(
            self,
            key: str,
            encoded: Any,
            *,
            if_match: str | None = None,
            if_none_match: bool = False,
        ) -> str: ...
        def _ref_tokens(
            self, record: Mapping[str, Any], rid: str, metadata: Mapping[str, str]
        ) -> dict[str, str]: ...
        def emit(self, event: str, *args: Any) -> None: ...
        async def _create(self, rid: str, record: Mapping[str, Any], encoded: Any) -> str: ...
        async def _read(self, rid: str) -> tuple[StoredObject, Record]: ...
        async def _upgrade(self, record: Record) -> Record: ...
        async def _after_delete(self, record: Record) -> None: ...
        async def _before_update(self, rid: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...
        async def _modify(
            self,
            record_id: object,
            build: Callable[[Record], dict[str, Any]],
            *,
            if_match: str | None,
            retries: int | None,
        ) -> Record: ...

    # -- keys ------------------------------------------------------------------
    def history_prefix(self, record_id: str) -> str:
        """Key prefix of a record's history: ``resource={name}/history/id={id}/``."""
        return f"resource={self.name}/history/id={record_id}/"

    def history_key(self, record_id: str, revision: int) -> str:
        """Object key of revision ``revision`` of a record."""
        return f"{self.history_prefix(record_id)}rev={revision:010d}"

    async def _history_keys(self, rid: str) -> list[tuple[int, str]]:
        """``(revision, key)`` of every stored entry, oldest first (LIST only)."""
        prefix = self.history_prefix(rid)
        out = []
        async for entry in self.db.store.list(prefix):
            if isinstance(entry, ListEntry) and entry.key[len(prefix) :].startswith("rev="):
                try:
                    out.append((int(entry.key[len(prefix) + 4 :]), entry.key))
                except ValueError:
                    continue
        return out

    async def _load_entry(self, key: str) -> _Entry | None:
        try:
            obj = await self.db.store.get(key)
        except NotFoundError:
            return None
        return _decode_entry(obj.body)

    # -- writing -----------------------------------------------------------------
    async def _preserve(self, rid: str, obj: StoredObject) -> int:
        """Store ``obj`` (the current object of ``rid``) as a history entry; its revision.

        1 PUT. When the number is taken: 1 GET (a racing writer preserved the same object:
        adopt it); otherwise the number belongs to an earlier life of the id, and the entry
        goes after the last one (LIST, GET of the last, HEAD). If ``obj`` is no longer
        current then, nothing is written: the caller's ``If-Match`` write will fail.
        """
        revision = revision_of(obj.metadata)
        store = self.db.store
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
            existing = await self._load_entry(self.history_key(rid, revision))
            if existing is not None and existing.etag == obj.etag:
                return revision  # a racing (or crashed) writer preserved this very object
            last = max([n for n, _ in await self._history_keys(rid)], default=revision)
            if last > revision:
                existing = await self._load_entry(self.history_key(rid, last))
                if existing is not None and existing.etag == obj.etag:
                    return last  # preserved after an earlier life by a racing writer
            try:
                current = (await store.head(self.key_for(rid))).etag
            except NotFoundError:
                current = None
            if current != obj.etag:
                return revision  # superseded meanwhile: keep nothing, the write will fail
            revision = max(revision, last) + 1
        raise ConflictError(
            f"{self.name} record {rid!r}: could not find a free history revision",
            suggestion="retry; the record's history is being written by many processes",
            metadata={"resource": self.name, "id": rid},
        )

    async def _stamp_revision(self, rid: str, obj: StoredObject, encoded: Any) -> None:
        """Preserve ``obj`` and number the object about to replace it (``_r``)."""
        encoded.metadata[REVISION_KEY] = str(await self._preserve(rid, obj) + 1)

    async def _delete_keeping_history(self, rid: str, *, must_exist: bool) -> Record | None:
        """Delete ``rid`` after preserving its last version; the deleted record or ``None``.

        Uses a conditional delete where the store has one, so an update racing the delete
        is never deleted unseen (S3 through obstore has none: there the window between
        the read and the delete stays open).
        """
        store = self.db.store
        conditional = (await store.capabilities()).conditional_delete

        async def attempt(_: int) -> Record | _Retry | None:
            try:
                obj, record = await self._read(rid)
            except NotFoundError:
                if must_exist:
                    raise
                return None
            if self._hooks.has("before_delete"):
                await self._hooks.run("before_delete", record)
            await self._preserve(rid, obj)
            if conditional:
                try:
                    await store.delete(self.key_for(rid), if_match=obj.etag)
                except PreconditionFailed:
                    return RETRY
                await store.delete_many([self.content_key_for(rid)])
            else:
                await store.delete_many([self.key_for(rid), self.content_key_for(rid)])
            refs = self._ref_tokens(record, rid, obj.metadata)
            await kill_refs(store, refs, self.db.parallelism)
            await self._after_delete(record)
            return record

        return await cas_loop(
            attempt,
            what=f"{self.name} record {rid!r} (delete)",
            backoff=Backoff(attempts=self.conflict_retries + 1),
            metadata={"resource": self.name, "id": rid},
        )

    async def _delete_many_keeping_history(self, ids: builtins.list[str]) -> list[ItemResult]:
        async def one(rid: str) -> ItemResult:
            try:
                record = await self._delete_keeping_history(rid, must_exist=True)
            except S3dbError as exc:
                return ItemResult(rid, False, error=exc)
            return ItemResult(rid, True, record)

        return await bounded_gather(one, ids, self.db.parallelism)

    # -- reading -----------------------------------------------------------------
    async def _revision(self, rid: str, revision: int, entry: _Entry) -> RecordRevision:
        version = record_version(entry.metadata) or self.version
        data = self._codec_for(version).decode(entry.metadata, entry.body)
        record = Record({"id": rid}, etag=entry.etag, version=version, masked=self._masked)
        record.update(data)
        record = await self._upgrade(record)
        return RecordRevision(
            record,
            etag=entry.etag,
            version=version,
            revision=revision,
            superseded_at=datetime.fromisoformat(entry.at),
        )

    async def history(self, record_id: str) -> builtins.list[RecordRevision]:
        """Every earlier version of a record, oldest first (the current one is not included).

        Works for deleted records too (their history is kept). Costs 1 LIST, 1 HEAD and
        1 GET per revision. Old revisions are upgraded like :meth:`get` upgrades records
        (see :meth:`migrate`)::

            for rev in await users.history(uid):
                print(rev.revision, rev.superseded_at, rev["name"])

        :raises SchemaError: an old revision needs a migration that is not registered.
        """
        rid = self._id(record_id)
        keys = await self._history_keys(rid)
        if not keys:
            return []
        try:
            current: str | None = (await self.db.store.head(self.key_for(rid))).etag
        except NotFoundError:
            current = None

        async def load(item: tuple[int, str]) -> RecordRevision | None:
            entry = await self._load_entry(item[1])
            if entry is None or entry.etag == current:
                return None  # purged meanwhile, or an orphan preserving the current version
            return await self._revision(rid, item[0], entry)

        found = await bounded_gather(load, keys, self.db.parallelism)
        return [r for r in found if r is not None]

    async def get_revision(self, record_id: str, revision: int) -> RecordRevision:
        """Revision ``revision`` of a record (1 GET; the current one costs 1 GET more).

        :raises NotFoundError: no such revision.
        """
        rid = self._id(record_id)
        entry = await self._load_entry(self.history_key(rid, int(revision)))
        if entry is not None:
            return await self._revision(rid, int(revision), entry)
        try:
            obj, current = await self._read(rid)
        except NotFoundError:
            obj = None
        if obj is None or revision_of(obj.metadata) != revision:
            raise NotFoundError(
                f"{self.name} record {rid!r} has no revision {revision}",
                suggestion="list the revisions with history(id)",
                metadata={"resource": self.name, "id": rid, "revision": revision},
            )
        return RecordRevision(current, etag=obj.etag, version=current.version, revision=revision)

    async def get_version(self, record_id: str, revision: int) -> RecordRevision:
        """Deprecated alias of :meth:`get_revision` (a *version* is a schema version)."""
        warnings.warn(
            "Resource.get_version(id, n) is deprecated; use get_revision(id, n)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.get_revision(record_id, revision)

    # -- restore, purge ------------------------------------------------------------
    async def restore(self, record_id: str, revision: int, *, retries: int | None = None) -> Record:
        """Make revision ``revision`` the current version again (a new revision itself;
        the version it replaces goes to the history). A deleted record is re-created.

        The restored data is validated against the current schema.

        :raises NotFoundError: no such revision.
        :raises ValidationError: the old data does not satisfy the current schema.
        """
        rid = self._id(record_id)
        target = await self.get_revision(rid, revision)
        data = await self._before_update(rid, {k: v for k, v in target.items() if k != "id"})
        for f in ("created_at", "updated_at") if self.timestamps else ():
            data.pop(f, None)

        def build(current: Mapping[str, Any]) -> dict[str, Any]:
            new = dict(data)
            if self.timestamps:
                keep_stamps(new, current or target)
                touch(new, current)
            return self.schema.validate(new)

        for _ in range(self.conflict_retries + 1):
            try:
                return await self._modify(rid, build, if_match=None, retries=retries)
            except NotFoundError:
                pass
            try:
                return await self._recreate(rid, build({}))
            except PreconditionFailed:
                continue  # re-inserted meanwhile: restore over it
        raise ConflictError(
            f"{self.name} record {rid!r} kept appearing and vanishing during restore",
            metadata={"resource": self.name, "id": rid},
        )

    async def _recreate(self, rid: str, record: dict[str, Any]) -> Record:
        """Write a deleted record back, numbered after its last preserved revision."""
        taken = [n for n, _ in await self._history_keys(rid)]
        encoded = self._encode(record, rid)
        encoded.metadata[REVISION_KEY] = str(max(taken, default=0) + 1)
        etag = await self._create(rid, record, encoded)
        result = Record({"id": rid}, etag=etag, version=self.version, masked=self._masked)
        result.update(record)
        self.emit("inserted", result)
        return result

    async def _rotate_history(self, new_box: SecretBox) -> int:
        """Re-encrypt the secrets kept in history entries under ``new_box`` (passphrase
        rotation; the database's box reads both keys meanwhile). Resumable: an entry that
        already decrypts under ``new_box`` is left alone. Returns the entries rewritten."""
        store = self.db.store
        keys = [
            e.key
            async for e in store.list(f"resource={self.name}/history/")
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
            version = record_version(entry.metadata) or self.version
            try:
                self.make_codec(version, new_box).decode(entry.metadata, entry.body)
                return 0  # no secret, or already under the new key
            except DecryptionError:
                pass
            codec = self._codec_for(version)
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

        return sum(await bounded_gather(one, keys, self.db.parallelism))

    async def purge_history(self, record_id: str) -> int:
        """Delete every stored revision of a record; returns how many were deleted."""
        rid = self._id(record_id)
        keys = [key for _, key in await self._history_keys(rid)]
        if not keys:
            return 0
        return await self.db.store.delete_many(keys)
