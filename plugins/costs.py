"""CostsPlugin: what the database's S3 traffic and storage cost, priced by a table.

::

    from s3db_async.plugins import CostsPlugin

    async with Database(url, plugins=[CostsPlugin(region="eu-central-1")]) as db:
        ...
        print(db.costs.summary()["total"])          # dollars since install
        print(db.costs.estimate("2026-12")["total"])  # observed rates over December

Requests are read from the store's own counters (``db.store.stats``, one count per request
sent, retries included) and priced by class: PUT/COPY/POST/LIST, GET/HEAD/other, and DELETE,
which S3 does not charge (s3db.js does). Storage is time-weighted: the plugin takes an
inventory of the store at install (one LIST per 1,000 keys), then follows every put, copy and
delete of this process, so an overwrite replaces the old size and a delete removes it; the
byte-seconds held become GB-months. Transfer out is the bytes of GET bodies (``get`` and
``get_stream``). Figures are those
of this process.
"""

from __future__ import annotations

import calendar
import os
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from s3db_async.errors import ConfigError, WriteOutcomeUnknownError
from s3db_async.plugin import Plugin, clock_time
from s3db_async.stores import aiter_chunks

__all__ = ["PRICING", "REQUEST_CLASSES", "CostsPlugin", "Pricing"]

GB = 1024**3
"""AWS bills storage and transfer in GiB, called GB."""
HOURS_PER_MONTH = 730.0
MONTH_SECONDS = HOURS_PER_MONTH * 3600.0
"""AWS prorates a GB-month over 730 hours."""


@dataclass(frozen=True)
class Pricing:
    """Dollar prices of one region/storage class."""

    put_per_1000: float
    """PUT, COPY, POST and LIST requests, per 1,000."""
    get_per_1000: float
    """GET, HEAD and other requests, per 1,000."""
    storage_gb_month: float
    """Storage per GB-month (first 50 TB tier)."""
    transfer_out_gb: float
    """Data transfer out to the internet per GB (first 10 TB tier)."""
    delete_per_1000: float = 0.0
    """DELETE is free on S3."""


PRICING: dict[str, Pricing] = {
    "us-east-1": Pricing(0.005, 0.0004, 0.023, 0.09),
    "us-east-2": Pricing(0.005, 0.0004, 0.023, 0.09),
    "us-west-1": Pricing(0.0055, 0.00044, 0.026, 0.09),
    "us-west-2": Pricing(0.005, 0.0004, 0.023, 0.09),
    "eu-west-1": Pricing(0.005, 0.0004, 0.023, 0.09),
    "eu-central-1": Pricing(0.0054, 0.00043, 0.0245, 0.09),
    "ap-southeast-1": Pricing(0.005, 0.0004, 0.025, 0.12),
    "ap-northeast-1": Pricing(0.0047, 0.00037, 0.025, 0.114),
    "sa-east-1": Pricing(0.007, 0.00056, 0.0405, 0.15),
}
"""S3 Standard list prices per region (public AWS price list); pass ``pricing=`` to override."""

REQUEST_CLASSES: dict[str, str] = {
    "put": "put",
    "copy": "put",
    "list": "put",
    "get": "get",
    "head": "get",
    "delete": "delete",
    "delete_many": "delete",
    "multipart_abort": "delete",
}
"""Store operation -> price class; an operation missing here is priced as ``put`` (so are
``multipart_create``, ``put_part`` and ``multipart_complete``; S3 does not charge an abort,
like a DELETE)."""


_ATTRIBUTES: dict[str, Any] = {
    "at": "number|required",
    "process": "string|required",
    "requests": "json|required",
    "byte_seconds": "number|required",
    "transfer": "number|required",
    "stored": "number|required",
}


def _bad(field: str, reason: str, suggestion: str, value: Any) -> ConfigError:
    return ConfigError(
        f"CostsPlugin: {field} {reason}",
        suggestion=suggestion,
        metadata={"field": field, "reason": reason, "value": repr(value)},
    )


def _month_seconds(month: str | date | None, now: float) -> float:
    if month is None:
        return MONTH_SECONDS
    if isinstance(month, str):
        try:
            month = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            raise _bad("month", "is not YYYY-MM", "pass e.g. '2026-12' or a date", month) from None
    if not isinstance(month, date):
        raise _bad("month", "is not a date", "pass 'YYYY-MM', a date, or None", month)
    return calendar.monthrange(month.year, month.month)[1] * 86400.0


class CostsPlugin(Plugin):
    """Counts requests, storage and transfer out, and prices them; exposed as ``db.costs``.

    :param region: a key of :data:`PRICING` (S3 Standard list prices).
    :param pricing: a :class:`Pricing`, or a mapping of some of its fields overriding the
        region's prices.
    :param inventory: list the store at install so storage starts from what already exists.
    :param track_transfer: count GET body bytes as transfer out.
    :param flush_interval: seconds between :meth:`flush` calls (a job of the plugin);
        ``None``: only when called.
    :param budget: dollars; the first :meth:`summary` whose total reaches it emits
        ``costs.budget_exceeded`` (again after :meth:`reset`).
    """

    name = "costs"

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        pricing: Pricing | Mapping[str, float] | None = None,
        inventory: bool = True,
        track_transfer: bool = True,
        budget: float | None = None,
        flush_interval: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(region, str) or region not in PRICING:
            raise _bad(
                "region",
                "has no price table",
                f"use one of {', '.join(sorted(PRICING))} or pass pricing=",
                region,
            )
        base = PRICING[region]
        if isinstance(pricing, Pricing):
            base = pricing
        elif pricing is not None and not isinstance(pricing, Mapping):
            raise _bad(
                "pricing",
                "must be a Pricing or a mapping of its fields",
                "pass pricing={'storage_gb_month': 0.018} or Pricing(...)",
                pricing,
            )
        elif pricing is not None:
            fields = set(Pricing.__dataclass_fields__)
            for key, value in pricing.items():
                if key not in fields:
                    raise _bad(f"pricing[{key!r}]", "is not a price", f"use {sorted(fields)}", key)
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise _bad(f"pricing[{key!r}]", "must be >= 0", "pass a dollar amount", value)
            base = replace(base, **{k: float(v) for k, v in pricing.items()})
        for flag, value in (("inventory", inventory), ("track_transfer", track_transfer)):
            if not isinstance(value, bool):
                raise _bad(flag, "must be True or False", f"pass {flag}=False", value)
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0
        ):
            raise _bad("budget", "must be a dollar amount >= 0", "pass e.g. budget=50.0", budget)
        if flush_interval is not None and (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, int | float)
            or flush_interval <= 0
        ):
            raise _bad(
                "flush_interval", "must be > 0 seconds", "pass e.g. 60 or None", flush_interval
            )
        self.budget = budget
        self.flush_interval = flush_interval
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.snapshots: Any = None
        self._flushed: tuple[dict[str, int], float, int] = ({}, 0.0, 0)
        self._over = False
        self.region = region
        self.pricing = base
        self.inventory = inventory
        self.track_transfer = track_transfer
        self._counts: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._stored = 0
        self._byte_seconds = 0.0
        self._since = 0.0
        self._at = 0.0
        self._transfer = 0
        self._originals: dict[str, Any] = {}
        self._stats_cleared: tuple[Any, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def on_install(self) -> None:
        store = self.db.store
        self._last = dict(store.stats)
        self._since = self._at = clock_time()
        self._wrap(store)
        if self.inventory:
            async for page in store.list_pages():
                for entry in page:  # objects have a size, "folders" do not
                    key, size = getattr(entry, "key", None), getattr(entry, "size", None)
                    if isinstance(size, int) and isinstance(key, str) and key not in self._sizes:
                        self._sizes[key] = size
                        self._stored += size
        setattr(self.db, "costs", self)  # noqa: B010 - the documented db.costs attribute

    async def on_start(self) -> None:
        if self.flush_interval is not None:
            self.every(self.flush_interval, self.flush, name="flush")

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        store = self.db.store
        for method in self._originals:
            vars(store).pop(method, None)  # the class's own method shows again
        if self._stats_cleared is not None:
            vars(self._stats_cleared[0]).pop("clear", None)
            self._stats_cleared = None
        self._originals.clear()
        if getattr(self.db, "costs", None) is self:
            delattr(self.db, "costs")

    # -- following the store ---------------------------------------------------------------
    def _wrap(self, store: Any) -> None:
        put, copy, delete = store.put, store.copy, store.delete
        delete_many, get = store.delete_many, store.get
        put_stream = store.put_stream
        self._originals = {
            m: getattr(store, m) for m in ("put", "put_stream", "copy", "delete", "delete_many")
        }

        async def put_(key: str, body: bytes, *args: Any, **kwargs: Any) -> str:
            try:
                etag: str = await put(key, body, *args, **kwargs)
            except WriteOutcomeUnknownError:
                # the answer was lost, the write may be applied: count it as held (the
                # caller's retry, if it was not, writes the same size again)
                self._set(key, len(body))
                raise
            self._set(key, len(body))
            return etag

        async def put_stream_(key: str, chunks: Any, *args: Any, **kwargs: Any) -> str:
            size = 0

            async def counted() -> Any:
                nonlocal size
                async for chunk in aiter_chunks(chunks):  # refuses one bytes object
                    size += len(chunk)
                    yield chunk

            try:
                etag: str = await put_stream(key, counted(), *args, **kwargs)
            except WriteOutcomeUnknownError:
                self._set(key, size)  # as for put: the upload may have completed
                raise
            self._set(key, size)
            return etag

        async def copy_(src: str, dst: str) -> str:
            etag: str = await copy(src, dst)
            size = self._sizes.get(src)
            if size is not None:
                self._set(dst, size)
            return etag

        async def delete_(key: str, **kwargs: Any) -> None:
            await delete(key, **kwargs)
            self._set(key, None)

        async def delete_many_(keys: Iterable[str]) -> int:
            keys = list(keys)
            n: int = await delete_many(keys)
            for key in keys:
                self._set(key, None)
            return n

        store.put, store.copy, store.delete, store.delete_many = put_, copy_, delete_, delete_many_
        store.put_stream = put_stream_
        stats = store.stats
        clear = stats.clear

        def clear_() -> None:  # stats.reset() / clear(): fold the counts in first
            self._sync()
            clear()
            self._last = {}

        stats.clear = clear_
        self._stats_cleared = (stats, clear)
        if self.track_transfer:
            self._originals["get"] = get

            async def get_(key: str) -> Any:
                obj = await get(key)
                self._transfer += obj.size
                return obj

            store.get = get_
            get_stream = store.get_stream
            self._originals["get_stream"] = get_stream

            async def get_stream_(key: str, *args: Any, **kwargs: Any) -> Any:
                stream = await get_stream(key, *args, **kwargs)
                inner = stream._chunks  # the chunks, counted as they are read

                async def counted() -> AsyncIterator[bytes]:
                    try:
                        async for chunk in inner:
                            self._transfer += len(chunk)
                            yield chunk
                    finally:
                        close = getattr(inner, "aclose", None)
                        if close is not None:
                            await close()

                stream._chunks = counted()
                return stream

            store.get_stream = get_stream_

    def _advance(self) -> float:
        now = clock_time()
        if now > self._at:
            self._byte_seconds += self._stored * (now - self._at)
            self._at = now
        return now

    def _set(self, key: str, size: int | None) -> None:
        self._advance()
        old = self._sizes.pop(key, 0) if size is None else self._sizes.get(key, 0)
        if size is not None:
            self._sizes[key] = size
            self._stored += size - old
        else:
            self._stored -= old

    def _sync(self) -> None:
        """Fold the store's counters into ours (``store.stats.reset()`` folds them in
        before clearing, so a reset loses nothing)."""
        stats = self.db.store.stats
        for op, n in stats.items():
            prev = self._last.get(op, 0)
            delta = n - prev if n >= prev else n
            if delta:
                self._counts[op] = self._counts.get(op, 0) + delta
        self._last = dict(stats)

    # -- figures --------------------------------------------------------------------------
    def requests(self) -> dict[str, int]:
        """Requests per store operation since install."""
        self._sync()
        return {op: n for op, n in sorted(self._counts.items()) if n}

    def _priced(self, counts: Mapping[str, float]) -> dict[str, dict[str, float]]:
        per = {
            "put": self.pricing.put_per_1000,
            "get": self.pricing.get_per_1000,
            "delete": self.pricing.delete_per_1000,
        }
        out = {c: {"requests": 0.0, "cost": 0.0} for c in per}
        for op, n in counts.items():
            cls = REQUEST_CLASSES.get(op, "put")
            out[cls]["requests"] += n
        for cls, row in out.items():
            row["cost"] = row["requests"] * per[cls] / 1000.0
        return out

    @property
    def stored_bytes(self) -> int:
        """Bytes held in the store now, as far as this process knows."""
        return self._stored

    def summary(self) -> dict[str, Any]:
        """Costs since install: requests by operation and class, storage, transfer, total."""
        counts = self.requests()
        now = self._advance()
        classes = self._priced(counts)
        gb_months = self._byte_seconds / GB / MONTH_SECONDS
        storage_cost = gb_months * self.pricing.storage_gb_month
        transfer_cost = self._transfer / GB * self.pricing.transfer_out_gb
        request_cost = sum(row["cost"] for row in classes.values())
        total = request_cost + storage_cost + transfer_cost
        if self.budget is not None and total >= self.budget and not self._over:
            self._over = True
            self._announce("costs.budget_exceeded", total=total, budget=self.budget)
        return {
            "region": self.region,
            "seconds": now - self._since,
            "requests": counts,
            "classes": classes,
            "request_cost": request_cost,
            "storage": {
                "bytes": self._stored,
                "objects": len(self._sizes),
                "gb_months": gb_months,
                "cost": storage_cost,
            },
            "transfer_out": {"bytes": self._transfer, "cost": transfer_cost},
            "total": total,
        }

    def estimate(self, month: str | date | None = None) -> dict[str, Any]:
        """The cost of a whole month (``'YYYY-MM'``/a date: its days; None: 730 hours) at
        the request and transfer rates observed so far, holding today's stored bytes."""
        length = _month_seconds(month, clock_time())
        s = self.summary()
        elapsed = s["seconds"]
        scale = length / elapsed if elapsed > 0 else 0.0
        classes = self._priced({op: n * scale for op, n in s["requests"].items()})
        request_cost = sum(row["cost"] for row in classes.values())
        gb_months = self._stored / GB * length / MONTH_SECONDS
        storage_cost = gb_months * self.pricing.storage_gb_month
        transfer_bytes = self._transfer * scale
        transfer_cost = transfer_bytes / GB * self.pricing.transfer_out_gb
        return {
            "region": self.region,
            "month": str(month) if month is not None else None,
            "seconds": length,
            "classes": classes,
            "request_cost": request_cost,
            "storage": {"bytes": self._stored, "gb_months": gb_months, "cost": storage_cost},
            "transfer_out": {"bytes": transfer_bytes, "cost": transfer_cost},
            "total": request_cost + storage_cost + transfer_cost,
        }

    def reset(self) -> None:
        """Start counting requests, storage time and transfer from now (sizes are kept)."""
        self._sync()
        self._counts.clear()
        self._byte_seconds = 0.0
        self._transfer = 0
        self._over = False
        self._flushed = ({}, 0.0, 0)
        self._since = self._at = clock_time()

    # -- several processes ----------------------------------------------------------------
    async def flush(self, *_: Any) -> bool:
        """Write what this process counted since its previous flush (requests per
        operation, byte-seconds, transfer bytes) as one record of ``plg_costs_snapshots``;
        ``False`` when nothing changed. Its own requests show in the next flush."""
        counts = self.requests()
        self._advance()
        marks, bs_mark, tr_mark = self._flushed
        delta = {op: n - marks.get(op, 0) for op, n in counts.items() if n - marks.get(op, 0)}
        byte_seconds, transfer = self._byte_seconds - bs_mark, self._transfer - tr_mark
        if not delta and not byte_seconds and not transfer:
            return False
        if self.snapshots is None:
            self.snapshots = await self.create_plugin_resource(
                "snapshots", attributes=_ATTRIBUTES, behavior="body-only"
            )
        now = clock_time()
        await self.snapshots.insert(
            {
                "id": f"{now:017.6f}~{self.process.replace('/', '_')}",
                "at": now,
                "process": self.process,
                "requests": delta,
                "byte_seconds": byte_seconds,
                "transfer": transfer,
                "stored": self._stored,
            }
        )
        self._flushed = (counts, bs_mark + byte_seconds, tr_mark + transfer)
        self.emit("costs.flushed", {"process": self.process, "at": now})
        return True

    async def get_flushed_costs(self) -> dict[str, Any]:
        """Every process's flushed figures summed and priced: ``processes``, ``snapshots``,
        ``requests``, ``classes``, ``request_cost``, ``storage``, ``transfer_out``, ``total``."""
        if self.snapshots is None:
            self.snapshots = await self.create_plugin_resource(
                "snapshots", attributes=_ATTRIBUTES, behavior="body-only"
            )
        requests: dict[str, int] = {}
        byte_seconds = 0.0
        transfer = 0
        processes: set[str] = set()
        snapshots = 0
        ids = await self.snapshots.list_ids()
        for item in await self.snapshots.get_many(ids):
            if not item.ok or item.data is None:
                continue
            data = item.data
            snapshots += 1
            processes.add(data["process"])
            for op, n in data["requests"].items():
                requests[op] = requests.get(op, 0) + int(n)
            byte_seconds += float(data["byte_seconds"])
            transfer += int(data["transfer"])
        classes = self._priced(requests)
        request_cost = sum(row["cost"] for row in classes.values())
        gb_months = byte_seconds / GB / MONTH_SECONDS
        storage_cost = gb_months * self.pricing.storage_gb_month
        transfer_cost = transfer / GB * self.pricing.transfer_out_gb
        return {
            "processes": sorted(processes),
            "snapshots": snapshots,
            "requests": dict(sorted(requests.items())),
            "classes": classes,
            "request_cost": request_cost,
            "storage": {"gb_months": gb_months, "cost": storage_cost},
            "transfer_out": {"bytes": transfer, "cost": transfer_cost},
            "total": request_cost + storage_cost + transfer_cost,
        }
