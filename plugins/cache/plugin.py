"""CachePlugin: caches resource reads, invalidated exactly by writes.

::

    from s3db_async import Database
    from s3db_async.plugins import CachePlugin

    cache = CachePlugin(driver="memory", config={"max_entries": 5000}, ttl=300)
    async with Database("s3://...", plugins=[cache]) as db:
        users = db.resources["users"]
        await users.get(uid)  # 1 GET
        await users.get(uid)  # 0 requests
        print(cache.stats())

See docs/plugins/cache.md.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import pickle
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3db_async import BatchResult, ItemResult, Page, Plugin, Record, Resource
from s3db_async.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    PreconditionFailed,
    SchemaError,
    ValidationError,
)
from s3db_async.plugin import Dependency, require_dependencies

from .scopes import entry_key, leaf, record_tag, scope_tag, write_groups

if TYPE_CHECKING:
    from .drivers import CacheDriver
    from .pubsub import InvalidationBus

__all__ = ["CACHED_OPERATIONS", "CachePlugin"]

CACHED_OPERATIONS = ("get", "get_many", "list", "list_ids", "count", "page", "query")
WRITE_OPERATIONS = ("insert", "update", "patch", "replace", "delete", "delete_many")
# errors after which nothing was written: no invalidation needed
_NOTHING_WRITTEN = (
    ValidationError,
    NotFoundError,
    AlreadyExistsError,
    PreconditionFailed,
    ConfigError,
    SchemaError,
)
_HEADER = struct.Struct("<dd")  # stamp (when the data was read), expiry (0: none)
_MISS = object()
_FRAME: contextvars.ContextVar[_Frame | None] = contextvars.ContextVar(
    "s3db_cache_frame", default=None
)

Next = Callable[..., Awaitable[Any]]


@dataclass(eq=False)
class _Fetch:
    """A read in flight whose result is to be stored; an invalidation of one of its groups
    meanwhile makes it stale (it is then not stored, or dropped again)."""

    groups: frozenset[str]
    stale: bool = False


@dataclass(eq=False)
class _Frame:
    """Groups collected from the events of one write call (awaited when the call ends)."""

    groups: dict[_State, set[str]] = field(default_factory=dict)


@dataclass(eq=False)
class _State:
    resource: Resource
    ttl: float
    pending: int = 0  # invalidations outside a write call still running: reads bypass
    inflight: dict[str, list[_Fetch]] = field(default_factory=dict)


def _positive(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"CachePlugin {name} must be a positive number of seconds, not {value!r}",
            suggestion=f"pass {name}=300" + (" or None" if allow_none else ""),
            metadata={"field": name, "reason": "not a positive number"},
        )
    return float(value)


def _cacheable(result: Any) -> bool:
    if isinstance(result, Page | list) and getattr(result, "skipped", None):
        return False  # corrupt records are reported (and emitted) on every call
    return True


class CachePlugin(Plugin):
    """Caches ``get``, ``get_many``, ``list``, ``list_ids``, ``count``, ``page`` and
    ``query`` of every resource (or those named); writes drop exactly what they change.

    :param driver: ``memory`` (default), ``filesystem``, ``s3``, ``redis``, ``multi``, or a
        driver instance from :mod:`s3db_async.plugins.cache.drivers`.
    :param config: the driver's options (see docs/plugins/cache.md).
    :param ttl: seconds an entry lives (default 300).
    :param resource_ttl: ``{resource: seconds}`` overriding ``ttl`` for some resources.
    :param resources: names of the resources to cache (default: all, also those created
        later); ``exclude`` names resources to leave alone. Plugin resources (``plg_*``) are
        cached only when named.
    :param operations: the read operations to cache (default: all seven).
    :param max_staleness: seconds an entry may be served without being checked again; an
        older ``get`` entry is revalidated with one HEAD (its etag), other entries are
        read again. Bounds what several processes with memory caches can serve after
        another process wrote. ``None`` (default): no bound beyond ``ttl``.
    :param pubsub: a Redis URL: writes are published there and every process drops the
        entries at once (``max_staleness`` still bounds a missed message).
    :param cache_secrets: also cache resources with ``secret``/``password`` fields in
        drivers outside the process (filesystem, s3, redis), where they would be stored
        decrypted; off by default.
    :param clock: the time source of stamps and expiries (tests pass a fake one).
    """

    event_names = (Plugin.event_names or frozenset()) | {"cache.hit", "cache.miss", "cache.cleared"}
    dependencies = (Dependency("aiocache", extra="cache", min_version="0.12"),)

    def __init__(
        self,
        *,
        driver: str | CacheDriver = "memory",
        config: Mapping[str, Any] | None = None,
        ttl: float = 300.0,
        resource_ttl: Mapping[str, float] | None = None,
        resources: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        operations: Iterable[str] = CACHED_OPERATIONS,
        max_staleness: float | None = None,
        pubsub: str | None = None,
        cache_secrets: bool = False,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        require_dependencies(type(self).dependencies, plugin=self.name)
        from .drivers import make_driver

        self.ttl = _positive("ttl", ttl) or 300.0
        if resource_ttl is not None and not isinstance(resource_ttl, Mapping):
            raise ConfigError(
                f"CachePlugin resource_ttl must be a dict of resource name -> seconds, "
                f"not {resource_ttl!r}",
                suggestion="resource_ttl={'sessions': 30}",
                metadata={"field": "resource_ttl", "reason": "not a dict"},
            )
        self.resource_ttl = {
            str(name): _positive(f"resource_ttl[{name!r}]", seconds) or self.ttl
            for name, seconds in (resource_ttl or {}).items()
        }
        self.max_staleness = _positive("max_staleness", max_staleness, allow_none=True)
        if isinstance(operations, str):
            raise ConfigError(
                "CachePlugin operations take a list of read operations, not a string",
                suggestion=f"operations=[{operations!r}]",
                metadata={"field": "operations", "reason": "a string"},
            )
        ops = tuple(operations)
        unknown = sorted(set(ops) - set(CACHED_OPERATIONS))
        if unknown:
            raise ConfigError(
                f"CachePlugin cannot cache {unknown}",
                suggestion=f"operations are among: {', '.join(CACHED_OPERATIONS)}",
                metadata={"field": "operations", "reason": "unknown operation"},
            )
        self.operations = ops
        for option, names in (("resources", resources), ("exclude", exclude)):
            if isinstance(names, str):
                raise ConfigError(
                    f"CachePlugin {option} takes a list of names, not a string",
                    suggestion=f"{option}=[{names!r}]",
                    metadata={"field": option, "reason": "a string"},
                )
        self.resources = None if resources is None else frozenset(resources)
        self.exclude = frozenset(exclude)
        if pubsub is not None and not (
            isinstance(pubsub, str) and pubsub.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ConfigError(
                f"CachePlugin pubsub must be a Redis URL, not {pubsub!r}",
                suggestion="pubsub='redis://127.0.0.1:6379/0'",
                metadata={"field": "pubsub", "reason": "not a redis URL"},
            )
        self.pubsub_url = pubsub
        self.cache_secrets = bool(cache_secrets)
        self.clock = clock
        self.driver: CacheDriver = make_driver(driver, config)
        self._states: dict[str, _State] = {}
        self._stats: Counter[tuple[str, str, str]] = Counter()
        self._bus: InvalidationBus | None = None
        self._listener: asyncio.Task[Any] | None = None
        self.identity = ""

    # -- lifecycle --------------------------------------------------------------------
    async def on_install(self) -> None:
        db = self.db
        digest = hashlib.blake2b(db.url.encode(), digest_size=8).hexdigest()
        self.identity = digest + (f"-{self.namespace}" if self.namespace else "")
        await self.driver.bind(self.get_storage(), self.identity)
        self.driver.promote_ttl = max([self.ttl, *self.resource_ttl.values()])
        for name in db.list_resources():
            await self._setup(db.resources[name])
        self.add_database_hook("after_create_resource", self._setup)

    async def on_start(self) -> None:
        if self.pubsub_url is not None:
            from .pubsub import InvalidationBus

            self._bus = InvalidationBus(
                self, self.pubsub_url, channel=f"s3db-cache:{self.identity}"
            )
            await self._bus.subscribe()
            self._listener = self.spawn(self._bus.listen, name="pubsub")

    async def on_stop(self) -> None:
        bus, self._bus = self._bus, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        if bus is not None:
            await bus.close()
        await self.driver.release()

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        if purge_data:
            await self.driver.clear()
        await self.driver.close()
        self._states.clear()

    def _wanted(self, resource: Resource) -> bool:
        name = resource.name
        if name in self.exclude:
            return False
        if self.resources is not None and name not in self.resources:
            return False
        if self.resources is None and name.startswith("plg_"):
            return False
        # naming a resource in ``resources`` does not opt its secrets into a shared driver
        if resource.schema.sensitive_fields and self.driver.persistent and not self.cache_secrets:
            self.log.warning(
                "not caching %s: it has secret fields and the %s driver stores values "
                "outside the process (pass cache_secrets=True to cache it anyway)",
                name,
                self.driver.NAME,
                extra={"resource": name, "op": "install"},
            )
            return False
        return True

    async def _setup(self, resource: Resource) -> None:
        state = self._states.get(resource.name)
        if state is not None:  # the definition changed: partitions may differ
            await self._clear_resource(resource.name)
            return
        if not self._wanted(resource):
            return
        ttl = self.resource_ttl.get(resource.name, self.ttl)
        state = self._states[resource.name] = _State(resource, ttl)
        for op in self.operations:
            self.add_middleware(resource, op, self._read_middleware(state, op))
        for op in WRITE_OPERATIONS:
            self.add_middleware(resource, op, self._write_middleware(state, op))
        self.listen(resource, "inserted", lambda rec: self._written(state, rec))
        self.listen(resource, "updated", lambda new, old=None: self._written(state, new, old))
        if resource.partitions:  # deletes read the record anyway: no extra request
            self.listen(resource, "deleted", lambda rec: self._written(state, rec))
        self.listen(resource, "deleted_all", lambda _info: self._flush_later(state))

    # -- driver calls: a failing cache never fails the operation ---------------------
    async def _guard(self, op: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except Exception as exc:
            self._count("-", op, "errors")
            self.log.warning(
                "cache driver %s failed on %s: %s",
                self.driver.NAME,
                op,
                exc,
                extra={"op": op, "driver": self.driver.NAME},
            )
            return None

    async def _driver_get(self, key: str) -> bytes | None:
        value = await self._guard("get", self.driver.get(key))
        return value if isinstance(value, bytes) else None

    async def _driver_set(self, key: str, raw: bytes, ttl: float) -> bool:
        return bool(await self._guard("set", self.driver.set(key, raw, ttl=ttl)))

    async def _driver_delete(self, key: str) -> None:
        await self._guard("delete", self.driver.delete(key))

    # -- entries -------------------------------------------------------------------------
    def _count(self, resource: str, op: str, what: str, n: int = 1) -> None:
        self._stats[(resource, op, what)] += n

    def _encode(self, state: _State, stamp: float, value: Any) -> bytes:
        return _HEADER.pack(stamp, stamp + state.ttl) + pickle.dumps(
            value, protocol=pickle.HIGHEST_PROTOCOL
        )

    async def _lookup(self, state: _State, op: str, key: str, rid: str | None = None) -> Any:
        name = state.resource.name
        raw = await self._driver_get(key)
        value: Any = _MISS
        if raw is not None:
            value = await self._decode(key, raw)
            if value is _MISS:
                raw = None
        if raw is not None:
            stamp, expires = _HEADER.unpack_from(raw)
            now = self.clock()
            if expires and now >= expires:
                raw = None
            elif self.max_staleness is not None and now - stamp > self.max_staleness:
                raw = (
                    await self._revalidate(state, key, raw, rid, value) if rid is not None else None
                )
                if raw is None:
                    self._count(name, op, "stale")
        if raw is None:
            self._count(name, op, "misses")
            if self.has_listeners("cache.miss"):
                self.emit("cache.miss", {"resource": name, "op": op, "key": key})
            return _MISS
        self._count(name, op, "hits")
        if self.has_listeners("cache.hit"):
            self.emit("cache.hit", {"resource": name, "op": op, "key": key})
        return value

    async def _decode(self, key: str, raw: bytes) -> Any:
        """The value of an entry; ``_MISS`` (logged, counted, entry dropped) when it cannot
        be read: a truncated file, a foreign or incompatible value must not fail the read."""
        try:
            if len(raw) < _HEADER.size:
                raise ValueError(f"{len(raw)} bytes, shorter than the entry header")
            return pickle.loads(memoryview(raw)[_HEADER.size :])
        except Exception as exc:
            self._count("-", "decode", "errors")
            self.log.warning(
                "cache entry %s is unreadable (%s): treated as a miss",
                key,
                exc,
                extra={"op": "decode", "driver": self.driver.NAME},
            )
            await self._driver_delete(key)
            return _MISS

    async def _revalidate(
        self, state: _State, key: str, raw: bytes, rid: str, record: Any
    ) -> bytes | None:
        """One HEAD: the stored record still has the cached etag -> stamp it again."""
        started = self.clock()
        try:
            info = await self.db.store.head(state.resource.key_for(rid))
        except NotFoundError:
            return None
        if info.etag != getattr(record, "etag", None):
            return None
        self._count(state.resource.name, "get", "revalidated")
        fresh = _HEADER.pack(started, _HEADER.unpack_from(raw)[1]) + raw[_HEADER.size :]
        await self._store(state, key, frozenset({key.rpartition("/")[0]}), fresh)
        return fresh

    async def _store(self, state: _State, key: str, groups: frozenset[str], raw: bytes) -> None:
        fetch = _Fetch(groups)
        self._begin(state, fetch)
        try:
            await self._driver_set(key, raw, state.ttl)
        finally:
            self._end(state, fetch)
        if fetch.stale:
            await self._driver_delete(key)

    def _begin(self, state: _State, fetch: _Fetch) -> None:
        for g in fetch.groups:
            state.inflight.setdefault(g, []).append(fetch)

    def _end(self, state: _State, fetch: _Fetch) -> None:
        for g in fetch.groups:
            fetches = state.inflight.get(g)
            if fetches is not None:
                fetches.remove(fetch)
                if not fetches:
                    del state.inflight[g]

    async def _fill(
        self, state: _State, op: str, key: str, group: str, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``call`` and store its result at ``key``, unless ``group`` was invalidated
        meanwhile (then nothing is stored, or what was stored is dropped again)."""
        fetch = _Fetch(frozenset((group,)))
        stamp = self.clock()
        self._begin(state, fetch)
        stored = False
        try:
            result = await call()
            if not (fetch.stale or state.pending) and _cacheable(result):
                stored = await self._driver_set(key, self._encode(state, stamp, result), state.ttl)
                self._count(state.resource.name, op, "sets", int(stored))
        finally:
            self._end(state, fetch)
        if stored and fetch.stale:
            await self._driver_delete(key)
        return result

    # -- read middlewares --------------------------------------------------------------
    def _read_middleware(self, state: _State, op: str) -> Callable[..., Awaitable[Any]]:
        if op == "get":

            async def get(nxt: Next, record_id: Any, *args: Any, **kwargs: Any) -> Any:
                if args or kwargs or state.pending:
                    return await nxt(record_id, *args, **kwargs)
                rid = str(record_id)
                tag = record_tag(rid)
                key = entry_key(state.resource.name, tag, "get")
                value = await self._lookup(state, "get", key, rid)
                if value is not _MISS:
                    return value
                group = f"{state.resource.name}/{tag}"
                return await self._fill(state, "get", key, group, lambda: nxt(record_id))

            return get
        if op == "get_many":
            return self._get_many_middleware(state)
        return self._scoped_middleware(state, op)

    def _get_many_middleware(self, state: _State) -> Callable[..., Awaitable[Any]]:
        name = state.resource.name

        async def get_many(nxt: Next, ids: list[Any], *args: Any, **kwargs: Any) -> Any:
            if args or state.pending or set(kwargs) - {"strict"}:
                return await nxt(ids, *args, **kwargs)
            found: dict[str, ItemResult] = {}
            missing: dict[str, str] = {}  # key -> group
            missing_ids: list[Any] = []
            for raw_id in ids:
                rid = str(raw_id)
                if rid in found:
                    continue
                tag = record_tag(rid)
                key = entry_key(name, tag, "get")
                if key in missing:
                    continue
                value = await self._lookup(state, "get_many", key, rid)
                if value is _MISS:
                    missing[key] = f"{name}/{tag}"
                    missing_ids.append(raw_id)
                else:
                    found[rid] = ItemResult(rid, True, value)
            if missing_ids:
                fetched: BatchResult = await self._fill_many(
                    state, missing, lambda: nxt(missing_ids, **kwargs)
                )
                for item in fetched:
                    found.setdefault(str(item.id), item)
            return BatchResult([found[str(i)] for i in ids if str(i) in found])

        return get_many

    async def _fill_many(
        self, state: _State, entries: Mapping[str, str], call: Callable[[], Awaitable[Any]]
    ) -> Any:
        fetch = _Fetch(frozenset(entries.values()))
        stamp = self.clock()
        self._begin(state, fetch)
        stored: list[str] = []
        try:
            result = await call()
            if not (fetch.stale or state.pending):
                for item in result:
                    if not item.ok or not isinstance(item.data, Record):
                        continue
                    key = entry_key(state.resource.name, record_tag(str(item.id)), "get")
                    if key in entries:
                        raw = self._encode(state, stamp, item.data)
                        if await self._driver_set(key, raw, state.ttl):
                            self._count(state.resource.name, "get_many", "sets")
                            stored.append(key)
        finally:
            self._end(state, fetch)
        if fetch.stale:
            for key in stored:
                await self._driver_delete(key)
        return result

    def _scoped_middleware(self, state: _State, op: str) -> Callable[..., Awaitable[Any]]:
        resource = state.resource

        async def scoped(nxt: Next, *args: Any, **kwargs: Any) -> Any:
            if state.pending:
                return await nxt(*args, **kwargs)
            if op == "page":
                partition, values = args[3], args[4]
            elif op == "query":
                partition, values = args[2], args[3]
                if partition is None and values is None:
                    try:
                        plan = resource.explain(args[0])
                    except Exception:
                        return await nxt(*args, **kwargs)
                    partition, values = plan["partition"], plan["partition_values"]
            else:
                partition, values = args[0], args[1]
            tag = scope_tag(resource, partition, values)
            if tag is None:
                return await nxt(*args, **kwargs)
            try:
                key = entry_key(resource.name, tag, leaf(op, (*args, *sorted(kwargs.items()))))
            except Exception:
                return await nxt(*args, **kwargs)
            value = await self._lookup(state, op, key)
            if value is not _MISS:
                return value
            group = f"{resource.name}/{tag}"
            return await self._fill(state, op, key, group, lambda: nxt(*args, **kwargs))

        return scoped

    # -- invalidation ----------------------------------------------------------------------
    def _write_middleware(self, state: _State, op: str) -> Callable[..., Awaitable[Any]]:
        resource = state.resource

        async def write(nxt: Next, *args: Any, **kwargs: Any) -> Any:
            frame = _Frame()
            token = _FRAME.set(frame)
            groups: set[str] = set()
            try:
                result = await nxt(*args, **kwargs)
                if op in ("update", "patch", "replace") and state not in frame.groups:
                    # no ``updated`` event: nothing changed, or the write landed but its
                    # answer was lost and the re-read found it done; drop what it could be
                    groups |= write_groups(resource, str(args[0]), [result])
                return result
            except _NOTHING_WRITTEN:
                raise
            except BaseException:
                await self._clear_resource(resource.name)  # unknown outcome: drop it all
                raise
            finally:
                _FRAME.reset(token)
                if op == "delete":
                    groups |= write_groups(resource, str(args[0]), ())
                elif op == "delete_many":
                    for rid in args[0]:
                        groups |= write_groups(resource, str(rid), ())
                for st, gs in frame.groups.items():
                    await self._invalidate(st, gs)
                if groups:
                    await self._invalidate(state, groups)

        return write

    def _written(self, state: _State, *records: Any) -> None:
        """``inserted``/``updated``/``deleted``: drop the record's groups (sync part now)."""
        rid = next((str(r["id"]) for r in records if isinstance(r, Mapping) and "id" in r), None)
        groups = write_groups(state.resource, rid, [r for r in records if isinstance(r, Mapping)])
        self._drop_now(state, groups)
        frame = _FRAME.get()
        if frame is not None:
            frame.groups.setdefault(state, set()).update(groups)
        else:  # a write outside the middlewares (migrate, restore): finish in the background
            state.pending += 1
            self.spawn(self._finish(state, groups), name="invalidate")

    def _flush_later(self, state: _State) -> None:
        self._mark_all_stale(state)
        state.pending += 1

        async def flush() -> None:
            try:
                await self._clear_resource(state.resource.name)
            finally:
                state.pending -= 1

        self.spawn(flush(), name="flush")

    async def _finish(self, state: _State, groups: set[str]) -> None:
        try:
            await self._invalidate(state, groups)
        finally:
            state.pending -= 1

    def _drop_now(self, state: _State, groups: Iterable[str]) -> bool:
        for g in groups:
            for fetch in state.inflight.get(g, ()):
                fetch.stale = True
        return bool(self.driver.delete_groups_now(groups))

    def _mark_all_stale(self, state: _State) -> None:
        for fetches in state.inflight.values():
            for fetch in fetches:
                fetch.stale = True

    async def _invalidate(self, state: _State, groups: set[str]) -> None:
        done = self._drop_now(state, groups)
        if not done:
            await self._guard("delete_groups", self.driver.delete_groups(sorted(groups)))
        self._count(state.resource.name, "write", "invalidations", len(groups))
        if self._bus is not None:
            await self._bus.publish({"g": sorted(groups)})

    def remote_invalidation(self, message: Mapping[str, Any]) -> None:
        """Apply an invalidation published by another process (in-process layers only)."""
        groups = message.get("g")
        if isinstance(groups, list):
            for state in self._states.values():
                prefix = state.resource.name + "/"
                mine = [g for g in groups if isinstance(g, str) and g.startswith(prefix)]
                if mine:
                    self._drop_now(state, mine)
            return
        resource = message.get("c")
        self.drop_local(resource if isinstance(resource, str) else None)

    def drop_local(self, resource: str | None = None) -> None:
        """Forget what the in-process layers hold (of one resource, or all)."""
        for state in self._states.values():
            if resource is None or state.resource.name == resource:
                self._mark_all_stale(state)
        self.driver.clear_now(None if resource is None else resource + "/")

    async def _clear_resource(self, name: str) -> None:
        state = self._states.get(name)
        if state is not None:
            self._mark_all_stale(state)
        await self._guard("clear", self.driver.clear(namespace=name + "/"))
        if self._bus is not None:
            await self._bus.publish({"c": name})

    async def on_records_replaced(self, resources: Sequence[str]) -> None:
        """A restore rewrote these resources: drop their entries here and, with ``pubsub``,
        in the other processes."""
        for name in resources:
            if name in self._states:
                await self._clear_resource(name)

    # -- public API ---------------------------------------------------------------------
    async def clear(self, resource: str | Resource | None = None) -> None:
        """Drop every entry (of one resource, or of all); other processes drop theirs too
        when ``pubsub`` is set."""
        if resource is not None:
            name = resource if isinstance(resource, str) else resource.name
            await self._clear_resource(name)
        else:
            for state in self._states.values():
                self._mark_all_stale(state)
            for name in list(self._states):
                await self._guard("clear", self.driver.clear(namespace=name + "/"))
            if self._bus is not None:
                await self._bus.publish({"c": None})
        cleared: str | None = None
        if resource is not None:
            cleared = resource if isinstance(resource, str) else resource.name
        self.emit("cache.cleared", {"resource": cleared})

    async def warm(
        self,
        resource: str | Resource,
        ids: Iterable[str] | None = None,
        *,
        lists: bool = False,
    ) -> int:
        """Load records into the cache: ``ids``, or every record of the resource (1 LIST
        page per 1000 ids, then 1 GET per record not cached yet). With ``lists=True`` also
        ``list()`` and ``count()``. Returns how many entries were stored.
        """
        r = resource if isinstance(resource, Resource) else self.db.get_resource(resource)
        if r.name not in self._states:
            raise ConfigError(
                f"the cache does not cover resource {r.name!r}",
                suggestion="name it in CachePlugin(resources=[...]) or remove it from exclude",
                metadata={"field": "resource", "reason": "not cached", "resource": r.name},
            )
        before = self._sets(r.name)
        wanted = list(ids) if ids is not None else await r.list_ids()
        if "get_many" in self.operations:
            for start in range(0, len(wanted), 1000):
                await r.get_many(wanted[start : start + 1000])
        elif "get" in self.operations:  # the same entries, filled one get at a time
            for rid in wanted:
                try:
                    await r.get(rid)
                except NotFoundError:
                    pass
        if lists:
            await r.list()
            await r.count()
        return self._sets(r.name) - before

    def _sets(self, name: str) -> int:
        return sum(n for (res, _, what), n in self._stats.items() if res == name and what == "sets")

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, stores, revalidations and invalidations, in total and per
        resource and operation, plus the driver's own counters."""
        totals: Counter[str] = Counter()
        by_resource: dict[str, dict[str, dict[str, int]]] = {}
        for (res, op, what), n in self._stats.items():
            totals[what] += n
            by_resource.setdefault(res, {}).setdefault(op, {})[what] = n
        hits, misses = totals["hits"], totals["misses"]
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
            "sets": totals["sets"],
            "stale": totals["stale"],
            "revalidated": totals["revalidated"],
            "invalidations": totals["invalidations"],
            "errors": totals["errors"],
            "resources": by_resource,
            "driver": self.driver.info(),
        }

    def reset_stats(self) -> None:
        """Zero the counters of :meth:`stats`."""
        self._stats.clear()
