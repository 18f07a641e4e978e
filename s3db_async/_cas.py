"""Compare-and-swap: one conditional write that survives lost answers, one retry loop.

Every coordination primitive of s3db-async is a conditional PUT (``If-None-Match: *`` to
create, ``If-Match: <etag>`` to swap). This module holds the two pieces they all share.

:func:`conditional_put` -- resolving an ambiguous outcome
    A store raises :class:`~s3db_async.errors.WriteOutcomeUnknownError` when a conditional
    PUT got no definite answer (connection reset or timeout after sending, a 500): the
    server may or may not have applied it. Resending blindly is wrong (the resend answers
    412 for a write that landed, and the caller re-applies its change: an increment counted
    twice, an insert reported as "already exists"). Instead we read the key back (one HEAD)
    and decide from facts that cannot lie, because every body we write carries a fresh
    random nonce, so the MD5 etag of our body names this one write:

    - current etag == md5(our body): our write is there. Applied; return its etag.
    - If-Match and current etag == the expected etag, or If-None-Match and the key is
      absent: our write is not there *now*. Nobody can have applied it and then restored
      the old body (no body is ever written twice, nonces), so it was not applied: resend
      the same body. (Absent after a create can also mean "created, then deleted by
      someone else in between"; resending then creates the object after that delete,
      which is what a create concurrent with a delete may do anyway.)
    - anything else (another etag, or the key gone under If-Match): our write may have
      landed and been superseded, or lost to another writer. Both are possible, so we
      raise :class:`WriteOutcomeUnknownError` again rather than report a lost race
      (PreconditionFailed would make the caller re-apply its change) or claim success.

    A resend after an ambiguous attempt can itself answer 412 because the first attempt
    landed late (the server was still processing it while we read). So a 412 that follows
    an ambiguity is resolved the same way (HEAD: ours → applied, else unknown), never
    reported as a lost race. Stores that always answer (memory, file) never raise the
    ambiguous error, and then this costs nothing.

:func:`cas_loop` -- the read → modify → conditional write → retry loop
    ``step(attempt)`` does one read-modify-write and returns its result, or :data:`RETRY`
    after losing a race. Between attempts it sleeps a capped, fully jittered exponential
    backoff; it gives up with :class:`~s3db_async.errors.ConflictError` after an overall
    deadline (default 30 s) or, when asked, a number of attempts. Record updates,
    ``s3db.json``, history, migrations, passphrase rotation, PluginStorage counters,
    sequences (so incremental ids) and ``touch`` use it; lock acquisition polls until its
    own timeout (returning ``None``, not raising) with the same :class:`Backoff` delays.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .errors import ConflictError, NotFoundError, PreconditionFailed, WriteOutcomeUnknownError
from .stores._base import body_etag

if TYPE_CHECKING:
    from .stores import ObjectStore

__all__ = ["RETRY", "Backoff", "body_etag", "cas_loop", "conditional_put"]

T = TypeVar("T")

RESENDS = 3
"""Resends of one conditional write after ambiguous outcomes proven not applied."""


_PutArgs = tuple[
    "ObjectStore", str, bytes, "Mapping[str, str] | None", "str | None", "str | None", bool
]
"""A conditional PUT's arguments: store, key, body, metadata, content type, if_match,
if_none_match."""


def conditional_put(
    store: ObjectStore,
    key: str,
    body: bytes,
    metadata: Mapping[str, str] | None = None,
    *,
    content_type: str | None = None,
    if_match: str | None = None,
    if_none_match: bool = False,
) -> Coroutine[Any, Any, str]:
    """``store.put`` with a condition, resolving lost answers (see the module docstring).

    On a store that always answers (:attr:`ObjectStore.always_answers`: memory, file)
    there is nothing to resolve, and this is ``store.put`` itself, without a layer.

    :returns: the etag of our write.
    :raises PreconditionFailed: the condition did not hold (a definite answer).
    :raises WriteOutcomeUnknownError: whether the write landed cannot be proven.
    """
    args: _PutArgs = (store, key, body, metadata, content_type, if_match, if_none_match)
    return _send(*args) if store.always_answers else _resolved_put(args)


def _send(
    store: ObjectStore,
    key: str,
    body: bytes,
    metadata: Mapping[str, str] | None,
    content_type: str | None,
    if_match: str | None,
    if_none_match: bool,
) -> Coroutine[Any, Any, str]:
    """One attempt: the store's conditional PUT."""
    return store.put(
        key,
        body,
        metadata,
        content_type=content_type,
        if_match=if_match,
        if_none_match=if_none_match,
    )


async def _resolved_put(args: _PutArgs) -> str:
    """Attempts of one conditional PUT until a definite answer (module docstring)."""
    store, key, body, _, _, if_match, if_none_match = args
    unknown: WriteOutcomeUnknownError | None = None
    for _ in range(RESENDS + 1):
        try:
            return await _send(*args)
        except WriteOutcomeUnknownError as exc:
            unknown = exc
        except PreconditionFailed:
            if unknown is None:
                raise  # a plain answer: the race was lost
        try:
            current: str | None = (await store.head(key)).etag
        except NotFoundError:
            current = None
        except Exception as exc:
            raise _unknown(key, "the read-back failed", unknown) from exc
        ours = body_etag(body)
        if current == ours:
            return ours
        if not ((if_match is not None and current == if_match) or (if_none_match and not current)):
            raise _unknown(key, f"the key now has etag {current}", unknown)
    raise _unknown(key, f"no answer after {RESENDS + 1} attempts", unknown)


def _unknown(key: str, why: str, cause: BaseException | None) -> WriteOutcomeUnknownError:
    return WriteOutcomeUnknownError(
        f"conditional write of {key!r} got no answer and {why}: it may or may not have landed",
        suggestion="read the object and decide; retrying the same change may apply it twice",
        metadata={"key": key, "op": "put", "cause": str(cause) if cause else None},
    )


class _Retry:
    __slots__ = ()

    def __repr__(self) -> str:
        return "RETRY"


RETRY: Final = _Retry()
"""Returned by a :func:`cas_loop` step that lost its race and wants another attempt."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """How :func:`cas_loop` waits: ``uniform(0, min(cap, base * 2**attempt))`` seconds,
    until ``deadline`` seconds have passed or ``attempts`` attempts were made."""

    base: float = 0.005
    cap: float = 0.5
    deadline: float = 30.0
    attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """The jittered sleep before attempt ``attempt + 1``."""
        return random.uniform(0, min(self.cap, self.base * 2.0 ** min(attempt, 20)))


DEFAULT_BACKOFF = Backoff()


async def cas_loop(
    step: Callable[[int], Awaitable[T | _Retry]],
    *,
    what: str,
    backoff: Backoff = DEFAULT_BACKOFF,
    suggestion: str = "retry later; many writers change this object at once",
    metadata: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``step(attempt)`` until it returns something other than :data:`RETRY`.

    :raises ConflictError: still losing after ``backoff.deadline`` seconds (or
        ``backoff.attempts`` attempts).
    """
    started = clock()
    attempt = 0
    while True:
        result = await step(attempt)
        if not isinstance(result, _Retry):
            return result
        attempt += 1
        left = backoff.deadline - (clock() - started)
        if left <= 0 or (backoff.attempts is not None and attempt >= backoff.attempts):
            raise ConflictError(
                f"{what} kept changing: gave up after {attempt} attempts",
                suggestion=suggestion,
                metadata={**(metadata or {}), "attempts": attempt},
                retriable=True,
            )
        await asyncio.sleep(min(backoff.delay(attempt), left))
