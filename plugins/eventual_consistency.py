"""EventualConsistencyPlugin: counter fields kept as immutable transactions, consolidated later.

Every ``add``/``sub``/``set`` writes one transaction object, durably and at once, whose key
holds everything needed to apply it (record id, transaction id, operation and amount)::

    resource={res}/plugin=eventual-consistency/[{ns}/]tx/{field}/{id}/{txid}~{op}~{amount}

Consolidation folds the pending transactions of one record into a state object
(``state/{field}/{id}``: value, commit sequence, ids applied by the last commit, base of
collected history) by compare-and-swap, so a transaction is applied exactly once however many
processes consolidate and wherever one of them dies. Then, in this order: the applied
transactions are archived under ``applied/{field}/{id}/{seq}-{at}`` (create-only), the record
field is written, and the transaction objects are deleted. A consolidation that finds
transactions of the last commit still there (a crash after the commit) finishes that work
first. Transactions are read from LIST alone; archives feed analytics and ``recalculate`` and
are folded into the state's base once older than ``retention``.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import math
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from s3db_async import Plugin, Resource
from s3db_async.errors import ConfigError, NotFoundError, PluginError, SchemaError, ValidationError
from s3db_async.plugin import JobRun, PluginStorage

__all__ = ["EventualConsistencyPlugin", "Transaction"]

MODES = ("async", "sync")
OPS = ("add", "sub", "set")
PERIODS = ("hour", "day", "month")
_SEP = "~"
_Number = int | float


@dataclass(frozen=True, slots=True)
class Transaction:
    """One change of a counter field, as parsed from its key."""

    id: str
    op: str
    amount: _Number
    key: str

    @property
    def at(self) -> datetime:
        """When the transaction was created (from the milliseconds at the head of its id)."""
        return datetime.fromtimestamp(int(self.id[:13]) / 1000, UTC)


@dataclass(frozen=True, slots=True)
class _Field:
    resource: str
    field: str
    initial: _Number
    mode: str
    analytics: bool


def _number(value: Any, *, field: str, what: str = "amount") -> _Number:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(
            f"{what} for {field!r} must be a finite number, got {value!r}",
            errors=[{"field": field, "rule": "number", "message": f"{what} is not a number"}],
            suggestion="pass an int or a float, e.g. add('w1', 'balance', 10)",
            metadata={"field": field, "reason": f"{what} is not a finite number"},
        )
    return value


def _parse_amount(text: str) -> _Number:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _apply(value: _Number, tx: Transaction) -> _Number:
    if tx.op == "set":
        return tx.amount
    return value + tx.amount if tx.op == "add" else value - tx.amount


class _TxIds:
    """Time-ordered transaction ids: 13 digits of epoch ms, an in-process counter, randomness."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._last = 0
        self._seq = itertools.count()
        self._clock = clock

    def next(self) -> str:
        ms = max(int(self._clock() * 1000), self._last)
        self._last = ms
        return f"{ms:013d}{next(self._seq) % 0xFFFF:04x}{secrets.token_hex(5)}"


class EventualConsistencyPlugin(Plugin):
    """Counter fields (balances, stock, likes) written as transactions and consolidated.

    ``resources={"wallets": {"balance": {"initial": 0}}}`` (or ``{"wallets": ["balance"]}``),
    or the single form ``resource="wallets", field="balance"``. ``mode="async"`` (default)
    makes ``add`` one PUT and consolidates in a leader-run job every
    ``consolidation_interval`` seconds; ``mode="sync"`` consolidates on every write.
    """

    def __init__(
        self,
        *,
        resources: Mapping[str, Any] | None = None,
        resource: str | None = None,
        field: str | None = None,
        mode: str = "async",
        consolidation_interval: float = 60.0,
        retention: float = 7 * 86400,
        analytics: bool = False,
        lock_ttl: float = 30.0,
        gc_interval: float = 3600.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if mode not in MODES:
            raise ConfigError(
                f"unknown mode {mode!r}",
                suggestion="use mode='async' (consolidate in a job) or mode='sync'",
                metadata={"field": "mode", "reason": "unknown mode", "value": mode},
            )
        for name, v in (
            ("consolidation_interval", consolidation_interval),
            ("retention", retention),
            ("lock_ttl", lock_ttl),
            ("gc_interval", gc_interval),
        ):
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise ConfigError(
                    f"{name} must be a positive number of seconds, got {v!r}",
                    suggestion=f"pass {name}=60",
                    metadata={"field": name, "reason": "not a positive number"},
                )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(
                f"concurrency must be a positive int, got {concurrency!r}",
                suggestion="pass concurrency=8",
                metadata={"field": "concurrency", "reason": "not a positive int"},
            )
        if not callable(clock):
            raise ConfigError(
                f"clock must be a callable returning epoch seconds, got {clock!r}",
                suggestion="pass clock=time.time",
                metadata={"field": "clock", "reason": "not callable"},
            )
        if resources is not None and not isinstance(resources, Mapping):
            raise ConfigError(
                f"resources must be a dict, got {resources!r}",
                suggestion="pass resources={'wallets': {'balance': {}}}",
                metadata={"field": "resources", "reason": "not a dict"},
            )
        spec: dict[str, Any] = dict(resources or {})
        if resource is not None or field is not None:
            if not resource or not field:
                raise ConfigError(
                    "the single form needs both resource= and field=",
                    suggestion="EventualConsistencyPlugin(resource='wallets', field='balance')",
                    metadata={"field": "resource" if not resource else "field"},
                )
            spec.setdefault(resource, {})
            fields = spec[resource]
            spec[resource] = (
                [*fields, field] if isinstance(fields, list | tuple) else {**fields, field: {}}
            )
        if not spec:
            raise ConfigError(
                "EventualConsistencyPlugin needs at least one counter field",
                suggestion="pass resources={'wallets': {'balance': {}}} "
                "or resource='wallets', field='balance'",
                metadata={"field": "resources", "reason": "empty"},
            )
        self.mode = mode
        self.consolidation_interval = float(consolidation_interval)
        self.retention = float(retention)
        self.lock_ttl = float(lock_ttl)
        self.gc_interval = float(gc_interval)
        self._last_gc: float | None = None
        self.concurrency = concurrency
        self.analytics_enabled = analytics
        self.fields: dict[tuple[str, str], _Field] = {}
        for res, fields in spec.items():
            items = (
                {f: {} for f in fields} if isinstance(fields, list | tuple) else dict(fields or {})
            )
            if not items:
                raise ConfigError(
                    f"no counter field given for resource {res!r}",
                    suggestion=f"resources={{{res!r}: {{'balance': {{}}}}}}",
                    metadata={"field": "resources", "resource": res},
                )
            for fname, fopts in items.items():
                self.fields[(res, fname)] = self._field(res, fname, dict(fopts or {}))
        self.clock = clock
        self._ids = _TxIds(clock)
        self._resources: dict[str, Resource] = {}
        self.job: Any = None

    def _field(self, res: str, fname: str, opts: dict[str, Any]) -> _Field:
        unknown = set(opts) - {"initial", "mode", "analytics"}
        if unknown:
            raise ConfigError(
                f"unknown option(s) {sorted(unknown)} for {res}.{fname}",
                suggestion="per-field options are: initial, mode, analytics",
                metadata={"field": fname, "resource": res, "reason": "unknown option"},
            )
        mode = opts.get("mode", self.mode)
        if mode not in MODES:
            raise ConfigError(
                f"unknown mode {mode!r} for {res}.{fname}",
                suggestion="use 'async' or 'sync'",
                metadata={"field": fname, "reason": "unknown mode"},
            )
        initial = _number(opts.get("initial", 0), field=fname, what="initial")
        return _Field(
            res, fname, initial, mode, bool(opts.get("analytics", self.analytics_enabled))
        )

    # -- lifecycle ---------------------------------------------------------------------
    async def on_install(self) -> None:
        for res in dict.fromkeys(r for r, _ in self.fields):
            await self.when_resource(res, self._setup)

    async def _setup(self, resource: Resource) -> None:
        self._resources[resource.name] = resource
        for (res, fname), _ in self.fields.items():
            if res != resource.name:
                continue
            try:
                await self.add_plugin_attribute(resource, fname, "number|optional")
            except SchemaError:
                pass  # the user declared the field: we write it, they own its definition
        peers = _PEERS.setdefault(resource, [])
        if not peers:  # the first instance on the resource adds the methods; they dispatch
            for name in (*_METHODS, "get_counter"):
                resource.add_method(name, _dispatcher(resource, name), owner=self.slug)
        peers.append(self)

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        for resource in self._resources.values():
            peers = _PEERS.get(resource, [])
            if self in peers:
                peers.remove(self)
            if not peers:  # the last instance on the resource takes the methods away
                for name in (*_METHODS, "get_counter"):
                    resource.remove_method(name)

    async def on_start(self) -> None:
        # one process at a time (a leader lease; each tick claimed by compare-and-swap)
        self.job = self.every(
            self.consolidation_interval,
            self._tick,
            name="consolidate",
            leader=True,
            lease_ttl=max(self.lock_ttl, 5.0),
        )

    async def _tick(self, run: JobRun) -> None:
        await self.consolidate_all(mode="async")
        now = self.clock()
        if self._last_gc is None or now - self._last_gc >= self.gc_interval:
            self._last_gc = now
            await self.collect_garbage()

    # -- keys --------------------------------------------------------------------------
    def _spec(self, res: str, fname: str) -> _Field:
        spec = self.fields.get((res, fname))
        if spec is None:
            raise ConfigError(
                f"{res}.{fname} is not a counter field of this plugin",
                suggestion=f"declare it: resources={{{res!r}: {{{fname!r}: {{}}}}}}",
                metadata={"field": fname, "resource": res, "reason": "not declared"},
            )
        return spec

    @staticmethod
    def _check_id(record_id: Any) -> str:
        if not isinstance(record_id, str) or not record_id or "/" in record_id:
            raise ValidationError(
                f"record id must be a non-empty string without '/', got {record_id!r}",
                errors=[{"field": "id", "rule": "id", "message": "bad record id"}],
                suggestion="pass the record's id, e.g. add('w1', 'balance', 10)",
                metadata={"field": "id", "reason": "bad record id"},
            )
        return record_id

    @property
    def storage(self) -> PluginStorage:
        """The plugin's PluginStorage."""
        return self.get_storage()

    def _prefix(self, spec: _Field, kind: str, record_id: str | None = None) -> str:
        parts = (kind, spec.field) if record_id is None else (kind, spec.field, record_id)
        return self.storage.get_plugin_key(spec.resource, *parts) + "/"

    async def _list(self, prefix: str) -> list[str]:
        # one LIST: the prefix ends below the namespace level, so no namespace filtering
        return await self.storage.store.list_keys(prefix)

    def _state_key(self, spec: _Field, record_id: str) -> str:
        return self.storage.get_plugin_key(spec.resource, "state", spec.field, record_id)

    def _archive_key(self, spec: _Field, record_id: str, seq: int, at: int) -> str:
        return self.storage.get_plugin_key(
            spec.resource, "applied", spec.field, record_id, f"{seq:012d}-{at:013d}"
        )

    @staticmethod
    def _parse(key: str) -> Transaction | None:
        name = key.rsplit("/", 1)[-1]
        parts = name.split(_SEP)
        if len(parts) != 3 or parts[1] not in OPS:
            return None
        try:
            amount = _parse_amount(parts[2])
        except ValueError:
            return None
        return Transaction(parts[0], parts[1], amount, key)

    async def _transactions(self, spec: _Field, record_id: str) -> list[Transaction]:
        keys = await self._list(self._prefix(spec, "tx", record_id))
        txs = [t for t in map(self._parse, keys) if t is not None]
        return sorted(txs, key=lambda t: t.id)

    # -- writes ------------------------------------------------------------------------
    async def _write(self, res: str, record_id: str, fname: str, op: str, amount: Any) -> Any:
        spec = self._spec(res, fname)
        self._check_id(record_id)
        amount = _number(amount, field=fname)
        txid = self._ids.next()
        key = self.storage.get_plugin_key(
            res, "tx", fname, record_id, f"{txid}{_SEP}{op}{_SEP}{amount!r}"
        )
        await self.storage.set(key, None)  # one PUT: the transaction is durable now
        self._emit(
            "transaction.written",
            resource=res,
            id=record_id,
            field=fname,
            op=op,
            amount=amount,
            transaction=txid,
        )
        if spec.mode == "sync":
            return await self.consolidate(res, record_id, fname)
        return None

    async def add(self, resource: str, record_id: str, field: str, amount: _Number) -> Any:
        """Add ``amount``; returns the new value in sync mode, ``None`` in async mode."""
        return await self._write(resource, record_id, field, "add", amount)

    async def sub(self, resource: str, record_id: str, field: str, amount: _Number) -> Any:
        """Subtract ``amount``; returns the new value in sync mode, ``None`` in async mode."""
        return await self._write(resource, record_id, field, "sub", amount)

    async def set(self, resource: str, record_id: str, field: str, value: _Number) -> Any:
        """Set the field to ``value`` (as a transaction, ordered with the others by id)."""
        return await self._write(resource, record_id, field, "set", value)

    async def increment(
        self, resource: str, record_id: str, field: str, amount: _Number = 1
    ) -> Any:
        """``add(..., amount)`` with a default of 1."""
        return await self._write(resource, record_id, field, "add", amount)

    async def decrement(
        self, resource: str, record_id: str, field: str, amount: _Number = 1
    ) -> Any:
        """``sub(..., amount)`` with a default of 1."""
        return await self._write(resource, record_id, field, "sub", amount)

    def _emit(self, name: str, **payload: Any) -> None:
        self.emit(name, payload)

    # -- reads -------------------------------------------------------------------------
    async def current(self, resource: str, record_id: str, field: str) -> _Number:
        """The value including pending transactions, without writing (one GET, one LIST)."""
        spec = self._spec(resource, field)
        self._check_id(record_id)
        state = await self.storage.get(self._state_key(spec, record_id))
        value: _Number = state["value"] if state else spec.initial
        applied = set(state["applied"]) if state else set()
        for tx in await self._transactions(spec, record_id):
            if tx.id not in applied:
                value = _apply(value, tx)
        return value

    async def pending(self, resource: str, field: str) -> dict[str, int]:
        """Record id -> number of transactions not yet consolidated (LIST only)."""
        spec = self._spec(resource, field)
        keys = await self._list(self._prefix(spec, "tx"))
        out: dict[str, int] = {}
        for key in keys:
            if self._parse(key) is not None:
                rid = key.rsplit("/", 2)[-2]
                out[rid] = out.get(rid, 0) + 1
        return out

    # -- consolidation -----------------------------------------------------------------
    async def _finish(
        self, spec: _Field, record_id: str, state: Mapping[str, Any], txs: list[Transaction]
    ) -> None:
        """Archive (create-only), then delete, the transactions the commit ``state`` applied."""
        if not txs:
            return
        key = self._archive_key(spec, record_id, int(state["seq"]), int(state["at"]))
        data = {"txs": [[t.id, t.op, t.amount] for t in txs]}
        if not await self.storage.has(key):
            await self.storage.set(key, data, behavior="body-only")
        await self.storage.store.delete_many([t.key for t in txs])

    async def _sync_record(self, spec: _Field, record_id: str, seq: int) -> None:
        """Write the state's value into the record until the record carries the latest commit."""
        resource = self._resources.get(spec.resource)
        if resource is None:
            return  # the resource does not exist (yet): the state holds the value
        key = self._state_key(spec, record_id)
        while True:
            state = await self.storage.get(key)
            if not state:
                return
            try:
                await resource.patch(record_id, {spec.field: state["value"]})
            except NotFoundError:
                return  # no such record: the value waits in the state
            if int(state["seq"]) == seq:
                return
            seq = int(state["seq"])  # someone committed meanwhile: write theirs too

    async def _fill_record(self, spec: _Field, record_id: str, state: Mapping[str, Any]) -> None:
        """Bring a record created after its transactions were consolidated up to date: one
        GET of the record, and when its field differs, the writes of :meth:`_sync_record`."""
        resource = self._resources.get(spec.resource)
        if resource is None:
            return
        record = await resource.get_or_none(record_id)
        if record is not None and record.get(spec.field) != state["value"]:
            await self._sync_record(spec, record_id, int(state["seq"]))

    async def consolidate(self, resource: str, record_id: str, field: str) -> _Number:
        """Apply every pending transaction of one record; returns the consolidated value.

        Exactly once across processes and crashes (compare-and-swap on the record's state).
        """
        spec = self._spec(resource, field)
        self._check_id(record_id)
        key = self._state_key(spec, record_id)
        outcome: dict[str, Any] = {}

        async def step(state: Any) -> Any:
            state = dict(state or {"value": spec.initial, "seq": 0, "at": 0, "applied": []})
            txs = await self._transactions(spec, record_id)
            applied = set(state["applied"])
            leftovers = [t for t in txs if t.id in applied]
            outcome.clear()
            outcome["leftovers"] = bool(leftovers)
            if leftovers:  # the last commit's work, interrupted: finish it first
                await self._finish(spec, record_id, state, leftovers)
            fresh = [t for t in txs if t.id not in applied]
            if not fresh:
                outcome["state"] = state
                return None
            value = state["value"]
            for tx in fresh:
                value = _apply(value, tx)
            new = {
                **state,
                "value": value,
                "seq": int(state["seq"]) + 1,
                "at": int(self.clock() * 1000),
                "applied": [t.id for t in fresh],
            }
            outcome.update(state=new, fresh=fresh)
            return new

        await self.storage.update(key, step)
        state = outcome["state"]
        fresh: list[Transaction] = outcome.get("fresh", [])
        if fresh or outcome["leftovers"]:
            await self._sync_record(spec, record_id, int(state["seq"]))
        elif state.get("seq"):  # nothing pending: a record created since gets the value
            await self._fill_record(spec, record_id, state)
        if fresh:
            await self._finish(spec, record_id, state, fresh)
            self._emit(
                "record.consolidated",
                resource=resource,
                id=record_id,
                field=field,
                value=state["value"],
                transactions=len(fresh),
            )
        return state["value"]  # type: ignore[no-any-return]

    async def _consolidate_locked(self, spec: _Field, record_id: str) -> bool:
        lock = await self.storage.acquire_lock(
            f"consolidate/{spec.field}/{record_id}", ttl=self.lock_ttl, resource=spec.resource
        )
        if lock is None:
            return False  # another process consolidates this record right now
        async with lock:
            await self.consolidate(spec.resource, record_id, spec.field)
        return True

    async def consolidate_all(
        self, resource: str | None = None, field: str | None = None, *, mode: str | None = None
    ) -> int:
        """Consolidate every record with pending transactions; returns how many were done.

        One LIST per field finds them; each record is consolidated under a per-record lock
        (a record locked by another process is left to it).
        """
        specs = [
            s
            for s in self.fields.values()
            if (resource is None or s.resource == resource)
            and (field is None or s.field == field)
            and (mode is None or s.mode == mode)
        ]
        done = 0
        sem = asyncio.Semaphore(self.concurrency)

        async def one(spec: _Field, rid: str) -> bool:
            async with sem:
                return await self._consolidate_locked(spec, rid)

        for spec in specs:
            ids = await self.pending(spec.resource, spec.field)
            results = await asyncio.gather(*(one(spec, rid) for rid in sorted(ids)))
            done += sum(results)
        return done

    # -- archives: recalculate, analytics, garbage collection --------------------------
    async def _archives(
        self, spec: _Field, record_id: str | None = None
    ) -> list[tuple[str, int, int, str]]:
        """(record id, seq, at ms, key) of every archive, oldest commit first per record."""
        out = []
        for key in await self._list(self._prefix(spec, "applied", record_id)):
            rid, name = key.rsplit("/", 2)[-2:]
            seq, _, at = name.partition("-")
            if seq.isdigit() and at.isdigit():
                out.append((rid, int(seq), int(at), key))
        return sorted(out)

    async def _archived_txs(
        self, archives: Iterable[tuple[str, int, int, str]]
    ) -> list[tuple[str, list[Transaction]]]:
        items = list(archives)
        results = await self.storage.batch_get([a[3] for a in items], concurrency=self.concurrency)
        out = []
        for a, r in zip(items, results, strict=True):
            txs = [
                Transaction(str(t[0]), str(t[1]), t[2], a[3])
                for t in ((r.data or {}).get("txs") or [])
            ]
            out.append((a[0], txs))
        return out

    async def recalculate(self, resource: str, record_id: str, field: str) -> _Number:
        """Rebuild the value from the kept history (base + archives) and pending transactions.

        Repairs a record field written by hand; returns the value.
        """
        spec = self._spec(resource, field)
        self._check_id(record_id)
        await self.consolidate(resource, record_id, field)  # archives the last commit
        archives = await self._archives(spec, record_id)
        history = await self._archived_txs(archives)

        def step(state: Any) -> Any:
            if not state:
                return None
            value = state.get("base", spec.initial)
            folded = set(state.get("folded", []))
            for (_, seq, _at, _k), (_, txs) in zip(archives, history, strict=True):
                if seq <= int(state["seq"]) and f"{seq}" not in folded:
                    for tx in txs:
                        value = _apply(value, tx)
            if value == state["value"]:
                return None
            return {**state, "value": value}

        state = await self.storage.update(self._state_key(spec, record_id), step)
        if not state:
            return spec.initial
        await self._sync_record(spec, record_id, int(state["seq"]))
        return await self.consolidate(resource, record_id, field)

    async def collect_garbage(self, resource: str | None = None, field: str | None = None) -> int:
        """Fold archives older than ``retention`` into each state's base, then delete them."""
        cutoff = int((self.clock() - self.retention) * 1000)
        removed = 0
        for spec in self.fields.values():
            if (resource and spec.resource != resource) or (field and spec.field != field):
                continue
            by_record: dict[str, list[tuple[str, int, int, str]]] = {}
            for a in await self._archives(spec):
                if a[2] < cutoff:
                    by_record.setdefault(a[0], []).append(a)
            for rid, old in by_record.items():
                removed += await self._fold(spec, rid, old)
        return removed

    async def _fold(self, spec: _Field, rid: str, old: list[tuple[str, int, int, str]]) -> int:
        """Fold archives into the state's base by compare-and-swap, then delete them.

        The state names the commits it folded last; archives of those still listed (a
        collection interrupted before its deletes) are deleted before anything new is folded.
        """
        history = await self._archived_txs(old)
        folding: list[str] = []

        async def step(state: Any) -> Any:
            folding.clear()
            if not state:
                return None
            folded = set(state.get("folded", []))
            done = [a[3] for a in old if f"{a[1]}" in folded]
            if done:
                await self.storage.store.delete_many(done)
            base = state.get("base", spec.initial)
            new_ids = []
            for (_, seq, _at, key), (_, txs) in zip(old, history, strict=True):
                if f"{seq}" in folded:
                    continue
                for tx in txs:
                    base = _apply(base, tx)
                new_ids.append(f"{seq}")
                folding.append(key)
            if not new_ids:
                return None
            return {**state, "base": base, "folded": new_ids}

        await self.storage.update(self._state_key(spec, rid), step)
        if folding:
            await self.storage.store.delete_many(folding)
        return len(folding)

    def _require_analytics(self, spec: _Field) -> None:
        if not spec.analytics:
            raise PluginError(
                f"analytics are not enabled for {spec.resource}.{spec.field}",
                suggestion="pass analytics=True (or {'analytics': True} for the field)",
                metadata={"field": spec.field, "resource": spec.resource, "reason": "disabled"},
            )

    @staticmethod
    def _cohort(at: datetime, period: str) -> str:
        fmt = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[period]
        return at.strftime(fmt)

    @staticmethod
    def _cohorts_between(start: datetime, end: datetime, period: str) -> list[str]:
        out, cur = [], start
        while cur <= end:
            out.append(EventualConsistencyPlugin._cohort(cur, period))
            if period == "hour":
                cur += timedelta(hours=1)
            elif period == "day":
                cur += timedelta(days=1)
            else:
                days = calendar.monthrange(cur.year, cur.month)[1]
                cur = (cur.replace(day=1) + timedelta(days=days)).replace(day=1)
        return out

    async def analytics(
        self,
        resource: str,
        field: str,
        *,
        period: str = "day",
        start: datetime | None = None,
        end: datetime | None = None,
        fill_gaps: bool = False,
        record_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per-cohort ``count``, ``sum``, ``avg``, ``min``, ``max`` of applied transactions.

        ``sum`` adds ``add`` amounts and subtracts ``sub`` amounts; ``set`` transactions are
        counted but not summed. ``fill_gaps`` adds zero cohorts between ``start`` and ``end``.
        """
        spec = self._spec(resource, field)
        self._require_analytics(spec)
        if period not in PERIODS:
            raise ConfigError(
                f"unknown period {period!r}",
                suggestion=f"use one of: {', '.join(PERIODS)}",
                metadata={"field": "period", "reason": "unknown period"},
            )
        for name, when in (("start", start), ("end", end)):
            if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
                raise ConfigError(
                    f"{name} must be a timezone-aware datetime, got {when!r}",
                    suggestion=f"pass {name}=datetime(2026, 1, 1, tzinfo=UTC)",
                    metadata={"field": name, "reason": "not an aware datetime"},
                )
        stats: dict[str, dict[str, Any]] = {}
        for _rid, txs in await self._archived_txs(await self._archives(spec, record_id)):
            for tx in txs:
                at = tx.at
                if (start and at < start) or (end and at > end):
                    continue
                signed = 0 if tx.op == "set" else (tx.amount if tx.op == "add" else -tx.amount)
                c = stats.setdefault(
                    self._cohort(at, period),
                    {"count": 0, "sum": 0, "min": math.inf, "max": -math.inf},
                )
                c["count"] += 1
                c["sum"] += signed
                c["min"] = min(c["min"], signed)
                c["max"] = max(c["max"], signed)
        rows = [
            {"cohort": k, **v, "avg": v["sum"] / v["count"] if v["count"] else 0}
            for k, v in sorted(stats.items())
        ]
        if fill_gaps and rows:
            lo = start or datetime.strptime(rows[0]["cohort"], _FORMATS[period]).replace(tzinfo=UTC)
            hi = end or datetime.strptime(rows[-1]["cohort"], _FORMATS[period]).replace(tzinfo=UTC)
            have = {r["cohort"]: r for r in rows}
            rows = [
                have.get(c, {"cohort": c, "count": 0, "sum": 0, "min": 0, "max": 0, "avg": 0})
                for c in self._cohorts_between(lo, hi, period)
            ]
        return rows

    async def top_records(
        self, resource: str, field: str, *, limit: int = 10, by: str = "sum"
    ) -> list[dict[str, Any]]:
        """Records with the largest ``sum`` (or ``count``) of applied transactions."""
        spec = self._spec(resource, field)
        self._require_analytics(spec)
        if by not in ("sum", "count"):
            raise ConfigError(
                f"unknown ranking {by!r}",
                suggestion="use by='sum' or by='count'",
                metadata={"field": "by", "reason": "unknown ranking"},
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(
                f"limit must be a positive int, got {limit!r}",
                suggestion="pass limit=10",
                metadata={"field": "limit", "reason": "not a positive int"},
            )
        totals: dict[str, dict[str, _Number]] = {}
        for rid, txs in await self._archived_txs(await self._archives(spec)):
            t = totals.setdefault(rid, {"count": 0, "sum": 0})
            for tx in txs:
                t["count"] += 1
                if tx.op != "set":
                    t["sum"] += tx.amount if tx.op == "add" else -tx.amount
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1][by], kv[0]))
        return [{"id": rid, **t} for rid, t in ranked[:limit]]


_METHODS = ("add", "sub", "set", "increment", "decrement", "consolidate", "recalculate")
_PEERS: weakref.WeakKeyDictionary[Resource, list[EventualConsistencyPlugin]] = (
    weakref.WeakKeyDictionary()
)


def _only_field(res: str, names: list[str]) -> str:
    if len(names) != 1:
        raise ConfigError(
            f"resource {res!r} has {len(names)} counter fields: {names}",
            suggestion="name the field, e.g. add(id, 'balance', 10)",
            metadata={"field": "field", "resource": res, "reason": "ambiguous"},
        )
    return names[0]


def _dispatcher(resource: Resource, method: str) -> Callable[..., Any]:
    """``resource.<method>(id, [field,] ...)``: routed to the instance that owns the field."""

    async def call(record_id: str, *args: Any, **kwargs: Any) -> Any:
        peers = _PEERS.get(resource, [])
        fields = {f: p for p in peers for (r, f) in p.fields if r == resource.name}
        if args and isinstance(args[0], str):
            field, rest = args[0], args[1:]
        elif "field" in kwargs:
            field, rest = kwargs.pop("field"), args
        else:  # the single-field form: wallets.add("w1", 10)
            field, rest = _only_field(resource.name, sorted(fields)), args
        if not peers:
            raise PluginError(
                f"no EventualConsistencyPlugin serves {resource.name!r} any more",
                suggestion="install the plugin again",
                metadata={"field": field, "resource": resource.name, "reason": "uninstalled"},
            )
        plugin = fields.get(field)
        if plugin is None:
            raise ConfigError(
                f"{field!r} is not a counter field of {resource.name!r}",
                suggestion=f"use one of {sorted(fields)}, e.g. add(id, {sorted(fields)[0]!r}, 10)"
                if fields
                else "declare it in the plugin's resources=",
                metadata={"field": field, "resource": resource.name, "reason": "not declared"},
            )
        target = getattr(plugin, "current" if method == "get_counter" else method)
        return await target(resource.name, record_id, field, *rest, **kwargs)

    call.__name__ = method
    call.__doc__ = f"``{method}(id, field, ...)`` of EventualConsistencyPlugin."
    return call


_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}
