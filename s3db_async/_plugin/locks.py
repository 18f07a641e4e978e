"""Distributed locks of :class:`~s3db_async.PluginStorage` (``.../locks/{name}``).

A lock is one object holding the owner's random token, worker id and expiry. Acquiring
creates it with ``If-None-Match``; a released or expired lock is taken over by
compare-and-swap on its etag; releasing is a conditional delete where the store has one,
else a compare-and-swap to a tombstone. Never a blind write or delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _clock
from .._cas import conditional_put
from ..errors import (
    ConfigError,
    ConflictError,
    LockError,
    NotFoundError,
    PreconditionFailed,
    WriteOutcomeUnknownError,
)
from .entries import CONTENT_TYPE, Entry, check_ttl

if TYPE_CHECKING:
    from .storage import PluginStorage

__all__ = ["Lock", "Locks", "default_worker_id"]

_log = logging.getLogger("s3db_async.plugin_storage")


@dataclass(slots=True)
class Lock:
    """A held distributed lock, from :meth:`PluginStorage.acquire_lock`.

    Release it with ``await lock.release()`` (or ``storage.release_lock(lock)``), extend it
    with ``await lock.refresh()``; ``async with lock:`` releases on exit.
    """

    name: str
    key: str
    token: str
    worker_id: str
    ttl: float
    acquired_at: float
    expires_at: float
    etag: str
    storage: PluginStorage = field(repr=False, compare=False)
    released: bool = False

    @property
    def expired(self) -> bool:
        """True once the ttl has passed (another worker may take the lock over)."""
        return _clock.time() >= self.expires_at

    @property
    def remaining(self) -> float:
        """Seconds left before the lock expires (negative once expired)."""
        return self.expires_at - _clock.time()

    async def release(self) -> bool:
        """Release the lock; ``False`` when it was no longer ours (expired and taken over)."""
        return await self.storage.release_lock(self)

    async def refresh(self, *, ttl: float | None = None) -> bool:
        """Extend the lock by ``ttl`` (default: its original ttl) from now."""
        return await self.storage.refresh_lock(self, ttl=ttl)

    async def __aenter__(self) -> Lock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def default_worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Locks:
    """The lock protocol behind :class:`~s3db_async.PluginStorage`'s lock methods, which
    hold the public signatures and call :meth:`acquire`, :meth:`release`, :meth:`refresh`
    and :meth:`hold` with their arguments resolved."""

    def __init__(self, storage: PluginStorage) -> None:
        self.storage = storage

    def make_lock(
        self,
        name: str,
        key: str,
        token: str,
        worker: str,
        ttl: float,
        data: Mapping[str, Any],
        etag: str,
    ) -> Lock:
        return Lock(
            name,
            key,
            token,
            worker,
            ttl,
            data["acquired_at"],
            data["expires_at"],
            etag,
            self.storage,
        )

    async def tombstone(self, entry: Entry, by: str = "") -> str | None:
        body, md = self.storage._encode(
            entry.key,
            {"released_by": by, "released_at": _clock.time()},
            expires_at=None,
            behavior="body-only",
            tombstone=True,
        )
        etag = await self.put(entry.key, body, md, if_match=entry.etag)
        if etag is None:
            return None
        # the next acquire of this lock can swap the tombstone without reading it first
        self.storage._remember(Entry(entry.key, etag, None, None, True, [], True))
        return etag

    async def put(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str],
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        unknown_raises: bool = False,
    ) -> str | None:
        """Write a lock object under a condition; its etag, or ``None`` when the condition
        failed or (unless ``unknown_raises``) the outcome is unknown: the caller reads the
        key to tell."""
        try:
            return await conditional_put(
                self.storage.store,
                key,
                body,
                metadata,
                content_type=CONTENT_TYPE,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        except PreconditionFailed:
            return None
        except WriteOutcomeUnknownError:
            if unknown_raises:
                raise
            return None

    async def acquire(
        self,
        name: str,
        ttl: float,
        timeout: float,  # noqa: ASYNC109 - polling budget, not a cancel scope
        worker_id: object,
        resource: str | None,
    ) -> Lock | None:
        ttl_s = check_ttl(ttl, required=True)
        assert ttl_s is not None
        await self.storage._require_cas("acquire_lock")
        await self.storage.register_namespace()
        key = self.storage.get_lock_key(name, resource)
        token = secrets.token_hex(16)
        worker = str(worker_id) if worker_id is not None else default_worker_id()
        deadline = _clock.monotonic() + max(0.0, float(timeout))
        deletes = await self.storage._conditional_delete()
        try_create = deletes  # stores that delete released locks: usually absent
        cached = self.storage._cache.pop(key, None)  # e.g. the tombstone of our last release
        attempt = 0
        quick = 0
        while True:
            now = _clock.time()
            data = {
                "token": token,
                "worker_id": worker,
                "acquired_at": now,
                "expires_at": now + ttl_s,
                "ttl": ttl_s,
            }
            body, md = self.storage._encode(key, data, expires_at=now + ttl_s, behavior="body-only")
            entry: Entry | None = None
            if try_create:
                etag = await self.put(key, body, md, if_none_match=True)
                if etag is not None:
                    return self.make_lock(name, key, token, worker, ttl_s, data, etag)
                # held, or unknown: the read below tells (our token = ours)
            entry, cached = cached or await self.storage._read(key), None
            if entry is None:
                try_create = True
                quick += 1
                if quick <= 3:
                    continue
                if quick == 4:
                    await self.check_phantom(key)
            elif isinstance(entry.data, dict) and entry.data.get("token") == token:
                if not entry.tombstone:  # an answer we could not see: the write did land
                    return self.make_lock(name, key, token, worker, ttl_s, entry.data, entry.etag)
            elif not entry.live(now):
                etag = await self.put(key, body, md, if_match=entry.etag)
                if etag is not None:
                    return self.make_lock(name, key, token, worker, ttl_s, data, etag)
            left = deadline - _clock.monotonic()
            if left <= 0:
                return None
            wait = left
            if entry is not None and entry.live(now) and entry.expires_at is not None:
                wait = min(wait, entry.expires_at - now + 0.005)
            await self.storage._backoff(attempt, wait)
            attempt += 1
            try_create = deletes

    async def release(self, lock: Lock | str, token: str | None, resource: str | None) -> bool:
        if isinstance(lock, Lock):
            entry = Entry(lock.key, lock.etag, None, None, False, [], True)
            if lock.released:
                return False
        else:
            if token is None:
                raise ConfigError(
                    "release_lock(name) needs the lock's token",
                    suggestion="pass the Lock from acquire_lock, or release_lock(name, token)",
                    metadata={"lock": lock},
                )
            found = await self.storage._read(self.storage.get_lock_key(lock, resource))
            if (
                found is None
                or found.tombstone
                or not isinstance(found.data, dict)
                or found.data.get("token") != token
            ):
                return False
            entry = found
        if await self.storage._conditional_delete():
            try:
                await self.storage.store.delete(entry.key, if_match=entry.etag)
                ok = True
            except (PreconditionFailed, NotFoundError):
                ok = False
        else:
            ok = (
                await self.tombstone(entry, lock.worker_id if isinstance(lock, Lock) else "")
                is not None
            )
        if isinstance(lock, Lock):
            lock.released = True
        if not ok:
            _log.warning(
                "lock %s was no longer held at release (expired and taken over?)",
                entry.key,
                extra={"key": entry.key, "op": "release_lock"},
            )
        return ok

    async def refresh(self, lock: Lock, ttl: float | None) -> bool:
        ttl_s = check_ttl(ttl if ttl is not None else lock.ttl, required=True)
        assert ttl_s is not None
        if lock.released:
            return False
        now = _clock.time()
        data = {
            "token": lock.token,
            "worker_id": lock.worker_id,
            "acquired_at": lock.acquired_at,
            "expires_at": now + ttl_s,
            "ttl": ttl_s,
        }
        body, md = self.storage._encode(
            lock.key, data, expires_at=now + ttl_s, behavior="body-only"
        )
        etag = await self.put(lock.key, body, md, if_match=lock.etag, unknown_raises=True)
        if etag is None:
            return False
        lock.etag, lock.expires_at, lock.ttl = etag, now + ttl_s, ttl_s
        return True

    @contextlib.asynccontextmanager
    async def hold(
        self,
        name: str,
        ttl: float,
        timeout: float,  # noqa: ASYNC109 - polling budget, not a cancel scope
        worker_id: object,
        resource: str | None,
    ) -> AsyncIterator[Lock]:
        held = await self.acquire(name, ttl, timeout, worker_id, resource)
        if held is None:
            raise LockError(
                f"could not acquire lock {name!r} within {timeout:g}s",
                suggestion="raise timeout=, or check which worker holds it (is_locked)",
                metadata={"lock": name, "timeout": timeout, "slug": self.storage.slug},
            )
        try:
            yield held
        finally:
            await asyncio.shield(self.release(held, None, None))

    async def check_phantom(self, full: str) -> None:
        """Explain a create that keeps failing on a key that does not exist."""
        if await self.storage.store.list_keys(full + "/", limit=1):
            raise ConflictError(
                f"the store refuses to create {full!r} although it does not exist: other keys "
                f"live under {full + '/'!r} (SeaweedFS treats that prefix as an existing "
                "directory for If-None-Match)",
                suggestion="do not use one key both as a value and as a prefix of other keys",
                metadata={"key": full},
            )
