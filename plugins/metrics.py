"""MetricsPlugin: counts, errors and latency histograms per resource and operation.

::

    from s3db_async.plugins import MetricsPlugin

    async with Database(url, plugins=[MetricsPlugin(slow_threshold_ms=200)]) as db:
        ...
        metrics = db.plugins.get(MetricsPlugin)
        print(metrics.get_metrics()["resources"]["orders"]["get"]["count"])
        text = metrics.prometheus_text()           # needs the 'metrics' extra
        app.mount("/metrics", metrics.asgi_app())  # FastAPI / Starlette

Each measured method of each resource gets one middleware that closes over its own series
(a counter, an error counter and a histogram), so the hot path does no lookup: two clock
reads, an increment and a bisect. Nothing is sent anywhere unless asked: ``flush_interval``
writes the delta since the previous flush to the plugin resource ``plg_metrics_snapshots``
(one record per flush and process, partitioned by date), ``port=`` serves Prometheus over
HTTP, ``prometheus_text()`` / ``asgi_app()`` expose the same figures in-process.
"""

from __future__ import annotations

import bisect
import collections
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from s3db_async import Resource
from s3db_async.errors import ConfigError, ValidationError
from s3db_async.plugin import JobRun, Plugin, require_dependency

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_OPERATIONS", "MetricsPlugin"]

DEFAULT_OPERATIONS = (
    "insert", "insert_many", "get", "get_many", "get_or_none", "exists", "update", "patch",
    "replace", "upsert", "delete", "delete_many", "list", "list_ids", "count", "page", "query",
)  # fmt: skip
DEFAULT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency histogram; a last ``+Inf`` bucket is implied."""

_SEP = "~"
_ATTRIBUTES: dict[str, Any] = {
    "date": "string|required",
    "at": "string|required",
    "process": "string|required",
    "period": "number|required",
    "series": "json|required",
    "slow": "json|optional",
}
_PARTITIONS = {"by_date": {"fields": {"date": "string"}}}


def _bad(field: str, reason: str, suggestion: str, value: Any) -> ConfigError:
    return ConfigError(
        f"MetricsPlugin: {field} {reason}",
        suggestion=suggestion,
        metadata={"field": field, "reason": reason, "value": repr(value)},
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class _Series:
    """The figures of one (resource, operation): plain attributes, updated in place."""

    __slots__ = ("buckets", "count", "error_types", "errors", "max", "slow", "sum")

    def __init__(self, n_buckets: int) -> None:
        self.buckets = [0] * (n_buckets + 1)  # per bucket (not cumulative); last is +Inf
        self.clear()

    def clear(self) -> None:
        """Zero the figures in place (the middlewares hold this object)."""
        self.count = 0
        self.errors = 0
        self.slow = 0
        self.sum = 0.0
        self.max = 0.0
        self.buckets = [0] * len(self.buckets)
        self.error_types: dict[str, int] = {}

    def copy(self) -> _Series:
        out = _Series(len(self.buckets) - 1)
        out.count, out.errors, out.slow, out.sum, out.max = (
            self.count, self.errors, self.slow, self.sum, self.max,
        )  # fmt: skip
        out.buckets = list(self.buckets)
        out.error_types = dict(self.error_types)
        return out

    def minus(self, other: _Series | None) -> _Series:
        out = self.copy()
        if other is not None:
            out.count -= other.count
            out.errors -= other.errors
            out.slow -= other.slow
            out.sum -= other.sum
            out.buckets = [a - b for a, b in zip(self.buckets, other.buckets, strict=True)]
            out.error_types = {
                k: v - other.error_types.get(k, 0)
                for k, v in self.error_types.items()
                if v - other.error_types.get(k, 0)
            }
        return out

    def add(self, other: Mapping_) -> None:
        self.count += int(other["count"])
        self.errors += int(other["errors"])
        self.slow += int(other.get("slow", 0))
        self.sum += float(other["sum"])
        self.max = max(self.max, float(other.get("max", 0.0)))
        for i, n in enumerate(other["buckets"][: len(self.buckets)]):
            self.buckets[i] += int(n)
        for k, v in (other.get("error_types") or {}).items():
            self.error_types[k] = self.error_types.get(k, 0) + int(v)

    def quantile(self, q: float, bounds: Sequence[float]) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` (``None``: no data; the
        largest observed value when it falls in the ``+Inf`` bucket)."""
        if not self.count:
            return None
        rank, seen = q * self.count, 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank and n:
                return bounds[i] if i < len(bounds) else self.max
        return self.max

    def as_dict(self, bounds: Sequence[float]) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "slow": self.slow,
            "sum": round(self.sum, 9),
            "max": round(self.max, 9),
            "avg_ms": round(1000 * self.sum / self.count, 4) if self.count else 0.0,
            "p50_ms": _ms(self.quantile(0.5, bounds)),
            "p99_ms": _ms(self.quantile(0.99, bounds)),
            "buckets": list(self.buckets),
        }


Mapping_ = dict[str, Any]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 4)


class MetricsPlugin(Plugin):
    """Counts, errors, latency histograms and a slow-operation log, per resource and operation.

    :param resources: names to measure; ``None`` measures every resource but plugin ones
        (``plg_*``), including resources created later.
    :param operations: the resource methods to measure (default :data:`DEFAULT_OPERATIONS`).
    :param buckets: histogram upper bounds in seconds (default :data:`DEFAULT_BUCKETS`).
    :param slow_threshold_ms: an operation taking at least this long is logged (warning),
        kept in :meth:`slow_operations` and emitted as ``metrics.slow``; ``None``: off.
    :param slow_log_size: how many slow operations are kept (the newest).
    :param flush_interval: seconds between writes of the figures to ``plg_metrics_snapshots``
        (the delta since the previous flush; nothing is written for an idle period);
        ``None``: never (call :meth:`flush` yourself).
    :param retention_days: flushed snapshots of older dates are deleted by :meth:`cleanup`
        (a daily leader job); ``None`` keeps them.
    :param port: serve the Prometheus exposition on ``http://{host}:{port}/`` while running
        (needs the ``metrics`` extra); ``None`` (default) opens no port.
    :param host: the address ``port`` binds (default ``127.0.0.1``).
    :param prefix: the Prometheus metric name prefix.
    """

    version = "1.0.0"

    def __init__(
        self,
        *,
        resources: Iterable[str] | None = None,
        operations: Iterable[str] = DEFAULT_OPERATIONS,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        slow_threshold_ms: float | None = 1000.0,
        slow_log_size: int = 100,
        flush_interval: float | None = 60.0,
        retention_days: int | None = 30,
        port: int | None = None,
        host: str = "127.0.0.1",
        prefix: str = "s3db",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(resources, str):
            raise _bad(
                "resources", "must be a list of names", f"resources=[{resources!r}]", resources
            )
        self.measured: tuple[str, ...] | None = None if resources is None else tuple(resources)
        if isinstance(operations, str):
            raise _bad("operations", "must be a list of method names", "e.g. ['get']", operations)
        self.operations = tuple(operations)
        unknown = sorted(set(self.operations) - set(DEFAULT_OPERATIONS))
        if unknown or not self.operations:
            raise _bad(
                "operations", f"has unknown methods {unknown}" if unknown else "is empty",
                f"choose from: {', '.join(DEFAULT_OPERATIONS)}", operations,
            )  # fmt: skip
        try:
            values = list(buckets)
        except TypeError:
            values = []
        bounds = tuple(float(b) for b in values) if all(_positive(b) for b in values) else ()
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise _bad(
                "buckets", "must be increasing positive seconds",
                "e.g. buckets=(0.001, 0.01, 0.1, 1)", buckets,
            )  # fmt: skip
        self.bounds = bounds
        if slow_threshold_ms is not None and (
            isinstance(slow_threshold_ms, bool)
            or not isinstance(slow_threshold_ms, int | float)
            or slow_threshold_ms < 0
        ):
            raise _bad(
                "slow_threshold_ms", "must be a number >= 0 or None",
                "e.g. slow_threshold_ms=500", slow_threshold_ms,
            )  # fmt: skip
        if (
            not isinstance(slow_log_size, int)
            or isinstance(slow_log_size, bool)
            or slow_log_size < 1
        ):
            raise _bad("slow_log_size", "must be a positive integer", "e.g. 100", slow_log_size)
        if flush_interval is not None and not _positive(flush_interval):
            raise _bad(
                "flush_interval", "must be positive seconds or None", "e.g. 60", flush_interval
            )
        if retention_days is not None and (
            not isinstance(retention_days, int) or isinstance(retention_days, bool)
            or retention_days < 1
        ):  # fmt: skip
            raise _bad(
                "retention_days", "must be a positive integer or None", "e.g. 30", retention_days
            )
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
        ):
            raise _bad("port", "must be 0..65535 or None", "e.g. port=9464", port)
        if not isinstance(host, str) or not host:
            raise _bad("host", "must be an address string", "e.g. host='127.0.0.1'", host)
        if not isinstance(prefix, str) or not prefix.replace("_", "").isalnum():
            raise _bad("prefix", "must be letters, digits and '_'", "e.g. prefix='s3db'", prefix)
        self.slow_threshold = None if slow_threshold_ms is None else slow_threshold_ms / 1000
        self.slow_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=slow_log_size)
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self.port, self.host, self.prefix = port, host, prefix
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.snapshots: Resource | None = None
        self._series: dict[tuple[str, str], _Series] = {}
        self._flushed: dict[tuple[str, str], _Series] = {}
        self._slow_flushed = 0
        self._slow_total = 0
        self._since = time.time()
        self._flushed_at = time.time()
        self._registry: Any = None
        self._server: Any = None
        self._server_thread: Any = None

    # -- lifecycle ------------------------------------------------------------------------
    async def on_install(self) -> None:
        if self.port is not None:
            self._require()
        self.snapshots = await self.create_plugin_resource(
            "snapshots", attributes=_ATTRIBUTES, partitions=_PARTITIONS, behavior="body-only"
        )
        if self.measured is None:
            for resource in list(self.db.resources.values()):
                self._measure(resource)
            self.add_database_hook("after_create_resource", self._measure)
        else:
            for name in self.measured:
                await self.when_resource(name, self._measure)

    async def on_start(self) -> None:
        if self.flush_interval is not None:
            self.every(self.flush_interval, self.flush, name="flush")
        if self.retention_days is not None:
            self.every(86400.0, self.cleanup, name="cleanup", leader=True)
        if self.port is not None:
            registry = self.registry
            from prometheus_client import start_http_server

            self._server, self._server_thread = start_http_server(
                self.port, addr=self.host, registry=registry
            )

    async def on_stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self.flush_interval is not None and self.snapshots is not None:
            try:
                await self.flush()
            except Exception as exc:  # stopping must not fail on a store error
                self.log.warning("metrics: last flush failed: %s", exc)

    @property
    def bound_port(self) -> int | None:
        """The port the Prometheus HTTP server listens on (useful with ``port=0``)."""
        return None if self._server is None else int(self._server.server_port)

    def _measures(self, name: str) -> bool:
        if self.snapshots is not None and name == self.snapshots.name:
            return False
        if self.measured is None:
            return not name.startswith("plg_")
        return name in self.measured

    def _measure(self, resource: Resource) -> None:
        if not self._measures(resource.name):
            return
        for op in self.operations:
            key = (resource.name, op)
            if key not in self._series:
                self._series[key] = _Series(len(self.bounds))
            self.add_middleware(
                resource, op, self._middleware(resource.name, op, self._series[key])
            )

    def _middleware(self, resource: str, op: str, series: _Series) -> Callable[..., Awaitable[Any]]:
        bounds, clock, threshold = self.bounds, time.perf_counter, self.slow_threshold
        find = bisect.bisect_left

        async def measure(nxt: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await nxt(*args, **kwargs)
            except Exception as exc:
                series.errors += 1
                kind = type(exc).__name__
                series.error_types[kind] = series.error_types.get(kind, 0) + 1
                raise
            finally:
                took = clock() - started
                series.count += 1
                series.sum += took
                if took > series.max:
                    series.max = took
                series.buckets[find(bounds, took)] += 1
                if threshold is not None and took >= threshold:
                    series.slow += 1
                    self._slow(resource, op, took, args)

        return measure

    def _slow(self, resource: str, op: str, took: float, args: tuple[Any, ...]) -> None:
        entry = {
            "resource": resource,
            "operation": op,
            "ms": round(took * 1000, 3),
            "at": datetime.now(UTC).isoformat(),
            "id": args[0] if args and isinstance(args[0], str) else None,
        }
        self._slow_total += 1
        self.slow_log.append(entry)
        self.log.warning("slow %s on %s: %.1f ms", op, resource, took * 1000)
        self.emit("metrics.slow", entry)

    # -- reading ----------------------------------------------------------------------------
    def get_metrics(self) -> dict[str, Any]:
        """This process's figures since start (no request): ``{"resources": {name: {op:
        {count, errors, error_types, slow, sum, max, avg_ms, p50_ms, p99_ms, buckets}}},
        "totals": {...}, "buckets": [...], "since": iso, "slow": [...]}``. Operations never
        called are left out."""
        resources: dict[str, dict[str, Any]] = {}
        totals = {"count": 0, "errors": 0, "slow": 0}
        for (name, op), s in sorted(self._series.items()):
            if not s.count:
                continue
            resources.setdefault(name, {})[op] = s.as_dict(self.bounds)
            totals["count"] += s.count
            totals["errors"] += s.errors
            totals["slow"] += s.slow
        return {
            "since": datetime.fromtimestamp(self._since, UTC).isoformat(),
            "buckets": list(self.bounds),
            "resources": resources,
            "totals": totals,
            "slow": list(self.slow_log),
        }

    def slow_operations(self) -> list[dict[str, Any]]:
        """The newest slow operations (``resource``, ``operation``, ``ms``, ``at``, ``id``)."""
        return list(self.slow_log)

    def reset(self) -> None:
        """Zero this process's figures and slow log (flushed snapshots stay)."""
        for series in self._series.values():
            series.clear()  # in place: each middleware closes over its series
        self._flushed.clear()
        self.slow_log.clear()
        self._slow_total = self._slow_flushed = 0
        self._since = time.time()

    # -- flushing ---------------------------------------------------------------------------
    async def flush(self) -> bool:
        """Write what changed since the previous flush as one record of
        ``plg_metrics_snapshots`` (2 PUTs: the record and its date partition reference);
        ``False`` when there was nothing to write."""
        if self.snapshots is None:
            return False
        now = time.time()
        current = {k: s.copy() for k, s in self._series.items()}
        rows = []
        for (name, op), s in current.items():
            delta = s.minus(self._flushed.get((name, op)))
            if delta.count:
                row = delta.as_dict(self.bounds)
                rows.append({"resource": name, "operation": op, **row})
        slow = list(self.slow_log)[-(self._slow_total - self._slow_flushed) :] if (
            self._slow_total > self._slow_flushed
        ) else []  # fmt: skip
        if not rows:
            return False
        stamp = datetime.fromtimestamp(now, UTC)
        day = stamp.date().isoformat()
        await self.snapshots.insert(
            {
                "id": _SEP.join((day, f"{now:017.6f}", self.process.replace("/", "_"))),
                "date": day,
                "at": stamp.isoformat(),
                "process": self.process,
                "period": round(now - self._flushed_at, 6),
                "series": rows,
                "slow": slow,
            }
        )
        self._flushed, self._flushed_at = current, now
        self._slow_flushed = self._slow_total
        self.emit("metrics.flushed", {"series": len(rows), "at": stamp.isoformat()})
        return True

    async def get_flushed_metrics(
        self,
        *,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        resource: str | None = None,
    ) -> dict[str, Any]:
        """The flushed figures of every process, summed per resource and operation, for
        the snapshots written between ``since`` and ``until`` (inclusive; naive = UTC)."""
        lo, hi = _when(since, "since"), _when(until, "until")
        out: dict[tuple[str, str], _Series] = {}
        processes: set[str] = set()
        snapshots = 0
        if self.snapshots is not None:
            lo_day = lo.date().isoformat() if lo else ""
            hi_day = hi.date().isoformat() if hi else "~"
            ids = [
                i
                for i in await self.snapshots.list_ids()
                if lo_day <= i.split(_SEP, 1)[0] <= hi_day
            ]
            for item in await self.snapshots.get_many(ids):
                if not item.ok or item.data is None:
                    continue
                at = datetime.fromisoformat(item.data["at"])
                if (lo and at < lo) or (hi and at > hi):
                    continue
                snapshots += 1
                processes.add(item.data["process"])
                for row in item.data["series"]:
                    if resource is not None and row["resource"] != resource:
                        continue
                    key = (row["resource"], row["operation"])
                    out.setdefault(key, _Series(len(self.bounds))).add(row)
        resources: dict[str, dict[str, Any]] = {}
        for (name, op), s in sorted(out.items()):
            resources.setdefault(name, {})[op] = s.as_dict(self.bounds)
        return {"snapshots": snapshots, "processes": sorted(processes), "resources": resources}

    async def cleanup(self, now: datetime | JobRun | None = None) -> int:
        """Delete flushed snapshots of dates older than ``retention_days``; how many."""
        if self.snapshots is None or self.retention_days is None:
            return 0
        current = now if isinstance(now, datetime) else datetime.now(UTC)
        cutoff = (current.astimezone(UTC).date() - timedelta(days=self.retention_days)).isoformat()
        ids = [i for i in await self.snapshots.list_ids() if i.split(_SEP, 1)[0] < cutoff]
        if ids:
            await self.snapshots.delete_many(ids)
        return len(ids)

    # -- Prometheus -------------------------------------------------------------------------
    def _require(self) -> None:
        require_dependency(
            "prometheus_client",
            extra="metrics",
            min_version="0.20",
            plugin="MetricsPlugin",
            description="Prometheus exposition (text, ASGI app, HTTP port)",
        )

    @property
    def registry(self) -> Any:
        """A ``prometheus_client.CollectorRegistry`` holding only this plugin's figures."""
        if self._registry is None:
            self._require()
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(_Collector(self))
        return self._registry

    def prometheus_text(self) -> str:
        """The Prometheus text exposition of the figures (needs the ``metrics`` extra)."""
        registry = self.registry  # checks the dependency first
        from prometheus_client import generate_latest

        return bytes(generate_latest(registry)).decode("utf-8")

    def asgi_app(self) -> Any:
        """An ASGI app serving the exposition, to mount in FastAPI/Starlette (``app.mount(
        "/metrics", metrics.asgi_app())``) or any ASGI server (needs the ``metrics`` extra)."""
        registry = self.registry  # checks the dependency first
        from prometheus_client import make_asgi_app

        return make_asgi_app(registry=registry)

    def collect_families(self) -> Iterator[Any]:
        """The metric families of the exposition (``prometheus_client`` objects)."""
        self._require()
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        p = self.prefix
        ops = CounterMetricFamily(
            f"{p}_operations", "Resource operations", labels=["resource", "operation"]
        )
        errors = CounterMetricFamily(
            f"{p}_operation_errors", "Resource operations that raised",
            labels=["resource", "operation", "error"],
        )  # fmt: skip
        slow = CounterMetricFamily(
            f"{p}_slow_operations", "Operations at or over the slow threshold",
            labels=["resource", "operation"],
        )  # fmt: skip
        latency = HistogramMetricFamily(
            f"{p}_operation_duration_seconds", "Latency of resource operations",
            labels=["resource", "operation"],
        )  # fmt: skip
        for (name, op), s in sorted(self._series.items()):
            if not s.count:
                continue
            ops.add_metric([name, op], s.count)
            slow.add_metric([name, op], s.slow)
            for kind, n in sorted(s.error_types.items()):
                errors.add_metric([name, op, kind], n)
            cumulative, running = [], 0
            for i, n in enumerate(s.buckets):
                running += n
                bound = repr(self.bounds[i]) if i < len(self.bounds) else "+Inf"
                cumulative.append((bound, running))
            latency.add_metric([name, op], cumulative, sum_value=s.sum)
        yield from (ops, errors, slow, latency)


class _Collector:
    """A prometheus_client collector reading the plugin's series at scrape time."""

    def __init__(self, plugin: MetricsPlugin) -> None:
        self.plugin = plugin

    def collect(self) -> Iterator[Any]:
        return self.plugin.collect_families()


def _when(value: datetime | date | None, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):  # a whole day: until= a date includes that day
        start = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return start + timedelta(days=1, microseconds=-1) if field == "until" else start
    raise ValidationError(
        f"{field} must be a datetime or a date, not {type(value).__name__}",
        errors=[{"field": field, "rule": "datetime", "message": "wrong type"}],
        suggestion=f"pass {field}=datetime(2026, 1, 31, tzinfo=UTC)",
        metadata={"field": field, "reason": "wrong type"},
    )
