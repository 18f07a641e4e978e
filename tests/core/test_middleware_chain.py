"""compose_middlewares: order, arguments, and no coroutine layer of its own (the budget of
MetricsPlugin on a memory get, issue 19)."""

from __future__ import annotations

from typing import Any

from s3db_async._events import compose_middlewares


async def test_first_registered_runs_outermost_and_sees_the_arguments() -> None:
    seen: list[str] = []

    async def final(x: int, *, y: int) -> int:
        seen.append("final")
        return x + y

    def named(name: str) -> Any:
        async def mw(nxt: Any, x: int, *, y: int) -> int:
            seen.append(name)
            return await nxt(x * 10, y=y) + 1

        return mw

    chain = compose_middlewares([named("a"), named("b")], final)
    assert await chain(1, y=2) == 102 + 2  # (1*10*10 + 2) + 1 + 1
    assert seen == ["a", "b", "final"]


async def test_the_chain_hands_back_the_middlewares_own_coroutine() -> None:
    async def final() -> int:
        return 1

    async def mw(nxt: Any) -> int:
        return int(await nxt())

    coro = compose_middlewares([mw], final)()
    assert coro.cr_code is mw.__code__  # type: ignore[attr-defined]
    assert await coro == 1
