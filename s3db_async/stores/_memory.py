"""In-process object store (``memory://bucket/prefix``) with S3 semantics.

Stores opened on the same bucket name in one process share the data, so tests can
model several clients. Request accounting pages like S3 (one ``list`` per 1000 keys,
one ``delete_many`` per 1000 keys) so request counts match the other stores.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import hashlib
import types
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from datetime import UTC, datetime
from typing import ClassVar

import msgspec

from ..errors import NotFoundError, PreconditionFailed
from ._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    PAGE_SIZE,
    ByteChunks,
    Capabilities,
    CommonPrefix,
    ListEntry,
    ListPage,
    ObjectInfo,
    ObjectStore,
    ObjectStream,
    StoredObject,
    body_etag,
    checked_metadata,
    flatten_pages,
    put_stream_assembled,
    validate_key,
)
from ._url import ConnectionConfig, parse_connection_string

__all__ = ["MemoryStore"]

_OCTET_STREAM = "application/octet-stream"
SUSPEND_EVERY = 64
"""A request suspends at least once in this many, even with nothing else ready."""
_unsuspended = 0


@types.coroutine
def _pause() -> Generator[None, None, None]:
    """Suspend the calling task once: ``asyncio.sleep(0)`` without its extra frame."""
    yield


def _suspend() -> bool:
    """Whether a request should suspend the calling task (``await _pause()``).

    Every request is a scheduling point, as real I/O is, whenever something else could
    run: another task or callback is ready. When nothing is, a suspension would only
    cost a loop iteration (3-4 us, more than the request itself) and change nothing, so
    it is skipped, except once in ``SUSPEND_EVERY`` requests, which lets the loop run
    due timers (timeouts, cancellation) and poll I/O during a long run of requests.
    Concurrent callers still interleave at every request. Loops other than asyncio's
    own (uvloop ...) always suspend.
    """
    global _unsuspended
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    if ready is None or ready or _unsuspended >= SUSPEND_EVERY:
        _unsuspended = 0
        return True
    _unsuspended += 1
    return False


class _Obj(msgspec.Struct, gc=False):
    """One stored object (untracked by the cycle collector: it holds no containers but
    its metadata dict of strings, so a store of many objects costs collections nothing)."""

    body: bytes
    metadata: dict[str, str]
    etag: str
    last_modified: datetime
    content_type: str | None


class _Bucket:
    """Objects by key, plus the sorted key list that listings walk.

    Writes and deletes never shift that list: new keys wait in ``_pending`` and removed
    ones in ``_dead`` until the next listing reads :attr:`keys`, which merges and compacts
    once for the whole burst (Timsort merges the sorted runs). A key in ``objects`` is in
    ``_sorted`` or ``_pending`` exactly once; a key in ``_dead`` is in one of them but no
    longer in ``objects``.
    """

    __slots__ = ("_dead", "_pending", "_sorted", "objects", "version")

    def __init__(self) -> None:
        self.objects: dict[str, _Obj] = {}
        self._sorted: list[str] = []
        self._pending: list[str] = []
        self._dead: set[str] = set()
        self.version = 0

    @property
    def keys(self) -> list[str]:
        """Every key, sorted."""
        if self._dead:
            objects = self.objects
            self._sorted = [k for k in self._sorted if k in objects]
            self._pending = [k for k in self._pending if k in objects]
            self._dead.clear()
        pending = self._pending
        if pending:
            if len(pending) <= _INSORT_MAX:
                for key in pending:
                    bisect.insort(self._sorted, key)
            else:
                self._sorted.extend(pending)
                self._sorted.sort()
            pending.clear()
        return self._sorted

    def set(self, key: str, obj: _Obj) -> None:
        if key not in self.objects:
            if key in self._dead:
                self._dead.discard(key)  # still listed: it comes back to life in place
            else:
                self._pending.append(key)
        self.objects[key] = obj
        self.version += 1

    def remove(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        self._dead.add(key)
        self.version += 1
        return True


_INSORT_MAX = 16  # up to this many new keys are inserted one by one, more are merged by a sort


class MemoryStore(ObjectStore):
    """Objects in a dict, same contract and error behaviour as S3.

    :param url: ``memory://bucket/prefix`` (or a parsed :class:`ConnectionConfig`).
    :param enforce_limits: reject metadata over 2 KB like S3 does.
    """

    always_answers = True  # in-process: a write applies or fails, never an unknown outcome

    _buckets: ClassVar[dict[str, _Bucket]] = {}

    def __init__(
        self, url: str | ConnectionConfig = "memory://default", *, enforce_limits: bool = True
    ) -> None:
        super().__init__()
        config = url if isinstance(url, ConnectionConfig) else parse_connection_string(url)
        self.config = config
        self.url = config.masked
        self.bucket = config.bucket
        self.prefix = f"{config.prefix}/" if config.prefix else ""
        self.enforce_limits = enforce_limits
        self._data = self._buckets.setdefault(config.bucket, _Bucket())

    @classmethod
    def reset_all(cls) -> None:
        """Drop every in-memory bucket of this process."""
        cls._buckets.clear()

    def snapshot(self) -> dict[str, _Obj]:
        """A copy of every object under this store's prefix (restore with :meth:`restore`)."""
        return {k: copy.copy(v) for k, v in self._data.objects.items() if k.startswith(self.prefix)}

    def restore(self, snapshot: Mapping[str, _Obj]) -> None:
        """Replace everything under this store's prefix with ``snapshot``."""
        for k in [k for k in self._data.keys if k.startswith(self.prefix)]:
            self._data.remove(k)
        for k, v in snapshot.items():
            self._data.set(k, copy.copy(v))

    def _full(self, key: str) -> str:
        return self.prefix + validate_key(key)

    async def put(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        full = self._full(key)
        md = checked_metadata(key, metadata, self.enforce_limits) if metadata else {}
        if type(body) is not bytes:
            body = bytes(body)
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["put"] += 1
        data = self._data
        current = data.objects.get(full)
        if if_none_match and current is not None:
            raise PreconditionFailed(
                f"{key!r} already exists", metadata={"key": key, "condition": "If-None-Match"}
            )
        if if_match is not None and (current is None or current.etag != if_match):
            raise PreconditionFailed(
                f"{key!r} changed since it was read"
                if current
                else f"{key!r} does not exist (If-Match)",
                metadata={"key": key, "condition": "If-Match", "expected": if_match},
            )
        etag = body_etag(body)
        data.set(full, _Obj(body, md, etag, datetime.now(UTC), content_type or _OCTET_STREAM))
        return etag

    def _lookup(self, key: str) -> _Obj:
        obj = self._data.objects.get(self._full(key))
        if obj is None:
            raise NotFoundError(f"no object at {key!r}", metadata={"key": key})
        return obj

    async def get(self, key: str) -> StoredObject:
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["get"] += 1
        o = self._lookup(key)
        return StoredObject(
            key, o.body, dict(o.metadata), o.etag, o.last_modified, len(o.body), o.content_type
        )

    async def head(self, key: str) -> ObjectInfo:
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["head"] += 1
        o = self._lookup(key)
        return ObjectInfo(
            key, dict(o.metadata), o.etag, o.last_modified, len(o.body), o.content_type
        )

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        full = self._full(key)
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["delete"] += 1
        if if_match is not None:
            current = self._data.objects.get(full)
            if current is None or current.etag != if_match:
                raise PreconditionFailed(
                    f"{key!r} changed or vanished since it was read",
                    metadata={"key": key, "condition": "If-Match", "expected": if_match},
                )
        self._data.remove(full)

    async def delete_many(self, keys: Iterable[str]) -> int:
        fulls = [self._full(k) for k in keys]
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        for i in range(0, len(fulls), PAGE_SIZE):
            self.stats["delete_many"] += 1
            for full in fulls[i : i + PAGE_SIZE]:
                self._data.remove(full)
        return len(fulls)

    def list(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListEntry | CommonPrefix]:
        pages = self.list_pages(prefix, start_after=start_after, delimiter=delimiter)
        return flatten_pages(pages, limit)

    async def list_pages(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListPage]:
        full_prefix = self.prefix + prefix
        cursor = self.prefix + start_after if start_after is not None else None
        strip = len(self.prefix)
        objects = self._data.objects
        last_common: str | None = None
        while True:
            if _suspend():  # a scheduling point, as real I/O has
                await _pause()
            self.stats["list"] += 1
            keys = self._data.keys  # re-read: writes between pages are seen, as on S3
            i = (
                bisect.bisect_right(keys, cursor)
                if cursor is not None and cursor >= full_prefix
                else bisect.bisect_left(keys, full_prefix)
            )
            page: ListPage
            if not delimiter:
                chunk = keys[i : i + PAGE_SIZE]
                # keys under the prefix are contiguous: cut the chunk where they end
                n = bisect.bisect_left(chunk, True, key=lambda k: not k.startswith(full_prefix))
                page = [
                    ListEntry(k[strip:], len(o.body), o.etag, o.last_modified)
                    for k in chunk[:n]
                    for o in (objects[k],)
                ]
                i += n
                if n:
                    cursor = chunk[n - 1]
            else:
                page = []
                while i < len(keys) and len(page) < PAGE_SIZE:
                    k = keys[i]
                    if not k.startswith(full_prefix):
                        break
                    cursor = k
                    i += 1
                    cut = k.find(delimiter, len(full_prefix))
                    if cut >= 0:
                        common = k[: cut + len(delimiter)]
                        if common != last_common:
                            last_common = common
                            page.append(CommonPrefix(common[strip:]))
                        # skip every key under this common prefix
                        i = bisect.bisect_left(keys, common + "\U0010ffff")
                        cursor = keys[i - 1]
                        continue
                    o = objects[k]
                    page.append(ListEntry(k[strip:], len(o.body), o.etag, o.last_modified))
            if page:
                yield page
            more = i < len(keys) and keys[i].startswith(full_prefix)
            if not more or not page:
                return

    async def copy(self, src: str, dst: str) -> str:
        full_dst = self._full(dst)
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["copy"] += 1
        o = self._lookup(src)
        self._data.set(
            full_dst,
            _Obj(o.body, dict(o.metadata), o.etag, datetime.now(UTC), o.content_type),
        )
        return o.etag

    async def put_stream(
        self,
        key: str,
        chunks: ByteChunks,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        full = self._full(key)

        async def begin(md: dict[str, str], ctype: str) -> _MemoryUpload:
            return _MemoryUpload(self, full, md, ctype)

        return await put_stream_assembled(
            self, key, chunks, metadata, content_type=content_type, part_size=part_size,
            enforce_limits=self.enforce_limits, begin=begin,
        )  # fmt: skip

    async def get_stream(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.stats["get"] += 1
        o = self._lookup(key)
        info = ObjectInfo(
            key, dict(o.metadata), o.etag, o.last_modified, len(o.body), o.content_type
        )
        return ObjectStream(info, _slices(o.body, max(1, chunk_size)))

    async def _probe_capabilities(self) -> Capabilities:
        return Capabilities(detail="in-process, atomic by construction")


class _MemoryUpload:
    """The parts of a :meth:`MemoryStore.put_stream`, joined when it completes."""

    def __init__(self, store: MemoryStore, full: str, md: dict[str, str], ctype: str) -> None:
        self.store, self.full, self.md, self.ctype = store, full, md, ctype
        self.parts: list[bytes] = []

    async def write(self, part: bytes) -> bytes:
        if _suspend():  # a scheduling point, as real I/O has
            await _pause()
        self.parts.append(part)
        return hashlib.md5(part, usedforsecurity=False).digest()

    async def complete(self, etag: str) -> str:
        body = b"".join(self.parts)
        self.parts.clear()
        self.store._data.set(self.full, _Obj(body, self.md, etag, datetime.now(UTC), self.ctype))
        return etag

    def discard(self) -> None:
        self.parts.clear()


async def _slices(body: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for i in range(0, len(body), size):
        if _suspend():
            await _pause()
        yield bytes(view[i : i + size])
