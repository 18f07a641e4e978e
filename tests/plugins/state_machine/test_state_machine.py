"""StateMachinePlugin (issue 20): transitions by compare-and-swap (two concurrent events from
one state never both apply), guards, entry/exit actions sync and async, final states,
``after`` timeouts and date triggers fired once by the timer job, history in a plugin
resource, ``resource.state`` helpers, DOT and Mermaid, events per transition.

Time is a ManualClock (``s3db_async.plugin.use_clock``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from s3db_async.plugins import StateMachinePlugin
from s3db_async.plugins.state_machine import TransitionError

from s3db_async import Database
from s3db_async.errors import ConfigError, NotFoundError, ValidationError
from s3db_async.plugin import ManualClock, use_clock
from s3db_async.stores import open_store
from tests._faults import LostReplyStore

START = 1_700_000_000.0
DOOR = {
    "initial": "closed",
    "states": {"closed": {"on": {"OPEN": "open"}}, "open": {"on": {"CLOSE": "closed"}}},
}


def order_machine(**extra: Any) -> dict[str, Any]:
    return {
        "initial": "pending",
        "states": {
            "pending": {
                "on": {"CONFIRM": "confirmed", "CANCEL": "cancelled"},
                "after": {600: "CANCEL"},
            },
            "confirmed": {"on": {"SHIP": {"target": "shipped", "guard": "paid"}}},
            "shipped": {"on": {"DELIVER": "delivered"}, "entry": "notify"},
            "delivered": {"type": "final"},
            "cancelled": {"type": "final"},
        },
        **extra,
    }


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock(START)) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


Opener = Callable[..., Awaitable[tuple[Database, StateMachinePlugin]]]


@pytest.fixture
async def open_db(store_url: str) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(**options: Any) -> tuple[Database, StateMachinePlugin]:
        db = Database(store_url)
        await db.connect()
        opened.append(db)
        options.setdefault("machines", {"orders": order_machine()})
        options.setdefault("guards", {"paid": lambda ctx, payload, info: bool(ctx.get("paid"))})
        options.setdefault("actions", {"notify": lambda ctx, t, plugin: None})
        options.setdefault("tick_interval", 3600.0)  # tests fire timers by hand
        plugin = StateMachinePlugin(**options)
        await db.use_plugin(plugin)
        return db, plugin

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"initial": "x", "states": {"a": {}}}, "initial"),
        ({"initial": "a", "states": {}}, "states"),
        ({"initial": "a", "states": {"a": {"on": {"GO": "nowhere"}}}}, "on.GO"),
        ({"initial": "a", "states": {"a": {"colour": 1}}}, "colour"),
        ({"initial": "a", "states": {"a": {"type": "final", "on": {"GO": "a"}}}}, "on"),
        ({"initial": "a", "states": {"a": {"after": {5: "GO"}}}}, "after.5"),
        (
            {"initial": "a", "states": {"a": {"on": {"GO": {"target": "a", "guard": "g"}}}}},
            "on.GO.guard",
        ),
        ({"initial": "a", "states": {"a": {"entry": "nope"}}}, "actions"),
        ({"initial": "a", "states": {"a": {}}, "shape": 1}, "shape"),
    ],
)
def test_bad_machines_are_typed_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        StateMachinePlugin(machines={"m": config})
    assert info.value.metadata["field"] == field and info.value.suggestion is not None


def test_seed_form_state_machines_and_initial_state_is_accepted() -> None:
    plugin = StateMachinePlugin(
        state_machines={
            "order_processing": {
                "initialState": "pending",
                "states": {
                    "pending": {"on": {"CONFIRM": "confirmed"}},
                    "confirmed": {"on": {"SHIP": "shipped"}},
                    "shipped": {"on": {"DELIVER": "delivered"}},
                    "delivered": {"type": "final"},
                },
            }
        }
    )
    assert plugin.machines["order_processing"].initial == "pending"


# -- transitions -----------------------------------------------------------------------------
async def test_send_walks_the_machine_and_records_history(open_db: Opener) -> None:
    _, sm = await open_db()
    events: list[dict[str, Any]] = []
    sm.on("state_machine.transition", events.append)
    assert await sm.get_state("orders", "o1") == "pending"
    assert await sm.available_events("orders", "o1") == ["CANCEL", "CONFIRM"]
    t = await sm.send("orders", "o1", "CONFIRM", {"paid": True})
    assert (t["from"], t["to"], t["version"]) == ("pending", "confirmed", 1)
    assert await sm.can("orders", "o1", "SHIP")
    await sm.send("orders", "o1", "SHIP")
    await sm.send("orders", "o1", "DELIVER")
    assert await sm.get_state("orders", "o1") == "delivered"
    assert await sm.available_events("orders", "o1") == []
    with pytest.raises(TransitionError) as info:
        await sm.send("orders", "o1", "CANCEL")
    assert info.value.metadata["reason"] == "not allowed" and "final" in str(info.value)
    hist = await sm.history("orders", "o1")
    assert [(h["from_state"], h["to_state"]) for h in hist] == [
        ("pending", "confirmed"),
        ("confirmed", "shipped"),
        ("shipped", "delivered"),
    ]
    assert [e["event"] for e in events] == ["CONFIRM", "SHIP", "DELIVER"]
    assert await sm.history("orders", "other") == []


async def test_guard_refuses_and_leaves_state(open_db: Opener) -> None:
    _, sm = await open_db()
    await sm.send("orders", "o1", "CONFIRM")
    assert not await sm.can("orders", "o1", "SHIP")
    assert await sm.can("orders", "o1", "SHIP", {"paid": True})
    with pytest.raises(TransitionError) as info:
        await sm.send("orders", "o1", "SHIP")
    assert info.value.metadata["reason"] == "refused"
    assert await sm.get_state("orders", "o1") == "confirmed"
    await sm.send("orders", "o1", "SHIP", {"paid": True})
    assert await sm.get_context("orders", "o1") == {"paid": True}


async def test_unknown_machine_and_event(open_db: Opener) -> None:
    _, sm = await open_db()
    with pytest.raises(NotFoundError):
        await sm.send("nope", "o1", "CONFIRM")
    with pytest.raises(TransitionError):
        await sm.send("orders", "o1", "FLY")
    assert not await sm.can("orders", "o1", "FLY")


async def test_entry_exit_and_transition_actions_sync_and_async(open_db: Opener) -> None:
    calls: list[str] = []

    async def entered(ctx: dict[str, Any], t: dict[str, Any], plugin: Any) -> None:
        await asyncio.sleep(0)
        calls.append(f"entry:{t['to']}")

    def boom(ctx: dict[str, Any], t: dict[str, Any], plugin: Any) -> None:
        raise RuntimeError("mail server down")

    machine = {
        "initial": "a",
        "states": {
            "a": {"on": {"GO": {"target": "b", "actions": ["mid"]}}, "exit": "left"},
            "b": {"entry": [entered, boom], "on": {"BACK": "a"}},
        },
    }
    _, sm = await open_db(
        machines={"m": machine},
        actions={
            "left": lambda c, t, p: calls.append("exit:a"),
            "mid": lambda c, t, p: calls.append("mid"),
        },
    )
    failed: list[dict[str, Any]] = []
    sm.on("state_machine.action_failed", failed.append)
    await sm.send("m", "x", "GO")
    assert calls == ["exit:a", "mid", "entry:b"]
    assert len(failed) == 1 and "mail server down" in str(failed[0]["error"])
    assert await sm.get_state("m", "x") == "b"  # a failing action never undoes the move


async def test_concurrent_events_from_one_state_apply_once(open_db: Opener) -> None:
    _, sm = await open_db()
    results = await asyncio.gather(
        *(sm.send("orders", "o1", ev) for ev in ["CONFIRM", "CANCEL"] * 4),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, dict)]
    assert len(ok) == 1, results
    assert all(isinstance(r, TransitionError) for r in results if not isinstance(r, dict))
    assert await sm.get_state("orders", "o1") == ok[0]["to"]
    assert len(await sm.history("orders", "o1")) == 1


async def test_expected_version(open_db: Opener) -> None:
    _, sm = await open_db()
    await sm.send("orders", "o1", "CONFIRM", expected_version=0)
    with pytest.raises(TransitionError) as info:
        await sm.send("orders", "o1", "SHIP", {"paid": True}, expected_version=0)
    assert info.value.metadata["field"] == "expected_version"


# -- timers ----------------------------------------------------------------------------------
async def test_after_timeout_fires_once_and_never_after_moving_on(
    open_db: Opener, clock: ManualClock
) -> None:
    _, sm = await open_db()
    await sm.send("orders", "late", "CONFIRM")  # leaves pending: its timer is void
    machine = sm.machines["orders"]
    assert machine.states["pending"].after == ((600.0, "CANCEL"),)
    # the timer is set on entering pending, so enter it through a transition
    _, sm2 = await open_db(
        machines={
            "orders": order_machine(),
            "loop": {
                "initial": "idle",
                "states": {
                    "idle": {"on": {"START": "running"}},
                    "running": {
                        "on": {"TIMEOUT": "idle", "DONE": "idle"},
                        "after": {60: "TIMEOUT"},
                    },
                },
            },
        }
    )
    await sm2.send("loop", "j1", "START")
    await sm2.send("loop", "j2", "START")
    await sm2.send("loop", "j2", "DONE")  # j2 moved on: its timer must not fire
    assert await sm2.fire_due_timers() == 0  # not due yet
    clock.advance(61)
    assert await sm2.fire_due_timers() == 1
    assert await sm2.get_state("loop", "j1") == "idle"
    assert await sm2.get_state("loop", "j2") == "idle"
    assert [h["event"] for h in await sm2.history("loop", "j2")] == ["START", "DONE"]
    assert await sm2.fire_due_timers() == 0  # timers are gone


async def test_date_trigger_from_context_field(open_db: Opener, clock: ManualClock) -> None:
    machine = {
        "initial": "draft",
        "states": {
            "draft": {"on": {"SCHEDULE": "scheduled"}},
            "scheduled": {"on": {"PUBLISH": "published"}, "after": {"publish_at": "PUBLISH"}},
            "published": {"type": "final"},
        },
    }
    _, sm = await open_db(machines={"posts": machine})
    await sm.send("posts", "p1", "SCHEDULE", {"publish_at": START + 3600})
    clock.advance(3599)
    assert await sm.fire_due_timers() == 0
    clock.advance(2)
    assert await sm.fire_due_timers() == 1
    assert await sm.get_state("posts", "p1") == "published"


# -- resource helpers and pictures -------------------------------------------------------------
async def test_resource_state_helpers_and_field(open_db: Opener) -> None:
    db, _ = await open_db(machines={"orders": order_machine(resource="orders", field="status")})
    orders = await db.create_resource("orders", attributes={"status": "string|optional"})
    await orders.insert({"id": "o1", "status": "pending"})
    state: Any = orders.state  # type: ignore[attr-defined]
    await state.send("o1", "CONFIRM")
    assert await state.get("o1") == "confirmed" == await state("o1")
    assert (await orders.get("o1"))["status"] == "confirmed"
    assert await state.available_events("o1") == []  # SHIP's guard needs paid
    assert not await state.can("o1", "SHIP")
    assert len(await state.history("o1")) == 1


def test_visualize_dot_and_mermaid() -> None:
    sm = StateMachinePlugin(
        machines={"orders": order_machine()},
        guards={"paid": lambda *a: True},
        actions={"notify": lambda *a: None},
    )
    dot = sm.visualize("orders")
    assert (
        dot.startswith('digraph "orders"')
        and '"confirmed" -> "shipped" [label="SHIP [paid]"]' in dot
    )
    assert '"delivered" [shape=doublecircle]' in dot
    mermaid = sm.visualize("orders", "mermaid")
    assert "[*] --> pending" in mermaid and "delivered --> [*]" in mermaid
    with pytest.raises(ConfigError):
        sm.visualize("orders", "svg")


async def test_initialize_starts_the_initial_states_timers(
    open_db: Opener, clock: ManualClock
) -> None:
    _, sm = await open_db()
    assert await sm.initialize("orders", "o1", {"customer": "ann"})
    assert not await sm.initialize("orders", "o1", {"customer": "bo"})  # exists: unchanged
    assert await sm.get_context("orders", "o1") == {"customer": "ann"}
    await sm.initialize("orders", "o2")
    await sm.send("orders", "o2", "CONFIRM")
    clock.advance(601)
    assert await sm.fire_due_timers() == 1  # o1 cancelled; o2's timer was void
    assert await sm.get_state("orders", "o1") == "cancelled"
    assert await sm.get_state("orders", "o2") == "confirmed"


async def test_timer_job_runs_under_the_leader(store_url: str, clock: ManualClock) -> None:
    sm = StateMachinePlugin(
        machines={"orders": order_machine()},
        guards={"paid": lambda *a: True},
        actions={"notify": lambda *a: None},
        tick_interval=1.0,
    )
    async with Database(store_url, plugins=[sm]):
        fired: list[dict[str, Any]] = []
        sm.on("state_machine.transition", fired.append)
        await sm.initialize("orders", "o1")
        clock.advance(601)
        for _ in range(200):
            if fired:
                break
            clock.advance(1)
            await asyncio.sleep(0.01)
        assert [f["event"] for f in fired] == ["CANCEL"]


# -- faults ------------------------------------------------------------------------------------
async def test_a_lost_reply_on_the_state_write_applies_the_event_once(store_url: str) -> None:
    store = LostReplyStore(open_store(store_url))
    sm = StateMachinePlugin(machines={"door": DOOR}, tick_interval=3600)
    async with Database(store=store, plugins=[sm]):
        store.lose(1, match=lambda key: "/state/" in key)  # applied, answer lost
        await sm.send("door", "d1", "OPEN")
        store.lose(1, match=lambda key: "/state/" in key, error="precondition")
        await sm.send("door", "d1", "CLOSE")
        assert len(store.lost) == 2
        assert await sm.get_state("door", "d1") == "closed"
        assert [h["version"] for h in await sm.history("door", "d1")] == [1, 2]


async def test_history_rows_lost_by_a_crash_after_the_commit_come_back(
    open_db: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sm = await open_db(machines={"door": DOOR})
    real = sm._after_commit

    async def crash(*args: Any) -> None:
        raise KeyboardInterrupt  # the process dies right after the state write

    monkeypatch.setattr(sm, "_after_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        await sm.send("door", "d1", "OPEN")
    monkeypatch.setattr(sm, "_after_commit", real)
    await sm.send("door", "d1", "CLOSE")  # another transition follows
    assert await sm.get_state("door", "d1") == "closed"
    hist = await sm.history("door", "d1")
    assert [(h["version"], h["event"]) for h in hist] == [(1, "OPEN"), (2, "CLOSE")]


# -- audit (issue 20): what the page promises --------------------------------------------
async def test_resource_state_helpers_take_the_plugins_arguments(open_db: Opener) -> None:
    """The page: resource.state.send/get/can/... "take the id and drop the machine name",
    so ``can`` takes the payload and ``send`` takes ``expected_version`` like the plugin's."""
    db, _ = await open_db(machines={"orders": order_machine(resource="orders", field="status")})
    orders = await db.create_resource("orders", attributes={"status": "string|optional"})
    state: Any = orders.state  # type: ignore[attr-defined]
    await state.send("o1", "CONFIRM", expected_version=0)
    assert await state.can("o1", "SHIP", {"paid": True})
    assert not await state.can("o1", "SHIP")
    with pytest.raises(TransitionError) as info:
        await state.send("o1", "SHIP", {"paid": True}, expected_version=0)
    assert info.value.metadata["reason"] == "moved on"
    moved = await state.send("o1", "SHIP", {"paid": True}, expected_version=1)
    assert moved["to"] == "shipped" and (await state.get_context("o1"))["paid"] is True


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"machines": 5}, "machines"),
        ({"guards": ["paid"]}, "guards"),
        ({"actions": {"notify": "send_mail"}}, "actions.notify"),
        ({"machines": {"m": {"initial": "a", "states": {"a": {"on": "GO"}}}}}, "on"),
        (
            {"machines": {"m": {"initial": "a", "resource": "r", "field": 5, "states": {"a": {}}}}},
            "field",
        ),
        ({"machines": {"m": {"initial": "a", "states": {"a": {"after": {-1: "GO"}}}}}}, "after"),
    ],
)
def test_bad_options_are_typed_errors_with_suggestions(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        StateMachinePlugin(**options)
    assert info.value.metadata["field"] == field and info.value.suggestion


async def test_bad_send_arguments_are_typed_errors(open_db: Opener) -> None:
    _, sm = await open_db()
    with pytest.raises(ConfigError) as info:
        await sm.send("orders", "o1", "CONFIRM", ["paid"])  # type: ignore[arg-type]
    assert info.value.metadata["field"] == "context"
    with pytest.raises(ConfigError) as info:
        await sm.send("orders", "o1", "CONFIRM", expected_version="0")  # type: ignore[arg-type]
    assert info.value.metadata["field"] == "expected_version" and info.value.suggestion
    assert await sm.get_state("orders", "o1") == "pending"


async def test_a_date_trigger_field_that_is_no_date_is_refused_before_the_write(
    open_db: Opener,
) -> None:
    """The page: the trigger's context field holds "a datetime, ISO 8601 string or epoch
    seconds". Anything else used to be stored and the timer silently never set."""
    machine = {
        "initial": "draft",
        "states": {
            "draft": {"on": {"SCHEDULE": "scheduled"}, "after": {"expires": "SCHEDULE"}},
            "scheduled": {"on": {"PUBLISH": "published"}, "after": {"publish_at": "PUBLISH"}},
            "published": {"type": "final"},
        },
    }
    _, sm = await open_db(machines={"posts": machine})
    with pytest.raises(ValidationError) as info:
        await sm.send("posts", "p1", "SCHEDULE", {"publish_at": "next tuesday"})
    assert info.value.metadata["field"] == "publish_at" and info.value.suggestion
    assert await sm.get_state("posts", "p1") == "draft"
    with pytest.raises(ValidationError) as info:
        await sm.initialize("posts", "p2", {"expires": "soon"})
    assert info.value.metadata["field"] == "expires"
    assert await sm.initialize("posts", "p2", {"expires": "2030-01-01T00:00:00Z"})
    moved = await sm.send("posts", "p1", "SCHEDULE", {"publish_at": "2030-01-01T00:00:00Z"})
    assert moved["to"] == "scheduled"


async def test_a_timer_into_a_state_whose_date_field_is_no_date_is_void(
    open_db: Opener, clock: ManualClock
) -> None:
    machine = {
        "initial": "draft",
        "states": {
            "draft": {"on": {"SCHEDULE": "scheduled"}, "after": {60: "SCHEDULE"}},
            "scheduled": {"on": {"PUBLISH": "published"}, "after": {"publish_at": "PUBLISH"}},
            "published": {"type": "final"},
        },
    }
    _, sm = await open_db(machines={"posts": machine})
    await sm.initialize("posts", "bad", {"publish_at": "whenever"})  # another state's field
    await sm.initialize("posts", "good", {"publish_at": START + 3600})
    clock.advance(61)
    assert await sm.fire_due_timers() == 1  # the bad one does not stop the job
    assert await sm.get_state("posts", "bad") == "draft"
    assert await sm.get_state("posts", "good") == "scheduled"
