"""PluginStorage: a small key-value store for plugins, with TTL, locks, counters, sequences.

::

    storage = plugin.get_storage()                      # or PluginStorage(db, "my-plugin")
    await storage.set("config", {"mode": "async"})      # plugin=my-plugin/config
    await storage.set(storage.get_plugin_key("users", "cache", "u1"), {...}, ttl=300)
    n = await storage.increment("api-calls")            # exact across processes
    async with storage.lock("rebuild", ttl=30, timeout=5):
        ...

Keys (DESIGN §2): ``plugin={slug}/{path}`` (with a namespace ``plugin={slug}/{namespace}/{path}``),
resource-scoped ``resource={name}/plugin={slug}/[{namespace}/]{path}``, locks under
``.../locks/{name}``, sequences under ``.../sequence={field}/value``. Namespaces in use are
registered as ``plugin={slug}/namespace={namespace}`` so a storage without namespace never
lists or purges another namespace's data.

Object format: the value is msgspec JSON, kept whole in one metadata value (``d``) when it fits
S3's 2 KB with ``body-overflow``/``enforce-limits``, else in the body. Keeping it whole means
the key case of the data never meets S3's lowercasing of metadata names. ``x`` holds the expiry
(epoch milliseconds), ``t`` marks a tombstone (a released lock where deletes cannot be
conditional). Every write puts a fresh random revision in the body, so etags (an MD5 of the
body on S3) differ for every write and compare-and-swap on the etag is sound.

Exactness: locks, counters and sequences use only conditional writes (create with
``If-None-Match``, swap with ``If-Match`` on the etag read), never a blind delete. A store that
fails the conditional-write probe refuses them with :class:`UnsupportedCapabilityError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from .. import _clock
from .._cas import RETRY, Backoff, _Retry, cas_loop, conditional_put
from .._concurrency import bounded_gather
from ..errors import (
    ConfigError,
    MetadataLimitError,
    NotFoundError,
    PreconditionFailed,
    UnsupportedCapabilityError,
    ValidationError,
)
from ..stores import METADATA_LIMIT, CommonPrefix, ListEntry, ObjectInfo, ObjectStore, StoredObject
from ..stores import metadata_size as _metadata_size
from .entries import CONTENT_TYPE, Entry, check_ttl
from .locks import Lock, Locks
from .locks import default_worker_id as default_worker_id
from .namespace import DEFAULT_NAMESPACE, validate_namespace

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

T = TypeVar("T")

__all__ = ["STORAGE_BEHAVIORS", "Lock", "PluginStorage", "StorageResult"]

STORAGE_BEHAVIORS = ("body-overflow", "body-only", "enforce-limits")
"""Where :meth:`PluginStorage.set` puts the value (default first)."""

_MD_DATA = "d"
_MD_BODY = "b"
_MD_EXPIRES = "x"
_MD_TOMBSTONE = "t"
_OPS_KEPT = 16
_CACHE_SIZE = 1024
_SLUG_MAX = 100

_log = logging.getLogger("s3db_async.plugin_storage")
_Keys = list[str]
_Results = list["StorageResult"]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class _HasStore(Protocol):
    @property
    def store(self) -> ObjectStore: ...


@dataclass(frozen=True, slots=True)
class StorageResult:
    """One item of :meth:`PluginStorage.batch_put` / :meth:`PluginStorage.batch_get`.

    ``ok`` is false only when ``error`` is set; a missing or expired key reads as
    ``ok=True, data=None``.
    """

    key: str
    ok: bool
    data: Any = None
    error: Exception | None = None


def _check_slug(slug: str) -> str:
    if (
        not isinstance(slug, str)
        or not slug
        or len(slug) > _SLUG_MAX
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in slug)
    ):
        raise ConfigError(
            f"invalid plugin slug {slug!r}",
            suggestion="use up to 100 ASCII letters, digits, '-' or '_' (e.g. 'my-plugin')",
            metadata={"slug": slug},
        )
    return slug


def _part(value: object) -> str:
    text = str(value)
    if not text:
        raise ConfigError("key parts must not be empty", metadata={"part": value})
    return text


class PluginStorage:
    """Namespaced key-value storage of one plugin on the database's object store.

    :param target: the :class:`~s3db_async.Database` (its store is looked up on each call,
        so the storage can be built before ``connect()``) or an :class:`ObjectStore`.
    :param slug: the plugin's storage name (``plugin={slug}/...``).
    :param namespace: isolates this instance's data (``plugin={slug}/{namespace}/...``);
        ``None`` or ``"default"`` means no namespace.
    :param concurrency: requests in flight for batch operations and sweeps.
    """

    max_attempts: int = 100
    """Compare-and-swap attempts before :class:`ConflictError` (counters, sequences)."""
    retry_base: float = 0.01
    retry_cap: float = 0.5

    def __init__(
        self,
        target: ObjectStore | _HasStore,
        slug: str,
        *,
        namespace: str | None = None,
        concurrency: int = 16,
    ) -> None:
        self._target = target
        self.slug = _check_slug(slug)
        if namespace == DEFAULT_NAMESPACE:
            namespace = None
        self.namespace = validate_namespace(namespace) if namespace is not None else None
        self.concurrency = max(1, int(concurrency))
        self._plugin_prefix = f"plugin={self.slug}/"
        self.root = self._plugin_prefix + (f"{self.namespace}/" if self.namespace else "")
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._locks = Locks(self)
        self._registered = False
        self._register_lock: asyncio.Lock | None = None

    # -- plumbing ----------------------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        """The object store the data lives on."""
        if isinstance(self._target, ObjectStore):
            return self._target
        return self._target.store

    def __repr__(self) -> str:
        ns = f" namespace={self.namespace!r}" if self.namespace else ""
        return f"<PluginStorage {self.slug!r}{ns}>"

    def _resource_root(self, resource: str) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"resource={_part(resource)}/plugin={self.slug}/{ns}"

    def _resolve(self, key: str) -> str:
        """A key relative to the plugin root, or a full key inside this plugin's area."""
        if not isinstance(key, str) or not key:
            raise ConfigError("storage key must be a non-empty string", metadata={"key": key})
        if key.startswith("plugin="):
            if not key.startswith(self._plugin_prefix):
                raise self._outside(key)
            return key
        if key.startswith("resource="):
            parts = key.split("/", 2)
            if len(parts) < 3 or parts[1] != f"plugin={self.slug}":
                raise self._outside(key)
            return key
        return self.root + key

    def _outside(self, key: str) -> ConfigError:
        return ConfigError(
            f"key {key!r} is outside the storage of plugin {self.slug!r}",
            suggestion="build keys with storage.get_plugin_key(resource, *parts)",
            metadata={"key": key, "slug": self.slug},
        )

    async def _require_cas(self, what: str) -> None:
        caps = await self.store.capabilities()
        if not caps.conditional_writes:
            raise UnsupportedCapabilityError(
                f"{what} needs conditional writes, which {self.store.url} does not guarantee"
                + (f" ({caps.detail})" if caps.detail else ""),
                suggestion="use a store that honours If-None-Match and If-Match "
                "(AWS S3, MinIO, SeaweedFS >= 4.48, moto, file://, memory://)",
                metadata={"capability": "conditional_writes", "operation": what},
            )

    async def _conditional_delete(self) -> bool:
        return (await self.store.capabilities()).conditional_delete

    @property
    def _cas_backoff(self) -> Backoff:
        """Counters, sequences, touch: ``max_attempts`` compare-and-swap attempts."""
        return Backoff(
            base=self.retry_base, cap=self.retry_cap, deadline=math.inf, attempts=self.max_attempts
        )

    async def _backoff(self, attempt: int, limit: float | None = None) -> None:
        delay = self._cas_backoff.delay(attempt)
        if limit is not None:
            delay = min(delay, max(0.0, limit))
        await asyncio.sleep(delay)

    def _remember(self, entry: Entry) -> None:
        self._cache[entry.key] = entry
        self._cache.move_to_end(entry.key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    # -- encoding ----------------------------------------------------------------------
    @staticmethod
    def _json(data: Any, key: str) -> bytes:
        try:
            return _encoder.encode(data)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError(
                f"value for {key!r} is not JSON-serializable: {exc}",
                suggestion="store dicts, lists, strings, numbers, booleans or None",
                metadata={"key": key},
            ) from exc

    def _encode(
        self,
        key: str,
        data: Any,
        *,
        expires_at: float | None,
        behavior: str = "body-overflow",
        ops: list[str] | None = None,
        tombstone: bool = False,
    ) -> tuple[bytes, dict[str, str]]:
        if behavior not in STORAGE_BEHAVIORS:
            raise ConfigError(
                f"unknown PluginStorage behavior {behavior!r}",
                suggestion=f"use one of: {', '.join(STORAGE_BEHAVIORS)}",
                metadata={"behavior": behavior, "key": key},
            )
        md: dict[str, str] = {}
        if expires_at is not None:
            md[_MD_EXPIRES] = str(int(expires_at * 1000))
        if tombstone:
            md[_MD_TOMBSTONE] = "1"
        envelope: dict[str, Any] = {"r": secrets.token_hex(8)}
        if ops:
            envelope["o"] = ops
        raw = self._json(data, key)
        if behavior == "body-only" or ops is not None:
            envelope["d"] = msgspec.Raw(raw)
            md[_MD_BODY] = "1"
        else:
            trial = {**md, _MD_DATA: raw.decode("utf-8")}
            size = _metadata_size(trial)
            if size <= METADATA_LIMIT:
                md = trial
            elif behavior == "enforce-limits":
                raise MetadataLimitError(
                    f"value for {key!r} needs {size} bytes of metadata, over S3's "
                    f"{METADATA_LIMIT}-byte limit",
                    suggestion="use behavior='body-overflow' (the default) or 'body-only'",
                    metadata={"key": key, "size": size, "limit": METADATA_LIMIT},
                )
            else:
                envelope["d"] = msgspec.Raw(raw)
                md[_MD_BODY] = "1"
        return _encoder.encode(envelope), md

    @staticmethod
    def _decode(key: str, obj: StoredObject | ObjectInfo) -> Entry:
        md = obj.metadata
        expires = md.get(_MD_EXPIRES)
        try:
            expires_at = int(expires) / 1000 if expires else None
        except ValueError:
            expires_at = None
        data: Any = None
        ops: list[str] = []
        if _MD_DATA in md:
            data = _decoder.decode(md[_MD_DATA])
        if isinstance(obj, StoredObject) and obj.body:
            try:
                envelope = _decoder.decode(obj.body)
            except msgspec.DecodeError:
                envelope = None
            if isinstance(envelope, dict):
                ops = list(envelope.get("o") or ())
                if "d" in envelope:
                    data = envelope["d"]
        return Entry(
            key,
            obj.etag,
            data,
            expires_at,
            md.get(_MD_TOMBSTONE) == "1",
            ops,
            md.get(_MD_BODY) == "1",
        )

    async def _read(self, full: str) -> Entry | None:
        try:
            obj = await self.store.get(full)
        except NotFoundError:
            return None
        return self._decode(full, obj)

    async def _head(self, full: str) -> Entry | None:
        try:
            info = await self.store.head(full)
        except NotFoundError:
            return None
        return self._decode(full, info)

    async def _expire(self, entry: Entry) -> None:
        """Lazy expiry: delete an expired entry, only where deletes can be conditional."""
        self._cache.pop(entry.key, None)
        if not await self._conditional_delete():
            return  # a blind delete could remove a fresh write; cleanup_expired() sweeps
        with contextlib.suppress(PreconditionFailed, NotFoundError):
            await self.store.delete(entry.key, if_match=entry.etag)

    # -- keys --------------------------------------------------------------------------
    def get_plugin_key(self, resource: str | None, *parts: object) -> str:
        """The full key of ``parts``, global (``resource=None``) or scoped to a resource.

        ::

            storage.get_plugin_key(None, "config")
            # plugin=my-plugin/config
            storage.get_plugin_key("users", "cache", "u1")
            # resource=users/plugin=my-plugin/cache/u1
        """
        root = self.root if resource is None else self._resource_root(resource)
        if not parts:
            return root.rstrip("/")
        return root + "/".join(_part(p) for p in parts)

    def get_sequence_key(self, resource: str | None, field: str, suffix: str = "value") -> str:
        """``[resource={r}/]plugin={slug}/[{ns}/]sequence={field}/{suffix}``."""
        return self.get_plugin_key(resource, f"sequence={_part(field)}", suffix)

    def get_lock_key(self, name: str, resource: str | None = None) -> str:
        """``[resource={r}/]plugin={slug}/[{ns}/]locks/{name}``."""
        return self.get_plugin_key(resource, "locks", name)

    def _namespace_key(self, namespace: str, slug: str | None = None) -> str:
        return f"plugin={slug or self.slug}/namespace={namespace}"

    # -- namespaces --------------------------------------------------------------------
    async def list_namespaces(self, slug: str | None = None) -> _Keys:
        """Namespaces registered for ``slug`` (default: this storage's), sorted."""
        prefix = self._namespace_key("", _check_slug(slug) if slug else None)
        keys = await self.store.list_keys(prefix)
        return sorted(k[len(prefix) :] for k in keys if "/" not in k[len(prefix) :])

    async def register_namespace(self) -> None:
        """Record this storage's namespace (done before its first write; idempotent)."""
        if self.namespace is None or self._registered:
            return
        if self._register_lock is None:
            self._register_lock = asyncio.Lock()
        async with self._register_lock:
            if self._registered:
                return
            body = _encoder.encode({"namespace": self.namespace, "slug": self.slug})
            await self.store.put(
                self._namespace_key(self.namespace), body, content_type=CONTENT_TYPE
            )
            self._registered = True

    async def _excluded(self, scope_root: str) -> _Keys:
        """Prefixes under ``scope_root`` that belong to namespaces (no-namespace storage only)."""
        if self.namespace is not None:
            return []
        out = [f"{scope_root}{ns}/" for ns in await self.list_namespaces()]
        if scope_root == self._plugin_prefix:
            out.append(self._namespace_key(""))
        return out

    async def _keys(self, prefix: str, scope_root: str, limit: int | None = None) -> _Keys:
        excluded = await self._excluded(scope_root)
        if not excluded:
            return await self.store.list_keys(prefix, limit=limit)
        out = []
        async for entry in self.store.list(prefix):
            if isinstance(entry, ListEntry) and not entry.key.startswith(tuple(excluded)):
                out.append(entry.key)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def _resource_names(self) -> _Keys:
        names = []
        async for entry in self.store.list("resource=", delimiter="/"):
            if isinstance(entry, CommonPrefix):
                names.append(entry.prefix[len("resource=") : -1])
        return names

    # -- core methods ------------------------------------------------------------------
    async def set(
        self,
        key: str,
        data: Any,
        *,
        ttl: float | None = None,
        behavior: str = "body-overflow",
    ) -> None:
        """Store ``data`` (any JSON value) at ``key``, optionally expiring after ``ttl`` s.

        :param behavior: ``body-overflow`` (metadata when it fits, else body), ``body-only``,
            ``enforce-limits`` (raise when it does not fit in metadata).
        :raises MetadataLimitError: ``enforce-limits`` and the value is over 2 KB.
        """
        full = self._resolve(key)
        ttl = check_ttl(ttl)
        expires_at = _clock.time() + ttl if ttl is not None else None
        body, md = self._encode(full, data, expires_at=expires_at, behavior=behavior)
        await self.register_namespace()
        self._cache.pop(full, None)
        await self.store.put(full, body, md, content_type=CONTENT_TYPE)

    async def update(
        self,
        key: str,
        fn: Callable[[Any], Awaitable[Any] | Any],
        *,
        ttl: float | None = None,
    ) -> Any:
        """Compare-and-swap ``key``: write ``fn(current)`` only if nobody wrote in between.

        ``fn`` (sync or async) gets the current value (``None`` when missing or expired) and
        returns the new value, or ``None`` to leave the key as it is. After a lost race it is
        called again with the fresh value, so it must only compute (or do idempotent work).
        One GET and one conditional PUT (``If-Match`` on the etag read, ``If-None-Match``
        when creating); returns the value written (or the current one when ``fn`` returned
        ``None``).

        :raises ConflictError: the key kept changing for 30 s.
        """
        full = self._resolve(key)
        ttl = check_ttl(ttl)
        await self._require_cas("update")
        await self.register_namespace()

        async def attempt(_: int) -> Any:
            entry = await self._read(full)
            now = _clock.time()
            live = entry is not None and not entry.tombstone and entry.live(now)
            current = entry.data if live and entry is not None else None
            new = fn(current)
            if inspect.isawaitable(new):
                new = await new
            if new is None:
                return current
            expires_at = now + ttl if ttl is not None else None
            body, md = self._encode(full, new, expires_at=expires_at, behavior="body-only")
            try:
                await conditional_put(
                    self.store,
                    full,
                    body,
                    md,
                    content_type=CONTENT_TYPE,
                    if_none_match=entry is None,
                    if_match=None if entry is None else entry.etag,
                )
            except PreconditionFailed:
                return RETRY
            self._cache.pop(full, None)
            return new

        return await self._cas(attempt, full, "update")

    async def get(self, key: str) -> Any:
        """The value at ``key``, or ``None`` when missing or expired (one GET)."""
        full = self._resolve(key)
        entry = await self._read(full)
        if entry is None or entry.tombstone:
            return None
        if entry.expired():
            await self._expire(entry)
            return None
        return entry.data

    async def list(self, prefix: str = "", *, limit: int | None = None) -> _Keys:
        """Full keys of the plugin's global data starting with ``prefix``.

        Entries whose ttl passed are listed until they are read or swept.
        """
        if prefix.startswith("resource="):
            resource = prefix.split("/", 1)[0][len("resource=") :]
            scope = f"resource={resource}/plugin={self.slug}/"
            if not (prefix + "/").startswith(scope):
                raise self._outside(prefix)
            return await self._keys(prefix, scope, limit)
        if prefix.startswith("plugin="):
            if not (prefix + "/").startswith(self._plugin_prefix):
                raise self._outside(prefix)
            return await self._keys(prefix, self._plugin_prefix, limit)
        return await self._keys(self.root + prefix, self._plugin_prefix, limit)

    async def list_for_resource(
        self, resource: str, sub_prefix: str = "", *, limit: int | None = None
    ) -> _Keys:
        """Full keys of the plugin's data scoped to ``resource``, starting with ``sub_prefix``."""
        root = self._resource_root(resource)
        scope = f"resource={resource}/plugin={self.slug}/"
        return await self._keys(root + sub_prefix, scope, limit)

    async def delete(self, key: str) -> None:
        """Delete ``key`` (a missing key is fine)."""
        full = self._resolve(key)
        self._cache.pop(full, None)
        await self.store.delete(full)

    async def _all_keys(self, resource: str | None) -> _Keys:
        if resource is not None:
            return await self.list_for_resource(resource)
        keys = await self._keys(self.root, self._plugin_prefix)
        names = await self._resource_names()
        per_resource = await bounded_gather(self.list_for_resource, names, self.concurrency)
        for found in per_resource:
            keys.extend(found)
        return keys

    async def delete_all(self, resource: str | None = None) -> int:
        """Delete the plugin's data of one resource, or everything (global and every resource).

        A storage without namespace leaves the namespaces' data alone; a namespaced one also
        drops its namespace registration. Returns how many entries were deleted.
        """
        keys = await self._all_keys(resource)
        if resource is None and self.namespace is not None:
            await self.store.delete_many([*keys, self._namespace_key(self.namespace)])
            self._registered = False
        elif keys:
            await self.store.delete_many(keys)
        self._cache.clear()
        return len(keys)

    async def batch_put(
        self,
        items: Iterable[Mapping[str, Any] | tuple[str, Any]],
        *,
        concurrency: int | None = None,
    ) -> _Results:
        """Store many values; items are ``{"key", "data", "ttl"?, "behavior"?}`` or ``(key, data)``.

        Returns one :class:`StorageResult` per item, in order (errors are reported, not raised).
        ``batch_*`` because these are key-value calls on keys (a resource's ``*_many`` take
        records and ids and return a :class:`~s3db_async.BatchResult` of records).
        """

        async def one(item: Mapping[str, Any] | tuple[str, Any]) -> StorageResult:
            if isinstance(item, tuple):
                key, data, opts = str(item[0]), item[1], {}
            else:
                key, data = str(item.get("key")), item.get("data")
                opts = {k: item[k] for k in ("ttl", "behavior") if k in item}
            try:
                await self.set(key, data, **opts)
            except Exception as exc:
                return StorageResult(key, False, error=exc)
            return StorageResult(key, True, data)

        return await bounded_gather(one, list(items), concurrency or self.concurrency)

    async def batch_get(self, keys: Iterable[str], *, concurrency: int | None = None) -> _Results:
        """Read many keys: one :class:`StorageResult` per key, in order (missing: ``data=None``)."""

        async def one(key: str) -> StorageResult:
            try:
                return StorageResult(key, True, await self.get(key))
            except Exception as exc:
                return StorageResult(key, False, error=exc)

        return await bounded_gather(one, list(keys), concurrency or self.concurrency)

    # -- TTL ---------------------------------------------------------------------------
    async def has(self, key: str) -> bool:
        """True when ``key`` exists and has not expired (one HEAD).

        ``has`` rather than a resource's ``exists``: a key past its TTL counts as absent (and
        is removed), which an existence check on a record never does.
        """
        entry = await self._head(self._resolve(key))
        if entry is None or entry.tombstone:
            return False
        if entry.expired():
            await self._expire(entry)
            return False
        return True

    async def is_expired(self, key: str) -> bool:
        """True when ``key`` exists and its ttl has passed (a missing key is not expired)."""
        entry = await self._head(self._resolve(key))
        return entry is not None and not entry.tombstone and entry.expired()

    async def get_ttl(self, key: str) -> float | None:
        """Seconds left before ``key`` expires; ``None`` when missing, expired or without ttl."""
        entry = await self._head(self._resolve(key))
        if entry is None or entry.tombstone or entry.expires_at is None:
            return None
        left = entry.expires_at - _clock.time()
        return left if left > 0 else None

    async def touch(self, key: str, additional_seconds: float) -> bool:
        """Push the expiry of ``key`` back by ``additional_seconds``.

        Returns ``False`` when the key is missing, expired or has no ttl. The value is kept
        (rewritten by compare-and-swap, so a concurrent write is never overwritten).
        """
        full = self._resolve(key)
        extra = check_ttl(additional_seconds, required=True)
        assert extra is not None

        async def attempt(_: int) -> bool | _Retry:
            entry = await self._read(full)
            if entry is None or not entry.live() or entry.expires_at is None:
                return False
            body, md = self._encode(
                full,
                entry.data,
                expires_at=entry.expires_at + extra,
                behavior="body-only" if entry.in_body else "body-overflow",
            )
            try:
                await conditional_put(
                    self.store, full, body, md, content_type=CONTENT_TYPE, if_match=entry.etag
                )
            except PreconditionFailed:
                return RETRY
            self._cache.pop(full, None)
            return True

        return await self._cas(attempt, full, "touch")

    async def cleanup_expired(self, resource: str | None = None) -> int:
        """Delete every expired entry of the plugin (or of one resource); returns the count.

        One HEAD per key. Where deletes can be conditional (memory, file) each delete is
        conditional on the etag read; on S3 an expired lock becomes a tombstone by
        compare-and-swap and other expired entries are deleted outright.
        """
        keys = await self._all_keys(resource)
        now = _clock.time()
        heads = await bounded_gather(self._head, keys, self.concurrency)
        expired = [e for e in heads if e is not None and not e.tombstone and e.expired(now)]
        if not expired:
            return 0
        for e in expired:
            self._cache.pop(e.key, None)
        if await self._conditional_delete():

            async def drop(entry: Entry) -> bool:
                try:
                    await self.store.delete(entry.key, if_match=entry.etag)
                except (PreconditionFailed, NotFoundError):
                    return False
                return True

            done = await bounded_gather(drop, expired, self.concurrency)
            return sum(done)
        locks = [e for e in expired if "/locks/" in e.key]
        others = [e.key for e in expired if "/locks/" not in e.key]
        swapped = await bounded_gather(self._locks.tombstone, locks, self.concurrency)
        if others:
            await self.store.delete_many(others)
        return len(others) + sum(1 for etag in swapped if etag is not None)

    # -- counters and sequences --------------------------------------------------------
    async def _cas(self, step: Callable[[int], Awaitable[T | _Retry]], key: str, op: str) -> T:
        return await cas_loop(
            step,
            what=f"{op} on {key!r}",
            backoff=self._cas_backoff,
            suggestion="too many writers on one key: shard the counter or retry later",
            metadata={"key": key, "op": op},
        )

    async def _add(
        self, full: str, *, initial: int | float, delta: int | float, ttl: float | None, op: str
    ) -> int | float:
        await self._require_cas(op)
        await self.register_namespace()
        token = secrets.token_hex(8)
        cached = self._cache.pop(full, None)
        last: int | float | None = None
        phantom = 0

        async def attempt(_: int) -> int | float | _Retry:
            nonlocal cached, last, phantom
            entry = cached if cached is not None else await self._read(full)
            cached = None
            if entry is not None and token in entry.ops and last is not None:
                self._cache.pop(full, None)
                return last  # the previous attempt did land (a store answered 412 for it)
            now = _clock.time()
            if entry is not None and entry.live(now):
                data, value = _bump(entry.data, delta, full)
                expires_at = entry.expires_at
                ops = [*entry.ops, token][-_OPS_KEPT:]
            else:
                value, data = initial, {"value": initial}
                expires_at = now + ttl if ttl is not None else None
                ops = [token]
            body, md = self._encode(
                full, data, expires_at=expires_at, behavior="body-only", ops=ops
            )
            last = value
            try:
                etag = await conditional_put(
                    self.store,
                    full,
                    body,
                    md,
                    content_type=CONTENT_TYPE,
                    if_none_match=entry is None,
                    if_match=None if entry is None else entry.etag,
                )
            except PreconditionFailed:
                phantom = phantom + 1 if entry is None else 0
                if phantom == 5:
                    await self._locks.check_phantom(full)
                return RETRY
            self._remember(Entry(full, etag, data, expires_at, False, ops, True))
            return value

        return await self._cas(attempt, full, op)

    async def increment(
        self, key: str, amount: int | float = 1, *, ttl: float | None = None
    ) -> int | float:
        """Add ``amount`` to the counter at ``key`` atomically; returns the new value.

        The counter is stored as ``{"value": n}`` (a missing or expired one starts at 0);
        ``ttl`` applies when the counter is created and is kept by later increments.
        """
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ConfigError(f"amount must be a number, got {amount!r}", metadata={"key": key})
        return await self._add(
            self._resolve(key), initial=amount, delta=amount, ttl=check_ttl(ttl), op="increment"
        )

    async def decrement(
        self, key: str, amount: int | float = 1, *, ttl: float | None = None
    ) -> int | float:
        """Subtract ``amount`` from the counter at ``key`` atomically; returns the new value."""
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ConfigError(f"amount must be a number, got {amount!r}", metadata={"key": key})
        return await self._add(
            self._resolve(key), initial=-amount, delta=-amount, ttl=check_ttl(ttl), op="decrement"
        )

    async def next_sequence(
        self, name: str, *, resource: str | None = None, start: int = 1, step: int = 1
    ) -> int:
        """The next value of sequence ``name``: ``start``, then ``+step`` each call.

        Every value is handed out once, across processes, with no gaps (each value is one
        successful compare-and-swap on ``.../sequence={name}/value``).
        """
        for v in (start, step):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"start and step must be integers, got {v!r}")
        value = await self._add(
            self.get_sequence_key(resource, name),
            initial=start,
            delta=step,
            ttl=None,
            op="next_sequence",
        )
        return int(value)

    async def get_sequence(self, name: str, *, resource: str | None = None) -> int | None:
        """The last value handed out by sequence ``name`` (``None`` before the first)."""
        data = await self.get(self.get_sequence_key(resource, name))
        if isinstance(data, dict) and isinstance(data.get("value"), int):
            return int(data["value"])
        return None

    # -- locks (Locks) ------------------------------------------------------------------
    async def acquire_lock(
        self,
        name: str,
        *,
        ttl: float,
        timeout: float = 0,  # noqa: ASYNC109 - polling budget, not a cancel scope
        worker_id: object = None,
        resource: str | None = None,
    ) -> Lock | None:
        """Take the lock ``name`` for ``ttl`` seconds; ``None`` if still held after ``timeout``.

        Acquiring creates ``.../locks/{name}`` with ``If-None-Match``; a released or expired
        lock is taken over by compare-and-swap on its etag. While another worker holds it, the
        call polls with jittered exponential backoff until ``timeout`` seconds have passed.

        :param worker_id: recorded in the lock (default ``host:pid``).
        :raises UnsupportedCapabilityError: the store has no reliable conditional writes.
        """
        return await self._locks.acquire(name, ttl, timeout, worker_id, resource)

    async def release_lock(
        self, lock: Lock | str, token: str | None = None, *, resource: str | None = None
    ) -> bool:
        """Release a lock; ``False`` when it is no longer held with this token.

        Token-checked and atomic: a conditional delete on the etag where the store has one,
        else a compare-and-swap to a tombstone (obstore cannot send ``If-Match`` on DELETE;
        a blind delete could remove a lock another worker just took over).

        :param lock: the :class:`Lock`, or a lock name together with ``token``.
        """
        return await self._locks.release(lock, token, resource)

    async def refresh_lock(self, lock: Lock, *, ttl: float | None = None) -> bool:
        """Extend a held lock to ``ttl`` seconds from now (compare-and-swap on its etag)."""
        return await self._locks.refresh(lock, ttl)

    async def is_locked(self, name: str, *, resource: str | None = None) -> bool:
        """True when the lock is held and has not expired (one HEAD)."""
        entry = await self._head(self.get_lock_key(name, resource))
        return entry is not None and entry.live()

    def lock(
        self,
        name: str,
        *,
        ttl: float,
        timeout: float = 0,
        worker_id: object = None,
        resource: str | None = None,
    ) -> AbstractAsyncContextManager[Lock]:
        """``async with storage.lock("job", ttl=30, timeout=5) as lock:`` ... released on exit.

        :raises LockError: not acquired within ``timeout``.
        """
        return self._locks.hold(name, ttl, timeout, worker_id, resource)


def _bump(data: Any, delta: int | float, key: str) -> tuple[Any, int | float]:
    if isinstance(data, bool):
        data = None
    if isinstance(data, int | float):
        return data + delta, data + delta
    if data is None:
        return {"value": delta}, delta
    if isinstance(data, dict):
        current = data.get("value", 0)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ValidationError(
                f"counter {key!r} holds a non-numeric value {current!r}",
                suggestion="increment keys that hold {'value': <number>}",
                metadata={"key": key},
            )
        new = dict(data)
        new["value"] = current + delta
        return new, current + delta
    raise ValidationError(
        f"counter {key!r} holds {type(data).__name__}, not a number or {{'value': n}}",
        metadata={"key": key},
    )
