"""The ObjectStore contract: the only I/O boundary of s3db-async.

Every method is one logical request. Conditional writes are part of the
contract and every store implements them atomically:

- ``put(..., if_none_match=True)`` raises :class:`PreconditionFailed` when the key exists;
- ``put(..., if_match=etag)`` raises :class:`PreconditionFailed` when the current etag
  differs or the key is missing;
- ``delete(..., if_match=etag)`` likewise where the backend supports it
  (``capabilities().conditional_delete``).

User metadata follows S3: keys are case-insensitive (stores lowercase them), values
are strings, and the limit is 2 KB counted as the UTF-8 bytes of keys plus values.
"""

from __future__ import annotations

import abc
import base64
import builtins
import collections
import functools
import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Protocol

import msgspec

from ..errors import ConfigError, InvalidKeyError, MetadataLimitError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "METADATA_LIMIT",
    "MIN_PART_SIZE",
    "AssembledUpload",
    "ByteChunks",
    "Capabilities",
    "CommonPrefix",
    "ListEntry",
    "ListPage",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "RequestStats",
    "StoredObject",
    "decode_metadata_value",
    "encode_metadata_value",
    "metadata_size",
    "checked_metadata",
    "put_stream_assembled",
    "validate_key",
]

METADATA_LIMIT = 2048
"""S3's user-defined metadata limit in bytes (keys + values, UTF-8)."""

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part of a multipart upload (every part but the last)."""
MAX_PART_SIZE = 5 * 1024**3
"""S3's largest part of a multipart upload."""
DEFAULT_PART_SIZE = 8 * 1024 * 1024
"""Part size of :meth:`ObjectStore.put_stream` unless told otherwise."""
MAX_PARTS = 10_000
"""S3's most parts in one multipart upload."""
DEFAULT_CHUNK_SIZE = 1024 * 1024
"""Chunk size (at least) of :meth:`ObjectStore.get_stream` unless told otherwise."""

ByteChunks = AsyncIterable[bytes] | Iterable[bytes]
"""What :meth:`ObjectStore.put_stream` reads: an (async) iterable of byte chunks of any size."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_TOKEN = re.compile(r"[0-9a-z._-]+")  # a lowercased metadata key
_GOOD_METADATA_KEYS: set[str] = set()  # metadata keys already checked (bounded, see below)
_GOOD_KEYS_CAP = 4096
# Names obstore sends as standard headers instead of x-amz-meta-*: refused on every store alike.
_RESERVED_METADATA_KEYS = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-type",
        "storage-class",
    }
)
_B64_PREFIX = "=?UTF-8?B?"
_B64_SUFFIX = "?="


class ObjectInfo(msgspec.Struct, frozen=True, gc=False):
    """What a HEAD returns: everything but the body (a msgspec struct, like
    :class:`StoredObject`: built on every read, and a frozen dataclass costs 7x more)."""

    key: str
    metadata: dict[str, str]
    etag: str
    last_modified: datetime
    size: int
    content_type: str | None = None


class StoredObject(msgspec.Struct, frozen=True, gc=False):
    """What a GET returns: metadata and body in one request."""

    key: str
    body: bytes
    metadata: dict[str, str]
    etag: str
    last_modified: datetime
    size: int
    content_type: str | None = None


class ListEntry(msgspec.Struct, frozen=True, gc=False):
    """One object of a listing (a msgspec struct: ten times cheaper to build than a frozen
    dataclass, which matters at 1,000 entries per LIST page)."""

    key: str
    size: int
    etag: str
    last_modified: datetime


class CommonPrefix(msgspec.Struct, frozen=True, gc=False):
    """A "folder" of a delimited listing (``prefix`` ends with the delimiter)."""

    prefix: str


class ObjectStream:
    """A body read in chunks, from :meth:`ObjectStore.get_stream`.

    ``info`` holds what the GET answered (metadata, etag, size); iterating yields the body in
    chunks. Close it (``async with``, or :meth:`aclose`) when stopping early::

        async with await store.get_stream("big") as stream:
            async for chunk in stream:
                out.write(chunk)
    """

    __slots__ = ("_chunks", "_on_close", "info")

    def __init__(
        self,
        info: ObjectInfo,
        chunks: AsyncIterator[bytes],
        on_close: Callable[[], object] | None = None,
    ) -> None:
        """``on_close`` releases what ``chunks`` holds even if it was never started (an
        async generator that never ran does not run its ``finally`` on ``aclose``)."""
        self.info = info
        self._chunks = chunks
        self._on_close = on_close

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        """The rest of the body in one piece (for small objects: it is all in memory)."""
        return b"".join([chunk async for chunk in self._chunks])

    async def aclose(self) -> None:
        """Stop reading and release the connection or file (idempotent)."""
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def __aenter__(self) -> ObjectStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


ListPage = builtins.list[ListEntry | CommonPrefix]
"""One page of a listing: up to 1,000 entries, one request."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store guarantees, probed once per endpoint at connect."""

    conditional_create: bool = True
    conditional_update: bool = True
    conditional_delete: bool = True
    detail: str = ""

    @property
    def conditional_writes(self) -> bool:
        """Both create-if-absent and compare-and-swap work."""
        return self.conditional_create and self.conditional_update


class RequestStats(collections.Counter[str]):
    """Requests issued per operation (``put``, ``get``, ``head``, ``list``, ...).

    One count per request sent to the backend, retries included.
    """

    def reset(self) -> None:
        """Forget every count."""
        self.clear()

    def total(self) -> int:
        """All requests of every operation."""
        return sum(self.values())

    def snapshot(self) -> dict[str, int]:
        """A plain copy of the counts."""
        return dict(self)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidKeyError`.

    A key must be non-empty, at most 1024 UTF-8 bytes, free of control characters,
    must not start with ``/`` and must not contain ``.`` or ``..`` segments (which
    would escape the root on a file system and are ambiguous on S3).
    """
    if (  # the common case, by a few scans in C: printable ASCII, no segment empty or dotted
        type(key) is str
        and 0 < len(key) <= 1024
        and key.isascii()
        and key.isprintable()
        and key[0] not in "/."
        and key[-1] != "/"
        and "//" not in key
        and "/." not in key
    ):
        return key
    return check_key(key)


def check_key(key: str) -> str:
    """:func:`validate_key` rule by rule (the slow path; same answers)."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(
            "object key must be a non-empty string",
            suggestion="pass a key such as 'resource=users/data/id=1'",
            metadata={"key": key},
        )
    reason = None
    if _CONTROL.search(key):
        reason = "contains control characters"
    elif key.startswith("/"):
        reason = "starts with '/'"
    elif not _encodable(key):
        reason = "is not valid unicode (lone surrogates)"
    elif len(key.encode("utf-8")) > 1024:
        reason = "is longer than 1024 bytes"
    elif any(seg in (".", "..") for seg in key.split("/")):
        reason = "has a '.' or '..' segment"
    elif "//" in key or key.endswith("/"):
        reason = "has an empty segment ('//' or a trailing '/')"
    if reason:
        raise InvalidKeyError(
            f"unsafe object key {key!r}: it {reason}",
            suggestion="encode user-supplied parts of keys (ids, partition values) before use",
            metadata={"key": key, "reason": reason},
        )
    return key


_md5: Callable[[bytes], Any]
try:  # CPython's own MD5 is twice as fast as OpenSSL's on the small bodies records have
    from _md5 import md5 as _md5  # type: ignore[import-not-found,no-redef]
except ImportError:  # pragma: no cover - builds without it (FIPS)
    _md5 = functools.partial(hashlib.md5, usedforsecurity=False)


def body_etag(body: bytes) -> str:
    """The etag every store gives a single-PUT body: its quoted MD5."""
    digest: str = _md5(body).hexdigest()
    return '"' + digest + '"'


def multipart_etag(part_digests: Iterable[bytes]) -> str:
    """The etag S3 gives a multipart upload: the MD5 of the parts' binary MD5s, a dash and
    the number of parts (``"<hex>-3"``)."""
    digests = builtins.list(part_digests)
    digest: str = _md5(b"".join(digests)).hexdigest()
    return f'"{digest}-{len(digests)}"'


def check_part_size(part_size: int) -> int:
    """Return ``part_size`` if S3 accepts it for a multipart upload, else raise
    :class:`ConfigError` (every store checks alike, so code that works on one works on S3)."""
    if (
        isinstance(part_size, bool)
        or not isinstance(part_size, int)
        or not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE
    ):
        raise ConfigError(
            f"part_size must be an int from {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB), "
            f"got {part_size!r}",
            suggestion=f"leave the default ({DEFAULT_PART_SIZE} bytes) or pass a size in range",
            metadata={"field": "part_size", "reason": "out of S3's range", "value": part_size},
        )
    return part_size


def too_many_parts(key: str, part_size: int) -> ConfigError:
    """The error of an upload that needs more than :data:`MAX_PARTS` parts."""
    return ConfigError(
        f"{key!r}: a body over {MAX_PARTS} parts of {part_size} bytes cannot be uploaded",
        suggestion="pass a larger part_size (S3 allows up to 10,000 parts of up to 5 GiB)",
        metadata={"field": "part_size", "reason": "too many parts", "key": key},
    )


async def aiter_chunks(chunks: ByteChunks) -> AsyncIterator[bytes]:
    """The non-empty chunks of a sync or async iterable, as an async iterator."""
    if isinstance(chunks, bytes | bytearray | memoryview):
        raise ConfigError(
            "put_stream() takes an iterable of chunks, not one bytes object",
            suggestion="use put() for a body already in memory, or wrap it: [body]",
            metadata={"field": "chunks", "reason": "bytes, not chunks"},
        )
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            if chunk:
                yield bytes(chunk)
    else:
        for chunk in chunks:
            if chunk:
                yield bytes(chunk)


async def read_head(chunks: AsyncIterator[bytes], size: int) -> tuple[bytearray, bool]:
    """Read more than ``size`` bytes (or to the end): the bytes read, and whether the stream
    ended within ``size`` bytes (then the body is small enough for one PUT)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) > size:
            return head, False
    return head, True


async def split_parts(
    head: bytearray, chunks: AsyncIterator[bytes], part_size: int
) -> AsyncIterator[bytes]:
    """``head`` then ``chunks`` regrouped into parts of exactly ``part_size`` bytes (the last
    one shorter): one part in memory at a time."""
    buf = head
    while True:
        while len(buf) >= part_size:
            part = bytes(buf[:part_size])
            del buf[:part_size]
            yield part
        try:
            buf += await anext(chunks)
        except StopAsyncIteration:
            break
    if buf:
        yield bytes(buf)


class AssembledUpload(Protocol):
    """A multipart upload that the store assembles itself (memory, file): see
    :func:`put_stream_assembled`."""

    async def write(self, part: bytes) -> bytes:
        """Keep one part; return its binary MD5."""
        ...

    async def complete(self, etag: str) -> str:
        """Make the object appear whole with ``etag``; return it."""
        ...

    def discard(self) -> None:
        """Drop what is kept (after completing too; idempotent)."""
        ...


async def put_stream_assembled(
    store: ObjectStore,
    key: str,
    chunks: ByteChunks,
    metadata: Mapping[str, str] | None,
    *,
    content_type: str | None,
    part_size: int,
    enforce_limits: bool,
    begin: Callable[[dict[str, str], str], Awaitable[AssembledUpload]],
) -> str:
    """:meth:`ObjectStore.put_stream` for a store that assembles the parts itself: a small
    body is one :meth:`~ObjectStore.put`; a larger one goes through ``begin(metadata,
    content_type)``'s upload, part by part, counted in ``stats`` as S3 counts it."""
    check_part_size(part_size)
    md = checked_metadata(key, metadata, enforce_limits)
    source = aiter_chunks(chunks)
    head, small = await read_head(source, part_size)
    if small:
        return await store.put(key, bytes(head), md, content_type=content_type)
    stats = store.stats
    stats["multipart_create"] += 1
    upload = await begin(md, content_type or "application/octet-stream")
    digests: builtins.list[bytes] = []
    completed = False
    try:
        async for part in split_parts(head, source, part_size):
            if len(digests) == MAX_PARTS:
                raise too_many_parts(key, part_size)
            stats["put_part"] += 1
            digests.append(await upload.write(part))
        stats["multipart_complete"] += 1
        etag = await upload.complete(multipart_etag(digests))
        completed = True
        return etag
    except BaseException:
        if not completed:
            stats["multipart_abort"] += 1
        raise
    finally:
        upload.discard()


def _is_header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and value == value.strip()


def encode_metadata_value(value: str) -> str:
    """Make a metadata value safe for an HTTP header.

    Printable ASCII passes unchanged; anything else (unicode, control characters,
    leading/trailing blanks) is wrapped as RFC 2047 ``=?UTF-8?B?...?=``.
    """
    if _is_header_safe(value) and not value.startswith(_B64_PREFIX):
        return value
    return _B64_PREFIX + base64.b64encode(value.encode("utf-8")).decode("ascii") + _B64_SUFFIX


def decode_metadata_value(value: str) -> str:
    """Reverse :func:`encode_metadata_value`."""
    if value.startswith(_B64_PREFIX) and value.endswith(_B64_SUFFIX):
        raw = value[len(_B64_PREFIX) : -len(_B64_SUFFIX)]
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def metadata_size(metadata: Mapping[str, str]) -> int:
    """Bytes of user metadata exactly as S3 counts them (UTF-8 keys + values).

    Values are counted in the form they travel in (after header-safe encoding).
    """
    values = "".join(metadata.values())
    if (
        values.isascii()
        and values.isprintable()
        and _B64_PREFIX[:2] not in values
        and "".join(metadata).isascii()
        and (" " not in values or not _edge_blank("\n".join(metadata.values())))
    ):
        return sum(map(len, metadata)) + len(values)  # every value travels as is
    return sum(
        len(k.lower().encode("utf-8")) + len(encode_metadata_value(v).encode("utf-8"))
        for k, v in metadata.items()
    )


def _edge_blank(lined: str) -> bool:
    """True when a value of these printable values (one per line) starts or ends blank."""
    return lined[:1] == " " or lined[-1:] == " " or " \n" in lined or "\n " in lined


def normalize_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lowercase keys (as S3 does) and check types; returns a new dict."""
    if not metadata:
        return {}
    out: dict[str, str] = {}
    good = _GOOD_METADATA_KEYS
    for k, v in metadata.items():
        if k in good and type(v) is str:
            out[k] = v  # a lowercase key checked before
            continue
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidKeyError(
                f"metadata keys and values must be str, got {type(k).__name__}: {type(v).__name__}",
                suggestion="encode values to str before storing them as metadata",
                metadata={"metadata_key": str(k)},
            )
        lk = k.lower()
        if _HEADER_TOKEN.fullmatch(lk) is None:
            raise InvalidKeyError(
                f"metadata key {k!r} is not a valid header token",
                suggestion="use ASCII letters, digits, '-', '_' or '.' in metadata keys",
                metadata={"metadata_key": k},
            )
        if lk in _RESERVED_METADATA_KEYS:
            raise InvalidKeyError(
                f"metadata key {k!r} is reserved (it names a standard HTTP header)",
                suggestion="pick another name; pass content_type= for the Content-Type",
                metadata={"metadata_key": k},
            )
        out[lk] = v
        if lk == k and len(good) < _GOOD_KEYS_CAP:
            good.add(k)
    return out


def _surely_fits(joined: str, entries: int) -> bool:
    """True when metadata of ``entries`` pairs whose keys and values join to ``joined`` is
    under the limit however it is encoded, so its exact size is not needed: ASCII keys
    travel as they are, ASCII values in at most 15 + 4/3 of their length (RFC 2047 base64
    of an unsafe one); counting every character twice covers both."""
    return joined.isascii() and 2 * len(joined) + 15 * entries <= METADATA_LIMIT


def checked_metadata(
    key: str, metadata: Mapping[str, str] | None, enforce_limits: bool
) -> dict[str, str]:
    """:func:`normalize_metadata`, then (``enforce_limits``) :func:`check_metadata_limit`:
    a few C calls in the usual case (keys seen before, ASCII values well under the limit).
    """
    if not metadata:
        return {}
    if type(metadata) is dict and _GOOD_METADATA_KEYS.issuperset(metadata):
        try:  # keys and values in one string; also proves every value is a str
            joined = "".join([*metadata, *metadata.values()])
        except TypeError:
            pass  # the slow path names the bad value
        else:
            if not enforce_limits or _surely_fits(joined, len(metadata)):
                return dict(metadata)
    md = normalize_metadata(metadata)
    if enforce_limits:
        check_metadata_limit(key, md)
    return md


def check_metadata_limit(key: str, metadata: Mapping[str, str]) -> None:
    """Raise :class:`MetadataLimitError` when metadata is over 2 KB."""
    if _surely_fits("".join([*metadata, *metadata.values()]), len(metadata)):
        return
    size = metadata_size(metadata)
    if size > METADATA_LIMIT:
        raise MetadataLimitError(
            f"metadata of {key!r} is {size} bytes, over S3's {METADATA_LIMIT}-byte limit",
            suggestion="store large fields in the body (behavior 'body-overflow')",
            metadata={"key": key, "size": size, "limit": METADATA_LIMIT},
        )


class ObjectStore(abc.ABC):
    """Abstract object store. Subclasses implement the ``_``-less methods.

    Use as an async context manager or call :meth:`connect` / :meth:`close`.
    """

    url: str
    """The connection string this store was opened from (credentials masked)."""

    always_answers: ClassVar[bool] = False
    """True when every write either applies or fails with a definite error, never with
    :class:`~s3db_async.errors.WriteOutcomeUnknownError` (in-process stores): a
    conditional write then needs no read-back (see :func:`s3db_async._cas.conditional_put`)."""

    def __init__(self) -> None:
        self.stats = RequestStats()
        self._capabilities: Capabilities | None = None

    # -- lifecycle -----------------------------------------------------------
    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections, check the bucket exists. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; no request is left in flight."""

    async def __aenter__(self) -> ObjectStore:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the contract --------------------------------------------------------
    @abc.abstractmethod
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
        """Write an object; return its etag.

        :raises PreconditionFailed: a condition did not hold.
        """

    @abc.abstractmethod
    async def get(self, key: str) -> StoredObject:
        """Read body and metadata in one request.

        :raises NotFoundError: no such key.
        """

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo:
        """Read metadata only.

        :raises NotFoundError: no such key.
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete a key (a missing key is not an error unless ``if_match`` is given).

        :raises PreconditionFailed: ``if_match`` did not match.
        :raises UnsupportedCapabilityError: ``if_match`` on a store without conditional delete.
        """

    @abc.abstractmethod
    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete many keys in batches (1000 per request on S3); return how many were asked."""

    @abc.abstractmethod
    def list(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListEntry | CommonPrefix]:
        """Iterate keys under ``prefix`` in lexicographic order.

        With ``delimiter`` the "folders" come as :class:`CommonPrefix` entries.
        """

    def list_pages(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListPage]:
        """The same listing as :meth:`list`, a page (one request, up to 1,000 entries) at a
        time: counting or collecting a large listing this way skips a step per entry.

        Stores that page natively override this; the default regroups :meth:`list`.
        """
        return _regroup(self.list(prefix, start_after=start_after, delimiter=delimiter))

    @abc.abstractmethod
    async def copy(self, src: str, dst: str) -> str:
        """Server-side copy (body and metadata); return the new etag."""

    @abc.abstractmethod
    async def put_stream(
        self,
        key: str,
        chunks: ByteChunks,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        """Write an object from chunks of any size, in memory bounded by ``part_size``;
        return its etag.

        A body of at most ``part_size`` bytes goes as one PUT (``stats["put"]``, the plain
        MD5 etag). A larger one goes as a multipart upload: ``stats["multipart_create"]``,
        one ``stats["put_part"]`` per ``part_size`` bytes, ``stats["multipart_complete"]``;
        its etag is S3's multipart etag (``"<md5 of the parts' md5s>-<parts>"``), on every
        store alike. The object appears whole when the upload completes, never in part; an
        upload that fails (the source raises, a request fails) is aborted
        (``stats["multipart_abort"]``) and the error raised. No conditional writes.

        :raises ConfigError: ``part_size`` outside 5 MiB .. 5 GiB, or over 10,000 parts.
        """

    @abc.abstractmethod
    async def get_stream(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        """Read an object in chunks of about ``chunk_size`` bytes (one GET, ``stats["get"]``):
        memory stays bounded whatever the object's size. The chunks are of the version the
        GET found; if the connection breaks mid-body, S3Store resumes where it stopped with
        a ranged GET bound to that version's etag (one more ``get``), and raises
        :class:`PreconditionFailed` if the object was replaced meanwhile.

        :raises NotFoundError: no such key.
        """

    @abc.abstractmethod
    async def _probe_capabilities(self) -> Capabilities:
        """Measure what the backend guarantees."""

    # -- conveniences built on the contract ---------------------------------
    async def capabilities(self) -> Capabilities:
        """What this store guarantees (probed once, then cached)."""
        if self._capabilities is None:
            self._capabilities = await self._probe_capabilities()
        return self._capabilities

    async def exists(self, key: str) -> bool:
        """True when ``key`` exists (one HEAD)."""
        from ..errors import NotFoundError

        try:
            await self.head(key)
        except NotFoundError:
            return False
        return True

    async def list_keys(self, prefix: str = "", *, limit: int | None = None) -> builtins.list[str]:
        """All keys under ``prefix`` as a list."""
        return [e.key async for e in self.list(prefix, limit=limit) if isinstance(e, ListEntry)]

    def describe(self) -> dict[str, Any]:
        """A short, credential-free description for logs and the CLI."""
        return {"store": type(self).__name__, "url": self.url}


PAGE_SIZE = 1000
"""Entries per LIST page, as S3 returns them."""


async def _regroup(entries: AsyncIterator[ListEntry | CommonPrefix]) -> AsyncIterator[ListPage]:
    page: ListPage = []
    async for entry in entries:
        page.append(entry)
        if len(page) == PAGE_SIZE:
            yield page
            page = []
    if page:
        yield page


async def flatten_pages(
    pages: AsyncIterator[ListPage], limit: int | None
) -> AsyncIterator[ListEntry | CommonPrefix]:
    """The entries of ``pages``, stopping (and sending no further request) at ``limit``."""
    if limit is not None and limit <= 0:
        return
    emitted = 0
    async for page in pages:
        for entry in page:
            yield entry
            emitted += 1
            if emitted == limit:
                return
