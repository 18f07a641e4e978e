"""The record write path's partition references: put before the record, killed by token after.

A collaborator of :class:`~s3db_async.Resource` (``resource._writer``): creating a record
(:meth:`RecordWriter.create`) and replacing one by compare-and-swap
(:meth:`RecordWriter.swap`) with the reference protocol of :mod:`s3db_async._resource.partitions`:
new references are made live before the record write that needs them, the record keeps
their tokens (``_pt``), old ones are killed by compare-and-swap from their token after it,
and a write that loses its race hands back the references it put. So no interleaving and
no crash leaves a record missing from its partition.

When a durable consumer watches the resource, :attr:`RecordWriter.feed` writes one change
intent before each record write and the record carries its id (see
:mod:`s3db_async._resource.feed`); otherwise ``feed`` is ``None`` and nothing else happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from .._cas import conditional_put
from ..errors import ConflictError, NotFoundError, PreconditionFailed
from .feed import CHANGE_KEY, FeedWriter
from .partitions import (
    TOKENS_KEY,
    decode_tokens,
    encode_tokens,
    kill_refs,
    new_token,
    put_ref,
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
        self.feed: FeedWriter | None = None

    def watch(self, config: Mapping[str, Any] | None) -> None:
        """Apply the resource's ``feed`` entry of ``s3db.json``: with consumers, write
        intents (and reserve the metadata bytes of the change id); without, stop."""
        watched = bool(config and config.get("consumers"))
        was = self.feed is not None
        self.feed = FeedWriter(self.resource, config or {}) if watched else None
        if watched != was and hasattr(self.resource, "codec"):
            self.resource._reset_codecs()

    async def _intent(
        self,
        op: str,
        rid: str,
        obj: StoredObject | None,
        encoded: EncodedRecord | None,
    ) -> tuple[FeedWriter, str, float] | None:
        """The feed's intent for one write, before it (stamping ``encoded``), if watched."""
        feed = self.feed
        if feed is None:
            return None
        before = None if obj is None else (obj.metadata, obj.body)
        after = None if encoded is None else (encoded.metadata, encoded.body)
        prev = None if obj is None else obj.metadata.get(CHANGE_KEY)
        cid, key, deadline = await feed.intent(op, rid, prev, before, after)
        if encoded is not None:
            encoded.metadata[CHANGE_KEY] = cid
        return feed, key, deadline

    @staticmethod
    async def _drop(intent: tuple[FeedWriter, str, float] | None) -> None:
        if intent is not None:
            await intent[0].drop(intent[1])

    @staticmethod
    async def _check(intent: tuple[FeedWriter, str, float] | None) -> None:
        """Refuse (dropping the intent) a record write whose intent's deadline passed."""
        if intent is not None:
            try:
                intent[0].check_deadline(intent[1], intent[2])
            except ConflictError:
                await intent[0].drop(intent[1])
                raise

    async def deleting(self, rid: str, obj: StoredObject) -> tuple[FeedWriter, str, float] | None:
        """Before deleting ``obj``: its intent if the resource is watched (else nothing).
        Pass the result to :meth:`not_deleted` when the delete was refused."""
        intent = await self._intent("delete", rid, obj, None)
        await self._check(intent)
        return intent

    async def not_deleted(self, intent: tuple[FeedWriter, str, float] | None) -> None:
        """The delete of :meth:`deleting` was refused (412): drop its intent."""
        await self._drop(intent)

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

    def _put_refs(self, rid: str, refs: Mapping[str, str], rounds: int) -> Awaitable[bool]:
        """Make ``{key: token}`` live; False (what was put handed back) when contention on
        a key outlasted ``rounds``."""
        if len(refs) == 1:  # the usual case (one partition): nothing to hand back on failure
            ((key, token),) = refs.items()
            return put_ref(self.resource.db.store, key, token, rounds)
        return self._put_many_refs(rid, refs, rounds)

    async def _put_many_refs(self, rid: str, refs: Mapping[str, str], rounds: int) -> bool:
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
        pre: dict[str, str] = {}
        if refs:
            token = new_token()
            self._stamp(encoded, dict.fromkeys(refs, token))
            pre = dict.fromkeys(refs.values(), token)
        intent = None if self.feed is None else await self._intent("insert", rid, None, encoded)
        if pre and not await self._put_refs(rid, pre, CREATE_ROUNDS):
            await self._drop(intent)
            raise ConflictError(
                f"{res.name} record {rid!r}: its partition references kept changing",
                suggestion="retry; other writers are creating this id at the same time",
                metadata={"resource": res.name, "id": rid},
                retriable=True,
            )
        if intent is not None:
            await self._check(intent)
        try:
            return await conditional_put(
                res.db.store,
                res.key_for(rid),
                encoded.body,
                encoded.metadata,
                content_type=encoded.content_type,
                if_none_match=True,
            )
        except PreconditionFailed:
            if intent is not None:
                await self._drop(intent)
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
        intent = None if self.feed is None else await self._intent("update", rid, obj, encoded)
        if pre and not await self._put_refs(rid, pre, SWAP_ROUNDS):
            await self._drop(intent)
            return None
        if res.keeps_history:
            await res._history.stamp_revision(rid, obj, encoded)
        if intent is not None:
            await self._check(intent)
        try:
            etag = await res._records.put_encoded(res.key_for(rid), encoded, if_match=obj.etag)
        except PreconditionFailed:
            if intent is not None:
                await self._drop(intent)
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
