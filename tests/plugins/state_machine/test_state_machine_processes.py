"""StateMachinePlugin across real OS processes (file, SeaweedFS).

- 4 processes send conflicting events to the same entities at once; for each entity exactly
  one event applies (one conditional PUT wins), the others get TransitionError, and history
  has one row.
- 3 processes run the timer job; each entity's timeout fires once (a self-loop target, so a
  second fire would show as a second transition).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from s3db_async.plugins import StateMachinePlugin
from s3db_async.plugins.state_machine import TransitionError

from s3db_async import Database
from s3db_async.testing import WorkerContext, run_processes, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

ENTITIES = 8
EVENTS = ["CONFIRM", "CANCEL", "HOLD", "REJECT"]


def machine() -> dict[str, Any]:
    return {
        "orders": {
            "initial": "pending",
            "states": {
                "pending": {
                    "on": {
                        "CONFIRM": "confirmed",
                        "CANCEL": "cancelled",
                        "HOLD": "held",
                        "REJECT": "rejected",
                    }
                },
                "confirmed": {"type": "final"},
                "cancelled": {"type": "final"},
                "held": {"type": "final"},
                "rejected": {"type": "final"},
            },
        }
    }


async def racer(ctx: WorkerContext) -> list[str]:
    sm = StateMachinePlugin(machines=machine(), tick_interval=3600)
    won: list[str] = []
    async with Database(ctx.url, plugins=[sm]):
        await ctx.barrier()
        for i in range(ENTITIES):
            try:
                await sm.send("orders", f"o{i}", EVENTS[ctx.index])
                won.append(f"o{i}")
            except TransitionError:
                pass
    return won


async def test_conflicting_events_from_four_processes_apply_once(store_url: str) -> None:
    sm = StateMachinePlugin(machines=machine(), tick_interval=3600)
    async with Database(store_url, plugins=[sm]):  # creates the history resource once
        results = await run_processes(racer, store_url, 4)
        winners: dict[str, int] = {}
        for index, won in enumerate(results):
            for entity in won:
                assert entity not in winners, (entity, winners, results)
                winners[entity] = index
        assert sorted(winners) == sorted(f"o{i}" for i in range(ENTITIES))
        targets = {0: "confirmed", 1: "cancelled", 2: "held", 3: "rejected"}
        for entity, index in winners.items():
            assert await sm.get_state("orders", entity) == targets[index]
            hist = await sm.history("orders", entity)
            assert [h["event"] for h in hist] == [EVENTS[index]]


PING = {
    "pinger": {
        "initial": "waiting",
        "states": {
            "waiting": {"on": {"PING": "pinged"}, "after": {1: "PING"}},
            "pinged": {"on": {"PING": "pinged"}},  # a self-loop: a duplicate fire would apply
        },
    }
}


async def timer_runner(ctx: WorkerContext) -> None:
    sm = StateMachinePlugin(machines=PING, tick_interval=0.3, lease_ttl=3.0)
    async with Database(ctx.url, plugins=[sm]):
        await ctx.report("ready")
        await ctx.receive()


async def test_three_processes_fire_each_timer_once(store_url: str) -> None:
    sm = StateMachinePlugin(machines=PING, tick_interval=None)  # no timer job here
    async with Database(store_url, plugins=[sm]):
        async with spawn_processes(timer_runner, store_url, 3, auto_release=True) as group:
            for i in range(3):
                await group.wait_for("ready", index=i)
            for i in range(10):
                await sm.initialize("pinger", f"p{i}")
            for _ in range(240):
                states = [await sm.get_state("pinger", f"p{i}") for i in range(10)]
                if set(states) == {"pinged"}:
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(2)  # time for a wrong second fire to show
            for i in range(3):
                group.send(i, "stop")
            await group.outcomes()
        assert set(states) == {"pinged"}
        for i in range(10):
            assert [h["event"] for h in await sm.history("pinger", f"p{i}")] == ["PING"]
        assert await sm.fire_due_timers() == 0
