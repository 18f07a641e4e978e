"""The record write path's partition references: put before the record, killed by token after.

A collaborator of :class:`~s3db_async.Resource` (``resource._writer``): creating a record
(:meth:`RecordWriter.create`) and replacing one by compare-and-swap
(:meth:`RecordWriter.swap`) with the reference protocol of :mod:`s3db_async._resource.partitions`:
new references are made live before the record write that needs them, the record keeps
their tokens (``_pt``), old ones are killed by compare-and-swap from their token after it,
and a write that loses its race hands back the references it put. So no interleaving and
no crash leaves a record missing from its partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, NotFoundError, PreconditionFailed
from .partitions import (
    TOKENS_KEY,
    decode_tokens,
    encode_tokens,
    kill_refs,
    new_token,
    put_refs,
    reconcile_refs,
)

if TYPE_CHECKING:
    from .._codec.codec import EncodedRecord
    from ..stores import StoredObject
    from .resource import Resource

__all__ = ["RecordWriter"]

CREATE_ROUNDS = 20
"""Takeover rounds per reference for an insert (no outer retry loop)."""
SWAP_ROUNDS = 2
"""Takeover rounds per reference for an update (its CAS loop retries after backoff)."""


class RecordWriter:
    """Creates and swaps the records of one resource together with their references."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def ref_tokens(
        self, record: Mapping[str, Any], rid: str, metadata: Mapping[str, str]
    ) -> dict[str, str]:
        """``{reference key: token}`` a stored record needs (from its ``_pt`` metadata)."""
        tokens = decode_tokens(metadata)
        refs = self.resource._ref_keys(record, rid)
        return {key: tokens.get(name, "") for name, key in refs.items()}

    @staticmethod
    def _stamp(encoded: EncodedRecord, tokens: Mapping[str, str]) -> None:
        kept = {n: t for n, t in tokens.items() if t}
        if kept:
            encoded.metadata[TOKENS_KEY] = encode_tokens(kept)

    async def _put_refs(self, rid: str, refs: Mapping[str, str], rounds: int) -> bool:
        """Make ``{key: token}`` live; False (what was put handed back) when contention on
        a key outlasted ``rounds``."""
        db = self.resource.db
        done = await put_refs(db.store, refs, db.parallelism, rounds)
        if len(done) == len(refs):
            return True
        await self.reconcile(rid, done)
        return False

    async def create(self, rid: str, record: Mapping[str, Any], encoded: EncodedRecord) -> str:
        """References first, then the record with ``If-None-Match``; its etag.

        :raises PreconditionFailed: the record exists (our references are handed back).
        :raises ConflictError: its references kept changing (concurrent creates of the id).
        """
        res = self.resource
        refs = res._ref_keys(record, rid)
        token = new_token()
        self._stamp(encoded, dict.fromkeys(refs, token))
        pre = dict.fromkeys(refs.values(), token)
        if pre and not await self._put_refs(rid, pre, CREATE_ROUNDS):
            raise ConflictError(
                f"{res.name} record {rid!r}: its partition references kept changing",
                suggestion="retry; other writers are creating this id at the same time",
                metadata={"resource": res.name, "id": rid},
                retriable=True,
            )
        try:
            return await res._records.put_encoded(res.key_for(rid), encoded, if_none_match=True)
        except PreconditionFailed:
            if pre:
                await self.reconcile(rid, pre)
            raise

    async def swap(
        self,
        rid: str,
        obj: StoredObject,
        before: Mapping[str, Any],
        encoded: EncodedRecord,
        after: Mapping[str, Any],
    ) -> str | None:
        """Replace ``obj`` by ``encoded`` (If-Match) moving references; its etag, or None
        when the race was lost (or a new reference stayed contended)."""
        res = self.resource
        tokens = decode_tokens(obj.metadata)
        old = res._ref_keys(before, rid)
        new = res._ref_keys(after, rid)
        token = new_token()
        moved = {n for n, k in new.items() if old.get(n) != k}
        self._stamp(encoded, {n: token if n in moved else tokens.get(n, "") for n in new})
        pre = {new[n]: token for n in moved}
        if pre and not await self._put_refs(rid, pre, SWAP_ROUNDS):
            return None
        if res.keeps_history:
            await res._history.stamp_revision(rid, obj, encoded)
        try:
            etag = await res._records.put_encoded(res.key_for(rid), encoded, if_match=obj.etag)
        except PreconditionFailed:
            if pre:
                await self.reconcile(rid, pre)
            return None
        stale = {k: tokens.get(n, "") for n, k in old.items() if new.get(n) != k}
        await kill_refs(res.db.store, stale, res.db.parallelism)
        return etag

    async def reconcile(self, rid: str, mine: Mapping[str, str]) -> None:
        """Hand back the references a lost write put (see :func:`reconcile_refs`)."""
        res = self.resource

        async def needed() -> dict[str, str]:
            try:
                obj, current = await res._records.read(rid)
            except NotFoundError:
                return {}
            return self.ref_tokens(current, rid, obj.metadata)

        await reconcile_refs(res.db.store, mine, needed)
