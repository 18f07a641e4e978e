"""Async fixtures and tests share one event loop (pyproject's pytest-asyncio loop scopes), so
work a fixture starts (a plugin's background task, a connection) runs on the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from s3db_async import Database, Plugin

pytestmark = pytest.mark.stores("memory")


class Ticker(Plugin):
    """Leaves a task running, as plugins with workers do."""

    async def on_start(self) -> None:
        self.ticks = 0
        self.spawn(self._tick, name="tick")

    async def _tick(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)


@pytest.fixture
async def fixture_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.fixture
async def ticker(db: Database) -> AsyncIterator[Ticker]:
    yield await db.use_plugin(Ticker())


async def test_async_fixtures_run_on_the_test_loop(
    fixture_loop: asyncio.AbstractEventLoop,
) -> None:
    assert asyncio.get_running_loop() is fixture_loop


async def test_a_task_a_fixture_started_keeps_running_in_the_test(ticker: Ticker) -> None:
    (task,) = ticker.tasks
    assert task.get_loop() is asyncio.get_running_loop()
    before = ticker.ticks
    for _ in range(5):
        await asyncio.sleep(0)
    assert ticker.ticks > before, "the plugin's task runs while the test awaits"
