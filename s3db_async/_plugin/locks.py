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
from typing import TYPE_CHECKING, Any, cast

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

if TYPE_CHECKING:
    from collections import OrderedDict
    from contextlib import AbstractAsyncContextManager

    from ..stores import ObjectStore
    from .storage import PluginStorage, _Entry

__all__ = ["Lock", "LockMixin", "default_worker_id"]

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


class LockMixin:
    """``acquire_lock``/``release_lock``/``refresh_lock``/``is_locked``/``lock`` of a storage.

    Mixed into :class:`~s3db_async.PluginStorage`; helpers shared with the rest of the
    storage (``_Entry``, ``_check_ttl``, ``_CONTENT_TYPE``) are imported from
    ``_plugin_storage`` inside the methods, since that module imports this one.
    """

    if TYPE_CHECKING:
        slug: str
        _cache: OrderedDict[str, _Entry]

        @property
        def store(self) -> ObjectStore: ...
        def get_lock_key(self, name: str, resource: str | None = None) -> str: ...
        def _encode(
            self,
            key: str,
            data: Any,
            *,
            expires_at: float | None,
            behavior: str = "body-overflow",
            ops: list[str] | None = None,
            tombstone: bool = False,
        ) -> tuple[bytes, dict[str, str]]: ...
        def _remember(self, entry: _Entry) -> None: ...
        async def _read(self, full: str) -> _Entry | None: ...
        async def _head(self, full: str) -> _Entry | None: ...
        async def _require_cas(self, what: str) -> None: ...
        async def _conditional_delete(self) -> bool: ...
        async def _backoff(self, attempt: int, limit: float | None = None) -> None: ...
        async def register_namespace(self) -> None: ...

    def _lock(
        self,
        name: str,
        key: str,
        token: str,
        worker: str,
        ttl: float,
        data: Mapping[str, Any],
        etag: str,
    ) -> Lock:
        storage = cast("PluginStorage", self)
        return Lock(
            name, key, token, worker, ttl, data["acquired_at"], data["expires_at"], etag, storage
        )

    async def _tombstone(self, entry: _Entry, by: str = "") -> str | None:
        from .storage import _CONTENT_TYPE, _Entry

        body, md = self._encode(
            entry.key,
            {"released_by": by, "released_at": _clock.time()},
            expires_at=None,
            behavior="body-only",
            tombstone=True,
        )
        try:
            etag = await conditional_put(
                self.store, entry.key, body, md, content_type=_CONTENT_TYPE, if_match=entry.etag
            )
        except (PreconditionFailed, WriteOutcomeUnknownError):
            return None
        # the next acquire of this lock can swap the tombstone without reading it first
        self._remember(_Entry(entry.key, etag, None, None, True, [], True))
        return etag

    async def acquire_lock(
        self,
        name: str,
        *,
        ttl: float,
        timeout: float = 0,  # noqa: ASYNC109 - polling budget, not a cancel scope
        worker_id: object = None,
        resource: str | None = None,
    ) -> Lock | None:
        """Take the lock ``name`` for ``ttl`` seconds; ``None`` if still held after ``timeout``.

        Acquiring creates ``.../locks/{name}`` with ``If-None-Match``; a released or expired
        lock is taken over by compare-and-swap on its etag. While another worker holds it, the
        call polls with jittered exponential backoff until ``timeout`` seconds have passed.

        :param worker_id: recorded in the lock (default ``host:pid``).
        :raises UnsupportedCapabilityError: the store has no reliable conditional writes.
        """
        from .storage import _CONTENT_TYPE, _check_ttl

        ttl_s = _check_ttl(ttl, required=True)
        assert ttl_s is not None
        await self._require_cas("acquire_lock")
        await self.register_namespace()
        key = self.get_lock_key(name, resource)
        token = secrets.token_hex(16)
        worker = str(worker_id) if worker_id is not None else default_worker_id()
        deadline = _clock.monotonic() + max(0.0, float(timeout))
        deletes = await self._conditional_delete()
        try_create = deletes  # stores that delete released locks: usually absent
        cached = self._cache.pop(key, None)  # e.g. the tombstone of our last release
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
            body, md = self._encode(key, data, expires_at=now + ttl_s, behavior="body-only")
            entry: _Entry | None = None
            if try_create:
                try:
                    etag = await conditional_put(
                        self.store, key, body, md, content_type=_CONTENT_TYPE, if_none_match=True
                    )
                    return self._lock(name, key, token, worker, ttl_s, data, etag)
                except (PreconditionFailed, WriteOutcomeUnknownError):
                    pass  # held, or unknown: the read below tells (our token = ours)
            entry, cached = cached or await self._read(key), None
            if entry is None:
                try_create = True
                quick += 1
                if quick <= 3:
                    continue
                if quick == 4:
                    await self._check_phantom(key)
            elif isinstance(entry.data, dict) and entry.data.get("token") == token:
                if not entry.tombstone:  # an answer we could not see: the write did land
                    return self._lock(name, key, token, worker, ttl_s, entry.data, entry.etag)
            elif not entry.live(now):
                try:
                    etag = await conditional_put(
                        self.store, key, body, md, content_type=_CONTENT_TYPE, if_match=entry.etag
                    )
                    return self._lock(name, key, token, worker, ttl_s, data, etag)
                except (PreconditionFailed, WriteOutcomeUnknownError):
                    pass
            left = deadline - _clock.monotonic()
            if left <= 0:
                return None
            wait = left
            if entry is not None and entry.live(now) and entry.expires_at is not None:
                wait = min(wait, entry.expires_at - now + 0.005)
            await self._backoff(attempt, wait)
            attempt += 1
            try_create = deletes

    async def release_lock(
        self, lock: Lock | str, token: str | None = None, *, resource: str | None = None
    ) -> bool:
        """Release a lock; ``False`` when it is no longer held with this token.

        Token-checked and atomic: a conditional delete on the etag where the store has one,
        else a compare-and-swap to a tombstone (obstore cannot send ``If-Match`` on DELETE;
        a blind delete could remove a lock another worker just took over).

        :param lock: the :class:`Lock`, or a lock name together with ``token``.
        """
        from .storage import _Entry

        if isinstance(lock, Lock):
            entry = _Entry(lock.key, lock.etag, None, None, False, [], True)
            if lock.released:
                return False
        else:
            if token is None:
                raise ConfigError(
                    "release_lock(name) needs the lock's token",
                    suggestion="pass the Lock from acquire_lock, or release_lock(name, token)",
                    metadata={"lock": lock},
                )
            found = await self._read(self.get_lock_key(lock, resource))
            if (
                found is None
                or found.tombstone
                or not isinstance(found.data, dict)
                or found.data.get("token") != token
            ):
                return False
            entry = found
        if await self._conditional_delete():
            try:
                await self.store.delete(entry.key, if_match=entry.etag)
                ok = True
            except (PreconditionFailed, NotFoundError):
                ok = False
        else:
            ok = (
                await self._tombstone(entry, lock.worker_id if isinstance(lock, Lock) else "")
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

    async def refresh_lock(self, lock: Lock, *, ttl: float | None = None) -> bool:
        """Extend a held lock to ``ttl`` seconds from now (compare-and-swap on its etag)."""
        from .storage import _CONTENT_TYPE, _check_ttl

        ttl_s = _check_ttl(ttl if ttl is not None else lock.ttl, required=True)
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
        body, md = self._encode(lock.key, data, expires_at=now + ttl_s, behavior="body-only")
        try:
            lock.etag = await conditional_put(
                self.store, lock.key, body, md, content_type=_CONTENT_TYPE, if_match=lock.etag
            )
        except PreconditionFailed:
            return False
        lock.expires_at, lock.ttl = now + ttl_s, ttl_s
        return True

    async def is_locked(self, name: str, *, resource: str | None = None) -> bool:
        """True when the lock is held and has not expired (one HEAD)."""
        entry = await self._head(self.get_lock_key(name, resource))
        return entry is not None and entry.live()

    def lock(
        self,
        name: str,
        *,
        ttl: float,
        timeout: float = 0,
        worker_id: object = None,
        resource: str | None = None,
    ) -> AbstractAsyncContextManager[Lock]:
        """``async with storage.lock("job", ttl=30, timeout=5) as lock:`` ... released on exit.

        :raises LockError: not acquired within ``timeout``.
        """
        return self._lock_cm(name, ttl, timeout, worker_id, resource)

    @contextlib.asynccontextmanager
    async def _lock_cm(
        self,
        name: str,
        ttl: float,
        timeout: float,  # noqa: ASYNC109 - polling budget, not a cancel scope
        worker_id: object,
        resource: str | None,
    ) -> AsyncIterator[Lock]:
        held = await self.acquire_lock(
            name, ttl=ttl, timeout=timeout, worker_id=worker_id, resource=resource
        )
        if held is None:
            raise LockError(
                f"could not acquire lock {name!r} within {timeout:g}s",
                suggestion="raise timeout=, or check which worker holds it (is_locked)",
                metadata={"lock": name, "timeout": timeout, "slug": self.slug},
            )
        try:
            yield held
        finally:
            await asyncio.shield(self.release_lock(held))

    async def _check_phantom(self, full: str) -> None:
        """Explain a create that keeps failing on a key that does not exist."""
        if await self.store.list_keys(full + "/", limit=1):
            raise ConflictError(
                f"the store refuses to create {full!r} although it does not exist: other keys "
                f"live under {full + '/'!r} (SeaweedFS treats that prefix as an existing "
                "directory for If-None-Match)",
                suggestion="do not use one key both as a value and as a prefix of other keys",
                metadata={"key": full},
            )
