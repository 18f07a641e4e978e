"""The time that TTLs, lock expiry and lock waits read: one replaceable clock.

Production code calls :func:`time` (wall clock, for expiry stamps stored in objects),
:func:`monotonic` (for waits) and :func:`sleep` (the waits of leases and jobs, which a
:class:`ManualClock` ends on :meth:`~ManualClock.advance`). Tests swap in a
:class:`ManualClock` with :func:`use_clock` and move time forward exactly instead of
sleeping::

    with use_clock(ManualClock()) as clock:
        await storage.set("k", 1, ttl=5)
        clock.advance(5)
        assert await storage.is_expired("k")
"""

from __future__ import annotations

import asyncio
import contextlib
import time as _time
from collections.abc import Iterator

__all__ = ["Clock", "ManualClock", "current", "monotonic", "sleep", "time", "use_clock"]


class Clock:
    """The system clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return _time.time()

    def monotonic(self) -> float:
        """Seconds of a clock that never goes back (for timeouts)."""
        return _time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's monotonic time."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock(Clock):
    """Wall time that moves only by :meth:`advance`.

    Its monotonic time is the real one plus every advance, so a wait with a timeout still
    ends on its own and jumps forward with the wall time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._offset = 0.0
        self._sleepers: set[asyncio.Future[None]] = set()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return _time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (and wake the sleepers whose time has come)."""
        self.now += seconds
        self._offset += seconds
        for waiter in list(self._sleepers):
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Wait until :meth:`monotonic` has moved ``seconds`` on: real time or advances."""
        deadline = self.monotonic() + max(0.0, seconds)
        loop = asyncio.get_running_loop()
        while (left := deadline - self.monotonic()) > 0:
            waiter: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(left, _wake, waiter)
            self._sleepers.add(waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._sleepers.discard(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_clock: Clock = Clock()


def time() -> float:
    """Wall time of the current clock."""
    return _clock.time()


def monotonic() -> float:
    """Monotonic time of the current clock."""
    return _clock.monotonic()


async def sleep(seconds: float) -> None:
    """Sleep ``seconds`` on the current clock (a :class:`ManualClock` wakes on ``advance``)."""
    await _clock.sleep(seconds)


def current() -> Clock:
    """The current clock."""
    return _clock


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the current clock inside the ``with`` block."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
