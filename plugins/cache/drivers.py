"""Cache drivers of the CachePlugin, built on aiocache's ``BaseCache``.

Each driver is an aiocache cache (``get``, ``set``, ``delete``, ``exists``, ``clear``,
``close`` work as in aiocache, with values as ``bytes``) plus what exact invalidation needs:

- ``delete_groups(groups)``: drop every key ``{group}/{leaf}`` of each group;
- ``delete_groups_now(groups)``: the same without awaiting, for in-process drivers
  (``local = True``), so a write in this process is invisible to the next read at once;
- ``info()``: counters for :meth:`CachePlugin.stats`.

Drivers: :class:`MemoryCache` (LRU with entry and byte caps and a ttl, no timers),
:class:`FilesystemCache` (one directory per group, atomic renames), :class:`S3Cache` (the
plugin's PluginStorage on the database's own bucket), :class:`RedisTagCache` (aiocache's
Redis backend plus one Redis set per group) and :class:`MultiCache` (layers, read in order
and filled on the way back).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from aiocache.base import BaseCache
from aiocache.serializers import BaseSerializer

from s3db_async import PluginStorage, open_store
from s3db_async.errors import ConfigError
from s3db_async.plugin import require_dependency

from .scopes import group_of

__all__ = [
    "DRIVERS",
    "BytesSerializer",
    "CacheDriver",
    "FilesystemCache",
    "MemoryCache",
    "MultiCache",
    "RedisTagCache",
    "S3Cache",
    "make_driver",
]


class BytesSerializer(BaseSerializer):  # type: ignore[misc]
    """Values are ``bytes`` already (the plugin pickles them): stored as they are."""

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> Any:
        return value

    def loads(self, value: Any) -> Any:
        return value


class CacheDriver(BaseCache, abc.ABC):  # type: ignore[misc]
    """Base of the plugin's drivers: an aiocache cache of ``bytes`` with group deletes.

    A driver of your own implements aiocache's ``_get``, ``_set``, ``_delete``, ``_clear``
    and ``_close`` and :meth:`delete_groups`; the rest has generic versions here.
    """

    NAME = "driver"
    local = False  # in-process: needs cross-process invalidation (max_staleness / pub/sub)
    persistent = True  # values leave the process (secrets are not cached by default)
    promote_ttl: float | None = None

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", BytesSerializer())
        kwargs.setdefault("timeout", 0)  # no asyncio.wait_for per call
        super().__init__(**kwargs)

    async def _multi_get(
        self, keys: list[str], encoding: Any = None, _conn: Any = None
    ) -> list[bytes | None]:
        return [await self._get(k) for k in keys]

    async def _multi_set(
        self, pairs: Iterable[tuple[str, bytes]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        for k, v in pairs:
            await self._set(k, v, ttl)
        return True

    async def _add(
        self, key: str, value: bytes, ttl: float | None = None, _conn: Any = None
    ) -> bool:
        if await self._get(key) is not None:
            raise ValueError(f"Key {key} already exists, use .set to update the value")
        return bool(await self._set(key, value, ttl))

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return await self._get(key) is not None

    async def bind(self, storage: PluginStorage, identity: str) -> None:
        """Called on install with the plugin's storage and a name of the database (plus
        namespace), for drivers that need the database or a default location."""

    @abc.abstractmethod
    async def delete_groups(self, groups: Iterable[str]) -> int:
        """Delete every key of these groups; returns how many keys went."""

    def delete_groups_now(self, groups: Iterable[str]) -> bool:
        """Delete synchronously if this driver can (``True``), else do nothing."""
        return False

    def clear_now(self, namespace: str | None = None) -> None:
        """Drop the in-process entries (of keys starting with ``namespace``) at once."""

    async def release(self) -> None:
        """Close network connections until the next use (the plugin stops)."""

    def info(self) -> dict[str, Any]:
        """Counters of the driver (entries, bytes, evictions where known)."""
        return {"driver": self.NAME}


# -- memory ----------------------------------------------------------------------------
class MemoryCache(CacheDriver):
    """An LRU in this process: at most ``max_entries`` keys and ``max_bytes`` of values.

    Expiry is checked on read (no timer per key, unlike aiocache's SimpleMemoryCache). A
    value larger than ``max_bytes`` is not stored.
    """

    NAME = "memory"
    local = True
    persistent = False

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"memory cache {name} must be a positive integer, not {value!r}",
                    suggestion=f"config={{'{name}': 1000}}",
                    metadata={"field": name, "reason": "not a positive integer"},
                )
        super().__init__(**kwargs)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._groups: dict[str, set[str]] = {}
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def _drop(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self.bytes -= len(entry[0]) + len(key)
        group = group_of(key)
        keys = self._groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._groups[group]
        return True

    async def _get(self, key: str, encoding: Any = None, _conn: Any = None) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self.clock():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return entry[0]

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        size = len(value) + len(key)
        self._drop(key)
        if size > self.max_bytes:
            return False
        expires = self.clock() + ttl if ttl else None
        self._data[key] = (value, expires)
        self._groups.setdefault(group_of(key), set()).add(key)
        self.bytes += size
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            self.evictions += 1
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return int(self._drop(key))

    async def _expire(self, key: str, ttl: float, _conn: Any = None) -> bool:
        entry = self._data.get(key)
        if entry is None:
            return False
        self._data[key] = (entry[0], self.clock() + ttl if ttl else None)
        return True

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        self.clear_now(namespace)
        return True

    def clear_now(self, namespace: str | None = None) -> None:
        if namespace is None:
            self._data.clear()
            self._groups.clear()
            self.bytes = 0
            return
        for key in [k for k in self._data if k.startswith(namespace)]:
            self._drop(key)

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        return None

    async def delete_groups(self, groups: Iterable[str]) -> int:
        return self._delete_groups(groups)

    def _delete_groups(self, groups: Iterable[str]) -> int:
        n = 0
        for group in groups:
            for key in list(self._groups.get(group, ())):
                n += self._drop(key)
        return n

    def delete_groups_now(self, groups: Iterable[str]) -> bool:
        self._delete_groups(groups)
        return True

    def info(self) -> dict[str, Any]:
        return {
            "driver": self.NAME,
            "entries": len(self._data),
            "bytes": self.bytes,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "evictions": self.evictions,
        }


# -- filesystem -----------------------------------------------------------------------
_EXPIRY_BYTES = 8


class FilesystemCache(CacheDriver):
    """Files under ``path``: ``{path}/{database}/{resource}/{group}/{leaf}`` (``{database}``:
    a digest of the database's URL, plus its namespace), each written to a temporary
    name and renamed into place (readers never see half a file); a group is dropped by
    renaming its directory away and removing it. Safe for several processes on one machine.
    """

    NAME = "filesystem"

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> None:
        if path is not None and not str(path):
            raise ConfigError(
                "the filesystem cache path is empty",
                suggestion="config={'path': './cache'} (or leave it out: a temporary folder)",
                metadata={"field": "path", "reason": "empty"},
            )
        super().__init__(**kw)
        self._base = Path(path) if path is not None else Path()
        self.root = self._base
        self._path_given = path is not None
        self.clock = clock

    async def bind(self, storage: PluginStorage, identity: str) -> None:
        # a folder per database (and namespace) under the path: two databases given the
        # same path (the seed's './cache') must not serve each other's records
        base = self._base if self._path_given else Path(tempfile.gettempdir()) / "s3db-cache"
        self.root = base / identity

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*(quote(part, safe="=-_.~") for part in key.split("/")))

    def _read(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        expires = int.from_bytes(data[:_EXPIRY_BYTES], "big") / 1000
        if expires and expires <= self.clock():
            path.unlink(missing_ok=True)
            return None
        return data[_EXPIRY_BYTES:]

    def _write(self, key: str, value: bytes, ttl: float | None) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        expires = int((self.clock() + ttl) * 1000) if ttl else 0
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(expires.to_bytes(_EXPIRY_BYTES, "big") + value)
        os.replace(tmp, path)
        return True

    def _remove_tree(self, path: Path) -> int:
        if not path.exists():
            return 0
        away = path.with_name(f".{path.name}.{uuid.uuid4().hex}.gone")
        try:
            os.replace(path, away)
        except FileNotFoundError:
            return 0
        n = sum(1 for p in away.rglob("*") if p.is_file())
        shutil.rmtree(away, ignore_errors=True)
        return n

    async def _get(self, key: str, encoding: Any = None, _conn: Any = None) -> bytes | None:
        return await anyio.to_thread.run_sync(self._read, key)

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        return await anyio.to_thread.run_sync(self._write, key, value, ttl)

    async def _delete(self, key: str, _conn: Any = None) -> int:
        def unlink() -> int:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                return 0
            return 1

        return await anyio.to_thread.run_sync(unlink)

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        if namespace is None:
            await anyio.to_thread.run_sync(self._remove_tree, self.root)
        else:
            await anyio.to_thread.run_sync(self._remove_tree, self._path(namespace.rstrip("/")))
        return True

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        return None

    async def delete_groups(self, groups: Iterable[str]) -> int:
        paths = [self._path(g) for g in groups]

        def remove() -> int:
            return sum(self._remove_tree(p) for p in paths)

        return await anyio.to_thread.run_sync(remove)

    def info(self) -> dict[str, Any]:
        return {"driver": self.NAME, "path": str(self.root)}


# -- s3 (PluginStorage) -----------------------------------------------------------------
class S3Cache(CacheDriver):
    """Entries in the plugin's PluginStorage:
    ``resource={name}/plugin=cache/[{namespace}/]entries/{group}/{leaf}`` with PluginStorage's
    ttl, on the database's bucket, or on another store when ``url`` is given (any connection
    string: another bucket or prefix). 1 GET per lookup, 1 PUT per store; dropping groups
    costs 1 LIST of the resource's entries plus 1 batched DELETE of those that match. Shared
    by every process of the database.
    """

    NAME = "s3"

    def __init__(self, *, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self._storage: PluginStorage | None = None
        self._own_store: Any = None

    async def bind(self, storage: PluginStorage, identity: str) -> None:
        if self.url is None:
            self._storage = storage
            return
        store = open_store(self.url)
        await store.connect()
        self._own_store = store
        # another store may serve several databases: their entries live apart, under a
        # namespace naming the database (and the plugin's namespace)
        ns = identity
        if len(ns) > 50:
            ns = hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()
        self._storage = PluginStorage(store, storage.slug, namespace=ns)

    @property
    def storage(self) -> PluginStorage:
        if self._storage is None:
            raise ConfigError(
                "the s3 cache driver is not bound to a database",
                suggestion="install the CachePlugin on a database first",
                metadata={"reason": "not installed"},
            )
        return self._storage

    def _key(self, key: str) -> str:
        resource, _, rest = key.partition("/")
        return self.storage.get_plugin_key(resource, "entries", rest)

    async def _get(self, key: str, encoding: Any = None, _conn: Any = None) -> bytes | None:
        data = await self.storage.get(self._key(key))
        if not isinstance(data, dict) or not isinstance(data.get("b"), str):
            return None
        return base64.b64decode(data["b"])

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        data = {"b": base64.b64encode(value).decode("ascii")}
        await self.storage.set(self._key(key), data, ttl=ttl or None, behavior="body-only")
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return await self.storage.has(self._key(key))

    async def _delete(self, key: str, _conn: Any = None) -> int:
        await self.storage.delete(self._key(key))
        return 1

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        if namespace is None:
            await self.storage.delete_all()
            return True
        await self._delete_prefixes(namespace.rstrip("/"), [""])
        return True

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        store, self._own_store = self._own_store, None
        if store is not None:
            await store.close()

    async def _delete_prefixes(self, resource: str, subs: list[str]) -> int:
        storage = self.storage
        base = storage.get_plugin_key(resource, "entries") + "/"
        prefixes = [base + s for s in subs]
        keys = [
            k
            for k in await storage.list_for_resource(resource, "entries/")
            if any(k.startswith(p) for p in prefixes)
        ]
        if keys:
            await storage.store.delete_many(keys)
        return len(keys)

    async def delete_groups(self, groups: Iterable[str]) -> int:
        by_resource: dict[str, list[str]] = {}
        for group in groups:
            resource, _, tag = group.partition("/")
            by_resource.setdefault(resource, []).append(tag + "/")
        n = 0
        for resource, subs in by_resource.items():
            n += await self._delete_prefixes(resource, subs)
        return n


# -- redis ----------------------------------------------------------------------------------
def require_redis() -> None:
    """:class:`MissingDependencyError` with the install command when ``redis`` is missing."""
    require_dependency("redis", extra="cache-redis", min_version="5", plugin="CachePlugin")


_DELETE_GROUPS = """
local n = 0
for i, idx in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', idx)
  for j = 1, #members, 500 do
    n = n + redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', idx)
end
return n
"""


class RedisTagCache(CacheDriver):
    """aiocache's Redis backend (``redis.asyncio``) with one Redis set per group.

    A store is one pipelined round trip (``SET`` with expiry, ``SADD`` to the group's set,
    ``PEXPIRE`` on it); dropping groups is one ``EVAL`` (members and sets deleted together).
    Keys are ``{prefix}{key}``; the plugin's default prefix names the database, so two
    databases can share one Redis.
    """

    NAME = "redis"

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        require_redis()
        import redis.asyncio as aioredis

        super().__init__(**kwargs)
        self.url = url
        self.prefix = prefix if prefix is not None else "s3db-cache:"
        self._prefix_given = prefix is not None
        self.client = aioredis.Redis.from_url(url, decode_responses=False)

    async def bind(self, storage: PluginStorage, identity: str) -> None:
        if not self._prefix_given:
            self.prefix = f"s3db-cache:{identity}:"

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _idx(self, group: str) -> str:
        return f"{self.prefix}__group__:{group}"

    async def _get(self, key: str, encoding: Any = None, _conn: Any = None) -> bytes | None:
        value: Any = await self.client.get(self._k(key))
        return value if isinstance(value, bytes) else None

    async def _multi_get(
        self, keys: list[str], encoding: Any = None, _conn: Any = None
    ) -> list[bytes | None]:
        if not keys:
            return []
        values: list[Any] = await self.client.mget([self._k(k) for k in keys])
        return [v if isinstance(v, bytes) else None for v in values]

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        full = self._k(key)
        idx = self._idx(group_of(key))
        async with self.client.pipeline(transaction=False) as pipe:
            if ttl:
                ms = max(1, int(ttl * 1000))
                pipe.set(full, value, px=ms)
                pipe.sadd(idx, full)
                pipe.pexpire(idx, ms, gt=True)
                pipe.pexpire(idx, ms, nx=True)
            else:
                pipe.set(full, value)
                pipe.sadd(idx, full)
                pipe.persist(idx)
            await pipe.execute()
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return bool(await self.client.exists(self._k(key)))

    async def _delete(self, key: str, _conn: Any = None) -> int:
        n: int = await self.client.delete(self._k(key))
        return n

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        pattern = self.prefix + (namespace or "") + "*"
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                await self.client.delete(*batch)
                batch = []
        if batch:
            await self.client.delete(*batch)
        if namespace is not None:  # the group sets of that resource too
            await self.delete_groups_like(namespace)
        return True

    async def delete_groups_like(self, namespace: str) -> None:
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=self._idx(namespace) + "*", count=500):
            batch.append(key)
        if batch:
            await self.client.delete(*batch)

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        await self.client.aclose()

    async def release(self) -> None:
        await self.client.aclose()  # the pool reconnects on the next command

    async def delete_groups(self, groups: Iterable[str]) -> int:
        keys = [self._idx(g) for g in groups]
        if not keys:
            return 0
        n = await self.client.eval(_DELETE_GROUPS, len(keys), *keys)
        return int(n)

    def info(self) -> dict[str, Any]:
        return {"driver": self.NAME, "url": self.url.split("@")[-1], "prefix": self.prefix}


# -- multi ---------------------------------------------------------------------------------
class MultiCache(CacheDriver):
    """Layers, fastest first (``strategy="all"``): a read tries each layer in order and
    stores what it found in the layers before it; a write and a group delete go to every
    layer. A memory layer over redis or s3 serves repeated reads with no request."""

    NAME = "multi"

    def __init__(self, *, layers: list[CacheDriver], strategy: str = "all", **kw: Any) -> None:
        if strategy != "all":
            raise ConfigError(
                f"unknown multi cache strategy {strategy!r}",
                suggestion="use strategy='all' (read layers in order, write to all)",
                metadata={"field": "strategy", "reason": "unknown"},
            )
        if not layers:
            raise ConfigError(
                "a multi cache needs destinations",
                suggestion="config={'destinations': [{'driver': 'memory'}, {'driver': 'redis'}]}",
                metadata={"field": "destinations", "reason": "empty"},
            )
        super().__init__(**kw)
        self.layers = layers
        self.strategy = strategy
        self.local = any(layer.local for layer in layers)
        self.persistent = any(layer.persistent for layer in layers)

    async def bind(self, storage: PluginStorage, identity: str) -> None:
        for layer in self.layers:
            await layer.bind(storage, identity)

    def clear_now(self, namespace: str | None = None) -> None:
        for layer in self.layers:
            layer.clear_now(namespace)

    async def release(self) -> None:
        for layer in self.layers:
            await layer.release()

    async def _get(self, key: str, encoding: Any = None, _conn: Any = None) -> bytes | None:
        for i, layer in enumerate(self.layers):
            value: bytes | None = await layer._get(key)
            if value is not None:
                for upper in self.layers[:i]:
                    await upper._set(key, value, self.promote_ttl)
                return value
        return None

    async def _set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        for layer in self.layers:
            await layer._set(key, value, ttl)
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return sum([int(bool(await layer._delete(key))) for layer in self.layers])

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        for layer in self.layers:
            await layer._clear(namespace)
        return True

    async def _close(self, *args: Any, _conn: Any = None, **kwargs: Any) -> None:
        for layer in self.layers:
            await layer._close()

    async def delete_groups(self, groups: Iterable[str]) -> int:
        groups = list(groups)
        return sum([await layer.delete_groups(groups) for layer in self.layers])

    def delete_groups_now(self, groups: Iterable[str]) -> bool:
        groups = list(groups)
        done = [layer.delete_groups_now(groups) for layer in self.layers]
        return all(done)

    def info(self) -> dict[str, Any]:
        return {"driver": self.NAME, "layers": [layer.info() for layer in self.layers]}


DRIVERS: dict[str, type[CacheDriver]] = {
    "memory": MemoryCache,
    "filesystem": FilesystemCache,
    "s3": S3Cache,
    "redis": RedisTagCache,
    "multi": MultiCache,
}


def make_driver(driver: str | CacheDriver, config: Mapping[str, Any] | None = None) -> CacheDriver:
    """A driver from its name and config (``multi``: ``strategy`` and ``destinations``, each
    ``{"driver": name, "config": {...}}``), or the driver instance given.

    :raises ConfigError: an unknown driver name or a bad option.
    """
    if isinstance(driver, CacheDriver):
        return driver
    cls = DRIVERS.get(driver) if isinstance(driver, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown cache driver {driver!r}",
            suggestion=f"choose one of: {', '.join(DRIVERS)}",
            metadata={"field": "driver", "reason": "unknown", "available_drivers": list(DRIVERS)},
        )
    options = dict(config or {})
    if cls is MultiCache:
        layers = []
        for dest in options.pop("destinations", None) or []:
            if not isinstance(dest, Mapping) or "driver" not in dest:
                raise ConfigError(
                    f"bad multi cache destination {dest!r}",
                    suggestion="each destination is {'driver': 'memory', 'config': {...}}",
                    metadata={"field": "destinations", "reason": "malformed"},
                )
            if dest["driver"] == "multi":
                raise ConfigError(
                    "a multi cache cannot hold another multi cache",
                    suggestion="list the layers in one destinations list",
                    metadata={"field": "destinations", "reason": "nested multi"},
                )
            layers.append(make_driver(dest["driver"], dest.get("config")))
        return MultiCache(layers=layers, **options)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(
            f"bad option for the {driver} cache driver: {exc}",
            suggestion="see docs/plugins/cache.md for each driver's options",
            metadata={"field": "config", "reason": str(exc)},
        ) from None
