"""Leader leases with fencing epochs, on PluginStorage conditional writes.

::

    lease = plugin.leader("compactor", ttl=30)
    async with lease:                       # campaigns until elected, releases on exit
        await lease.fenced_set("state", {...})   # refused once a newer leader wrote it

One object per lease, ``plugin={slug}/[{namespace}/]leases/{name}``, holds the current term:
the holder's random token and id, its **epoch** (fencing token), and its expiry. The object
is never deleted (only purged with the plugin's data), so the epoch survives every change of
holder:

- **take** a free name: create with ``If-None-Match: *``, epoch 1;
- **take over** a released or expired term: compare-and-swap (``If-Match`` on the etag read)
  writing ``epoch + 1``; two contenders cannot both swap the same etag, so one term per epoch;
- **renew**: compare-and-swap on our own last etag, same epoch, a later expiry;
- **release**: end the term locally first (work stops), then swap the object to a released
  state that keeps the epoch.

A lost answer is resolved by :func:`~s3db_async._cas.conditional_put` and, when it cannot
tell, by reading the object back: our token and write id in it mean the write landed.

Timing and clock skew. A holder's term ends, by its own monotonic clock, at
``start of its last successful renew request + ttl - margin``: past that instant
:attr:`Lease.is_leader` is false and leader-only work is cancelled, whether or not a renewal
is still in flight. Another process takes over when (a) its wall clock passes the stored
expiry (``holder's wall time at that request + ttl``), or (b) it has watched the same etag
for a full ``ttl`` of its own monotonic clock. (b) needs no clock agreement at all; (a) is
safe as long as no two clocks differ by ``margin`` or more (default ``ttl / 5``; NTP keeps
hosts within milliseconds). So the old holder stops at least ``margin`` before anyone can
take over, and a new leader is found within ``ttl`` (plus one poll of ``renew_every``) after
a holder dies.

Fencing. Each term's epoch is strictly greater than every earlier one. :attr:`Lease.fence`
is the ``(name, epoch)`` token of the current term; :meth:`Lease.fenced_set` writes a
PluginStorage value stamped with it by compare-and-swap and refuses (``StaleFenceError``)
when the object already carries a newer epoch of the same lease, so a deposed leader that
has not noticed yet cannot overwrite its successor's work. :meth:`Lease.check` reads the
lease object to confirm the term is still current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _clock
from .._cas import RETRY, Backoff, _Retry, conditional_put
from ..errors import (
    ConfigError,
    LeaseLostError,
    NotFoundError,
    PreconditionFailed,
    StaleFenceError,
    StoreError,
    WriteOutcomeUnknownError,
)
from .entries import CONTENT_TYPE, Entry, check_ttl
from .locks import default_worker_id

if TYPE_CHECKING:
    from .base import Plugin
    from .storage import PluginStorage

__all__ = ["FENCE_METADATA", "Fence", "Lease", "check_lease_name", "fence_epoch", "is_lease_name"]

T = TypeVar("T")

FENCE_METADATA = "fence"
"""The metadata key of a fenced write: ``"{epoch}@{lease name}"``."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_RETRY_BACKOFF = Backoff(base=0.05, cap=1.0)
_STOP_TIMEOUT = 10.0  # seconds a release on stop may take before it is abandoned
_log = logging.getLogger("s3db_async.plugin.leases")


def is_lease_name(name: object) -> bool:
    """True when ``name`` is a valid lease (or job) name: 1-100 of ``[A-Za-z0-9_.-]``."""
    return isinstance(name, str) and _NAME_RE.match(name) is not None


def check_lease_name(name: str, what: str = "lease") -> str:
    """``name`` if it is a valid lease (or job) name, else :class:`ConfigError`."""
    if not is_lease_name(name):
        raise ConfigError(
            f"invalid {what} name {name!r}",
            suggestion="use 1-100 ASCII letters, digits, '_', '-' or '.' (e.g. 'compactor')",
            metadata={"field": "name", "reason": "invalid characters or length", "value": name},
        )
    return name


def _seconds(value: float | None, default: float, field: str, lease: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"lease {field} must be a number of seconds, got {value!r}",
            suggestion=f"leave {field}=None for the default",
            metadata={"field": field, "reason": "not a number", "lease": lease},
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class Fence:
    """The fencing token of one leadership term: lease ``name`` and its ``epoch``.

    ``fence.metadata`` stamps an object written by the leader; ``fence.admits(metadata)``
    tells whether an object's stamp allows this term to overwrite it (no newer epoch of the
    same lease has written it).
    """

    name: str
    epoch: int
    holder: str

    @property
    def metadata(self) -> dict[str, str]:
        """``{"fence": "{epoch}@{name}"}``, to carry on a leader-only write."""
        return {FENCE_METADATA: f"{self.epoch}@{self.name}"}

    def admits(self, metadata: Mapping[str, str]) -> bool:
        """True unless ``metadata`` carries a newer epoch of this lease."""
        seen = fence_epoch(metadata, self.name)
        return seen is None or seen <= self.epoch


def fence_epoch(metadata: Mapping[str, str], name: str) -> int | None:
    """The epoch of lease ``name`` stamped in ``metadata`` (``None``: none, or another lease's)."""
    raw = metadata.get(FENCE_METADATA)
    if not raw:
        return None
    epoch, _, owner = raw.partition("@")
    if owner != name or not epoch.isdigit():
        return None
    return int(epoch)


@dataclass(frozen=True, slots=True)
class _Term:
    """The lease object as read: who holds which epoch until when."""

    etag: str
    token: str
    holder: str
    epoch: int
    expires_at: float
    ttl: float
    released: bool
    write: str

    @classmethod
    def parse(cls, entry: Entry) -> _Term:
        d = entry.data if isinstance(entry.data, dict) else {}
        try:
            return cls(
                entry.etag,
                str(d.get("token", "")),
                str(d.get("holder", "")),
                int(d.get("epoch", 0)),
                float(d.get("expires_at", 0.0)),
                float(d.get("ttl", 0.0)),
                bool(d.get("released", False)),
                str(d.get("w", "")),
            )
        except (TypeError, ValueError):  # not a lease object we wrote: treat as free, epoch 0
            return cls(entry.etag, "", "", 0, 0.0, 0.0, True, "")


class Lease:
    """A leader lease: at most one holder of ``name`` at a time, across processes.

    Get one with :meth:`Plugin.leader <s3db_async.Plugin.leader>`; see the module docstring
    for the protocol. ``async with lease:`` waits until elected and releases on exit.

    :param ttl: seconds a term lasts without renewal (also the failover time after a crash).
    :param renew_every: seconds between renewals (default ``ttl / 3``); also how often a
        contender re-reads a held lease.
    :param margin: how long before the stored expiry the holder stops (default ``ttl / 5``);
        the clock skew the lease tolerates. ``renew_every`` must be below ``ttl - margin``.
    :param holder: this contender's id in the lease object (default ``host:pid``).
    :param clock: the time source (default: the current :mod:`s3db_async._clock` clock).
    """

    def __init__(
        self,
        plugin: Plugin,
        name: str,
        *,
        ttl: float = 30.0,
        renew_every: float | None = None,
        margin: float | None = None,
        holder: str | None = None,
        clock: _clock.Clock | None = None,
    ) -> None:
        self.name = check_lease_name(name)
        self._clock = clock
        ttl_s = check_ttl(ttl, required=True)
        assert ttl_s is not None
        self.ttl = ttl_s
        self.margin = _seconds(margin, ttl_s / 5, "margin", name)
        self.renew_every = _seconds(renew_every, ttl_s / 3, "renew_every", name)
        if not 0 <= self.margin < ttl_s:
            raise ConfigError(
                f"lease margin must be in [0, ttl), got {margin!r} (ttl {ttl_s:g})",
                suggestion="leave margin=None for ttl / 5",
                metadata={"field": "margin", "reason": "out of range", "lease": name},
            )
        if not 0 < self.renew_every < ttl_s - self.margin:
            raise ConfigError(
                f"renew_every={self.renew_every:g} must be positive and below "
                f"ttl - margin = {ttl_s - self.margin:g}",
                suggestion="leave renew_every=None for ttl / 3",
                metadata={"field": "renew_every", "reason": "out of range", "lease": name},
            )
        self.holder = holder or default_worker_id()
        self._plugin = plugin
        self._storage: PluginStorage = plugin.get_storage()
        self.key = self._storage.get_plugin_key(None, "leases", self.name)
        self._token = secrets.token_hex(16)
        self._etag: str | None = None
        self._epoch: int | None = None
        self._acquired_at = 0.0
        self._deadline = 0.0  # monotonic: leading while now < deadline
        self._leading = False
        self._elected_at: float | None = None
        self._runner: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._term_over = asyncio.Event()
        self._seen: tuple[str, float] | None = None
        self._attempts = 0
        self.current_holder: str | None = None
        """The holder id last seen in the lease object (ours while leading)."""
        self.stats: dict[str, int] = {"campaigns": 0, "terms": 0, "renewals": 0, "lost": 0}
        """Counts: campaign attempts, terms won, renewals sent, terms lost (not released)."""

    def __repr__(self) -> str:
        state = f"leader epoch={self._epoch}" if self.is_leader else "follower"
        return f"<Lease {self.name!r} {state} holder={self.holder!r}>"

    # -- time ------------------------------------------------------------------------------
    def _now(self) -> float:
        return (self._clock or _clock.current()).time()

    def _mono(self) -> float:
        return (self._clock or _clock.current()).monotonic()

    async def _sleep(self, seconds: float) -> None:
        await (self._clock or _clock.current()).sleep(seconds)

    # -- state -------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True while this process holds the current term (false from its deadline on)."""
        return self._leading and self._mono() < self._deadline

    @property
    def epoch(self) -> int | None:
        """The fencing epoch of the current (or last) term of this holder; ``None`` before."""
        return self._epoch

    @property
    def elected_at(self) -> float | None:
        """Wall time at which the current term was won (``None`` when not leading)."""
        return self._elected_at if self._leading else None

    @property
    def fence(self) -> Fence:
        """The fencing token of the current term.

        :raises LeaseLostError: not the leader.
        """
        if not self.is_leader or self._epoch is None:
            raise self._lost_error("not the leader")
        return Fence(self.name, self._epoch, self.holder)

    def _lost_error(self, reason: str) -> LeaseLostError:
        return LeaseLostError(
            f"lease {self.name!r} is not held by this process ({reason})",
            suggestion="stop leader-only work; wait_elected() before writing again",
            metadata={"lease": self.name, "epoch": self._epoch, "reason": reason},
        )

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- public operations ---------------------------------------------------------------
    def start(self) -> None:
        """Campaign in the background (idempotent); renews while leading, campaigns again
        after a lost term, until :meth:`release`."""
        if self._runner is None or self._runner.done():
            self._runner = self._plugin.spawn(self._run, name=f"lease:{self.name}")

    async def acquire(self, *, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Campaign until elected; ``False`` after ``timeout`` seconds (``0``: one attempt).

        On ``False`` a campaign started by this call is stopped again.
        """
        await self._storage._require_cas("leader leases")
        started_here = self._runner is None or self._runner.done()
        self.start()
        if await self.wait_elected(timeout=timeout):
            return True
        if started_here:
            await self._stop_runner()
        return False

    async def wait_elected(self, *, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until this process leads (starting the campaign if needed); ``False`` when
        ``timeout`` seconds passed and at least one campaign attempt was made meanwhile."""
        self.start()
        attempts = self._attempts
        deadline = None if timeout is None else self._mono() + max(0.0, timeout)
        while not self.is_leader:
            now = self._mono()
            if deadline is not None and now >= deadline and self._attempts > attempts:
                return False
            left = None if deadline is None else max(deadline - now, 0.0)
            if left == 0.0:
                left = None  # past the deadline: wait only for the attempt under way
            await _wait_event(self._changed, left, self._clock)
            if (self._runner is None or self._runner.done()) and not self.is_leader:
                return False  # the campaign was stopped (release, plugin stop)
        return True

    async def wait_lost(self, *, epoch: int | None = None) -> None:
        """Wait until the current term (or the term ``epoch``) ends; returns at once when
        that term is not the one being held. A later term does not count as the same."""
        if epoch is None:
            epoch = self._epoch
        if not self._leading or self._epoch != epoch:
            return
        over = self._term_over
        while self._leading and self._epoch == epoch and not over.is_set():
            left = self._deadline - self._mono()
            if left <= 0:
                return
            await _wait_event(over, left, self._clock)

    async def release(self) -> None:
        """Stop campaigning and give up the lease (leader-only work is cancelled first).

        Never raises for store trouble: an unreleased term simply expires after ``ttl``.
        """
        campaigning = self._runner is not None and not self._runner.done()
        await self._stop_runner()
        if not self._leading:
            if campaigning:  # a take-over stopped mid-flight may have landed: undo it
                await self._release_landed()
            return
        etag, epoch = self._etag, self._epoch
        self._end_term("released")
        await self._write_released(etag, epoch)

    async def _release_landed(self) -> None:
        try:
            entry = await self._storage._read(self.key)
        except (StoreError, OSError):
            return  # it expires after its ttl
        if entry is None:
            return
        term = _Term.parse(entry)
        if term.token == self._token and not term.released:
            await self._write_released(term.etag, term.epoch)

    async def _write_released(self, etag: str | None, epoch: int | None) -> None:
        now = self._now()
        data = {
            "token": self._token,
            "holder": self.holder,
            "epoch": epoch,
            "released": True,
            "released_at": now,
            "expires_at": now,
            "ttl": self.ttl,
            "w": secrets.token_hex(6),
        }
        body, md = self._storage._encode(self.key, data, expires_at=None, behavior="body-only")
        try:
            await conditional_put(
                self._storage.store,
                self.key,
                body,
                md,
                content_type=CONTENT_TYPE,
                if_match=etag,
            )
        except PreconditionFailed:
            pass  # taken over meanwhile: nothing of ours to release
        except (StoreError, OSError) as exc:
            _log.warning(
                "lease %s: release failed (%s); it expires after its ttl",
                self.name,
                exc,
                extra={"key": self.key, "op": "release_lease"},
            )

    async def check(self) -> Fence:
        """Confirm the term by reading the lease object (one GET); returns its :class:`Fence`.

        :raises LeaseLostError: not leading, or the object shows another term.
        """
        fence = self.fence
        entry = await self._storage._read(self.key)
        term = _Term.parse(entry) if entry is not None else None
        if term is None or term.token != self._token or term.epoch != fence.epoch:
            raise self._lost_error(
                f"the lease object shows epoch {term.epoch if term else None}"
                f" held by {term.holder if term else None!r}"
            )
        if term.released:
            raise self._lost_error("released")
        return self.fence  # raises if the deadline passed during the read

    async def fenced_set(self, key: str, data: Any, *, ttl: float | None = None) -> None:
        """Write a PluginStorage value stamped with this term's :class:`Fence`.

        Compare-and-swap on the value: refused when it already carries a newer epoch of this
        lease (a newer leader wrote it) or when this term has ended.

        :raises StaleFenceError: a newer leader has written ``key``.
        :raises LeaseLostError: this process is not the leader.
        """
        fence = self.fence
        storage = self._storage
        full = storage._resolve(key)
        ttl_s = check_ttl(ttl)
        await storage.register_namespace()

        async def step(_: int) -> bool | _Retry:
            try:
                info = await storage.store.head(full)
            except NotFoundError:
                info = None
            if info is not None and not fence.admits(info.metadata):
                raise StaleFenceError(
                    f"write of {full!r} refused: lease {self.name!r} epoch {fence.epoch} "
                    f"was superseded (the object carries epoch "
                    f"{fence_epoch(info.metadata, self.name)})",
                    suggestion="this process is no longer the leader: stop leader-only work",
                    metadata={
                        "key": full,
                        "lease": self.name,
                        "epoch": fence.epoch,
                        "seen": fence_epoch(info.metadata, self.name),
                    },
                )
            if not self.is_leader or self._epoch != fence.epoch:
                raise self._lost_error("the term ended before the write")
            expires = self._now() + ttl_s if ttl_s is not None else None
            body, md = storage._encode(full, data, expires_at=expires)
            md.update(fence.metadata)
            try:
                await conditional_put(
                    storage.store,
                    full,
                    body,
                    md,
                    content_type=CONTENT_TYPE,
                    if_match=info.etag if info is not None else None,
                    if_none_match=info is None,
                )
            except PreconditionFailed:
                return RETRY
            storage._cache.pop(full, None)
            return True

        await storage._cas(step, full, "fenced_set")

    async def __aenter__(self) -> Lease:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.release())

    # -- the protocol ----------------------------------------------------------------------
    async def _stop_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task() and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(runner, return_exceptions=True)
        self._notify()

    async def _run(self) -> None:
        try:
            await self._storage._require_cas("leader leases")
            while True:
                await self._campaign()
                await self._hold()
        finally:
            if self._leading and not self.is_leader:
                self._end_term("expired")
            self._notify()  # waiters see that the campaign ended

    async def _campaign(self) -> None:
        attempt = 0
        while True:
            try:
                wait = await self._try_acquire()
            except (StoreError, OSError) as exc:
                _log.warning(
                    "lease %s: campaign attempt failed: %s",
                    self.name,
                    exc,
                    extra={"key": self.key, "op": "acquire_lease"},
                )
                wait = _RETRY_BACKOFF.delay(attempt)
                attempt += 1
            else:
                attempt = 0
            self._attempts += 1
            self.stats["campaigns"] += 1
            if wait is None:
                return
            self._notify()
            await self._sleep(wait)

    async def _try_acquire(self) -> float | None:
        """One attempt: ``None`` when elected, else seconds to wait before the next."""
        entry = await self._storage._read(self.key)
        now, mono = self._now(), self._mono()
        prev_epoch, if_match = 0, None
        if entry is not None:
            term = _Term.parse(entry)
            prev_epoch, if_match = term.epoch, term.etag
            self.current_holder = None if term.released else term.holder
            free = term.released or term.token == self._token or term.expires_at <= now
            if not free:
                if self._seen is None or self._seen[0] != term.etag:
                    self._seen = (term.etag, mono)
                watched = mono - self._seen[1]
                if watched >= term.ttl:
                    free = True  # unchanged for a whole ttl of our own clock: its holder is gone
                else:
                    left = min(self.renew_every, term.expires_at - now, term.ttl - watched)
                    return max(0.0, left)
        epoch = prev_epoch + 1
        write = secrets.token_hex(6)
        data = {
            "token": self._token,
            "holder": self.holder,
            "epoch": epoch,
            "acquired_at": now,
            "expires_at": now + self.ttl,
            "ttl": self.ttl,
            "released": False,
            "w": write,
        }
        body, md = self._storage._encode(self.key, data, expires_at=None, behavior="body-only")
        sent = self._mono()
        await self._storage.register_namespace()
        try:
            etag = await conditional_put(
                self._storage.store,
                self.key,
                body,
                md,
                content_type=CONTENT_TYPE,
                if_match=if_match,
                if_none_match=if_match is None,
            )
        except PreconditionFailed:
            landed = await self._landed(write)
            if landed is None:
                return 0.0  # lost the race: read again (another holder, or a free object)
            etag = landed
        except (WriteOutcomeUnknownError, StoreError, OSError):
            landed = await self._landed(write)
            if landed is None:
                return _RETRY_BACKOFF.delay(1)
            etag = landed
        self._begin_term(etag, epoch, now, sent)
        return None

    async def _landed(self, write: str) -> str | None:
        """The etag of our write ``write`` if the lease object holds it now, else ``None``."""
        entry = await self._storage._read(self.key)
        if entry is None:
            return None
        term = _Term.parse(entry)
        if term.token == self._token and term.write == write and not term.released:
            return term.etag
        return None

    def _begin_term(self, etag: str, epoch: int, now: float, sent: float) -> None:
        self._etag, self._epoch = etag, epoch
        self._acquired_at = now
        self._deadline = sent + self.ttl - self.margin
        self._leading = True
        self._elected_at = now
        self._seen = None
        self.current_holder = self.holder
        self._term_over = asyncio.Event()
        self.stats["terms"] += 1
        self._notify()
        self._plugin.emit(
            "leader.elected",
            self._plugin._payload(name=self.name, epoch=epoch, holder=self.holder),
        )

    def _end_term(self, reason: str) -> None:
        if not self._leading:
            return
        ended = self._now()
        left = self._deadline - self._mono()
        if left < 0:  # noticed late: the term ended at its deadline
            ended += left
        self._leading = False
        self._elected_at = None
        if reason != "released":
            self.stats["lost"] += 1
        self._term_over.set()
        self._notify()
        self._plugin.emit(
            "leader.lost",
            self._plugin._payload(
                name=self.name, epoch=self._epoch, holder=self.holder, reason=reason, ended=ended
            ),
        )

    async def _hold(self) -> None:
        """Renew until the term is lost (then return to campaigning)."""
        last_sent = self._deadline - self.ttl + self.margin
        while self._leading:
            await self._sleep(last_sent + self.renew_every - self._mono())
            attempt = 0
            while True:
                if self._mono() >= self._deadline:
                    self._end_term("expired")
                    return
                sent = self._mono()
                try:
                    outcome = await _within(self._deadline, self._renew_once(sent), self._clock)
                except TimeoutError:
                    self._end_term("expired")
                    return
                except (StoreError, OSError) as exc:
                    _log.warning(
                        "lease %s: renewal failed: %s",
                        self.name,
                        exc,
                        extra={"key": self.key, "op": "renew_lease"},
                    )
                    await self._sleep(
                        min(_RETRY_BACKOFF.delay(attempt), self._deadline - self._mono())
                    )
                    attempt += 1
                    continue
                if outcome is True:
                    last_sent = sent
                    break
                if outcome is False:
                    self._end_term("taken")
                    return
                attempt += 1  # RETRY: our etag was stale but the term is still ours

    async def _renew_once(self, sent: float) -> bool | _Retry:
        now = self._now()
        write = secrets.token_hex(6)
        data = {
            "token": self._token,
            "holder": self.holder,
            "epoch": self._epoch,
            "acquired_at": self._acquired_at,
            "expires_at": now + self.ttl,
            "ttl": self.ttl,
            "released": False,
            "w": write,
        }
        body, md = self._storage._encode(self.key, data, expires_at=None, behavior="body-only")
        self.stats["renewals"] += 1
        try:
            etag = await conditional_put(
                self._storage.store,
                self.key,
                body,
                md,
                content_type=CONTENT_TYPE,
                if_match=self._etag,
            )
        except (PreconditionFailed, WriteOutcomeUnknownError):
            entry = await self._storage._read(self.key)
            term = _Term.parse(entry) if entry is not None else None
            if (
                term is None
                or term.token != self._token
                or term.epoch != self._epoch
                or term.released
            ):
                return False
            self._etag = term.etag
            if term.write != write:
                return RETRY
            etag = term.etag
        self._etag = etag
        self._deadline = sent + self.ttl - self.margin
        return True


async def _wait_event(
    event: asyncio.Event,
    timeout: float | None,  # noqa: ASYNC109
    clock: _clock.Clock | None = None,
) -> None:
    """Wait for ``event`` or ``timeout`` seconds of ``clock``, whichever first."""
    if timeout is None:
        await event.wait()
        return
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future((clock or _clock.current()).sleep(timeout))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (waiter, sleeper):
            t.cancel()
        await asyncio.gather(waiter, sleeper, return_exceptions=True)


async def _race(main: asyncio.Future[Any], other: asyncio.Future[Any]) -> None:
    """Wait until ``main`` or ``other`` finishes, then cancel and settle ``other``; if the
    waiter itself is cancelled, both are cancelled and settled first."""
    try:
        await asyncio.wait({main, other}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        main.cancel()
        other.cancel()
        await asyncio.gather(main, other, return_exceptions=True)
        raise
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)


async def _within(
    deadline: float, coro: Coroutine[Any, Any, T], clock: _clock.Clock | None = None
) -> T:
    """Await ``coro``; cancel it and raise ``TimeoutError`` at ``deadline`` (monotonic)."""
    clk = clock or _clock.current()
    task = asyncio.ensure_future(coro)
    await _race(task, asyncio.ensure_future(clk.sleep(deadline - clk.monotonic())))
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise TimeoutError(f"deadline passed after {deadline:.3f}")
    return task.result()


async def run_as_leader(
    lease: Lease, fn: Callable[[Lease], Awaitable[T]], log: logging.Logger
) -> T:
    """Run ``fn(lease)`` whenever ``lease`` leads; cancel it when the term ends, campaign
    again, and return its result (releasing the lease) once it returns while leading."""
    lease.start()
    while True:
        if not await lease.wait_elected():
            runner = lease._runner
            if runner is not None and runner.done() and not runner.cancelled():
                failure = runner.exception()
                if failure is not None:
                    raise failure  # e.g. UnsupportedCapabilityError
            raise lease._lost_error("the campaign was stopped")
        epoch = lease.epoch
        work = asyncio.ensure_future(fn(lease))
        await _race(work, asyncio.ensure_future(lease.wait_lost(epoch=epoch)))
        if work.done() and lease.is_leader and lease.epoch == epoch:
            await lease.release()
            return work.result()  # raises what fn raised
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        log.info(
            "lease %s: term %s ended; leader work cancelled, campaigning again",
            lease.name,
            epoch,
            extra={"op": "run_as_leader", "key": lease.key},
        )
