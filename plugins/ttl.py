"""TTLPlugin: records that expire, swept by one process, hidden from reads until then.

::

    ttl = TTLPlugin(resources={
        "sessions": {"ttl": 3600},                                   # hard-delete
        "invites": {"field": "expires_at", "on_expire": "soft-delete"},
        "orders": {"ttl": 86400, "on_expire": "archive", "archive_to": "orders_archive"},
        "jobs": {"ttl": 600, "on_expire": "callback", "callback": notify},
    })

How it works:

- **Expiry.** ``ttl`` stamps each new record with the plugin field ``_expires_at`` (epoch
  seconds: insert time plus ``ttl``); ``field`` names a field of the record (a datetime, an
  ISO 8601 string or epoch seconds) instead.
- **Reads never return an expired record**, swept or not: middlewares on ``get``,
  ``get_or_none``, ``get_many``, ``list``, ``query`` and ``page`` drop what has expired by
  the clock (``get`` raises :class:`NotFoundError`); ``exists`` is False for it (one GET
  instead of one HEAD).
- **Index by time cohort.** The durable change feed of each resource (consumer ``ttl``)
  delivers every committed write, even from a process SIGKILLed right after it; the sweeper
  turns each into an index key ``index/{resource}/{cohort}/{id}`` plus a cohort marker
  ``cohorts/{resource}/{cohort}`` (a cohort is ``cohort`` seconds of expiry times). A sweep
  lists the markers and then only the cohorts that are due, however old: after an outage of
  any length every overdue record is swept.
- **One sweeper across processes**: the sweep is a leader job of the runtime
  (``every(sweep_interval, leader=True)``); the feed consumer runs only inside it.
- **Order of writes.** The record's expiry action happens first, the index key goes last;
  a crash in between leaves an index key that the next sweep finds again (its record is
  gone, or still expired and handled again: archive is an upsert, so it is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from s3db_async import BatchResult, ItemResult, Page, Record, Resource
from s3db_async.errors import ConfigError, NotFoundError, SchemaError
from s3db_async.plugin import Change, Plugin, Subscription, clock_time

__all__ = ["ExpiryRule", "SweepReport", "TTLPlugin"]

MODES = ("hard-delete", "soft-delete", "archive", "callback")
EXPIRES_FIELD = "_expires_at"
_RULE_KEYS = {"ttl", "field", "on_expire", "archive_to", "delete_field", "callback"}
_WIDTH = 12  # digits of a cohort number in keys, so that keys sort by time
_include_expired: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "s3db_ttl_include_expired", default=False
)


def _bad(resource: str, field: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"TTLPlugin resource {resource!r}: {field} {reason}",
        suggestion=suggestion,
        metadata={"field": field, "reason": reason, "resource": resource, "value": repr(value)},
    )


def to_timestamp(value: Any) -> float | None:
    """Epoch seconds of an expiry value (datetime, ISO 8601 string, number), else ``None``.

    A naive datetime or ISO string is taken as UTC.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    return None


@dataclass(frozen=True)
class ExpiryRule:
    """How records of one resource expire (validated from the ``resources`` dict)."""

    resource: str
    ttl: float | None = None
    field: str | None = None
    on_expire: str = "hard-delete"
    archive_to: str | None = None
    delete_field: str = "deleted_at"
    callback: Callable[..., Any] | None = None

    @property
    def expiry_field(self) -> str:
        """The field that holds the expiry time."""
        return self.field or EXPIRES_FIELD

    @classmethod
    def from_config(cls, resource: str, config: Mapping[str, Any] | float) -> ExpiryRule:
        """Validate one resource's options (a number means ``{"ttl": number}``).

        :raises ConfigError: unknown keys, neither or both of ttl/field, a bad mode.
        """
        if isinstance(config, int | float) and not isinstance(config, bool):
            config = {"ttl": config}
        if not isinstance(config, Mapping):
            raise _bad(resource, "config", "must be a dict", "pass {'ttl': 3600}", config)
        unknown = sorted(set(config) - _RULE_KEYS)
        if unknown:
            raise _bad(
                resource, unknown[0], "is not a TTL option", f"use: {', '.join(sorted(_RULE_KEYS))}"
            )
        ttl, field = config.get("ttl"), config.get("field")
        if (ttl is None) == (field is None):
            raise _bad(
                resource,
                "ttl",
                "and field: give exactly one",
                "pass {'ttl': seconds} or {'field': 'expires_at'}",
            )
        if ttl is not None and (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not math.isfinite(ttl)
            or ttl <= 0
        ):
            raise _bad(resource, "ttl", "must be a positive number of seconds", "pass 3600", ttl)
        if field is not None and (not isinstance(field, str) or not field):
            raise _bad(resource, "field", "must be a field name", "pass 'expires_at'", field)
        mode = config.get("on_expire", "hard-delete")
        if mode not in MODES:
            raise _bad(resource, "on_expire", "is not a mode", f"use one of {MODES}", mode)
        archive_to = config.get("archive_to")
        if mode == "archive" and not (isinstance(archive_to, str) and archive_to):
            raise _bad(
                resource,
                "archive_to",
                "is required for on_expire='archive'",
                "pass archive_to='orders_archive'",
            )
        callback = config.get("callback")
        if mode == "callback" and not callable(callback):
            raise _bad(
                resource,
                "callback",
                "must be callable for on_expire='callback'",
                "pass callback=fn with fn(db, resource_name, record)",
                callback,
            )
        delete_field = config.get("delete_field", "deleted_at")
        if not isinstance(delete_field, str) or not delete_field:
            raise _bad(resource, "delete_field", "must be a field name", "pass 'deleted_at'")
        return cls(
            resource=resource,
            ttl=None if ttl is None else float(ttl),
            field=field,
            on_expire=mode,
            archive_to=archive_to,
            delete_field=delete_field,
            callback=callback,
        )


@dataclass
class SweepReport:
    """What one sweep did (per sweep, all resources)."""

    indexed: int = 0
    """Changes turned into index keys (from the change feed)."""
    cohorts: int = 0
    """Due cohorts read."""
    checked: int = 0
    """Index keys whose record was read."""
    expired: int = 0
    """Records expired (deleted, soft-deleted, archived or called back)."""
    stale: int = 0
    """Index keys dropped because their record was gone or no longer expires there."""
    errors: int = 0


class TTLPlugin(Plugin):
    """Expires records by ``ttl`` or an expiry field: hard-delete, soft-delete, archive or a
    callback; an expiry index by time cohort; one sweeper across processes; reads hide
    expired records before the sweep.
    """

    def __init__(
        self,
        *,
        resources: Mapping[str, Mapping[str, Any] | float] | None = None,
        cohort: float = 60.0,
        sweep_interval: float = 60.0,
        lease_ttl: float = 30.0,
        concurrency: int = 16,
        batch_size: int = 500,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if resources is not None and not isinstance(resources, Mapping):
            raise ConfigError(
                "TTLPlugin(resources=...) must be a dict of resource name -> options",
                suggestion="pass resources={'sessions': {'ttl': 3600}}",
                metadata={"field": "resources", "reason": "not a dict"},
            )
        for name in resources or {}:
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"TTLPlugin(resources=...) keys are resource names, not {name!r}",
                    suggestion="pass resources={'sessions': {'ttl': 3600}}",
                    metadata={"field": "resources", "reason": "not a resource name"},
                )
        self.rules = {
            name: ExpiryRule.from_config(name, cfg) for name, cfg in (resources or {}).items()
        }
        for name, value in (
            ("cohort", cohort),
            ("sweep_interval", sweep_interval),
            ("lease_ttl", lease_ttl),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(
                    f"TTLPlugin: {name} must be a positive number of seconds, got {value!r}",
                    suggestion=f"pass {name}=60",
                    metadata={"field": name, "reason": "not a positive number"},
                )
        for name, ivalue in (("concurrency", concurrency), ("batch_size", batch_size)):
            if isinstance(ivalue, bool) or not isinstance(ivalue, int) or ivalue < 1:
                raise ConfigError(
                    f"TTLPlugin: {name} must be a positive integer, got {ivalue!r}",
                    suggestion=f"pass {name}=16",
                    metadata={"field": name, "reason": "not a positive integer"},
                )
        self.cohort = float(cohort)
        self.sweep_interval = float(sweep_interval)
        self.lease_ttl = float(lease_ttl)
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._subs: dict[str, Subscription] = {}
        self._ready: dict[str, Resource] = {}
        self._setting_up: set[str] = set()
        self._sweep_lock = asyncio.Lock()
        self._markers: set[str] = set()
        self._report = SweepReport()

    # -- lifecycle -------------------------------------------------------------------------
    async def on_install(self) -> None:
        for name in self.rules:
            await self.when_resource(name, self._setup)

    async def _setup(self, resource: Resource) -> None:
        if resource.name in self._ready or resource.name in self._setting_up:
            return  # set up already (by when_resource, or adopted by a sweep)
        self._setting_up.add(resource.name)
        try:
            await self._setup_rule(resource)
        finally:
            self._setting_up.discard(resource.name)

    async def _adopt(self) -> None:
        """Set up the configured resources that another process created since (one GET of
        ``s3db.json``, only while some configured resource is missing here)."""
        missing = [n for n in self.rules if n not in self._ready]
        if not missing:
            return
        if not all(self.db.resource_exists(n) for n in missing):
            await self.db.reload()
        for name in missing:
            if self.db.resource_exists(name):
                await self._setup(self.db.get_resource(name))

    async def _setup_rule(self, resource: Resource) -> None:
        rule = self.rules[resource.name]
        if rule.field is None:
            await self.add_plugin_attribute(resource, EXPIRES_FIELD, "number|optional")
            self.add_resource_hook(resource, "before_insert", self._stamp(rule))
            self.add_middleware(resource, "replace", self._keep_expiry(resource))
        if rule.on_expire == "soft-delete":
            with contextlib.suppress(SchemaError):  # a user field of that name is fine
                await self.add_plugin_attribute(resource, rule.delete_field, "string|optional")
        for method in ("get", "get_or_none", "get_many", "list", "query", "page"):
            self.add_middleware(resource, method, self._filter(rule, method))
        self.add_middleware(resource, "exists", self._exists(resource))
        sub = await self.subscribe(
            resource,
            self._indexer(rule),
            consumer="ttl",
            batch_size=self.batch_size,
            poll_interval=None,  # polled by the sweeper, under its lease
        )
        self._subs[resource.name] = sub
        self._ready[resource.name] = resource
        storage = self.get_storage()
        seeded = storage.get_plugin_key(None, "seeded", resource.name)
        if await storage.get(seeded) is None:  # records written before the plugin came
            await self.reindex(resource.name)
            await storage.set(seeded, {"at": clock_time()})

    async def on_start(self) -> None:
        self.sweeper = self.every(
            self.sweep_interval,
            self._sweep_tick,
            name="sweep",
            leader=True,
            lease_ttl=self.lease_ttl,
        )

    # -- write and read paths -------------------------------------------------------------
    def _stamp(self, rule: ExpiryRule) -> Callable[[dict[str, Any]], dict[str, Any]]:
        assert rule.ttl is not None
        ttl = rule.ttl

        def stamp(data: dict[str, Any]) -> dict[str, Any]:
            if data.get(EXPIRES_FIELD) is None:
                return {**data, EXPIRES_FIELD: clock_time() + ttl}
            return data

        return stamp

    def _keep_expiry(self, resource: Resource) -> Callable[..., Any]:
        """``replace`` without ``_expires_at`` keeps the stored expiry (one GET), as an
        ``update`` does: a replaced record must not stop expiring."""

        async def middleware(next_: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            # Resource.replace passes (record_id, data) positionally
            data = args[1] if len(args) > 1 else None
            if not isinstance(data, Mapping) or data.get(EXPIRES_FIELD) is not None:
                return await next_(*args, **kwargs)
            with self.including_expired():
                current = await resource.get_or_none(str(args[0]))
            stored = None if current is None else current.get(EXPIRES_FIELD)
            if stored is not None:
                args = (args[0], {**data, EXPIRES_FIELD: stored}, *args[2:])
            return await next_(*args, **kwargs)

        return middleware

    def expires_at(self, resource: str, record: Mapping[str, Any]) -> float | None:
        """The expiry time of ``record`` (epoch seconds), ``None`` if it never expires."""
        rule = self.rules[resource]
        return to_timestamp(record.get(rule.expiry_field))

    def is_expired(self, resource: str, record: Mapping[str, Any]) -> bool:
        """True when ``record`` has expired by the current clock (swept or not)."""
        rule = self.rules[resource]
        if rule.on_expire == "soft-delete" and record.get(rule.delete_field):
            return True
        at = self.expires_at(resource, record)
        return at is not None and at <= clock_time()

    @contextlib.contextmanager
    def including_expired(self) -> Iterator[None]:
        """Inside this block (this task), reads return expired records too."""
        token = _include_expired.set(True)
        try:
            yield
        finally:
            _include_expired.reset(token)

    def _filter(self, rule: ExpiryRule, method: str) -> Callable[..., Any]:
        name = rule.resource

        def gone(record: Any) -> bool:
            return isinstance(record, Mapping) and self.is_expired(name, record)

        async def middleware(next_: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            result = await next_(*args, **kwargs)
            if _include_expired.get():
                return result
            if method == "get":
                if gone(result):
                    raise NotFoundError(
                        f"{name} record {result.get('id')!r} has expired",
                        suggestion="expired records are hidden; use plugin.including_expired()",
                        metadata={"resource": name, "id": result.get("id"), "reason": "expired"},
                    )
                return result
            if method == "get_or_none":
                return None if gone(result) else result
            if method == "get_many" and isinstance(result, BatchResult):
                out = BatchResult(
                    ItemResult(
                        item.id,
                        False,
                        error=NotFoundError(
                            f"{name} record {item.id!r} has expired",
                            metadata={"resource": name, "id": item.id, "reason": "expired"},
                        ),
                    )
                    if item.ok and gone(item.data)
                    else item
                    for item in result
                )
                return out
            if method == "page" and isinstance(result, Page):
                return dataclasses.replace(result, items=[r for r in result.items if not gone(r)])
            if isinstance(result, list):  # list, query: a RecordList, filtered in place
                result[:] = [r for r in result if not gone(r)]
            return result

        return middleware

    def _exists(self, resource: Resource) -> Callable[..., Any]:
        """``exists`` answers from one GET instead of one HEAD, so an expired record does
        not exist (the expiry may live in the body)."""

        async def middleware(next_: Callable[..., Any], rid: Any, *args: Any, **kw: Any) -> Any:
            if _include_expired.get() or args or kw:
                return await next_(rid, *args, **kw)
            return await resource.get_or_none(rid) is not None  # filtered above

        return middleware

    async def on_records_replaced(self, resources: Sequence[str]) -> None:
        """A restore wrote these resources' records without the change feed: index them
        again so that the restored records expire too."""
        for name in resources:
            if name in self._ready:
                await self.reindex(name)

    # -- the index ------------------------------------------------------------------------
    def _cohort(self, at: float) -> int:
        return max(math.floor(at / self.cohort), math.floor(clock_time() / self.cohort))

    def _marker_key(self, resource: str, cohort: int) -> str:
        return self.get_storage().get_plugin_key(None, "cohorts", resource, f"{cohort:0{_WIDTH}d}")

    def _index_prefix(self, resource: str, cohort: int) -> str:
        return self.get_storage().get_plugin_key(None, "index", resource, f"{cohort:0{_WIDTH}d}")

    async def _index(self, resource: str, rid: str, at: float) -> None:
        """Marker first, then the index key: a marker without keys is harmless, a key
        without its marker would never be read."""
        cohort = self._cohort(at)
        storage = self.get_storage()
        marker = self._marker_key(resource, cohort)
        if marker not in self._markers:
            await storage.set(marker, {"cohort": cohort})
            self._markers.add(marker)
        await storage.set(f"{self._index_prefix(resource, cohort)}/{rid}", {"at": at})

    def _indexer(self, rule: ExpiryRule) -> Callable[[list[Change]], Any]:
        async def handle(changes: list[Change]) -> None:
            sem = asyncio.Semaphore(self.concurrency)
            latest: dict[str, Change] = {}
            for change in changes:  # in order per record: the last change of each counts
                latest[change.id] = change

            async def one(change: Change) -> None:
                async with sem:
                    after = change.after
                    if after is None or (
                        rule.on_expire == "soft-delete" and after.get(rule.delete_field)
                    ):
                        return  # deleted or already expired: a stale key is dropped on sweep
                    at = to_timestamp(after.get(rule.expiry_field))
                    if at is not None:
                        await self._index(rule.resource, change.id, at)

            await asyncio.gather(*(one(c) for c in latest.values()))
            self._report.indexed += len(latest)

        return handle

    async def reindex(self, resource: str) -> int:
        """Index every record of ``resource`` (done once when the plugin first sees it; the
        change feed keeps the index current after that). Returns how many were indexed."""
        rule = self._rule(resource)
        res = self._ready.get(resource) or self.db.get_resource(resource)
        count = 0
        with self.including_expired():
            records = await res.list()
        for record in records:
            at = to_timestamp(record.get(rule.expiry_field))
            if at is not None:
                await self._index(resource, str(record["id"]), at)
                count += 1
        return count

    def _rule(self, resource: str) -> ExpiryRule:
        rule = self.rules.get(resource)
        if rule is None:
            raise NotFoundError(
                f"TTLPlugin has no rule for resource {resource!r}",
                suggestion=f"configured: {', '.join(sorted(self.rules)) or 'none'}",
                metadata={"field": "resource", "reason": "no rule", "resource": resource},
            )
        return rule

    # -- sweeping -------------------------------------------------------------------------
    async def _sweep_tick(self) -> None:
        await self.sweep()

    async def sweep(self) -> SweepReport:
        """Index the pending changes and expire every due record of every resource, now, in
        this process (the scheduled sweep runs this on the leader only)."""
        async with self._sweep_lock:
            self._report = report = SweepReport()
            await self._adopt()
            for name, resource in list(self._ready.items()):
                sub = self._subs[name]
                for _ in range(10_000):  # drain the feed: bounded, a busy writer cannot pin us
                    if not await sub.poll():
                        break
                await self._sweep_resource(self.rules[name], resource, report)
            self.emit("ttl.swept", self._payload(**dataclasses.asdict(report)))
            return report

    async def _sweep_resource(
        self, rule: ExpiryRule, resource: Resource, report: SweepReport
    ) -> None:
        storage = self.get_storage()
        now = clock_time()
        current = math.floor(now / self.cohort)
        prefix = storage.get_plugin_key(None, "cohorts", rule.resource) + "/"
        markers = sorted(await storage.list(prefix))
        sem = asyncio.Semaphore(self.concurrency)
        for marker in markers:
            cohort = int(marker.rsplit("/", 1)[-1])
            if cohort > current:
                break  # keys sort by time: the rest is not due
            report.cohorts += 1
            keys = await storage.list(self._index_prefix(rule.resource, cohort) + "/")

            async def one(key: str) -> bool:
                async with sem:
                    return await self._check(rule, resource, key, now, report)

            results = await asyncio.gather(*(one(k) for k in keys))
            left = sum(1 for kept in results if kept)
            if left == 0 and cohort < current - 1:
                # every key of a past cohort is done; one cohort of grace, so that an index
                # write begun just before a cohort boundary (marker, then key) keeps its marker
                await storage.delete(marker)
                self._markers.discard(marker)

    async def _check(
        self, rule: ExpiryRule, resource: Resource, key: str, now: float, report: SweepReport
    ) -> bool:
        """Handle one index key; ``True`` when it stays (its record is not due yet)."""
        storage = self.get_storage()
        rid = key.rsplit("/", 1)[-1]
        report.checked += 1
        try:
            with self.including_expired():
                record = await resource.get_or_none(rid)
            if record is None:
                report.stale += 1
                await storage.delete(key)
                return False
            at = to_timestamp(record.get(rule.expiry_field))
            done = rule.on_expire == "soft-delete" and record.get(rule.delete_field)
            if at is None or done:
                report.stale += 1
                await storage.delete(key)
                return False
            if at > now:
                if self._cohort(at) != int(key.rsplit("/", 2)[-2]):
                    await self._index(rule.resource, rid, at)  # moved: index it where due
                    report.stale += 1
                    await storage.delete(key)
                    return False
                return True
            await self._expire(rule, resource, record)
            report.expired += 1
            await storage.delete(key)  # last: a crash before this only repeats the check
            return False
        except Exception as exc:
            report.errors += 1
            self.log.warning(
                "ttl: could not expire %s/%s: %s",
                rule.resource,
                rid,
                exc,
                extra={"op": "ttl", "resource": rule.resource, "id": rid},
            )
            self.emit("ttl.failed", self._payload(resource=rule.resource, id=rid, error=exc))
            return True

    async def _expire(self, rule: ExpiryRule, resource: Resource, record: Record) -> None:
        rid = str(record["id"])
        at = self.expires_at(rule.resource, record)
        if rule.on_expire == "hard-delete":
            await resource.delete(rid)
        elif rule.on_expire == "soft-delete":
            stamp = datetime.fromtimestamp(clock_time(), UTC).isoformat()
            await resource.update(rid, {rule.delete_field: stamp})
        elif rule.on_expire == "archive":
            assert rule.archive_to is not None
            target = self.db.get_resource(rule.archive_to)
            data = {k: v for k, v in record.items() if k != EXPIRES_FIELD}
            await target.upsert(data, preserve_timestamps=True)  # idempotent: same id
            await resource.delete(rid)
        else:
            assert rule.callback is not None
            result = rule.callback(self.db, rule.resource, record)
            if inspect.isawaitable(result):
                await result
        self.emit(
            "ttl.expired",
            self._payload(
                resource=rule.resource,
                id=rid,
                mode=rule.on_expire,
                expired_at=None if at is None else datetime.fromtimestamp(at, UTC),
            ),
        )

    @property
    def last_sweep(self) -> SweepReport:
        """The figures of the last (or current) sweep of this process."""
        return self._report
