"""The public multi-process harness of ``s3db_async.testing`` (issue 18.6): real OS processes
running a module-level async function on one store URL."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from s3db_async import PluginStorage
from s3db_async.errors import ConfigError
from s3db_async.stores import open_store
from s3db_async.testing import (
    WorkerContext,
    WorkerError,
    run_processes,
    spawn_processes,
)

pytestmark = pytest.mark.stores("file")


async def whoami(ctx: WorkerContext) -> dict[str, Any]:
    print("this goes to stderr, not into the protocol")
    return {"pid": os.getpid(), "index": ctx.index, "count": ctx.count, "args": ctx.args}


async def count_up(ctx: WorkerContext) -> list[int]:
    async with open_store(ctx.url) as store:
        storage = PluginStorage(store, "procs")
        await ctx.barrier("connected")
        return [await storage.increment("hits") for _ in range(ctx.args[0])]


async def fail(ctx: WorkerContext) -> None:
    if ctx.index == 1:
        raise ValueError(f"worker {ctx.index} refuses")


async def hold(ctx: WorkerContext) -> str:
    if ctx.index == 0:
        await ctx.report("holding", os.getpid())
        await ctx.receive()  # never comes: the parent kills this one
    return "finished"


async def echo(ctx: WorkerContext) -> list[Any]:
    got = []
    while (item := await ctx.receive()) is not None:
        got.append(item)
        await ctx.report("echo", item)
    return got


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}/{b}")


async def raise_unpicklable(ctx: WorkerContext) -> None:
    raise Unpicklable(1, 2)


async def test_results_come_back_by_index(store_url: str) -> None:
    answers = await run_processes(whoami, store_url, n=3, args=("x", 2))
    assert [a["index"] for a in answers] == [0, 1, 2]
    assert {a["count"] for a in answers} == {3}
    assert all(a["args"] == ("x", 2) for a in answers)
    assert len({a["pid"] for a in answers}) == 3 and os.getpid() not in {a["pid"] for a in answers}


async def test_workers_share_one_store(store_url: str) -> None:
    async with spawn_processes(count_up, store_url, n=3, args=(10,)) as group:
        await group.release("connected")
        values = await group.results()
    assert sorted(v for vs in values for v in vs) == list(range(1, 31))


async def test_run_processes_releases_barriers_by_itself(store_url: str) -> None:
    values = await run_processes(count_up, store_url, n=2, args=(5,))
    assert sorted(v for vs in values for v in vs) == list(range(1, 11))
    async with spawn_processes(count_up, store_url, 2, (5,), auto_release=True) as group:
        more = await group.results()
    assert sorted(v for vs in more for v in vs) == list(range(11, 21))


async def test_an_exception_comes_back_with_its_traceback(store_url: str) -> None:
    with pytest.raises(WorkerError) as info:
        await run_processes(fail, store_url, n=2)
    assert "worker 1" in str(info.value) and "refuses" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.outcome is not None and info.value.outcome.index == 1
    async with spawn_processes(raise_unpicklable, store_url, n=1) as group:
        (outcome,) = await group.outcomes()
    assert outcome.error_type == "Unpicklable" and "1/2" in outcome.traceback
    assert not outcome.ok


async def test_one_worker_can_be_killed(store_url: str) -> None:
    async with spawn_processes(hold, store_url, n=2) as group:
        index, pid = await group.wait_for("holding")
        assert (index, pid) == (0, group.pids[0])
        group.kill(0)
        killed, other = await group.outcomes()
    assert killed.killed and killed.returncode == -signal.SIGKILL and not killed.ok
    with pytest.raises(WorkerError, match="killed"):
        killed.result()
    assert other.result() == "finished"


async def test_messages_both_ways(store_url: str) -> None:
    async with spawn_processes(echo, store_url, n=2) as group:
        group.send(1, {"n": 1})
        assert await group.wait_for("echo", 1) == (1, {"n": 1})
        group.send(1, None)
        group.send(0, None)
        assert await group.results() == [[], [{"n": 1}]]


async def test_only_importable_coroutine_functions(store_url: str, tmp_path: Path) -> None:
    async def local(ctx: WorkerContext) -> None:
        pass

    for fn in (local, lambda ctx: None, whoami.__call__):
        with pytest.raises(ConfigError) as info:
            await run_processes(fn, store_url, n=1)  # type: ignore[arg-type]
        assert info.value.suggestion
    with pytest.raises(ConfigError):
        await run_processes(whoami, store_url, n=0)
