"""AuditPlugin: a durable audit trail of every insert, update and delete.

::

    from s3db_async import Database, actor
    from s3db_async.plugins import AuditPlugin

    async with Database(url, plugins=[AuditPlugin(resources=["orders"])]) as db:
        with actor("alice"):
            await db.resources["orders"].insert({...})
        logs = await db.plugins.get(AuditPlugin).get_audit_logs(resource="orders")

Built on the durable change feed (:meth:`Plugin.subscribe`): every committed write of an
audited resource, in any process, records an intent first, so a writer SIGKILLed right after
its record PUT still gets its audit entry. The consumer writes the entries of each delivered
batch as one *segment* record of the plugin resource ``plg_audit_logs`` (partitioned by
resource and UTC date); a segment's id is ``{date}~{resource}~{first change id}``, so a
batch delivered again after a crash overwrites its own segment, and readers drop entries
whose change id they have already seen (at-least-once delivery, exactly-once reading).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from s3db_async import Change, Resource
from s3db_async.errors import AlreadyExistsError, ConfigError, ValidationError
from s3db_async.plugin import JobRun, Plugin, Subscription

__all__ = ["AuditPlugin"]

_OPERATIONS = ("insert", "update", "delete")
_EVENT_NAMES = {"inserted": "insert", "updated": "update", "deleted": "delete"}
_SEP = "~"  # record ids may not contain '/', and '~' sorts after dates' digits and '-'
_ATTRIBUTES: dict[str, Any] = {
    "resource": "string|required",
    "date": "string|required",
    "first": "string|required",
    "last": "string|required",
    "count": "integer|required",
    "entries": "json|required",
}
_PARTITIONS = {"by_resource_date": {"fields": {"resource": "string", "date": "string"}}}

ActorResolver = Callable[[Change], "str | None"]


def _bad(field: str, reason: str, suggestion: str, value: Any) -> ConfigError:
    return ConfigError(
        f"AuditPlugin: {field} {reason}",
        suggestion=suggestion,
        metadata={"field": field, "reason": reason, "value": repr(value)},
    )


def _as_datetime(value: datetime | date | str | None, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = (
                datetime.fromisoformat(value)
                if len(value) > 10
                else date.fromisoformat(value)  # a day: 'until' includes all of it
            )
        except ValueError:
            raise ValidationError(
                f"{field}={value!r} is not an ISO date or datetime",
                errors=[{"field": field, "rule": "datetime", "message": "not ISO 8601"}],
                suggestion=f"pass {field}=datetime(...) or an ISO string like '2026-01-31'",
                metadata={"field": field, "reason": "not ISO 8601"},
            ) from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        start = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return start + timedelta(days=1, microseconds=-1) if field == "until" else start
    raise ValidationError(
        f"{field} must be a datetime, a date or an ISO string, not {type(value).__name__}",
        errors=[{"field": field, "rule": "datetime", "message": "wrong type"}],
        suggestion=f"pass {field}=datetime(2026, 1, 31, tzinfo=UTC)",
        metadata={"field": field, "reason": "wrong type"},
    )


class AuditPlugin(Plugin):
    """Records who changed what and when, for every write of the audited resources.

    :param resources: names of the resources to audit; ``None`` audits every resource
        except plugin resources (``plg_*``), including ones created later.
    :param operations: the operations to record, among ``insert``, ``update`` and
        ``delete`` (the event names ``inserted``, ``updated``, ``deleted`` are accepted too);
        default: all three.
    :param include_data: keep ``before``/``after`` (or the diff) in each entry.
    :param diff_only: keep ``changes`` (``{field: [old, new]}``) instead of whole
        ``before``/``after`` images (inserts keep ``after``, deletes ``before``).
    :param max_data_size: a data image larger than this many bytes (JSON) is replaced by
        ``{"_truncated": True, "_size": n}`` and the entry gets ``truncated: True``.
    :param actor: ``actor(change) -> str | None``, asked when the writer set no
        :func:`s3db_async.actor` (e.g. ``lambda c: (c.after or {}).get("updated_by")``).
    :param retention_days: entries of older UTC dates are deleted by :meth:`cleanup`, which
        runs every ``cleanup_every`` seconds in one process; ``None`` keeps everything.
    :param batch_size: changes per delivered batch (one segment write per batch).
    :param poll_interval: seconds between polls of the change feed; ``None`` polls only
        when :meth:`flush` is called (tests, scripts).
    :param leader: poll under a leader lease, so one process writes the trail; ``False``
        polls in this process (one process per database, or tests).
    """

    version = "1.0.0"

    def __init__(
        self,
        *,
        resources: Iterable[str] | None = None,
        operations: Iterable[str] = _OPERATIONS,
        include_data: bool = True,
        diff_only: bool = False,
        max_data_size: int = 10_000,
        actor: ActorResolver | None = None,
        retention_days: int | None = 90,
        cleanup_every: float = 3600.0,
        batch_size: int = 200,
        poll_interval: float | None = 1.0,
        leader: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(resources, str):
            raise _bad(
                "resources", "must be a list of names", f"pass resources=[{resources!r}]", resources
            )
        self.audited: tuple[str, ...] | None = None if resources is None else tuple(resources)
        if isinstance(operations, str):
            raise _bad(
                "operations", "must be a list of operations", f"pass operations=[{operations!r}]",
                operations,
            )  # fmt: skip
        ops = [_EVENT_NAMES.get(op, op) for op in operations]
        unknown = sorted({op for op in ops if op not in _OPERATIONS})
        if unknown or not ops:
            raise _bad(
                "operations", f"has unknown operations {unknown}" if unknown else "is empty",
                f"choose among {', '.join(_OPERATIONS)}", operations,
            )  # fmt: skip
        self.operations: tuple[str, ...] = tuple(op for op in _OPERATIONS if op in ops)
        if (
            not isinstance(max_data_size, int)
            or isinstance(max_data_size, bool)
            or max_data_size < 1
        ):
            raise _bad(
                "max_data_size", "must be a positive integer", "e.g. max_data_size=10_000",
                max_data_size,
            )  # fmt: skip
        if retention_days is not None and (
            not isinstance(retention_days, int) or isinstance(retention_days, bool)
            or retention_days < 1
        ):  # fmt: skip
            raise _bad(
                "retention_days", "must be a positive integer or None",
                "e.g. retention_days=90, or None to keep everything", retention_days,
            )  # fmt: skip
        if actor is not None and not callable(actor):
            raise _bad("actor", "must be callable", "pass actor=lambda change: ...", actor)
        for field, value in (("cleanup_every", cleanup_every), ("poll_interval", poll_interval)):
            if field == "poll_interval" and value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise _bad(field, "must be a positive number of seconds", f"e.g. {field}=1", value)
        if (
            not isinstance(batch_size, int)
            or isinstance(batch_size, bool)
            or not 1 <= batch_size <= 10_000
        ):
            raise _bad("batch_size", "must be 1..10000", "e.g. batch_size=200", batch_size)
        self.include_data = include_data
        self.diff_only = diff_only
        self.max_data_size = max_data_size
        self.resolve_actor = actor
        self.retention_days = retention_days
        self.cleanup_every = float(cleanup_every)
        self.batch_size = batch_size
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        self.use_leader = leader
        self.logs: Resource | None = None
        self._subs: dict[str, Subscription] = {}
        self._epoch: int | None = None
        self._poll_lock = asyncio.Lock()
        self.written = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def on_install(self) -> None:
        self.logs = await self.create_plugin_resource(
            "logs", attributes=_ATTRIBUTES, partitions=_PARTITIONS, behavior="body-only"
        )

    async def on_start(self) -> None:
        if not self.use_leader:  # a restart after stop(): the subscriptions stay, their loops not
            for sub in self._subs.values():
                sub.start()
        if self.audited is None:
            for resource in list(self.db.resources.values()):
                await self._watch(resource)
            self.add_database_hook("after_create_resource", self._watch)
        else:
            for name in self.audited:
                await self.when_resource(name, self._watch)
        if self.use_leader and self.poll_interval is not None:
            self.every(self.poll_interval, self._leader_poll, name="poll", leader=True)
        if self.retention_days is not None:
            self.every(self.cleanup_every, self.cleanup, name="cleanup", leader=True)

    def _audits(self, name: str) -> bool:
        if self.logs is not None and name == self.logs.name:
            return False
        if self.audited is None:
            return not name.startswith("plg_")
        return name in self.audited

    async def _watch(self, resource: Resource) -> None:
        if not self._audits(resource.name) or resource.name in self._subs:
            return
        self._subs[resource.name] = await self.subscribe(
            resource,
            self._record,
            batch_size=self.batch_size,
            poll_interval=None if self.use_leader else self.poll_interval,
        )

    async def _leader_poll(self, run: JobRun) -> None:
        epoch = run.fence.epoch if run.fence is not None else None
        if epoch != self._epoch:  # a new term: resume from the cursor the last leader saved
            for sub in list(self._subs.values()):
                await sub.load(None, default=sub.cursor)
            self._epoch = epoch
        await self.flush()

    async def flush(self) -> int:
        """Poll every audited resource's feed until nothing is left to deliver now; the
        number of changes written (a change whose write is still in flight waits)."""
        total = 0
        async with self._poll_lock:
            for sub in list(self._subs.values()):
                while n := await sub.poll():
                    total += n
        return total

    # -- writing --------------------------------------------------------------------------
    def _image(self, data: Mapping[str, Any] | None) -> tuple[Any, bool]:
        if data is None:
            return None, False
        raw = msgspec.json.encode(data)
        if len(raw) > self.max_data_size:
            return {"_truncated": True, "_size": len(raw)}, True
        # as JSON: datetimes (timestamps=True, datetime fields) become ISO strings, bytes
        # base64; a record image kept as is failed the json field forever (the feed retries)
        return msgspec.json.decode(raw), False

    def _entry(self, change: Change) -> dict[str, Any]:
        who = change.actor
        if who is None and self.resolve_actor is not None:
            try:
                who = self.resolve_actor(change)
            except Exception as exc:  # a raising resolver must not block the trail forever
                self.log.warning(
                    "audit: actor(change) raised for %s/%s: %s; actor recorded as None",
                    change.resource,
                    change.id,
                    exc,
                    extra={"op": "audit", "resource": change.resource, "id": change.id},
                )
                who = None
        entry: dict[str, Any] = {
            "id": change.change_id,
            "resource": change.resource,
            "record_id": change.id,
            "operation": change.op,
            "actor": who,
            "at": change.at.isoformat(),
            "changed": list(change.changed),
            "truncated": False,
        }
        if not self.include_data:
            return entry
        images: dict[str, Any] = {}
        if self.diff_only and change.op == "update":
            before, after = change.before or {}, change.after or {}
            images["changes"] = {f: [before.get(f), after.get(f)] for f in change.changed}
        else:
            images["before"], images["after"] = change.before, change.after
        for key, value in images.items():
            entry[key], cut = self._image(value)
            entry["truncated"] = entry["truncated"] or cut
        return entry

    async def _record(self, changes: list[Change]) -> None:
        if self.logs is None:
            return
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for change in changes:
            if change.op not in self.operations:
                continue
            day = change.at.astimezone(UTC).date().isoformat()
            groups.setdefault((change.resource, day), []).append(self._entry(change))
        for (resource, day), entries in groups.items():
            segment = {
                "id": _SEP.join((day, resource, entries[0]["id"])),
                "resource": resource,
                "date": day,
                "first": entries[0]["id"],
                "last": entries[-1]["id"],
                "count": len(entries),
                "entries": entries,
            }
            try:
                await self.logs.insert(segment)
            except AlreadyExistsError:  # the same batch again (a crash before the cursor)
                await self.logs.replace(segment["id"], segment)
            self.written += len(entries)
            self.emit("audit.written", {"resource": resource, "count": len(entries)})

    # -- reading --------------------------------------------------------------------------
    async def _segment_ids(
        self, resource: str | None, since: datetime | None, until: datetime | None
    ) -> list[str]:
        assert self.logs is not None
        if resource is not None:
            ids = await self.logs.list_ids(
                partition="by_resource_date", partition_values={"resource": resource}
            )
        else:
            ids = await self.logs.list_ids()
        lo = since.astimezone(UTC).date().isoformat() if since else ""
        hi = until.astimezone(UTC).date().isoformat() if until else "~"
        return sorted(i for i in ids if lo <= i.split(_SEP, 1)[0] <= hi)

    async def get_audit_logs(
        self,
        *,
        resource: str | None = None,
        record_id: str | None = None,
        operation: str | None = None,
        actor: str | None = None,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Audit entries, oldest first, filtered by every argument given.

        ``since``/``until`` are inclusive bounds on the change time (naive means UTC).
        Reads only the segments of the named resource and of the dates in range (one LIST,
        one GET per segment).
        """
        if operation is not None:
            operation = _EVENT_NAMES.get(operation, operation)
        if operation is not None and operation not in _OPERATIONS:
            raise ValidationError(
                f"unknown operation {operation!r}",
                errors=[{"field": "operation", "rule": "enum", "message": "unknown"}],
                suggestion=f"use one of: {', '.join(_OPERATIONS)}",
                metadata={"field": "operation", "reason": "unknown operation"},
            )
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
        ):
            raise ValidationError(
                f"limit must be a non-negative integer or None, not {limit!r}",
                errors=[{"field": "limit", "rule": "integer", "message": "not a count"}],
                suggestion="pass limit=100, or None for every entry",
                metadata={"field": "limit", "reason": "not a non-negative integer"},
            )
        lo = _as_datetime(since, "since")
        hi = _as_datetime(until, "until")
        if self.logs is None:
            return []
        ids = await self._segment_ids(resource, lo, hi)
        found = await self.logs.get_many(ids)
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for item in found:
            if not item.ok or item.data is None:
                continue
            for entry in item.data["entries"]:
                if entry["id"] in seen:
                    continue
                seen.add(entry["id"])
                at = datetime.fromisoformat(entry["at"])
                if (
                    (resource is not None and entry["resource"] != resource)
                    or (record_id is not None and entry["record_id"] != record_id)
                    or (operation is not None and entry["operation"] != operation)
                    or (actor is not None and entry["actor"] != actor)
                    or (lo is not None and at < lo)
                    or (hi is not None and at > hi)
                ):
                    continue
                out.append(entry)
        out.sort(key=lambda e: e["id"])  # change ids are time-ordered ULIDs
        return out[:limit] if limit is not None else out

    async def get_record_history(self, resource: str, record_id: str) -> list[dict[str, Any]]:
        """Every audit entry of one record, oldest first."""
        return await self.get_audit_logs(resource=resource, record_id=record_id)

    async def cleanup(self, now: datetime | None = None) -> int:
        """Delete the segments of UTC dates older than ``retention_days``; the number of
        entries removed (one LIST, one GET per expired segment, batched DELETEs)."""
        if self.logs is None or self.retention_days is None:
            return 0
        if isinstance(now, JobRun):  # called as the cleanup job
            now = None
        current = now or datetime.now(UTC)
        cutoff = (current.astimezone(UTC).date() - timedelta(days=self.retention_days)).isoformat()
        ids = [i for i in await self.logs.list_ids() if i.split(_SEP, 1)[0] < cutoff]
        if not ids:
            return 0
        removed = 0
        for item in await self.logs.get_many(ids):
            if item.ok and item.data is not None:
                removed += int(item.data["count"])
        await self.logs.delete_many(ids)
        self.emit("audit.cleaned", {"removed": removed, "before": cutoff})
        return removed

    async def stats(self) -> dict[str, Any]:
        """Backlog and counters of every audited resource's feed subscription."""
        out: dict[str, Any] = {"written": self.written, "resources": {}}
        for name, sub in self._subs.items():
            s = sub.stats()
            out["resources"][name] = {"backlog": s.backlog, "lag": s.lag, "delivered": s.delivered}
        return out
