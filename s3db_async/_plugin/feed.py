"""The consumer side of the durable change feed: subscriptions, cursors, decisions, GC.

``await plugin.subscribe("orders", handler)`` registers a durable consumer of a resource
(persisted in ``s3db.json``, so every writer process writes intents for it, see
:mod:`s3db_async._resource.feed`) and runs a :class:`Subscription` that reads the intents
after its cursor, decides which ones committed and hands those to ``handler`` in batches
of :class:`Change` objects, keeping the order of each record's changes.

How an intent is decided (the full argument is in docs/reliability.md):

- **committed** when the record carries its change id, or another intent of the record names
  it as ``prev`` (its writer read a record carrying it), or a committed change does so,
  transitively;
- an insert or update not proven so **failed** once its deadline has passed and the
  listing reached the end of the feed after the record was read (a later intent that
  names it cannot appear afterwards); until then its record is **held**: nothing of that
  record at or after it is delivered;
- a **delete** is done when the record was gone after it: the record is absent now, or a
  committed insert re-created it later. It is delivered at the end of the record's life
  that it ended (after the changes that record took before it vanished); several deletes
  ending one life are delivered once. A delete with no such evidence after its deadline
  failed. An update whose writer read the same life as a concurrent delete and that can
  no longer be proven (S3 deletes are unconditional: the update may have landed and been
  deleted unseen) is delivered as committed, followed by that delete.

Delivery is at-least-once: the cursor is saved after the handler returned, so a crash
during a batch delivers it again. A handler that raises gets the same batch again after a
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .. import _clock
from .._cas import Backoff
from .._codec.codec import record_version
from .._concurrency import bounded_gather
from .._resource.feed import (
    CHANGE_KEY,
    DEFAULT_WRITE_TIMEOUT,
    FEED_SLUG,
    INTENT_DECODER,
    INTENT_MARGIN,
    Intent,
    IntentKey,
    StoredForm,
    change_id_at,
    change_time,
    changes_prefix,
    parse_intent_key,
)
from ..errors import ConfigError, NotFoundError, S3dbError
from ..stores import ListEntry
from .feed_rules import ABSENT, NO_ID, Emit, decide
from .leases import is_lease_name

if TYPE_CHECKING:
    from .._database import Database
    from .._resource.resource import Resource
    from .base import Plugin

__all__ = [
    "Change",
    "ChangeHandler",
    "FeedStats",
    "Subscription",
    "forget",
    "subscribe",
    "unsubscribe",
]

log = logging.getLogger("s3db_async.feed")

_CONSUMER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")
_END = "~"  # sorts after every change id (Crockford base32 is digits and capitals)
_HANDLER_BACKOFF = Backoff(base=0.05, cap=5.0)
_DONE_KEPT = 5000
RELIST_EVERY = 1.0
"""Seconds between full re-listings of the recent feed (see :meth:`Subscription._list`)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of a record, as the feed delivers it.

    ``before``/``after`` are the record as stored before and after (``None`` for an insert's
    ``before`` and a delete's ``after``); ``changed`` names the fields that differ;
    ``version`` is the schema version the change was written under; ``actor`` is what
    :func:`s3db_async.actor` set in the writer; ``change_id`` is the change's ULID (also a
    cursor: ``subscribe(..., from_=change.change_id)`` replays what came after it).
    """

    op: str
    resource: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed: tuple[str, ...]
    version: str
    at: datetime
    actor: str | None
    change_id: str


ChangeHandler = Callable[[list[Change]], Awaitable[Any] | Any]
"""``handler(changes)``: sync or async; raising means "give me this batch again"."""


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Figures of one subscription (:meth:`Subscription.stats`).

    ``backlog``: intents after the cursor not yet decided (as far as listed); ``lag``:
    seconds since the oldest of them was written (0 when there is none); ``held``: records
    whose delivery waits for an in-flight write to land or time out.
    """

    resource: str
    consumer: str
    cursor: str
    backlog: int
    lag: float
    held: int
    delivered: int
    failed: int
    retries: int
    polls: int
    collected: int


class _Cursor(msgspec.Struct):
    cursor: str = ""
    done: list[str] = msgspec.field(default_factory=list)
    at: float = 0.0


def check_consumer(name: str) -> str:
    """Validate a consumer name (it becomes part of object keys)."""
    if not isinstance(name, str) or not _CONSUMER_RE.match(name):
        raise ConfigError(
            f"invalid consumer name {name!r}",
            suggestion="use 1-100 letters, digits, '_', '.', ':' or '-' (e.g. 'audit')",
            metadata={"field": "consumer", "value": repr(name)},
        )
    return name


def cursor_key(resource: str, consumer: str) -> str:
    return f"resource={resource}/plugin={FEED_SLUG}/cursors/{consumer}"


async def register(
    db: Database, resource: str, consumer: str, *, write_timeout: float | None = None
) -> bool:
    """Record ``consumer`` in ``resources.{resource}.feed`` of ``s3db.json`` (writers of
    every process load it); True when it was new."""
    added = False

    def mutate(doc: dict[str, Any]) -> bool:
        nonlocal added
        entry = doc["resources"][resource]
        feed = entry.setdefault("feed", {})
        consumers = feed.setdefault("consumers", {})
        changed = False
        if consumer not in consumers:
            consumers[consumer] = {"since": datetime.now(UTC).isoformat()}
            added = changed = True
        if write_timeout is not None and feed.get("write_timeout") != write_timeout:
            feed["write_timeout"] = write_timeout
            changed = True
        return changed

    doc = await db._update_meta(mutate)
    db.get_resource(resource)._writer.watch(doc["resources"][resource].get("feed"))
    return added


async def unregister(db: Database, resource: str, consumer: str) -> None:
    """Remove ``consumer``; without consumers left the resource's writes stop writing intents."""

    def mutate(doc: dict[str, Any]) -> bool:
        entry = doc["resources"].get(resource)
        consumers = (entry or {}).get("feed", {}).get("consumers", {})
        if consumer not in consumers:
            return False
        del consumers[consumer]
        if not consumers:
            entry.pop("feed", None)
        return True

    doc = await db._update_meta(mutate)
    if db.resource_exists(resource):
        db.get_resource(resource)._writer.watch(doc["resources"].get(resource, {}).get("feed"))
    await db.store.delete(cursor_key(resource, consumer))


async def subscribe(
    plugin: Plugin,
    resource: Resource,
    handler: ChangeHandler,
    *,
    consumer: str | None,
    batch_size: int,
    from_: str | datetime | None,
    poll_interval: float | None,
    retention: float,
    write_timeout: float | None,
    leader: bool = True,
    lease_ttl: float = 30.0,
) -> Subscription:
    """:meth:`Plugin.subscribe`: register, load the cursor, start; stopped on uninstall."""
    name = check_consumer(consumer or plugin.alias)
    key = (resource.name, name)
    if key in plugin._subscriptions:
        raise ConfigError(
            f"{plugin.alias} already subscribed {name!r} to {resource.name!r}",
            suggestion="pass another consumer= name, or unsubscribe() first",
            metadata={"resource": resource.name, "field": "consumer", "value": name},
        )
    default = change_id_at(_clock.time())  # before registering: no write of ours is older
    sub = Subscription(
        plugin,
        resource,
        handler,
        consumer=name,
        batch_size=batch_size,
        poll_interval=poll_interval,
        retention=retention,
        leader=leader,
        lease_ttl=lease_ttl,
    )
    await register(resource.db, resource.name, name, write_timeout=write_timeout)
    await sub.load(from_, default=default)
    plugin._subscriptions[key] = sub

    async def stop() -> None:
        await sub.stop()
        plugin._subscriptions.pop(key, None)
        plugin._forget.append(key)

    plugin._undo.append(stop)
    sub.start()
    return sub


async def unsubscribe(plugin: Plugin, resource: Resource, consumer: str | None) -> None:
    """:meth:`Plugin.unsubscribe`: stop and forget the consumer (cursor deleted)."""
    name = check_consumer(consumer or plugin.alias)
    sub = plugin._subscriptions.pop((resource.name, name), None)
    if sub is not None:
        await sub.stop()
    await unregister(resource.db, resource.name, name)


async def forget(plugin: Plugin, *, purge_data: bool) -> None:
    """On uninstall: with ``purge_data``, forget the consumers whose subscriptions stopped."""
    forgotten, plugin._forget = plugin._forget, []
    if purge_data:
        for resource, consumer in forgotten:
            await unregister(plugin.db, resource, consumer)


def _changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[str, ...]:
    b, a = before or {}, after or {}
    return tuple(sorted(k for k in {*b, *a} if k != "id" and b.get(k) != a.get(k)))


class Subscription:
    """A durable consumer of one resource's changes (made by :meth:`Plugin.subscribe`).

    :meth:`poll` runs one round by hand; the background loop (``poll_interval``) calls it.
    """

    def __init__(
        self,
        plugin: Plugin,
        resource: Resource,
        handler: ChangeHandler,
        *,
        consumer: str,
        batch_size: int = 100,
        poll_interval: float | None = 1.0,
        retention: float = 0.0,
        collect_every: float = 60.0,
        leader: bool = True,
        lease_ttl: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(
                f"batch_size must be at least 1, not {batch_size}",
                suggestion="pass batch_size=100",
                metadata={"field": "batch_size", "value": batch_size},
            )
        self.plugin = plugin
        self.resource = resource
        self.handler = handler
        self.consumer = consumer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention = float(retention)
        self.collect_every = collect_every
        self.leader = leader
        self.lease_ttl = lease_ttl
        self.prefix = changes_prefix(resource.name)
        self._key = cursor_key(resource.name, consumer)
        self._cursor = _Cursor()
        self._window: dict[str, IntentKey] = {}  # undecided intents after the cursor, in order
        self._decided: set[str] = set()
        self._listed_to = ""  # the greatest change id listed
        self._deep_at: float | None = None  # when the last full re-listing ran
        self._task: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()
        self._held: set[str] = set()
        self._counts = {"delivered": 0, "failed": 0, "retries": 0, "polls": 0, "collected": 0}
        self._last_collect = _clock.monotonic()
        self.stopped = False

    # -- set up ---------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.resource.db.store

    @property
    def cursor(self) -> str:
        """The change id up to which everything is decided ("" before the first)."""
        return self._cursor.cursor

    async def load(self, from_: str | datetime | None, *, default: str) -> None:
        """Resume the saved cursor, or start where ``from_`` says (``default``: the time
        the consumer was registered) and save that."""
        saved: _Cursor | None = None
        try:
            obj = await self.store.get(self._key)
            saved = msgspec.json.decode(obj.body, type=_Cursor)
        except NotFoundError:
            saved = None
        if from_ is None and saved is not None:
            self._cursor = saved
            self._decided = set(saved.done)
            return
        self._cursor = _Cursor(cursor=self._start(from_, default))
        await self._save()

    @staticmethod
    def _start(from_: str | datetime | None, default: str) -> str:
        if from_ == "earliest":
            return ""
        if from_ is None or from_ == "latest":
            return default
        if isinstance(from_, datetime):
            return change_id_at(from_)
        if isinstance(from_, str) and re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", from_):
            return from_
        raise ConfigError(
            f"from_={from_!r} is not a change id, a datetime, 'latest' or 'earliest'",
            suggestion="pass a Change.change_id, a datetime, 'latest' or 'earliest'",
            metadata={"field": "from_", "value": repr(from_)},
        )

    @property
    def lease_name(self) -> str:
        """The plugin lease under which the loop polls (one poller per consumer name)."""
        name = f"feed.{self.resource.name}.{self.consumer}"
        if not is_lease_name(name):
            name = "feed." + hashlib.sha256(name.encode()).hexdigest()[:32]
        return name

    def start(self) -> None:
        """Run :meth:`poll` every ``poll_interval`` seconds on the plugin's task group; with
        ``leader`` (the default) only while this process holds the consumer's lease, so
        that processes sharing a consumer name do not each deliver every change."""
        if self.poll_interval is not None and (self._task is None or self._task.done()):
            self.stopped = False
            if self.leader:
                self._task = self.plugin.run_as_leader(
                    lambda _lease: self._lead(), name=self.lease_name, ttl=self.lease_ttl
                )
            else:
                self._task = self.plugin.spawn(self._run, name=f"feed:{self.consumer}")

    async def stop(self) -> None:
        """Stop the background loop (the cursor stays saved) and give up its lease."""
        self.stopped = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lease = self.plugin._leases.get(self.lease_name) if self.leader else None
        if lease is not None:
            await lease.release()

    async def _lead(self) -> None:
        """A term of the consumer's lease: resume from the cursor the previous poller saved
        (it may have been another process), then poll."""
        async with self._lock:
            self._window, self._listed_to, self._deep_at = {}, "", None
            await self.load(None, default=self._cursor.cursor)
        await self._run()

    async def _run(self) -> None:
        interval = float(self.poll_interval or 1.0)
        while not self.stopped:
            try:
                delivered = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._report(exc, "poll")
                delivered = 0
            if not delivered:
                await asyncio.sleep(interval)

    def _report(self, exc: BaseException, op: str) -> None:
        self.plugin.log.error(
            "change feed %s of %s: %s failed: %s",
            self.consumer,
            self.resource.name,
            op,
            exc,
            extra={"resource": self.resource.name, "op": f"feed.{op}"},
        )
        self.plugin.emit(
            "error",
            {
                "error": exc,
                "op": f"feed.{op}",
                "resource": self.resource.name,
                "consumer": self.consumer,
            },
        )

    # -- one round ------------------------------------------------------------------
    async def poll(self) -> int:
        """Decide and deliver what can be (up to ``batch_size`` intents' records); the
        number of changes delivered."""
        async with self._lock:
            self._counts["polls"] += 1
            batch = [k for k in self._window.values() if k.cid not in self._decided]
            if not batch:
                await self._list()
                batch = [k for k in self._window.values() if k.cid not in self._decided]
            head = batch[: self.batch_size]
            records = list(dict.fromkeys(k.id for k in head))
            if not records:
                await self._advance()
                await self._maybe_collect()
                return 0
            # a record with an insert to decide is read whole: if it still carries that
            # insert's id, its stored form is the insert's ``after`` (no read of the intent)
            whole = {k.id for k in head if k.op == "insert" and k.actor_known}
            forms: dict[str, tuple[str, StoredForm]] = {}

            async def state(rid: str) -> str:
                return await self._state(rid, forms if rid in whole else None)

            states = dict(
                zip(
                    records,
                    await bounded_gather(state, records, self.resource.db.parallelism),
                    strict=True,
                )
            )
            now = _clock.time()
            timeout = self._timeout()
            overdue = change_id_at(now - timeout)
            # after the reads: every intent that explains them is listed (re-listed in full
            # before any write is judged failed)
            await self._list(deep=any(k.cid < overdue for k in batch))
            known: dict[str, list[IntentKey]] = {r: [] for r in records}
            for k in self._window.values():
                if k.id in known:
                    known[k.id].append(k)
            emits: list[Emit] = []
            decided: set[str] = set()
            self._held.clear()
            for rid, all_keys in known.items():
                keys = [k for k in all_keys if k.cid not in self._decided]
                if not keys:
                    continue
                d = decide(
                    keys, all_keys, states[rid], window=self._window, old=now - timeout,
                    timeout=timeout,
                )  # fmt: skip
                emits += d.emit
                decided |= d.decided
                self._counts["failed"] += d.failed
                if d.held:
                    self._held.add(rid)
            emits.sort(key=lambda e: e.pos)
            changes = await self._changes(emits, forms)
            for start in range(0, len(changes), self.batch_size):
                await self._deliver(changes[start : start + self.batch_size])
            self._decided |= decided
            await self._advance()
            await self._maybe_collect()
            return len(changes)

    async def _state(self, rid: str, forms: dict[str, tuple[str, StoredForm]] | None) -> str:
        """The change id the record carries now (one HEAD, or one GET that also keeps its
        stored form in ``forms`` when given)."""
        key = self.resource.key_for(rid)
        try:
            if forms is None:
                return str((await self.store.head(key)).metadata.get(CHANGE_KEY) or NO_ID)
            obj = await self.store.get(key)
        except NotFoundError:
            return ABSENT
        cid = str(obj.metadata.get(CHANGE_KEY) or NO_ID)
        forms[rid] = (cid, StoredForm(dict(obj.metadata), obj.body))
        return cid

    async def _list(self, *, deep: bool = False) -> None:
        """List the feed to its end into the window.

        Keys of concurrent writers become visible out of order, by at most
        ``INTENT_MARGIN`` (a writer gives up a write whose intent took longer). So at least
        every ``RELIST_EVERY`` seconds, and whenever a write is about to be judged failed
        (``deep``), the listing starts ``2 * INTENT_MARGIN`` seconds before the previous
        such listing; in between it continues after the last key seen.
        """
        now = _clock.time()
        start = self._cursor.cursor
        if deep or self._deep_at is None or now - self._deep_at >= RELIST_EVERY:
            if self._deep_at is not None:
                start = max(start, change_id_at(self._deep_at - 2 * INTENT_MARGIN))
            self._deep_at = now
        else:
            start = max(start, self._listed_to)
        found: list[IntentKey] = []
        async for entry in self.store.list(
            self.prefix, start_after=self.prefix + start + "0" if start else None
        ):
            if not isinstance(entry, ListEntry):
                continue
            parsed = parse_intent_key(entry.key, self.prefix)
            if parsed is not None and parsed.cid > self._cursor.cursor:
                found.append(parsed)
        if found:
            self._listed_to = max(self._listed_to, found[-1].cid)
        if any(k.cid not in self._window for k in found):
            merged = {**self._window, **{k.cid: k for k in found}}
            self._window = dict(sorted(merged.items()))

    def _timeout(self) -> float:
        """The writers' deadline after an intent (``write_timeout`` of ``s3db.json``), plus
        a second for the millisecond resolution of change ids."""
        feed = self.resource._writer.feed
        return (feed.write_timeout if feed is not None else DEFAULT_WRITE_TIMEOUT) + 1.0

    async def _read(self, key: IntentKey) -> Intent | None:
        try:
            obj = await self.store.get(key.key)
        except NotFoundError:
            return None
        return INTENT_DECODER.decode(obj.body)

    def _decode(self, rid: str, form: StoredForm | None) -> dict[str, Any] | None:
        if form is None:
            return None
        try:
            record = self.resource._records.decode(rid, form.m, form.b, "")
        except S3dbError as exc:
            self._report(exc, "decode")
            return None
        return dict(record)

    async def _changes(
        self, emits: list[Emit], forms: Mapping[str, tuple[str, StoredForm]]
    ) -> list[Change]:
        out: dict[int, Change] = {}
        rest: list[Emit] = []
        for i, e in enumerate(emits):
            k, form = e.key, forms.get(e.key.id)
            if k.op == "insert" and k.actor_known and form and form[0] == k.cid:
                # the record still carries this insert: its stored form is the insert's after
                version = record_version(form[1].m) or self.resource.version
                after = self._decode(k.id, form[1])
                at = change_time(k.cid)
                out[i] = self._change(k, "insert", None, after, version, at, k.actor)
            else:
                rest.append(e)
        read = iter(await self._read_changes(rest))
        ordered = (out[i] if i in out else next(read) for i in range(len(emits)))
        return [c for c in ordered if c is not None]

    async def _read_changes(self, emits: list[Emit]) -> list[Change | None]:
        """The changes of ``emits`` from their intents' bodies (one GET per intent; ``None``
        where an intent vanished)."""
        if not emits:
            return []
        wanted = {e.key.key: e.key for e in emits}
        for e in emits:
            if e.before_of is not None:
                wanted[e.before_of.key] = e.before_of
        keys = list(wanted.values())
        bodies = dict(
            zip(
                (k.key for k in keys),
                await bounded_gather(self._read, keys, self.resource.db.parallelism),
                strict=True,
            )
        )
        out: list[Change | None] = []
        for e in emits:
            intent = bodies.get(e.key.key)
            if intent is None:
                log.warning("change feed: intent %s vanished", e.key.key)
                out.append(None)
                continue
            before = self._decode(intent.id, intent.before)
            after = self._decode(intent.id, intent.after)
            if e.before_of is not None:  # a delete: the last form its record took
                last = bodies.get(e.before_of.key)
                if last is not None and last.after is not None:
                    before = self._decode(intent.id, last.after)
            at = datetime.fromtimestamp(intent.at, UTC)
            out.append(
                self._change(e.key, intent.op, before, after, intent.version, at, intent.actor)
            )
        return out

    def _change(
        self,
        key: IntentKey,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        version: str,
        at: datetime,
        actor: str | None,
    ) -> Change:
        """The :class:`Change` of ``key`` (``changed``: the fields an update changed, every
        field of an insert, none for a delete)."""
        if op == "update":
            changed = _changed(before, after)
        elif op == "delete":
            changed = ()
        else:
            changed = tuple(sorted(k for k in (after or {}) if k != "id"))
        return Change(
            op=op,
            resource=self.resource.name,
            id=key.id,
            before=before,
            after=after,
            changed=changed,
            version=version,
            at=at,
            actor=actor,
            change_id=key.cid,
        )

    async def _deliver(self, changes: list[Change]) -> None:
        attempt = 0
        while True:
            try:
                result = self.handler(list(changes))
                if inspect.isawaitable(result):
                    await result
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._counts["retries"] += 1
                self._report(exc, "handler")
                attempt += 1
                await asyncio.sleep(_HANDLER_BACKOFF.delay(attempt))
        self._counts["delivered"] += len(changes)

    async def _advance(self) -> None:
        """Move the cursor over the decided prefix of the window and save it.

        Not past ``2 * INTENT_MARGIN`` seconds before the last listing: an intent of that
        time may still become visible; what was delivered beyond is saved in ``done``.
        """
        moved = False
        limit = change_id_at(self._deep_at - 2 * INTENT_MARGIN) if self._deep_at else ""
        for cid in list(self._window):
            if cid not in self._decided or cid >= limit:
                break
            del self._window[cid]
            self._decided.discard(cid)
            self._cursor.cursor = cid
            moved = True
        done = sorted(c for c in self._decided if c > self._cursor.cursor)
        if moved or done != self._cursor.done:
            self._cursor.done = done[-_DONE_KEPT:]
            await self._save()

    async def _save(self) -> None:
        self._cursor.at = _clock.time()
        await self.store.put(
            self._key, msgspec.json.encode(self._cursor), content_type="application/json"
        )

    # -- retention ----------------------------------------------------------------------
    async def _maybe_collect(self) -> None:
        if _clock.monotonic() - self._last_collect >= self.collect_every:
            self._last_collect = _clock.monotonic()
            try:
                await self.collect()
            except Exception as exc:
                self._report(exc, "collect")

    async def collect(self) -> int:
        """Delete the intents every consumer of the resource has passed (and older than
        ``retention`` seconds); how many were deleted."""
        doc, _ = await self.resource.db._read_meta()  # consumers other processes added too
        entry = doc.get("resources", {}).get(self.resource.name, {})
        consumers = list((entry.get("feed") or {}).get("consumers") or ())
        if not consumers:
            return 0
        cursors: list[str] = []
        for consumer in consumers:
            try:
                obj = await self.store.get(cursor_key(self.resource.name, consumer))
            except NotFoundError:
                return 0  # a consumer that has not started yet: keep everything
            cursors.append(msgspec.json.decode(obj.body, type=_Cursor).cursor)
        bound = min(cursors)
        if self.retention > 0:
            bound = min(bound, change_id_at(_clock.time() - self.retention))
        if not bound:
            return 0
        keys: list[str] = []
        async for e in self.store.list(self.prefix):
            if not isinstance(e, ListEntry):
                continue
            parsed = parse_intent_key(e.key, self.prefix)
            if parsed is None:
                continue
            if parsed.cid > bound:
                break
            keys.append(e.key)
        if keys:
            await self.store.delete_many(keys)
        self._counts["collected"] += len(keys)
        return len(keys)

    # -- figures ------------------------------------------------------------------------
    def stats(self) -> FeedStats:
        """Backlog, lag and counters of this subscription (no request)."""
        pending = [c for c in self._window if c not in self._decided]
        lag = max(0.0, _clock.time() - change_time(pending[0]).timestamp()) if pending else 0.0
        return FeedStats(
            resource=self.resource.name,
            consumer=self.consumer,
            cursor=self._cursor.cursor,
            backlog=len(pending),
            lag=lag,
            held=len(self._held),
            delivered=self._counts["delivered"],
            failed=self._counts["failed"],
            retries=self._counts["retries"],
            polls=self._counts["polls"],
            collected=self._counts["collected"],
        )

    async def backlog(self) -> FeedStats:
        """:meth:`stats` after listing the feed's tail (1 LIST per 1,000 new intents)."""
        async with self._lock:
            await self._list()
        return self.stats()

    def __repr__(self) -> str:
        return f"<Subscription {self.resource.name}:{self.consumer} cursor={self.cursor!r}>"
