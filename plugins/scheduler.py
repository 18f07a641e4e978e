"""SchedulerPlugin: named jobs on the runtime's leader jobs, with retries and a history.

::

    scheduler = SchedulerPlugin(jobs={
        "cleanup": {"schedule": "@daily", "tz": "Europe/Berlin", "action": cleanup,
                    "timeout": 300, "retries": 2, "backoff": 10},
        "sync": {"schedule": "5m", "action": sync, "catch_up": "replay"},
    })

Each job is a leader job of the runtime (:meth:`Plugin.cron` / :meth:`Plugin.every` with
``leader=True``): every process schedules it, only the lease holder runs a tick, and the tick
is claimed by compare-and-swap, so each tick runs once across processes. This module adds
what a scheduler needs on top: schedules as cron (with ``tz``), ``@daily`` and friends, or
an interval; per-attempt timeouts that cancel the action; retries with exponential backoff;
a shared enable/disable switch; missed ticks coalesced or replayed; and a history resource.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import secrets
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from s3db_async import Database, Resource
from s3db_async.errors import AlreadyExistsError, ConfigError, NotFoundError, PluginError
from s3db_async.plugin import (
    Fence,
    Job,
    JobRun,
    Plugin,
    clock_monotonic,
    clock_sleep,
    clock_time,
)

__all__ = ["JobContext", "JobSpec", "SchedulerPlugin", "parse_interval"]

Action = Callable[[Database, "JobContext"], Any]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_INTERVAL = re.compile(r"^(?:every\s+)?((?:\d+(?:\.\d+)?\s*[smhdw]\s*)+)$", re.IGNORECASE)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CATCH_UP = ("coalesce", "replay")
_STATUSES = ("succeeded", "failed", "timeout")
_SCAN_LIMIT = 1_000_000  # ticks scanned back to the last one done (replay policy)
_JOB_KEYS = {
    "schedule",
    "action",
    "tz",
    "enabled",
    "timeout",
    "retries",
    "backoff",
    "backoff_factor",
    "max_backoff",
    "catch_up",
    "max_catch_up",
    "description",
}


def _bad(job: str, field_: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"scheduler job {job!r}: {field_} {reason}",
        suggestion=suggestion,
        metadata={"field": field_, "reason": reason, "job": job, "value": repr(value)},
    )


def parse_interval(value: str | float) -> float | None:
    """Seconds of an interval (``90``, ``"30s"``, ``"5m"``, ``"every 1h30m"``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _INTERVAL.match(value.strip())
    if match is None:
        return None
    return sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(match.group(1)))


def _number(job: str, name: str, value: Any, *, minimum: float, allow_none: bool) -> Any:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise _bad(job, name, f"must be a number >= {minimum:g}", f"pass {name}=...", value)
    return value


@dataclass(frozen=True)
class JobSpec:
    """One validated job of a :class:`SchedulerPlugin` (built from its ``jobs`` dict)."""

    name: str
    schedule: str
    action: Action
    tz: str = "UTC"
    enabled: bool = True
    timeout: float | None = None
    retries: int = 0
    backoff: float = 1.0
    backoff_factor: float = 2.0
    max_backoff: float = 300.0
    catch_up: str = "coalesce"
    max_catch_up: int = 100
    description: str = ""
    interval: float | None = field(default=None, compare=False)
    cron: str | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> JobSpec:
        """Validate ``config`` (the job's dict).

        :raises ConfigError: an unknown key, a missing or invalid schedule/action, bad numbers.
        """
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", name):
            raise _bad(
                str(name), "name", "is not a valid job name", "use letters, digits, _ . -", name
            )
        if not isinstance(config, Mapping):
            raise _bad(name, "config", "must be a dict", "pass {'schedule': ..., 'action': fn}")
        unknown = sorted(set(config) - _JOB_KEYS)
        if unknown:
            raise _bad(
                name,
                unknown[0],
                "is not a job option",
                f"use some of: {', '.join(sorted(_JOB_KEYS))}",
                unknown,
            )
        action = config.get("action")
        if not callable(action):
            raise _bad(
                name, "action", "must be callable", "pass 'action': fn with fn(db, ctx)", action
            )
        try:
            signature = inspect.signature(action)
        except (TypeError, ValueError):  # some builtins have none: called as given
            signature = None
        if signature is not None:
            try:
                signature.bind(None, None)
            except TypeError:
                raise _bad(
                    name,
                    "action",
                    "does not take (db, ctx)",
                    "define it as fn(db, ctx) (ctx is a JobContext; ignore it if unused)",
                    action,
                ) from None
        schedule = config.get("schedule")
        if schedule is None or isinstance(schedule, bool):
            raise _bad(
                name,
                "schedule",
                "is missing",
                "pass a cron expression ('0 3 * * *'), '@daily', or an interval ('5m', 300)",
            )
        interval: float | None = None
        cron: str | None = None
        if isinstance(schedule, int | float) or (
            isinstance(schedule, str) and _INTERVAL.match(schedule.strip())
        ):
            interval = parse_interval(schedule)
            if interval is None or not interval > 0 or not math.isfinite(interval):
                raise _bad(
                    name, "schedule", "must be a positive interval", "pass '5m' or 300", schedule
                )
        elif isinstance(schedule, str):
            cron = _MACROS.get(schedule.strip().lower(), schedule.strip())
        else:
            raise _bad(
                name, "schedule", "must be a string or seconds", "pass '0 3 * * *'", schedule
            )
        tz = config.get("tz", "UTC")
        if not isinstance(tz, str):
            raise _bad(name, "tz", "must be a time zone name", "pass tz='Europe/Berlin'", tz)
        if tz.upper() != "UTC":
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise _bad(
                    name, "tz", "is not a known time zone", "use an IANA name like 'UTC'", tz
                ) from exc
        if cron is not None and not croniter.is_valid(cron):
            raise _bad(
                name,
                "schedule",
                "is not a cron expression, macro or interval",
                "pass '0 3 * * *', '@daily' or '5m'",
                schedule,
            )
        retries = config.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise _bad(name, "retries", "must be an integer >= 0", "pass retries=3", retries)
        catch_up = config.get("catch_up", "coalesce")
        if catch_up not in _CATCH_UP:
            raise _bad(name, "catch_up", "is not a policy", "pass 'coalesce' or 'replay'", catch_up)
        max_catch_up = config.get("max_catch_up", 100)
        if isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or max_catch_up < 1:
            raise _bad(name, "max_catch_up", "must be an integer >= 1", "pass 100", max_catch_up)
        enabled = config.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _bad(name, "enabled", "must be True or False", "pass enabled=False", enabled)
        timeout = _number(name, "timeout", config.get("timeout"), minimum=0.001, allow_none=True)
        return cls(
            name=name,
            schedule=str(schedule),
            action=action,
            tz=tz,
            enabled=enabled,
            timeout=None if timeout is None else float(timeout),
            retries=retries,
            backoff=float(
                _number(name, "backoff", config.get("backoff", 1.0), minimum=0, allow_none=False)
            ),
            backoff_factor=float(
                _number(
                    name,
                    "backoff_factor",
                    config.get("backoff_factor", 2.0),
                    minimum=1,
                    allow_none=False,
                )
            ),
            max_backoff=float(
                _number(
                    name,
                    "max_backoff",
                    config.get("max_backoff", 300.0),
                    minimum=0,
                    allow_none=False,
                )
            ),
            catch_up=catch_up,
            max_catch_up=max_catch_up,
            description=str(config.get("description", "")),
            interval=interval,
            cron=cron,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (exponential, capped)."""
        return float(min(self.max_backoff, self.backoff * self.backoff_factor ** (attempt - 1)))


@dataclass(frozen=True)
class JobContext:
    """What an action receives as ``ctx``: ``action(db, ctx)``."""

    job: str
    tick: datetime
    """The scheduled time this run is for (now, for :meth:`SchedulerPlugin.run_job`)."""
    attempt: int
    """1 for the first try, 2 for the first retry, ..."""
    scheduled: bool
    epoch: int | None
    """The fencing epoch of the leader term that runs it (``None`` for a manual run)."""
    fence: Fence | None
    plugin: SchedulerPlugin
    replayed: bool = False
    """True for a missed tick run by the ``replay`` policy."""


class SchedulerPlugin(Plugin):
    """Named jobs (cron with ``tz``, ``@daily`` and friends, or intervals) that run once per
    tick across processes, with timeouts that cancel, retries with backoff, missed-tick
    policies and a run history in the plugin resource ``plg_scheduler_history``.
    """

    def __init__(
        self,
        *,
        jobs: Mapping[str, Mapping[str, Any]] | None = None,
        history: bool = True,
        lease_ttl: float = 30.0,
        max_error_length: int = 2000,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if jobs is not None and not isinstance(jobs, Mapping):
            raise ConfigError(
                "SchedulerPlugin(jobs=...) must be a dict of job name -> job options",
                suggestion="pass jobs={'nightly': {'schedule': '@daily', 'action': fn}}",
                metadata={"field": "jobs", "reason": "not a dict"},
            )
        self.specs: dict[str, JobSpec] = {
            name: JobSpec.from_config(name, config) for name, config in (jobs or {}).items()
        }
        if not isinstance(history, bool):
            raise _bad("*", "history", "must be True or False", "pass history=False", history)
        if (
            isinstance(max_error_length, bool)
            or not isinstance(max_error_length, int)
            or max_error_length < 0
        ):
            raise _bad(
                "*",
                "max_error_length",
                "must be an integer >= 0",
                "pass max_error_length=2000",
                max_error_length,
            )
        self.history_enabled = history
        self.lease_ttl = float(_number("*", "lease_ttl", lease_ttl, minimum=0.01, allow_none=False))
        self.max_error_length = max_error_length
        self._manual: set[str] = set()  # jobs being run by run_job() in this process
        self.history: Resource | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    async def on_install(self) -> None:
        if self.history_enabled:
            self.history = await self.create_plugin_resource(
                "history",
                attributes={
                    "job": "string|required",
                    "tick": "string|required",
                    "status": "string|required",
                    "attempts": "integer",
                    "duration": "number",
                    "error": "string|optional",
                    "epoch": "integer|optional",
                    "holder": "string|optional",
                    "scheduled": "boolean",
                    "replayed": "boolean",
                    "started_at": "string",
                    "finished_at": "string",
                },
                partitions={"by_job": {"fields": {"job": "string"}}},
            )

    async def on_start(self) -> None:
        self._started = True
        for spec in self.specs.values():
            self._schedule(spec)

    async def on_stop(self) -> None:
        self._started = False

    def _schedule(self, spec: JobSpec) -> Job:
        async def run(job_run: JobRun) -> list[dict[str, Any]]:
            return await self._run(spec, job_run)

        if spec.interval is not None:
            return self.every(
                spec.interval, run, name=spec.name, leader=True, lease_ttl=self.lease_ttl
            )
        assert spec.cron is not None
        return self.cron(
            spec.cron, run, tz=spec.tz, name=spec.name, leader=True, lease_ttl=self.lease_ttl
        )

    # -- control ---------------------------------------------------------------------------
    def _spec(self, name: str) -> JobSpec:
        spec = self.specs.get(name)
        if spec is None:
            raise NotFoundError(
                f"scheduler has no job {name!r}",
                suggestion=f"known jobs: {', '.join(sorted(self.specs)) or 'none'}",
                metadata={"field": "name", "reason": "unknown job", "job": name},
            )
        return spec

    def job(self, name: str) -> Job:
        """The runtime :class:`~s3db_async.plugin.Job` of ``name`` (``next_run``, ``runs``...).

        :raises NotFoundError: no such job, or the plugin is not started.
        """
        self._spec(name)
        job = self.jobs.get(name)
        if job is None:
            raise NotFoundError(
                f"scheduler job {name!r} is not scheduled (the plugin is not started)",
                suggestion="connect the database (or start the plugin) first",
                metadata={"field": "name", "reason": "not started", "job": name},
            )
        return job

    async def add_job(self, name: str, config: Mapping[str, Any]) -> JobSpec:
        """Add and schedule a job at run time (in this process; add it everywhere).

        :raises ConfigError: invalid options, or a job of that name exists.
        """
        if name in self.specs:
            raise ConfigError(
                f"scheduler job {name!r} exists",
                suggestion="remove_job() it first, or pick another name",
                metadata={"field": "name", "reason": "duplicate job", "job": name},
            )
        spec = JobSpec.from_config(name, config)
        self.specs[name] = spec
        if self._started:
            self._schedule(spec)
        self.emit("scheduler.job_added", self._payload(job=name, schedule=spec.schedule))
        return spec

    async def remove_job(self, name: str) -> None:
        """Unschedule ``name`` in this process (a run going on here is cancelled). The
        shared state (switch, replay marker) stays: other processes may still run the job;
        ``uninstall(purge_data=True)`` removes it.

        :raises NotFoundError: no such job.
        """
        self._spec(name)
        job = self.jobs.get(name)
        if job is not None:
            await job.cancel()
        del self.specs[name]
        self.emit("scheduler.job_removed", self._payload(job=name))

    async def enable(self, name: str) -> None:
        """Switch ``name`` on for every process (one PUT; the leader reads it each tick)."""
        await self._set_enabled(name, True)

    async def disable(self, name: str) -> None:
        """Switch ``name`` off for every process: its ticks pass without running."""
        await self._set_enabled(name, False)

    async def _set_enabled(self, name: str, enabled: bool) -> None:
        self._spec(name)
        await self.get_storage().set(
            self._switch_key(name), {"enabled": enabled, "at": clock_time()}
        )
        self.emit(f"scheduler.{'enabled' if enabled else 'disabled'}", self._payload(job=name))

    async def is_enabled(self, name: str) -> bool:
        """The shared switch of ``name`` (the job's ``enabled`` option until switched)."""
        spec = self._spec(name)
        data = await self.get_storage().get(self._switch_key(name))
        if isinstance(data, Mapping) and isinstance(data.get("enabled"), bool):
            return bool(data["enabled"])
        return spec.enabled

    async def run_job(self, name: str) -> dict[str, Any]:
        """Run ``name`` now in this process (with its timeout and retries, even when
        disabled) and return its history entry.

        :raises PluginError: a run of ``name`` is already going in this process.
        """
        spec = self._spec(name)
        job = self.jobs.get(name)
        if name in self._manual or (job is not None and job.running):
            raise PluginError(
                f"scheduler job {name!r} is running",
                suggestion="wait for it (plugin.job(name).wait_idle()) and try again",
                metadata={"field": "name", "reason": "running", "job": name},
            )
        self._manual.add(name)
        try:
            now = datetime.fromtimestamp(clock_time(), UTC)
            return await self._run_tick(spec, now, fence=None, scheduled=False, replayed=False)
        finally:
            self._manual.discard(name)

    async def get_history(
        self, name: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """History entries, newest tick first (of one job when ``name`` is given).

        :raises PluginError: the plugin was created with ``history=False``.
        """
        if self.history is None:
            raise PluginError(
                "SchedulerPlugin(history=False) keeps no history",
                suggestion="create the plugin with history=True",
                metadata={"field": "history", "reason": "disabled"},
            )
        if status is not None and status not in _STATUSES:
            raise _bad(
                "*", "status", "is not a run status", f"pass one of {', '.join(_STATUSES)}", status
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise _bad("*", "limit", "must be an integer >= 0", "pass limit=10 or None", limit)
        if name is not None:
            records = await self.history.list(partition="by_job", partition_values={"job": name})
        else:
            records = await self.history.list()
        entries = [dict(r) for r in records if status is None or r.get("status") == status]
        entries.sort(key=lambda e: (e["tick"], e["finished_at"]), reverse=True)
        return entries[:limit] if limit is not None else entries

    # -- running ---------------------------------------------------------------------------
    def _switch_key(self, name: str) -> str:
        return self.get_storage().get_plugin_key(None, "switch", name)

    def _last_key(self, name: str) -> str:
        return self.get_storage().get_plugin_key(None, "done", name)

    async def _run(self, spec: JobSpec, job_run: JobRun) -> list[dict[str, Any]]:
        if not job_run.scheduled:  # job.run_now(): like run_job, outside the schedule
            entry = await self._run_tick(
                spec, job_run.tick, fence=None, scheduled=False, replayed=False
            )
            return [entry]
        if not await self.is_enabled(spec.name):
            self.emit(
                "scheduler.skipped",
                self._payload(job=spec.name, tick=job_run.tick, reason="disabled"),
            )
            return []
        ticks = [job_run.tick]
        if spec.catch_up == "replay":
            ticks = await self._due_ticks(spec, job_run)
        entries: list[dict[str, Any]] = []
        lease = job_run.job.lease
        for i, tick in enumerate(ticks):
            entry = await self._run_tick(
                spec, tick, fence=job_run.fence, scheduled=True, replayed=i < len(ticks) - 1
            )
            entries.append(entry)
            if spec.catch_up == "replay" and lease is not None:
                # the fence refuses this write once a newer term has written the key
                await lease.fenced_set(self._last_key(spec.name), {"tick": tick.timestamp()})
        failed = [e for e in entries if e["status"] != "succeeded"]
        if failed:
            raise PluginError(
                f"scheduler job {spec.name!r} failed: {failed[-1]['error']}",
                metadata={"job": spec.name, "reason": failed[-1]["status"]},
            )
        return entries

    async def _due_ticks(self, spec: JobSpec, job_run: JobRun) -> list[datetime]:
        """The ticks after the last one done (replay policy), oldest first, at most
        ``max_catch_up`` of them (the newest), ending with this run's tick."""
        data = await self.get_storage().get(self._last_key(spec.name))
        tick = job_run.tick.timestamp()
        if not isinstance(data, Mapping) or not isinstance(data.get("tick"), int | float):
            return [job_run.tick]
        schedule = job_run.job.schedule
        missed: deque[float] = deque(maxlen=spec.max_catch_up - 1)
        t = float(data["tick"])
        for _ in range(_SCAN_LIMIT):  # keeps the newest max_catch_up - 1 missed ticks
            t = schedule.next_after(t)
            if t >= tick:
                break
            missed.append(t)
        out = [*missed, tick]
        return [datetime.fromtimestamp(t, UTC) for t in out]

    async def _run_tick(
        self,
        spec: JobSpec,
        tick: datetime,
        *,
        fence: Fence | None,
        scheduled: bool,
        replayed: bool,
    ) -> dict[str, Any]:
        started_at = datetime.fromtimestamp(clock_time(), UTC)
        started = clock_monotonic()
        status, error, attempt = "failed", None, 0
        self.emit(
            "scheduler.started",
            self._payload(job=spec.name, tick=tick, scheduled=scheduled, replayed=replayed),
        )
        for attempt in range(1, spec.retries + 2):
            ctx = JobContext(
                job=spec.name,
                tick=tick,
                attempt=attempt,
                scheduled=scheduled,
                epoch=None if fence is None else fence.epoch,
                fence=fence,
                plugin=self,
                replayed=replayed,
            )
            status, error = await self._attempt(spec, ctx)
            if status == "succeeded":
                break
            if attempt <= spec.retries:
                delay = spec.delay(attempt)
                self.emit(
                    "scheduler.retrying",
                    self._payload(
                        job=spec.name, tick=tick, attempt=attempt, delay=delay, error=error
                    ),
                )
                await clock_sleep(delay)
        duration = clock_monotonic() - started
        message = None
        if error is not None:
            message = "".join(traceback.format_exception_only(error)).strip()
            message = message[: self.max_error_length]
        entry: dict[str, Any] = {
            "id": f"{spec.name}.{int(tick.timestamp() * 1000)}."
            + (f"{fence.epoch}" if fence is not None else f"m{secrets.token_hex(5)}"),
            "job": spec.name,
            "tick": tick.isoformat(),
            "status": status,
            "attempts": attempt,
            "duration": duration,
            "error": message,
            "epoch": None if fence is None else fence.epoch,
            "holder": None if fence is None else fence.holder,
            "scheduled": scheduled,
            "replayed": replayed,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.fromtimestamp(clock_time(), UTC).isoformat(),
        }
        if self.history is not None:
            stored = {k: v for k, v in entry.items() if v is not None}
            try:
                await self.history.insert(stored)  # If-None-Match: one PUT (+ partition ref)
            except AlreadyExistsError:
                await self.history.upsert(stored)  # the same run recorded again
        event = "scheduler.succeeded" if status == "succeeded" else "scheduler.failed"
        self.emit(event, self._payload(**{k: v for k, v in entry.items() if k != "id"}))
        return entry

    async def _attempt(self, spec: JobSpec, ctx: JobContext) -> tuple[str, BaseException | None]:
        """One try of the action; a timeout cancels it (the coroutine gets CancelledError)."""
        work = asyncio.ensure_future(self._call(spec.action, ctx))
        timer = None
        if spec.timeout is not None:
            timer = asyncio.ensure_future(clock_sleep(spec.timeout))
        try:
            done, _ = await asyncio.wait(
                {work} if timer is None else {work, timer}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if timer is not None:
                timer.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, *([timer] if timer else []), return_exceptions=True)
        if work not in done:
            return "timeout", TimeoutError(
                f"job {spec.name!r} timed out after {spec.timeout:g}s and was cancelled"
            )
        if work.cancelled():
            return "failed", asyncio.CancelledError(f"job {spec.name!r} cancelled itself")
        exc = work.exception()
        if exc is not None:
            return "failed", exc
        return "succeeded", None

    async def _call(self, action: Action, ctx: JobContext) -> Any:
        result = action(self.db, ctx)
        if inspect.isawaitable(result):
            return await result
        return result
