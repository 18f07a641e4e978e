"""Jobs: ``plugin.every(seconds, fn)`` and ``plugin.cron("*/5 * * * *", fn)``.

::

    job = plugin.every(60, self.compact, timeout=30)              # every process
    job = plugin.cron("0 3 * * *", self.report, tz="Europe/Berlin", leader=True)  # once

A job is one scheduler task of the plugin (spawned with :meth:`Plugin.spawn`, so
``stop()``, ``uninstall()`` and ``db.disconnect()`` end it) on the database's event loop.
Each due tick starts one run of ``fn`` as another task of the plugin:

- **no overlap**: a tick that finds the previous run still going is skipped, counted in
  :attr:`Job.skipped` and emitted as ``job.skipped``;
- **timeout**: the run is cancelled (its coroutine gets ``CancelledError``) after
  ``timeout`` seconds and reported as ``job.failed`` with a ``TimeoutError``;
- **errors** are logged and emitted as ``job.failed``; successes as ``job.succeeded``;
- **missed ticks** (the loop was busy or the process slept) collapse into one run.

``leader=True`` runs each tick once across every process that schedules the job: the
processes elect a leader on the lease ``job.{name}`` and only the leader runs ticks; before
each run it claims the tick by compare-and-swap on ``jobs/{name}`` (the last tick run and
the fencing epoch of the term that ran it), so a tick is never run twice, even across a
change of leader or clock differences. Ticks of leader jobs sit on a grid shared by all
processes: multiples of ``seconds`` since the Unix epoch for :meth:`~Plugin.every`, the cron
times for :meth:`~Plugin.cron`.

Cron expressions are parsed with ``croniter`` (standard 5 fields, optionally a 6th for
seconds), in the time zone ``tz`` (DST gaps and repeats are handled by croniter). Time comes
from :mod:`s3db_async._clock`, so tests drive schedules with a ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import _clock
from .._cas import RETRY, _Retry, conditional_put
from ..errors import ConfigError, LeaseLostError, PreconditionFailed, WriteOutcomeUnknownError
from .entries import CONTENT_TYPE
from .leases import Fence, Lease, check_lease_name

if TYPE_CHECKING:
    from .base import Plugin

__all__ = [
    "Job",
    "JobRun",
    "Schedule",
    "cron_schedule",
    "default_job_name",
    "every_schedule",
    "stop_jobs",
]


_NAME_MAX = 96  # a job's lease is named job.{name}: at most 100 characters


class Schedule(Protocol):
    """When a job runs: the first tick strictly after a wall time (seconds since the epoch)."""

    def next_after(self, t: float) -> float: ...


@dataclass(frozen=True, slots=True)
class _Every:
    seconds: float
    anchor: float

    def next_after(self, t: float) -> float:
        n = math.floor((t - self.anchor) / self.seconds) + 1
        while (at := self.anchor + n * self.seconds) <= t:  # float rounding on the grid
            n += 1
        return at

    def __str__(self) -> str:
        return f"every {self.seconds:g}s"


class _Cron:
    def __init__(self, expression: str, tz: tzinfo) -> None:
        from croniter import croniter

        self.expression, self.tz, self._croniter = expression, tz, croniter

    def next_after(self, t: float) -> float:
        start = datetime.fromtimestamp(t, self.tz)
        return float(self._croniter(self.expression, start).get_next(float))

    def __str__(self) -> str:
        return f"cron {self.expression!r} ({self.tz})"


def every_schedule(seconds: float, *, anchor: float) -> Schedule:
    """Ticks at ``anchor + k * seconds``.

    :raises ConfigError: ``seconds`` is not a positive number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(
            f"every() needs a positive number of seconds, got {seconds!r}",
            suggestion="pass plugin.every(60, fn) for once a minute",
            metadata={"field": "seconds", "reason": "not a positive number", "value": seconds},
        )
    if not math.isfinite(seconds):
        raise ConfigError(
            f"every() needs a finite number of seconds, got {seconds!r}",
            metadata={"field": "seconds", "reason": "not finite", "value": seconds},
        )
    return _Every(float(seconds), anchor)


def cron_schedule(expression: str, tz: str | tzinfo = "UTC") -> Schedule:
    """The ticks of a cron ``expression`` in time zone ``tz``.

    :raises ConfigError: the expression or the time zone is invalid.
    """
    from croniter import croniter

    if isinstance(tz, str):
        try:
            zone: tzinfo = UTC if tz.upper() == "UTC" else ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"unknown time zone {tz!r}",
                suggestion="use an IANA name such as 'UTC' or 'Europe/Berlin'",
                metadata={"field": "tz", "reason": "unknown time zone", "value": tz},
            ) from exc
    elif isinstance(tz, tzinfo):
        zone = tz
    else:
        raise ConfigError(
            f"tz must be a time zone name or a tzinfo, got {tz!r}",
            metadata={"field": "tz", "reason": "wrong type", "value": repr(tz)},
        )
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ConfigError(
            f"invalid cron expression {expression!r}",
            suggestion="use 5 fields: minute hour day-of-month month day-of-week "
            "(e.g. '*/5 * * * *' for every five minutes)",
            metadata={
                "field": "expression",
                "reason": "not a cron expression",
                "value": expression,
            },
        )
    return _Cron(expression, zone)


@dataclass(frozen=True, slots=True)
class JobRun:
    """What a job function that takes one argument receives for each run."""

    job: Job
    tick: datetime
    """The scheduled time of this run (the time of :meth:`Job.run_now` for a manual run)."""
    scheduled: bool
    fence: Fence | None
    """The lease's fencing token for leader jobs (``None`` otherwise)."""


def _takes_run(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        p.kind is inspect.Parameter.VAR_POSITIONAL
        or (p.kind in positional and p.default is inspect.Parameter.empty)
        for p in params
    )


def default_job_name(fn: Callable[..., Any]) -> str:
    """A job name from ``fn``'s name (characters a lease name cannot hold become ``_``)."""
    raw = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "job"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(raw)).strip("_.") or "job"
    return name[:_NAME_MAX]


class Job:
    """A scheduled job of a plugin, from :meth:`Plugin.every` or :meth:`Plugin.cron`.

    :attr:`next_run` and :attr:`last_run` are aware UTC datetimes (``None`` when unknown);
    :attr:`runs`, :attr:`failures` and :attr:`skipped` count runs, failed runs and ticks
    skipped because the previous run was still going.
    """

    def __init__(
        self,
        plugin: Plugin,
        name: str,
        schedule: Schedule,
        fn: Callable[..., Any],
        *,
        leader: bool = False,
        timeout: float | None = None,
        lease_ttl: float = 30.0,
    ) -> None:
        self.name = check_lease_name(name, "job")
        if len(name) > _NAME_MAX:  # its lease is named job.{name}
            raise ConfigError(
                f"job name {name[:20]!r}... is longer than {_NAME_MAX} characters",
                suggestion="pass a shorter name=",
                metadata={"field": "name", "reason": "too long", "job": name},
            )
        if not callable(fn):
            raise ConfigError(
                f"job {name!r}: fn must be callable, got {fn!r}",
                metadata={"field": "fn", "reason": "not callable", "job": name},
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ConfigError(
                f"job {name!r}: timeout must be a positive number of seconds, got {timeout!r}",
                suggestion="pass timeout=30, or None for no timeout",
                metadata={"field": "timeout", "reason": "not a positive number", "job": name},
            )
        self.schedule = schedule
        self.fn = fn
        self.leader = leader
        self.timeout = float(timeout) if timeout is not None else None
        self._plugin = plugin
        self._takes_run = _takes_run(fn)
        self.lease: Lease | None = (
            plugin.leader(f"job.{self.name}", ttl=lease_ttl) if leader else None
        )
        storage = plugin.get_storage()
        self._state_key = storage.get_plugin_key(None, "jobs", self.name)
        self._state_etag: str | None = None
        self._next: float | None = None
        self._last: float | None = None
        self._running: asyncio.Task[Any] | None = None
        self._paused = False
        self._cancelled = False
        self._loop: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self.last_error: BaseException | None = None
        self.last_result: Any = None

    def __repr__(self) -> str:
        return f"<Job {self.name!r} {self.schedule} next={self.next_run}>"

    # -- state ---------------------------------------------------------------------------
    @property
    def next_run(self) -> datetime | None:
        """When the next tick is due (``None`` when paused or cancelled)."""
        if self._next is None or self._paused or self._cancelled:
            return None
        return datetime.fromtimestamp(self._next, UTC)

    @property
    def last_run(self) -> datetime | None:
        """When the last run started."""
        return None if self._last is None else datetime.fromtimestamp(self._last, UTC)

    @property
    def running(self) -> bool:
        """True while a run is going."""
        return self._running is not None and not self._running.done()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume` (ticks pass without running)."""
        return self._paused

    @property
    def cancelled(self) -> bool:
        """True after :meth:`cancel` (or the plugin's stop)."""
        return self._cancelled

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler task (done by ``every``/``cron``)."""
        if self._cancelled:
            raise ConfigError(f"job {self.name!r} was cancelled", metadata={"job": self.name})
        if self._loop is None or self._loop.done():
            after = _clock.time()
            self._next = self.schedule.next_after(after)
            self._loop = self._plugin.spawn(self._schedule_loop(after), name=f"job:{self.name}")

    def pause(self) -> None:
        """Let ticks pass without running until :meth:`resume` (a run going on continues)."""
        self._paused = True

    def resume(self) -> None:
        """Run ticks again from the next one."""
        self._paused = False

    async def run_now(self) -> bool:
        """Run ``fn`` once now, outside the schedule, and wait for it to finish.

        Returns ``False`` (and counts a skip) when a run is already going. Errors and
        timeouts are reported as for scheduled runs (``job.failed``, :attr:`last_error`),
        not raised. A manual run of a leader job runs here, whichever process leads.
        """
        if self.running:
            self._skip(_clock.time(), manual=True)
            return False
        task = self._start_run(_clock.time(), scheduled=False)
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def wait_idle(self) -> None:
        """Wait until no run of this job is going."""
        while self.running:
            await self._idle.wait()

    async def cancel(self) -> None:
        """Stop the schedule, cancel a run going on and release the job's lease."""
        self._cancelled = True
        tasks = [t for t in (self._loop, self._running) if t is not None and not t.done()]
        current = asyncio.current_task()
        for t in tasks:
            if t is not current:
                t.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        if self.lease is not None:
            await self.lease.release()
        self._plugin._jobs.pop(self.name, None)

    # -- scheduling ------------------------------------------------------------------------
    async def _schedule_loop(self, after: float) -> None:
        if self.lease is not None:
            self.lease.start()
        while True:
            due = self.schedule.next_after(after)
            self._next = due
            while (left := due - _clock.time()) > 0:
                await _clock.sleep(left)
            now = _clock.time()
            tick = due
            while tick < (later := self.schedule.next_after(tick)) <= now:
                tick = later  # missed ticks collapse into the latest one
            after = tick
            if self._paused:
                continue
            if self.lease is not None and not self.lease.is_leader:
                continue
            if self.running:
                self._skip(tick)
                continue
            if self.lease is not None:
                try:
                    claimed = await self._claim(tick)
                except LeaseLostError:
                    continue
                except Exception as exc:
                    self._plugin.log.warning(
                        "job %s: could not claim tick %s: %s",
                        self.name,
                        tick,
                        exc,
                        extra={"op": "job", "job": self.name, "key": self._state_key},
                    )
                    continue
                if not claimed:
                    continue
            try:
                self._start_run(tick, scheduled=True)
            except LeaseLostError:
                continue  # the term ended between the claim and the start

    def _skip(self, tick: float, *, manual: bool = False) -> None:
        self.skipped += 1
        self._plugin.log.info(
            "job %s: tick %s skipped, the previous run is still going",
            self.name,
            datetime.fromtimestamp(tick, UTC),
            extra={"op": "job", "job": self.name},
        )
        self._plugin.emit(
            "job.skipped",
            self._plugin._payload(
                name=self.name,
                tick=datetime.fromtimestamp(tick, UTC),
                reason="overlap",
                skipped=self.skipped,
                manual=manual,
            ),
        )

    async def _claim(self, tick: float) -> bool:
        """Record ``tick`` as run by this term (compare-and-swap); ``False`` if it was."""
        assert self.lease is not None
        lease = self.lease
        storage = self._plugin.get_storage()
        full = self._state_key
        write = secrets.token_hex(6)
        cached = self._state_etag

        async def step(_: int) -> bool | _Retry:
            nonlocal cached
            fence = lease.fence  # LeaseLostError once the term is over
            etag: str | None
            if cached is not None:
                etag, last, seen = cached, -math.inf, 0
            else:
                entry = await storage._read(full)
                if entry is None:
                    etag, last, seen = None, -math.inf, 0
                else:
                    d = entry.data if isinstance(entry.data, dict) else {}
                    etag = entry.etag
                    last = float(d.get("tick", -math.inf))
                    seen = int(d.get("epoch", 0))
                    if d.get("w") == write:
                        return True  # our write landed although its answer was lost
            if last >= tick:
                return False
            if seen > fence.epoch:
                raise lease._lost_error(f"job state written by a newer term (epoch {seen})")
            data = {"tick": tick, "epoch": fence.epoch, "holder": fence.holder, "w": write}
            body, md = storage._encode(full, data, expires_at=None, behavior="body-only")
            md.update(fence.metadata)
            try:
                new = await conditional_put(
                    storage.store,
                    full,
                    body,
                    md,
                    content_type=CONTENT_TYPE,
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except (PreconditionFailed, WriteOutcomeUnknownError):
                cached = None
                return RETRY  # re-read: someone else's claim, or ours (then "w" tells)
            self._state_etag = new
            return True

        try:
            return await storage._cas(step, full, "job tick claim")
        except BaseException:
            self._state_etag = None
            raise

    def _start_run(self, tick: float, *, scheduled: bool) -> asyncio.Task[Any]:
        fence = None
        if self.lease is not None and scheduled:
            fence = self.lease.fence
        self._last = _clock.time()
        self._idle.clear()
        run = JobRun(self, datetime.fromtimestamp(tick, UTC), scheduled, fence)
        task = self._plugin.spawn(self._execute(run), name=f"job-run:{self.name}")
        self._running = task
        task.add_done_callback(self._run_done)
        return task

    def _run_done(self, task: asyncio.Task[Any]) -> None:
        if self._running is task:
            self._running = None
            self._idle.set()

    async def _execute(self, run: JobRun) -> None:
        started = _clock.monotonic()
        work = asyncio.ensure_future(self._call(run))
        timer = lost = None
        if self.timeout is not None:
            timer = asyncio.ensure_future(_clock.sleep(self.timeout))
        if self.lease is not None and run.fence is not None:
            lost = asyncio.ensure_future(self.lease.wait_lost(epoch=run.fence.epoch))
        watchers = [w for w in (timer, lost) if w is not None]
        try:
            done, _ = await asyncio.wait({work, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in watchers:
                w.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, *watchers, return_exceptions=True)
        error: BaseException | None = None
        reason = "error"
        if work not in done and timer is not None and timer in done:
            reason = "timeout"
            error = TimeoutError(f"job {self.name!r} timed out after {self.timeout:g}s")
        elif work not in done:
            reason = "leader_lost"
            error = LeaseLostError(
                f"job {self.name!r}: the lease was lost during the run, which was cancelled",
                metadata={"job": self.name, "reason": "leader_lost"},
            )
        elif work.cancelled():
            reason = "cancelled"
            error = asyncio.CancelledError(f"job {self.name!r}: the run cancelled itself")
        elif work.exception() is not None:
            error = work.exception()
        duration = _clock.monotonic() - started
        self.runs += 1
        if error is None:
            self.last_result = work.result()
            self.last_error = None
            self._plugin.emit(
                "job.succeeded",
                self._plugin._payload(
                    name=self.name, tick=run.tick, duration=duration, scheduled=run.scheduled
                ),
            )
            return
        self.failures += 1
        self.last_error = error
        self._plugin.log.error(
            "job %s failed (%s): %s",
            self.name,
            reason,
            error,
            exc_info=error if reason == "error" else None,
            extra={"op": "job", "job": self.name},
        )
        self._plugin.emit(
            "job.failed",
            self._plugin._payload(
                name=self.name,
                tick=run.tick,
                duration=duration,
                scheduled=run.scheduled,
                reason=reason,
                error=error,
            ),
        )

    async def _call(self, run: JobRun) -> Any:
        result = self.fn(run) if self._takes_run else self.fn()
        if inspect.isawaitable(result):
            return await result
        return result


async def stop_jobs(jobs: list[Job], log: logging.Logger) -> None:
    """Cancel ``jobs`` (on the plugin's stop); never raises."""
    for job in jobs:
        try:
            await job.cancel()
        except Exception as exc:
            log.warning("job %s: stop failed: %s", job.name, exc, extra={"op": "job"})
