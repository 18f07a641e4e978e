"""Bounded-concurrency helpers on asyncio (ordered results, bounded memory)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

__all__ = ["bounded_gather", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


async def bounded_gather(
    fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
) -> list[R]:
    """``[await fn(x) for x in items]`` with at most ``limit`` calls in flight, in order.

    The first exception cancels the calls still running and is re-raised.
    """
    seq = list(items)
    if not seq:
        return []
    if len(seq) == 1 or limit <= 1:
        return [await fn(x) for x in seq]
    results: list[R] = [None] * len(seq)  # type: ignore[list-item]
    it = iter(enumerate(seq))

    async def worker() -> None:
        for i, x in it:
            results[i] = await fn(x)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(seq)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


async def ordered_map(
    fn: Callable[[T], Awaitable[R]], items: AsyncIterable[T] | Iterable[T], limit: int
) -> AsyncIterator[R]:
    """Yield ``await fn(x)`` for each item, in input order, with at most ``limit`` in flight.

    Memory stays bounded by ``limit`` pending results whatever the input size.
    """
    window: deque[asyncio.Future[R]] = deque()
    limit = max(1, limit)

    async def source() -> AsyncIterator[T]:
        if isinstance(items, AsyncIterable):
            async for x in items:
                yield x
        else:
            for x in items:
                yield x

    try:
        async for x in source():
            window.append(asyncio.ensure_future(fn(x)))
            if len(window) >= limit:
                yield await window.popleft()
        while window:
            yield await window.popleft()
    finally:
        for fut in window:
            fut.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)
