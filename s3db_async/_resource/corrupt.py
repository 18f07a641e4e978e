"""Corrupt records: detect them on read, skip them in listings, delete them.

A record is corrupt when its object cannot be decoded: garbage metadata or body, no
``_v`` or a schema version ``s3db.json`` does not know, or an object the store cannot
read back (a damaged file on the file store). ``get`` raises
:class:`~s3db_async.errors.CorruptRecordError`; listings report it per record (an
``error`` event and ``skipped`` on the result) and go on, or raise with ``strict=True``;
``delete`` removes it with its content and partition references.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._cas import conditional_put
from .._codec.codec import record_version
from .._record import ItemResult, Record
from ..errors import (
    CorruptObjectError,
    CorruptRecordError,
    PreconditionFailed,
    StoreError,
    ValidationError,
)
from ..stores import ListEntry
from .partitions import DEAD_REF, is_dead

if TYPE_CHECKING:
    from .resource import Resource

__all__ = ["Corruption"]

_QUIET_OPS = frozenset({"doctor"})  # operations that report corrupt records themselves


class Corruption:
    """What a resource does with records it cannot decode."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self._unknown_versions: set[str] = set()  # versions s3db.json did not know on reload
        self._version_lock: asyncio.Lock | None = None

    def error(self, rid: str, reason: str) -> CorruptRecordError:
        return CorruptRecordError(self.resource.name, rid, self.resource.key_for(rid), reason)

    def unreadable(self, rid: str, exc: CorruptObjectError) -> CorruptRecordError:
        """The record error for an object the store itself cannot read back."""
        reason = exc.metadata.get("reason") or exc.message
        return self.error(rid, f"the stored object is unreadable ({reason})")

    def stored_version(self, rid: str, metadata: Mapping[str, str]) -> str:
        """The schema version of a stored record; corrupt when missing or unknown."""
        version = record_version(metadata)
        if version is None:
            raise self.error(rid, "no schema version (_v) in its metadata")
        if version != self.resource.version and version not in self.resource._versions:
            raise self.error(
                rid,
                f"unknown schema version {version!r} (known: {', '.join(self.resource._versions)})",
            )
        return version

    async def learn_version(self, metadata: Mapping[str, str]) -> None:
        """Re-read ``s3db.json`` once when a record names a version this process lacks.

        Another process may have created it; one GET per unknown version, not per record.
        """
        version = record_version(metadata)
        if (
            version is None
            or version == self.resource.version
            or version in self.resource._versions
        ):
            return
        if version in self._unknown_versions:
            return
        if self._version_lock is None:
            self._version_lock = asyncio.Lock()
        async with self._version_lock:
            if version in self.resource._versions or version in self._unknown_versions:
                return
            await self.resource.db.reload()
            if version not in self.resource._versions:
                self._unknown_versions.add(version)

    def decode_failed(self, rid: str, exc: Exception) -> CorruptRecordError:
        if isinstance(exc, CorruptRecordError):
            return exc
        if isinstance(exc, ValidationError):  # the codec names the field
            return self.error(rid, exc.message)
        return self.error(rid, f"cannot be decoded ({type(exc).__name__}: {exc})")

    def report(
        self,
        exc: CorruptRecordError,
        *,
        op: str,
        strict: bool,
        skipped: list[CorruptRecordError] | None = None,
    ) -> None:
        """Skip a corrupt record in a listing: log, emit ``error``, remember; or raise."""
        if strict:
            raise exc
        if op not in _QUIET_OPS:
            self.resource.log.warning(
                "%s skipped a corrupt record: %s",
                op,
                exc.message,
                extra={"op": op, "resource": self.resource.name, "id": exc.id, "key": exc.key},
            )
        self.resource.emit(
            "error", exc, {"op": op, "resource": self.resource.name, "id": exc.id, "key": exc.key}
        )
        if skipped is not None:
            skipped.append(exc)

    # -- deleting ------------------------------------------------------------------------
    async def delete(self, rid: str) -> Record:
        """Delete a corrupt record, its content and every partition reference to it.

        Its partition values cannot be read, so the references are found by listing the
        partitions (one LIST per 1000 references). Hooks and the ``deleted`` event get a
        record holding only the id.
        """
        record = Record({"id": rid})
        if self.resource._hooks.has("before_delete"):
            await self.resource._hooks.run("before_delete", record)
        refs = await self.refs_of(rid) if self.resource.partitions else {}
        await self.resource.db.store.delete_many(
            [self.resource.key_for(rid), self.resource.content_key_for(rid)]
        )
        for key, etag in refs.items():  # killed by swap from the listed etag, as everywhere
            try:
                await conditional_put(self.resource.db.store, key, DEAD_REF, if_match=etag)
            except (PreconditionFailed, StoreError) as exc:  # re-put meanwhile: theirs now
                self.resource.log.debug(
                    "reference %s of corrupt record %s left alive: %s", key, rid, exc
                )
        await self.resource._records.after_delete(record)
        return record

    async def delete_items(self, items: list[ItemResult]) -> list[ItemResult]:
        """Batch-delete results with each corrupt-record failure replaced by its deletion."""
        out = []
        for item in items:
            if isinstance(item.error, CorruptRecordError):
                item = ItemResult(item.error.id, True, await self.delete(item.error.id))
            out.append(item)
        return out

    async def refs_of(self, rid: str) -> dict[str, str]:
        """The live partition references that point at ``rid``: key -> listed etag."""
        found: dict[str, str] = {}
        for p in self.resource.partitions.values():
            async for entry in self.resource.db.store.list(p.base(self.resource.name)):
                if isinstance(entry, ListEntry) and not is_dead(entry.size):
                    parsed = p.parse_ref(entry.key)
                    if parsed is not None and parsed[1] == rid:
                        found[entry.key] = entry.etag
        return found
