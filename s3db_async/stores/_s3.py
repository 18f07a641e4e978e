"""S3 and S3-compatible object stores (``s3://`` and ``http(s)://``) on obstore.

::

    store = S3Store("http://KEY:SECRET@127.0.0.1:8333/my-bucket/app?parallelism=64")
    async with store:
        etag = await store.put("users/1", b"{}", {"v": "1"}, if_none_match=True)

How it meets the :class:`~s3db_async.stores.ObjectStore` contract on top of obstore:

- **Retries** are ours, not obstore's (its ``max_retries`` is 0), so every request that
  goes over the wire is counted in :attr:`stats`. Retried: what provably was not applied
  (409, 429, 503, a connection that never opened) and, for idempotent requests only, 5xx,
  resets and timeouts; a 404 or 412 is an answer. A conditional write with any other
  failure (reset or timeout after sending, a 500) raises :class:`WriteOutcomeUnknownError`
  instead of being resent: a resend would answer 412 for a write that landed (the layer
  above reads the key back, :mod:`s3db_async._cas`). Backoff is exponential with "equal
  jitter" (half fixed, half random). A 409 ``ConditionalRequestConflict`` is retried for
  conditional writes too: the server evaluates ``If-None-Match``/``If-Match`` again on
  the retry, so retrying cannot let two writers win. When the retries run out, a
  conditional write raises ``PreconditionFailed(retriable=True)``.
- **Time limits**: ``connect_timeout`` (default 3 s) bounds opening a TCP connection,
  ``timeout`` (default 30 s) one HTTP request, and ``deadline`` (default 60 s, at least twice
  ``timeout``) one logical
  operation with all its retries and backoff (each page of a listing is one operation).
  :meth:`connect` gives its bucket check at most :data:`CONNECT_DEADLINE` seconds and reports
  a server that does not answer as :class:`EndpointUnreachableError`, as it does a refused
  or reset connection. An operation past its deadline raises
  ``StoreError(status_code=504, retriable=True, metadata["reason"] == "deadline")``.
- **Listing** keeps S3's character-prefix semantics (obstore lists by path segment): it lists
  the prefix's parent "directory" from just below the prefix (``start-after``) and stops at
  the first key past it. Each page of up to 1000 keys is one request.
- **No conditional delete** (obstore cannot send ``If-Match`` on DELETE):
  ``delete(key, if_match=...)`` raises :class:`UnsupportedCapabilityError` and
  ``capabilities().conditional_delete`` is ``False``. Locks are released by a
  compare-and-swap to a tombstone instead.
- **Metadata** travels as ``x-amz-meta-*`` (obstore "attributes"): keys lowercased, values
  made header-safe with :func:`encode_metadata_value` (RFC 2047 for anything non-ASCII).
- **Shutdown**: :meth:`close` waits for (or cancels) requests still in flight and then lets
  obstore's worker threads hand their last results to Python, so none of them touches the
  interpreter while it finalizes (that aborted the process once).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import obstore
from obstore import exceptions as obx
from obstore.store import S3Store as _ObstoreS3

from ..errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigError,
    EndpointUnreachableError,
    MetadataLimitError,
    MissingDependencyError,
    NotFoundError,
    PreconditionFailed,
    S3dbError,
    StoreError,
    UnsupportedCapabilityError,
    WriteOutcomeUnknownError,
)
from ._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    MAX_PARTS,
    METADATA_LIMIT,
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
    aiter_chunks,
    check_metadata_limit,
    check_part_size,
    decode_metadata_value,
    encode_metadata_value,
    flatten_pages,
    normalize_metadata,
    read_head,
    too_many_parts,
    validate_key,
)
from ._url import ConnectionConfig, parse_connection_string

if TYPE_CHECKING:
    from obstore import GetOptions, ObjectMeta
    from obstore.store import ClientConfig, RetryConfig

__all__ = ["S3Store"]

T = TypeVar("T")

DEFAULT_PARALLELISM = 100
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_DEADLINE = 60.0
CONNECT_DEADLINE = 10.0
DEFAULT_MAX_RETRIES = 4
BACKOFF_BASE = 0.05
BACKOFF_CAP = 5.0
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CLOSE_TIMEOUT = 5.0
MULTIPART_CONCURRENCY = 4
"""Parts of one :meth:`S3Store.put_stream` in flight at once."""
_DRAIN_SECONDS = 0.005

# Attribute names obstore returns for standard headers (everything else is user metadata).
_STANDARD_ATTRIBUTES = frozenset(
    {
        "Content-Type",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Cache-Control",
        "Storage-Class",
    }
)
_STATUS_RE = re.compile(r"status code: (\d{3})")
_CODE_RE = re.compile(r"<Code>([^<]+)</Code>")
_KIND_RE = re.compile(r"HttpError \{\s*kind: (\w+)")

# Hot keys are validated once (validate_key raises for bad keys, which are not cached).
_validate_key = functools.lru_cache(maxsize=16384)(validate_key)

# (endpoint, bucket, access key) -> probed capabilities, shared by every store of the process.
_CAPABILITIES: dict[tuple[str, str, str], Capabilities] = {}
_used = False


def _drain_at_exit() -> None:
    """Let obstore's threads deliver their last results before the interpreter finalizes.

    A tokio thread that completes a request hands the result to Python under the GIL; if
    that happens while Python finalizes, CPython ends the thread inside Rust code and the
    process aborts. Sleeping here (before finalization starts) releases the GIL for them.
    """
    if _used:
        time.sleep(0.05)


atexit.register(_drain_at_exit)


# -- errors ------------------------------------------------------------------------------


def _status(exc: BaseException) -> int | None:
    m = _STATUS_RE.search(str(exc))
    return int(m.group(1)) if m else None


def _s3_code(exc: BaseException) -> str | None:
    m = _CODE_RE.search(str(exc))
    return m.group(1) if m else None


def _summary(exc: BaseException) -> str:
    """The first line of an obstore error, without its Debug dump."""
    text = str(exc).split("\n\nDebug source:", 1)[0]
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _http_kind(exc: BaseException) -> str | None:
    """obstore's transport error kind: Connect, Request, Timeout, Interrupted, Decode, Unknown."""
    m = _KIND_RE.search(str(exc))
    return m.group(1) if m else None


def _not_sent(exc: BaseException, status: int | None) -> bool:
    """True when the request provably was not applied (so resending it is always safe).

    An answer that refuses the request (409 conflict, 429, 503 "slow down", S3's
    ``SlowDown`` in a 200) or a connection that never opened. Everything else that is not
    a plain answer (a reset, a timeout, an interrupted reply, a 500) may have been applied.
    """
    if status is not None:
        return status in (409, 429, 503)
    kind = _http_kind(exc)
    if kind == "Connect" or (kind == "Timeout" and "ConnectError" in str(exc)):
        return True
    return "SlowDown" in _summary(exc)


def _retriable(exc: BaseException, status: int | None, idempotent: bool) -> bool:
    """Resend only what cannot apply twice: anything idempotent, else what was not sent.

    A conditional write whose outcome is ambiguous is never resent here: the retry would
    answer 412 for a write that did land. :meth:`S3Store._call` raises
    :class:`WriteOutcomeUnknownError` for it and :mod:`s3db_async._cas` resolves it.
    """
    if _not_sent(exc, status):
        return True
    if not idempotent:
        return False
    if status is not None:
        return status >= 500
    if _http_kind(exc) in ("Request", "Timeout", "Interrupted"):
        return True
    return "InternalError" in _summary(exc)  # S3's "200 with an error"


def _ambiguous(exc: BaseException, status: int | None) -> bool:
    """True when a failed write may have been applied (no definite answer came back)."""
    if _not_sent(exc, status):
        return False
    if status is not None:
        return status >= 500
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    kind = _http_kind(exc)
    return kind is not None or "InternalError" in _summary(exc)


def _number(options: Mapping[str, object], name: str, default: float) -> float:
    """A numeric query option (the URL parser has checked its type and range)."""
    value = options.get(name)
    return float(value) if isinstance(value, int | float) else default


def _backoff(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    d: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
    return d / 2 + random.uniform(0, d / 2)


# -- the store ---------------------------------------------------------------------------


class S3Store(ObjectStore):
    """An S3 bucket (AWS, MinIO, SeaweedFS, R2, moto ...) behind the ObjectStore contract.

    :param config: an ``s3://`` or ``http(s)://`` connection string or parsed config.
    :param parallelism: connection pool size (query option ``parallelism``, default 100).
    :param timeout: seconds for a whole request (query ``timeout``, default 30).
    :param deadline: seconds for one operation with its retries (query ``deadline``,
        default 60, or twice ``timeout`` when that is longer).
    :param max_retries: retries of a retriable failure (query ``max_retries``, default 4).
    :param enforce_limits: reject user metadata over 2 KB before sending it.
    :raises ConfigError: the connection string is not an S3 one.
    :raises MissingDependencyError: no keys in an ``s3://`` URL and boto3 is not installed.
    """

    def __init__(
        self,
        config: ConnectionConfig | str,
        *,
        parallelism: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
        enforce_limits: bool = True,
    ) -> None:
        super().__init__()
        cfg = config if isinstance(config, ConnectionConfig) else parse_connection_string(config)
        if cfg.scheme not in ("s3", "http", "https"):
            raise ConfigError(
                f"S3Store needs an s3:// or http(s):// connection string, not {cfg.masked!r}",
                suggestion="use open_store(url), which picks the store for the scheme",
                metadata={"scheme": cfg.scheme},
            )
        opts = cfg.options
        self.config = cfg
        self.url = cfg.masked
        self.bucket = cfg.bucket
        self.endpoint = cfg.endpoint
        self.prefix = f"{cfg.prefix}/" if cfg.prefix else ""
        self.enforce_limits = enforce_limits
        self.parallelism = int(parallelism or _number(opts, "parallelism", DEFAULT_PARALLELISM))
        self.timeout = float(timeout or _number(opts, "timeout", DEFAULT_TIMEOUT))
        self.connect_timeout = _number(opts, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        self.deadline = float(
            deadline or _number(opts, "deadline", max(DEFAULT_DEADLINE, 2 * self.timeout))
        )
        self.max_retries = int(
            max_retries
            if max_retries is not None
            else _number(opts, "max_retries", DEFAULT_MAX_RETRIES)
        )
        self.region = cfg.region or ("us-east-1" if cfg.endpoint else None)
        self._client: _ObstoreS3 | None = None
        self._mp_client: _ObstoreS3 | None = None
        # obstore's awaitables (asyncio futures at runtime) while they run, for close()
        self._inflight: set[Awaitable[Any]] = set()
        self._connected = False

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "endpoint": self.endpoint or "aws",
            "bucket": self.bucket,
            "parallelism": self.parallelism,
        }

    # -- client ------------------------------------------------------------------------
    def _build_client(self, retry: RetryConfig | None = None) -> _ObstoreS3:
        global _used
        cfg = self.config
        kwargs: dict[str, Any] = {}
        if cfg.access_key and cfg.secret_key:
            kwargs["access_key_id"] = cfg.access_key
            kwargs["secret_access_key"] = cfg.secret_key
            token = cfg.options.get("session_token")
            if token:
                kwargs["session_token"] = str(token)
        else:
            kwargs["credential_provider"] = self._boto3_provider()
        if self.region:
            kwargs["region"] = self.region
        virtual = cfg.options.get("virtual_hosted")
        if cfg.endpoint:
            kwargs["endpoint"] = cfg.endpoint
            kwargs["virtual_hosted_style_request"] = bool(virtual)
        else:
            kwargs["virtual_hosted_style_request"] = (
                bool(virtual) if virtual is not None else "." not in cfg.bucket
            )
        client_options: ClientConfig = {
            "allow_http": bool(cfg.endpoint and cfg.endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=self.connect_timeout),
            "timeout": timedelta(seconds=self.timeout),
            "pool_max_idle_per_host": str(self.parallelism),
            "default_content_type": DEFAULT_CONTENT_TYPE,
        }
        # Retries happen in _call so each request on the wire is counted.
        retry_config: RetryConfig = retry or {"max_retries": 0}
        try:
            client = _ObstoreS3(
                cfg.bucket, client_options=client_options, retry_config=retry_config, **kwargs
            )
        except (obx.BaseError, ValueError) as exc:
            raise ConfigError(
                f"cannot configure S3 client for {self.url}: {_summary(exc)}",
                suggestion="check the connection string's endpoint, region and options",
            ) from None
        _used = True
        return client

    def _boto3_provider(self) -> Any:
        try:
            from obstore.auth.boto3 import Boto3CredentialProvider
        except ImportError:
            raise MissingDependencyError(
                f"{self.url} has no access key, and the AWS credential chain needs boto3",
                suggestion="pip install 's3db-async[aws]', or put KEY:SECRET@ in the URL",
                metadata={"packages": ["boto3"], "extra": "aws"},
            ) from None
        try:
            provider = Boto3CredentialProvider()
        except ValueError:
            raise AuthenticationError(
                f"no AWS credentials found for {self.url}",
                suggestion="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an AWS profile or an "
                "IAM role, or put KEY:SECRET@ in the connection string",
            ) from None
        if self.region is None:
            self.region = provider.config.get("region")
        return provider

    @property
    def client(self) -> _ObstoreS3:
        """The obstore client (built on first use)."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _full(self, key: str) -> str:
        return self.prefix + _validate_key(key)

    # -- request machinery ---------------------------------------------------------------
    async def _tracked(self, fut: Awaitable[T]) -> T:
        """Await one obstore future, known to :meth:`close` while it runs."""
        self._inflight.add(fut)
        try:
            return await fut
        finally:
            self._inflight.discard(fut)

    async def _call(
        self,
        op: str,
        key: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        retries: int | None = None,
        condition: str | None = None,
        deadline: float | None = None,
    ) -> T:
        """:meth:`_send` within the operation's deadline (default :attr:`deadline`)."""
        seconds = self.deadline if deadline is None else deadline
        try:
            async with asyncio.timeout(seconds):
                return await self._send(
                    op, key, attempt, idempotent=idempotent, retries=retries, condition=condition
                )
        except TimeoutError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # a cancel that landed as the deadline expired was absorbed into the
                # timeout (asyncio.timeout on 3.11): the cancel stands, not the deadline
                raise asyncio.CancelledError from None
            # a conditional write past its deadline may have landed: the caller's read-back
            # (s3db_async._cas) resolves it, so it gets the "outcome unknown" error
            error = StoreError if idempotent else WriteOutcomeUnknownError
            raise error(
                f"{op} {key!r} got no answer within its {seconds:g}s deadline"
                + ("" if op in ("get", "head", "list") else " (it may have been applied)"),
                suggestion="check the server, or raise ?deadline= in the connection string",
                metadata={
                    "key": key,
                    "op": op,
                    "bucket": self.bucket,
                    "endpoint": self.endpoint or "aws",
                    "reason": "deadline",
                    "deadline": seconds,
                },
                retriable=True,
                status_code=504,
            ) from None

    async def _send(
        self,
        op: str,
        key: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        retries: int | None = None,
        condition: str | None = None,
    ) -> T:
        """Run one logical request: count and send, retry what is retriable, map errors.

        ``attempt`` returns an obstore future, or a coroutine that tracks the futures it
        awaits in ``_inflight`` itself (:meth:`close` only looks at futures).
        """
        limit = self.max_retries if retries is None else retries
        tries = 0
        inflight = self._inflight
        while True:
            self.stats[op] += 1
            try:
                fut = attempt()
                inflight.add(fut)
                try:
                    return await fut
                finally:
                    inflight.discard(fut)
            except (obx.BaseError, OSError, ValueError) as exc:
                status = _status(exc)
                if tries < limit and _retriable(exc, status, idempotent):
                    tries += 1
                    await asyncio.sleep(_backoff(tries))
                    continue
                if condition is not None and _ambiguous(exc, status):
                    raise WriteOutcomeUnknownError(
                        f"{op} {key!r} ({condition}): no answer, the write may have been "
                        f"applied: {_summary(exc)}",
                        suggestion="read the key back to see whether it landed",
                        metadata={"key": key, "op": op, "condition": condition},
                    ) from None
                raise self._map_error(exc, op, key, status, condition, tries) from None

    def _map_error(
        self,
        exc: BaseException,
        op: str,
        key: str,
        status: int | None,
        condition: str | None,
        retries: int,
    ) -> S3dbError:
        code = _s3_code(exc)
        meta: dict[str, Any] = {
            "key": key,
            "op": op,
            "bucket": self.bucket,
            "endpoint": self.endpoint or "aws",
        }
        if status is not None:
            meta["status"] = status
        if code:
            meta["code"] = code
        if retries:
            meta["retries"] = retries
        detail = _summary(exc)
        if code == "NoSuchBucket":
            return self._bucket_missing()
        if isinstance(exc, (obx.PreconditionError, obx.AlreadyExistsError, obx.NotModifiedError)):
            if status == 409:
                return (
                    PreconditionFailed(
                        f"{key!r}: conditional write kept conflicting (409) after {retries} "
                        "retries",
                        suggestion="re-read and retry; another writer holds this key",
                        metadata={**meta, "condition": condition},
                        retriable=True,
                        status_code=409,
                    )
                    if condition
                    else StoreError(
                        f"{op} {key!r} kept conflicting (409): {detail}",
                        metadata=meta,
                        retriable=True,
                        status_code=409,
                    )
                )
            return PreconditionFailed(
                f"{key!r} already exists"
                if condition == "If-None-Match"
                else f"{key!r} changed or does not exist ({condition or 'precondition'})",
                metadata={**meta, "condition": condition},
            )
        if isinstance(exc, FileNotFoundError) or status == 404:
            if condition == "If-Match":
                return PreconditionFailed(
                    f"{key!r} does not exist (If-Match)", metadata={**meta, "condition": condition}
                )
            return NotFoundError(f"no object at {key!r}", metadata=meta)
        if isinstance(exc, (obx.PermissionDeniedError, obx.UnauthenticatedError)) or status in (
            401,
            403,
        ):
            return self._auth_error(code, detail, meta)
        if status == 400 and code == "MetadataTooLarge":
            return MetadataLimitError(
                f"{self.bucket} refused the metadata of {key!r} as too large",
                suggestion="keep enforce_limits=True or store large fields in the body",
                metadata=meta,
            )
        kind = _http_kind(exc) if status is None else None
        if kind == "Connect" or (kind == "Timeout" and "ConnectError" in str(exc)):
            return self._unreachable(detail, meta)
        if kind == "Timeout":
            return StoreError(
                f"{op} {key!r} timed out after {self.timeout:g}s: {detail}",
                suggestion="raise ?timeout= in the connection string or check the server load",
                metadata=meta,
                retriable=True,
                status_code=504,
            )
        if kind in ("Request", "Interrupted"):  # refused, reset or closed mid-request
            return EndpointUnreachableError(
                f"{op} {key!r}: the connection to {self.endpoint or 'AWS S3'} failed: {detail}",
                suggestion="is the server running and reachable? the request may have been "
                "applied if the connection broke after it was sent",
                metadata={**meta, "kind": kind},
            )
        if "redirect" in detail.lower():
            return StoreError(
                f"{op} {key!r}: the bucket answered with a redirect: {detail}",
                suggestion="the bucket lives in another region: add ?region=... to the URL",
                metadata=meta,
            )
        return StoreError(
            f"{op} {key!r} failed: {detail}",
            metadata=meta,
            retriable=status is not None and (status >= 500 or status == 429),
            status_code=status or 502,
        )

    def _bucket_missing(self) -> BucketNotFoundError:
        where = self.endpoint or "AWS"
        return BucketNotFoundError(
            f"bucket {self.bucket!r} does not exist at {where}",
            suggestion=f"create it with `s3db --url {self.url} init` (with the real "
            "credentials) or your provider's console, or fix the bucket name",
            metadata={"bucket": self.bucket, "endpoint": where},
        )

    def _auth_error(self, code: str | None, detail: str, meta: dict[str, Any]) -> StoreError:
        where = self.endpoint or "AWS"
        hint = {
            "SignatureDoesNotMatch": "the secret key is wrong",
            "InvalidAccessKeyId": "the access key is unknown",
            "AccessDenied": "these credentials may not access this bucket or prefix",
        }.get(code or "", "the credentials were refused")
        return AuthenticationError(
            f"{where} refused access to bucket {self.bucket!r}: {hint} ({code or detail})",
            suggestion="check KEY:SECRET in the connection string (percent-encode '/', ':' "
            "and '@'), the region and the bucket policy",
            metadata=meta,
        )

    def _unreachable(self, detail: str, meta: dict[str, Any]) -> EndpointUnreachableError:
        where = self.endpoint or "AWS S3"
        return EndpointUnreachableError(
            f"cannot reach {where}: {detail}",
            suggestion="is the server running and the host/port right? "
            f"(connect timeout {self.connect_timeout:g}s, option ?connect_timeout=)",
            metadata=meta,
        )

    # -- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Check the bucket with one GET and probe conditional writes (once per endpoint).

        :raises BucketNotFoundError: the bucket does not exist.
        :raises AuthenticationError: the credentials were refused.
        :raises EndpointUnreachableError: the endpoint did not answer.
        """
        if self._connected:
            return
        client = self.client
        probe = self.prefix + f"_s3db/connect-check-{uuid.uuid4().hex[:8]}"
        try:
            await self._call(
                "get",
                probe,
                lambda: obstore.get_async(client, probe),
                retries=1,
                deadline=min(self.deadline, CONNECT_DEADLINE),
            )
        except NotFoundError as exc:
            if isinstance(exc, BucketNotFoundError):
                raise
        except StoreError as exc:
            if exc.status_code != 504:  # a request timeout or the deadline: no answer
                raise
            seconds = exc.metadata.get("deadline", self.timeout)
            raise self._unreachable(
                f"it did not answer within {seconds:g}s", {**exc.metadata, "deadline": seconds}
            ) from None
        await self.capabilities()
        self._connected = True

    async def close(self) -> None:
        """Finish: wait for requests in flight (cancel them after a while), drop the client."""
        self._connected = False
        loop = asyncio.get_running_loop()
        pending = [
            f
            for f in self._inflight
            if isinstance(f, asyncio.Future) and not f.done() and f.get_loop() is loop
        ]
        if pending:
            _, still = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            for f in still:
                f.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        self._inflight.clear()
        self._mp_client = None
        if self._client is not None:
            self._client = None
            # Give obstore's threads a moment (GIL released) to finish handing results over.
            await asyncio.sleep(_DRAIN_SECONDS)

    # -- the contract --------------------------------------------------------------------
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
        attributes = self._attributes(key, metadata, content_type)
        mode: Any
        condition: str | None
        if if_none_match and if_match is not None:
            raise PreconditionFailed(
                f"{key!r}: If-None-Match and If-Match cannot both hold",
                metadata={"key": key, "condition": "If-None-Match+If-Match"},
            )
        if if_none_match:
            mode, condition = "create", "If-None-Match"
        elif if_match is not None:
            mode, condition = {"e_tag": if_match}, "If-Match"
        else:
            mode, condition = "overwrite", None
        client = self.client
        result = await self._call(
            "put",
            key,
            lambda: obstore.put_async(
                client, full, body, attributes=attributes, mode=mode, use_multipart=False
            ),
            idempotent=condition is None,
            condition=condition,
        )
        etag = result.get("e_tag")
        if etag is None:  # a server that sends no ETag: ask for it
            return (await self.head(key)).etag
        return etag

    def _attributes(
        self, key: str, metadata: Mapping[str, str] | None, content_type: str | None
    ) -> dict[str, str]:
        """obstore attributes of a write: header-safe metadata and the content type."""
        md = normalize_metadata(metadata)
        attributes: dict[str, str] = {k: encode_metadata_value(v) for k, v in md.items()}
        # keys and encoded values are ASCII: len() is the byte count S3 limits
        if (
            self.enforce_limits
            and sum(map(len, attributes)) + sum(map(len, attributes.values())) > METADATA_LIMIT
        ):
            check_metadata_limit(key, md)
        attributes["Content-Type"] = content_type or DEFAULT_CONTENT_TYPE
        return attributes

    async def put_stream(
        self,
        key: str,
        chunks: ByteChunks,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        """See :meth:`ObjectStore.put_stream`. A large body goes up as an S3 multipart
        upload through obstore, at most :data:`MULTIPART_CONCURRENCY` parts in flight (so
        about ``part_size`` x that much memory outside Python, one part inside). obstore
        retries a failed part itself (up to ``max_retries``, within ``deadline``): those
        retries are the one place where :attr:`stats` does not see every request."""
        check_part_size(part_size)
        full = self._full(key)
        attributes = self._attributes(key, metadata, content_type)
        source = aiter_chunks(chunks)
        head, small = await read_head(source, part_size)
        if small:
            return await self.put(key, bytes(head), metadata, content_type=content_type)
        stats = self.stats
        fed = counted = 0
        raised: list[BaseException] = []  # what the source (or the part limit) raised

        async def feed() -> AsyncIterator[bytes | bytearray]:
            nonlocal fed, counted, head
            piece: bytes | bytearray | None = head
            head = bytearray()  # the first piece is referenced once, by ``piece``
            try:
                while piece is not None:
                    fed += len(piece)
                    parts = -(-fed // part_size)  # parts begun: a part goes out once filled
                    if parts > MAX_PARTS:
                        raise too_many_parts(key, part_size)
                    stats["put_part"] += parts - counted
                    counted = parts
                    yield piece
                    piece = None  # let it go before waiting for the next
                    piece = await anext(source, None)
            except BaseException as exc:
                raised.append(exc)
                raise

        stats["multipart_create"] += 1
        client = self._multipart_client()
        try:
            result = await self._tracked(
                obstore.put_async(
                    client,
                    full,
                    feed(),
                    attributes=attributes,
                    use_multipart=True,
                    chunk_size=part_size,
                    max_concurrency=MULTIPART_CONCURRENCY,
                )
            )
        except (obx.BaseError, OSError, ValueError) as exc:
            stats["multipart_abort"] += 1
            if exc in raised:  # the caller's own error (or ours), not the server's
                raise
            raise self._map_error(exc, "put_stream", key, _status(exc), None, 0) from None
        except BaseException:
            stats["multipart_abort"] += 1
            raise
        stats["multipart_complete"] += 1
        etag = result.get("e_tag")
        if etag is None:
            return (await self.head(key)).etag
        return etag

    def _multipart_client(self) -> _ObstoreS3:
        """A second obstore client for multipart uploads, which retries failed parts itself
        (our retry loop cannot resend one part of a streamed body)."""
        if self._mp_client is None:
            retry: RetryConfig = {
                "max_retries": self.max_retries,
                "backoff": {
                    "init_backoff": timedelta(seconds=BACKOFF_BASE),
                    "max_backoff": timedelta(seconds=BACKOFF_CAP),
                    "base": 2,
                },
                "retry_timeout": timedelta(seconds=self.deadline),
            }
            self._mp_client = self._build_client(retry)
        return self._mp_client

    async def get_stream(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        full = self._full(key)
        client = self.client
        res = await self._call("get", key, lambda: obstore.get_async(client, full))
        meta = res.meta
        md, ctype = self._split_attributes(res.attributes)
        info = ObjectInfo(
            key, md, meta.get("e_tag") or "", meta["last_modified"], meta["size"], ctype
        )
        return ObjectStream(info, self._chunks(key, full, res, info, max(1, chunk_size)))

    async def _chunks(
        self, key: str, full: str, res: Any, info: ObjectInfo, chunk_size: int
    ) -> AsyncIterator[bytes]:
        """The body of a GET in chunks; a connection that breaks mid-body is resumed with a
        ranged GET bound to the etag (412 -> PreconditionFailed if the object changed)."""
        client = self.client
        stream = res.stream(min_chunk_size=chunk_size)
        del res
        offset = tries = 0
        while offset < info.size:
            try:
                chunk = await self._tracked(stream.__anext__())
            except StopAsyncIteration:
                break
            except (obx.BaseError, OSError, ValueError) as exc:
                status = _status(exc)
                if tries >= self.max_retries or not _retriable(exc, status, True):
                    raise self._map_error(exc, "get", key, status, None, tries) from None
                tries += 1
                await asyncio.sleep(_backoff(tries))
                options: GetOptions = {"range": {"offset": offset}}
                if info.etag:
                    options["if_match"] = info.etag
                again = await self._call(
                    "get", key, functools.partial(obstore.get_async, client, full, options=options)
                )
                stream = again.stream(min_chunk_size=chunk_size)
                continue
            offset += len(chunk)
            yield bytes(chunk)
        if offset != info.size:
            raise StoreError(
                f"get {key!r}: the body ended after {offset} of {info.size} bytes",
                suggestion="retry the read",
                metadata={"key": key, "op": "get", "reason": "short body"},
                retriable=True,
            )

    def _split_attributes(self, attributes: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
        md = {
            k.lower(): decode_metadata_value(v)
            for k, v in attributes.items()
            if k not in _STANDARD_ATTRIBUTES
        }
        return md, attributes.get("Content-Type")

    async def get(self, key: str) -> StoredObject:
        full = self._full(key)
        client = self.client

        inflight = self._inflight

        async def attempt() -> tuple[Any, bytes]:  # two futures: response, then body
            fut = obstore.get_async(client, full)
            inflight.add(fut)
            try:
                res = await fut
            finally:
                inflight.discard(fut)
            body = res.bytes_async()
            inflight.add(body)
            try:
                return res, bytes(await body)
            finally:
                inflight.discard(body)

        res, body = await self._call("get", key, attempt)
        meta = res.meta
        md, ctype = self._split_attributes(res.attributes)
        return StoredObject(
            key,
            body,
            md,
            meta.get("e_tag") or "",
            meta["last_modified"],
            len(body),
            ctype,
        )

    async def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        client = self.client
        res = await self._call(
            "head",
            key,
            lambda: obstore.get_async(client, full, options={"head": True}),
        )
        meta = res.meta
        md, ctype = self._split_attributes(res.attributes)
        return ObjectInfo(
            key, md, meta.get("e_tag") or "", meta["last_modified"], meta["size"], ctype
        )

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        full = self._full(key)
        if if_match is not None:
            raise UnsupportedCapabilityError(
                f"{self.url}: conditional delete (If-Match on DELETE) is not available",
                suggestion="release by compare-and-swap to a tombstone (put(..., if_match=etag)) "
                "and delete the tombstone afterwards",
                metadata={"key": key, "capability": "conditional_delete"},
            )
        client = self.client
        await self._call("delete", key, lambda: obstore.delete_async(client, full))

    async def delete_many(self, keys: Iterable[str]) -> int:
        fulls = [self._full(k) for k in keys]
        unique = list(dict.fromkeys(fulls))
        client = self.client
        for i in range(0, len(unique), PAGE_SIZE):
            batch = unique[i : i + PAGE_SIZE]
            await self._call(
                "delete_many",
                batch[0][len(self.prefix) :],
                functools.partial(obstore.delete_async, client, batch),
            )
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

    def list_pages(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListPage]:
        if delimiter == "/":
            return self._list_delimited(prefix, start_after)
        return self._list_flat(prefix, start_after, delimiter)

    def _bounds(self, prefix: str, start_after: str | None) -> tuple[str, str, str | None]:
        full = self.prefix + prefix
        directory, _, rest = full.rpartition("/")
        offset = _just_below(full) if rest else None
        if start_after is not None:
            start = _just_below(self.prefix + start_after)
            if offset is None or start > offset:
                offset = start
        return full, directory, offset

    async def _list_flat(
        self, prefix: str, start_after: str | None, delimiter: str | None
    ) -> AsyncIterator[ListPage]:
        full, directory, offset = self._bounds(prefix, start_after)
        after = self.prefix + start_after if start_after is not None else None
        strip = len(self.prefix)
        last_common: str | None = None
        pages = _ListPages(self, directory, offset)
        while (metas := await pages.next()) is not None:
            page: ListPage = []
            for meta in metas:
                path = meta["path"]
                if after is not None and path <= after:  # at or before the cursor
                    continue
                if not path.startswith(full):
                    if path > full:  # past the prefix: the listing is complete
                        if page:
                            yield page
                        return
                    continue
                if delimiter:
                    cut = path.find(delimiter, len(full))
                    if cut >= 0:
                        common = path[: cut + len(delimiter)]
                        if common != last_common:
                            last_common = common
                            page.append(CommonPrefix(common[strip:]))
                        continue
                page.append(_entry(meta, strip))
            if page:
                yield page

    async def _list_delimited(
        self, prefix: str, start_after: str | None
    ) -> AsyncIterator[ListPage]:
        full, directory, _ = self._bounds(prefix, None)
        after = self.prefix + start_after if start_after is not None else None
        strip = len(self.prefix)
        client = self.client
        result = await self._call(
            "list",
            directory,
            lambda: obstore.list_with_delimiter_async(client, directory or None),
        )
        objects = result["objects"]
        prefixes = result["common_prefixes"]
        # obstore pages internally; count the pages S3 needed (1000 entries each).
        pages = max(1, math.ceil((len(objects) + len(prefixes)) / PAGE_SIZE))
        self.stats["list"] += pages - 1
        entries: list[tuple[str, ListEntry | CommonPrefix]] = []
        for meta in objects:
            path = meta["path"]
            if path.startswith(full) and (after is None or path > after):
                entries.append((path, _entry(meta, strip)))
        for p in prefixes:
            common = p + "/"
            if common.startswith(full) and (
                after is None or common > after or after.startswith(common)
            ):
                entries.append((common, CommonPrefix(common[strip:])))
        entries.sort(key=lambda e: e[0])
        for i in range(0, len(entries), PAGE_SIZE):
            yield [entry for _, entry in entries[i : i + PAGE_SIZE]]

    async def copy(self, src: str, dst: str) -> str:
        full_src = self._full(src)
        full_dst = self._full(dst)
        client = self.client
        await self._call(
            "copy",
            src,
            lambda: obstore.copy_async(client, full_src, full_dst, overwrite=True),
        )
        # CopyObject's response carries the new ETag, but obstore drops it: one HEAD.
        return (await self.head(dst)).etag

    # -- capabilities --------------------------------------------------------------------
    def _capability_key(self) -> tuple[str, str, str]:
        return (self.endpoint or f"aws:{self.region}", self.bucket, self.config.access_key or "")

    async def _probe_capabilities(self) -> Capabilities:
        """Create twice with If-None-Match, swap with a stale and a missing If-Match.

        Cached per endpoint, bucket and access key for the whole process.
        """
        cache_key = self._capability_key()
        cached = _CAPABILITIES.get(cache_key)
        if cached is not None:
            return cached
        base = f"_s3db/probe-{uuid.uuid4().hex}"
        key, missing = f"{base}/a", f"{base}/missing"
        notes: list[str] = []
        create_ok = update_ok = False
        try:
            e1 = await self.put(key, b"1", if_none_match=True)
            try:
                await self.put(key, b"2", if_none_match=True)
                notes.append("If-None-Match on an existing key succeeded")
            except PreconditionFailed:
                create_ok = True
            e2 = await self.put(key, b"3", if_match=e1)
            try:
                await self.put(key, b"4", if_match=e1)
                notes.append("a stale If-Match succeeded")
            except PreconditionFailed:
                update_ok = True
            try:
                await self.put(missing, b"5", if_match=e2)
                notes.append("If-Match on a missing key succeeded")
                update_ok = False
            except PreconditionFailed:
                pass
        except AuthenticationError as exc:
            notes.append(f"probe write refused ({exc.message})")
        finally:
            try:
                await self.delete_many([key, missing])
            except S3dbError:
                pass
        caps = Capabilities(
            conditional_create=create_ok,
            conditional_update=update_ok,
            conditional_delete=False,
            detail="; ".join(notes)
            or "If-None-Match and If-Match honoured; no conditional delete through obstore",
        )
        _CAPABILITIES[cache_key] = caps
        return caps


class _ListPages:
    """The LIST pages under ``directory/`` after ``offset``, one request each.

    Pages follow the server's continuation tokens (ListObjectsV2), so a listing of exactly
    1,000 keys is one request: the stream knows the listing is complete and sends nothing
    more. (A fresh LIST with start-after per page would cost one more, and SeaweedFS
    compares start-after by path segment, so ``start-after=a`` skips ``a/b``; its
    continuation tokens do not have that flaw.) After a retriable failure the stream
    restarts just below the last key seen.
    """

    def __init__(self, store: S3Store, directory: str, offset: str | None) -> None:
        self._store = store
        self._directory = directory
        self._resume = offset
        self._stream: Any = None
        self._fetched = 0

    async def _attempt(self) -> Sequence[ObjectMeta] | None:
        if self._stream is None:
            self._stream = obstore.list(
                self._store.client,
                self._directory or None,
                offset=self._resume,
                chunk_size=PAGE_SIZE,
            )
        try:
            page: Sequence[ObjectMeta] = await self._store._tracked(self._stream.__anext__())
        except StopAsyncIteration:
            return None
        except BaseException:
            self._stream = None  # a retry restarts from self._resume
            raise
        if page:
            self._resume = _just_below(page[-1]["path"])
        return page

    async def next(self) -> Sequence[ObjectMeta] | None:
        """The next page, or ``None`` when the listing is complete."""
        page = await self._store._call("list", self._directory, self._attempt)
        if page is None and self._fetched:
            self._store.stats["list"] -= 1  # the stream ended without sending a request
        self._fetched += 1
        return page


def _entry(meta: ObjectMeta, strip: int) -> ListEntry:
    lm = meta["last_modified"]
    if lm.tzinfo is None:
        lm = lm.replace(tzinfo=UTC)
    return ListEntry(meta["path"][strip:], meta["size"], meta.get("e_tag") or "", lm)


def _just_below(s: str) -> str:
    """A string just below ``s`` (as S3 orders keys), to list from ``s`` with start-after.

    Also used instead of the last key itself to continue a listing (that key comes back
    once and is skipped): SeaweedFS compares start-after by path segment, so
    ``start-after=a`` would skip ``a/b`` when ``a`` is both a key and a "directory".
    """
    last = ord(s[-1])
    prev = last - 1
    if prev < 0x20 or 0xD800 <= prev <= 0xDFFF:
        return s[:-1]
    return s[:-1] + chr(prev) + "\U0010ffff"
