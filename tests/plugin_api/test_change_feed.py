"""The durable change feed (issue 18 item 2): intents, decisions, cursors, retention, costs.

Behaviour runs on every store; the crash tests at the end run real OS processes
(``_feed_worker.py``) on the file store and SeaweedFS and SIGKILL them at each step of a
write and during a consumer batch. Time-based
decisions (a write whose deadline passed) move a :class:`ManualClock`, never sleep.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import s3db_async
from s3db_async import Database, Plugin, Resource
from s3db_async._clock import ManualClock, use_clock
from s3db_async._plugin.feed_rules import ABSENT, decide
from s3db_async._resource.feed import (
    CHANGE_KEY,
    IntentKey,
    change_time,
    changes_prefix,
    new_change_id,
)
from s3db_async.errors import ConfigError, NotFoundError, PreconditionFailed
from s3db_async.plugin import Change, Subscription
from s3db_async.stores import open_store

from .._faults import LostReplyStore
from ._runtime import reaped, spawn

ATTRS = {"item": "string", "n": "number|optional", "tag": "string|optional"}


class Sink(Plugin):
    """A plugin whose consumers collect what they are given."""


def replay(changes: list[Change]) -> dict[str, dict[str, Any]]:
    """What a replica built from the changes holds."""
    state: dict[str, dict[str, Any]] = {}
    for c in changes:
        if c.op == "delete":
            state.pop(c.id, None)
        else:
            assert c.after is not None
            state[c.id] = dict(c.after)
    return state


async def current(res: Resource) -> dict[str, dict[str, Any]]:
    return {r["id"]: dict(r) for r in await res.list()}


async def drain(sub: Subscription) -> None:
    while await sub.poll():
        pass


async def intents(res: Resource) -> list[str]:
    return await res.db.store.list_keys(changes_prefix(res.name))


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock(start=time.time())) as c:
        yield c


Watched = tuple[Resource, Sink, Subscription, list[Change]]


async def watched(db: Database, **options: Any) -> Watched:
    orders = await db.create_resource("orders", attributes=ATTRS)
    plugin = await db.use_plugin(Sink())
    got: list[Change] = []
    sub = await plugin.subscribe(orders, got.extend, poll_interval=None, **options)
    return orders, plugin, sub, got


async def test_every_kind_of_write_is_delivered_in_order(db: Database) -> None:
    orders, _, sub, got = await watched(db)
    with s3db_async.actor("alice"):
        a = await orders.insert({"item": "tea"})
    assert s3db_async.current_actor() is None
    await orders.update(a["id"], {"n": 1})
    await orders.patch(a["id"], {"tag": "hot"})
    await orders.replace(a["id"], {"item": "green tea"})
    b = await orders.upsert({"id": "b", "item": "cake"})
    await orders.upsert({"id": "b", "item": "cake", "n": 2})
    many = await orders.insert_many([{"item": "x"}, {"item": "y"}])
    await orders.update_many([{"id": r.id, "n": 9} for r in many])
    await orders.delete(b["id"])
    await orders.delete_many([r.id for r in many])
    await drain(sub)

    assert replay(got) == await current(orders)
    mine = [c for c in got if c.id == a["id"]]
    assert [c.op for c in mine] == ["insert", "update", "update", "update"]
    first = mine[0]
    assert (
        first.actor == "alice"
        and first.before is None
        and first.after
        == {
            "id": a["id"],
            "item": "tea",
        }
    )
    assert first.resource == "orders" and first.version == orders.version
    assert first.changed == ("item",) and isinstance(first.at, datetime)
    assert mine[1].changed == ("n",) and mine[1].before == {"id": a["id"], "item": "tea"}
    assert mine[3].changed == ("item", "n", "tag") and mine[3].actor is None
    assert [c.op for c in got if c.id == "b"] == ["insert", "update", "delete"]
    deleted = next(c for c in got if c.op == "delete" and c.id == "b")
    assert deleted.after is None and deleted.before == {"id": "b", "item": "cake", "n": 2}
    ids = [c.change_id for c in got]
    assert len(set(ids)) == len(ids) == 13
    for rid in {c.id for c in got}:  # order per record: change ids only grow
        chain = [c.change_id for c in got if c.id == rid]
        assert chain == sorted(chain)
    assert sub.stats().delivered == 13 and sub.stats().backlog == 0


async def test_a_watched_write_costs_one_put_and_an_unwatched_one_nothing(db: Database) -> None:
    plain = await db.create_resource("plain", attributes=ATTRS)
    orders, _, sub, got = await watched(db)

    async def cost(res: Resource) -> list[dict[str, int]]:
        out = []
        for step in (
            lambda: res.insert({"id": "k", "item": "a"}),
            lambda: res.update("k", {"n": 1}),
            lambda: res.delete("k"),
        ):
            db.store.stats.reset()
            await step()
            out.append(dict(db.store.stats))
        return out

    base, feed = await cost(plain), await cost(orders)
    assert base == [{"put": 1}, {"get": 1, "put": 1}, {"delete_many": 1}]
    assert feed == [{"put": 2}, {"get": 1, "put": 2}, {"get": 1, "put": 1, "delete_many": 1}]
    assert await intents(plain) == [] and len(await intents(orders)) == 3
    await drain(sub)
    assert [c.op for c in got] == ["insert", "update", "delete"]


async def test_history_partitions_and_secrets_keep_the_feed(db: Database) -> None:
    orders = await db.create_resource(
        "orders",
        attributes={**ATTRS, "region": "string", "card": "secret|optional"},
        partitions={"by_region": {"fields": {"region": "string"}}},
        history=True,
    )
    plugin = await db.use_plugin(Sink())
    got: list[Change] = []
    sub = await plugin.subscribe(orders, got.extend, poll_interval=None)
    await orders.insert({"id": "r", "item": "tea", "region": "eu", "card": "4111"})
    await orders.update("r", {"region": "us"})
    await orders.restore("r", 1)
    await db.rotate_passphrase("test-passphrase", "new-passphrase")  # keeps the change id
    await orders.update("r", {"n": 1})
    await orders.delete_many(["r"])
    await orders.restore("r", 3)  # re-created from its history
    await drain(sub)
    assert [c.op for c in got] == ["insert", "update", "update", "update", "delete", "insert"]
    assert got[0].after is not None and got[0].after["card"] == "4111"  # decrypted for us
    assert got[3].before is not None and got[3].before["region"] == "eu"
    intents_of_r = await intents(orders)
    assert all("/r" in k for k in intents_of_r) and len(intents_of_r) == 6
    assert replay(got) == await current(orders)
    assert sub.stats().failed == 0


async def test_a_record_carries_the_id_of_its_last_change(db: Database) -> None:
    orders, _, sub, got = await watched(db)
    r = await orders.insert({"item": "tea"})
    await orders.update(r["id"], {"n": 3})
    await drain(sub)
    head = await db.store.head(orders.key_for(r["id"]))
    assert head.metadata[CHANGE_KEY] == got[-1].change_id


async def test_a_refused_write_is_never_delivered_and_leaves_no_intent(db: Database) -> None:
    orders, _, sub, got = await watched(db)
    r = await orders.insert({"id": "r", "item": "tea"})
    with pytest.raises(PreconditionFailed):
        await orders.update("r", {"n": 1}, if_match='"stale"')
    with pytest.raises(s3db_async.AlreadyExistsError):
        await orders.insert({"id": "r", "item": "again"})
    assert len(await intents(orders)) == 1  # the 412s dropped theirs
    await drain(sub)
    assert [(c.op, c.id) for c in got] == [("insert", r["id"])]


async def test_a_write_whose_answer_was_lost_is_delivered_once(store_url: str) -> None:
    store = LostReplyStore(open_store(store_url))
    async with Database(store=store) as db:
        orders, _, sub, got = await watched(db)
        await orders.insert({"id": "r", "item": "tea"})
        store.lose(1, match=lambda key: "/data/" in key)
        await orders.update("r", {"n": 1})  # applied, answer lost, resolved by reading back
        store.lose(1, match=lambda key: "/data/" in key)
        await orders.insert({"id": "s", "item": "cake"})
        assert len(store.lost) == 2
        await drain(sub)
        assert [(c.op, c.id) for c in got] == [("insert", "r"), ("update", "r"), ("insert", "s")]
        assert replay(got) == await current(orders) and len(await intents(orders)) == 3


async def test_an_interrupted_write_holds_its_record_until_its_deadline(
    db: Database, clock: ManualClock
) -> None:
    orders, _, sub, got = await watched(db, write_timeout=30)
    await orders.insert({"id": "r", "item": "tea"})
    await orders.insert({"id": "s", "item": "cake"})
    await drain(sub)
    got.clear()
    # a writer that died after its intent: the record never took the change
    obj = await db.store.get(orders.key_for("r"))
    feed = orders._writer.feed
    assert feed is not None
    await feed.intent("update", "r", obj.metadata[CHANGE_KEY], (obj.metadata, obj.body), None)
    clock.advance(1)
    await orders.update("r", {"n": 2})  # a later write of the same record, committed
    await orders.update("s", {"n": 5})
    await drain(sub)
    assert [(c.id, c.after and c.after.get("n")) for c in got] == [("s", 5)]
    stats = sub.stats()
    assert stats.held == 1 and stats.backlog == 2 and stats.lag >= 1
    clock.advance(31)
    await drain(sub)
    assert [(c.id, c.after and c.after.get("n")) for c in got] == [("s", 5), ("r", 2)]
    assert sub.stats().failed == 1 and sub.stats().backlog == 0 and sub.stats().held == 0


async def test_an_intent_that_becomes_visible_late_is_still_delivered(
    db: Database, clock: ManualClock
) -> None:
    orders, _, sub, got = await watched(db)
    clock.advance(10)  # (a write older than the subscription is not promised)
    await orders.insert({"id": "a", "item": "x"})
    await drain(sub)
    clock.now -= 5  # a writer whose intent took 5 s to land: an older id, visible now
    await orders.insert({"id": "late", "item": "y"})
    clock.now += 5
    await drain(sub)  # continues after the last id it saw: not yet
    assert [c.id for c in got] == ["a"]
    clock.advance(1.5)  # the next full re-listing goes back 2 * INTENT_MARGIN
    await drain(sub)
    assert [c.id for c in got] == ["a", "late"]
    assert sub.cursor < got[0].change_id  # the cursor stays behind what may still appear
    clock.advance(21)
    await drain(sub)
    assert sub.cursor == got[0].change_id and len(got) == 2


async def test_a_write_in_flight_is_delivered_once_it_lands(db: Database) -> None:
    orders, _, sub, got = await watched(db)
    await orders.insert({"id": "r", "item": "tea"})
    await drain(sub)
    got.clear()
    # intent written, record PUT not yet landed: held, then committed when it lands
    obj, current = await orders._records.read("r")
    data = {k: v for k, v in current.items() if k != "id"}
    encoded = orders._records.encode({**data, "n": 7}, "r")
    intent = await orders._writer._intent("update", "r", obj, encoded)
    assert intent is not None
    assert await sub.poll() == 0 and sub.stats().held == 1
    await orders._records.put_encoded(orders.key_for("r"), encoded, if_match=obj.etag)
    await drain(sub)
    assert [(c.op, c.after and c.after["n"]) for c in got] == [("update", 7)]


async def test_cursor_resumes_in_a_new_process_and_replays_on_request(store_url: str) -> None:
    async with Database(store_url) as db:
        orders, plugin, sub, got = await watched(db)
        for i in range(5):
            await orders.insert({"id": f"r{i}", "item": str(i)})
        await drain(sub)
        assert len(got) == 5
        cursor = got[1].change_id
        for i in range(5, 8):
            await orders.insert({"id": f"r{i}", "item": str(i)})
        await db.uninstall_plugin(plugin)  # stops; the consumer and its cursor stay
        assert orders._writer.feed is not None
        await orders.insert({"id": "r8", "item": "8"})
    async with Database(store_url) as db:
        orders = db.get_resource("orders")
        assert orders._writer.feed is not None  # known at connect: writes keep intents
        await orders.insert({"id": "r9", "item": "9"})
        plugin = await db.use_plugin(Sink())
        again: list[Change] = []
        sub = await plugin.subscribe(orders, again.extend, consumer="sink", poll_interval=None)
        await drain(sub)
        assert [c.id for c in again] == ["r5", "r6", "r7", "r8", "r9"]
        await plugin.unsubscribe(orders, consumer="sink")
        replayed: list[Change] = []
        sub = await plugin.subscribe(
            orders, replayed.extend, consumer="sink", poll_interval=None, from_=cursor
        )
        await drain(sub)
        assert [c.id for c in replayed] == [f"r{i}" for i in range(2, 10)]
        assert orders._writer.feed is not None  # unsubscribed, then watched again
        later: list[Change] = []
        other = await plugin.subscribe(
            orders, later.extend, consumer="late", poll_interval=None, from_="earliest"
        )
        await drain(other)
        assert [c.id for c in later] == [f"r{i}" for i in range(10)]


async def test_replay_from_a_change_id_or_a_time(db: Database, clock: ManualClock) -> None:
    orders, plugin, sub, got = await watched(db)
    for i in range(3):
        await orders.insert({"id": f"r{i}", "item": str(i)})
        clock.advance(10)
    await drain(sub)
    from_id: list[Change] = []
    s2 = await plugin.subscribe(
        orders, from_id.extend, consumer="a", poll_interval=None, from_=got[0].change_id
    )
    await drain(s2)
    assert [c.id for c in from_id] == ["r1", "r2"]
    from_time: list[Change] = []
    when = got[2].at - timedelta(seconds=1)
    s3 = await plugin.subscribe(
        orders, from_time.extend, consumer="b", poll_interval=None, from_=when
    )
    await drain(s3)
    assert [c.id for c in from_time] == ["r2"]
    latest: list[Change] = []
    s4 = await plugin.subscribe(
        orders, latest.extend, consumer="c", poll_interval=None, from_="latest"
    )
    await orders.insert({"id": "r3", "item": "3"})
    await drain(s4)
    assert [c.id for c in latest] == ["r3"]


async def test_batches_are_at_most_batch_size(db: Database) -> None:
    orders, plugin, _, _ = await watched(db)
    batches: list[int] = []
    sub = await plugin.subscribe(
        orders, lambda cs: batches.append(len(cs)), consumer="b", poll_interval=None,
        batch_size=4, from_="earliest",
    )  # fmt: skip
    await orders.insert_many([{"item": str(i)} for i in range(10)])
    await drain(sub)
    assert sum(batches) == 10 and max(batches) <= 4


async def test_a_failing_handler_gets_the_same_batch_again(db: Database) -> None:
    orders, plugin, _, _ = await watched(db)
    seen: list[list[str]] = []

    async def flaky(changes: list[Change]) -> None:
        seen.append([c.id for c in changes])
        if len(seen) == 1:
            raise RuntimeError("index down")

    errors: list[Any] = []
    plugin.on("error", errors.append)
    sub = await plugin.subscribe(orders, flaky, consumer="flaky", poll_interval=None)
    await orders.insert({"id": "a", "item": "x"})
    await drain(sub)
    assert seen == [["a"], ["a"]] and sub.stats().retries == 1
    assert errors and errors[0]["op"] == "feed.handler"


async def test_deletes_and_recreations_keep_record_order(db: Database) -> None:
    orders, _, sub, got = await watched(db)
    await orders.insert({"id": "r", "item": "one"})
    await orders.update("r", {"n": 1})
    await orders.delete("r")
    await orders.insert({"id": "r", "item": "two"})
    await orders.delete("r")
    await orders.delete("r")  # already gone: no write, no change
    await orders.insert({"id": "r", "item": "three"})
    await drain(sub)
    assert [c.op for c in got] == ["insert", "update", "delete", "insert", "delete", "insert"]
    assert replay(got) == await current(orders)
    assert got[2].before == {"id": "r", "item": "one", "n": 1}


async def test_a_delete_that_never_ran_is_not_delivered(db: Database, clock: ManualClock) -> None:
    orders, _, sub, got = await watched(db, write_timeout=10)
    await orders.insert({"id": "r", "item": "one"})
    obj = await db.store.get(orders.key_for("r"))
    assert await orders._writer.deleting("r", obj) is not None  # died before the DELETE
    assert await sub.poll() == 1 and sub.stats().held == 1
    clock.advance(12)
    await drain(sub)
    assert [c.op for c in got] == ["insert"] and sub.stats().failed == 1


async def test_updates_deleted_unseen_by_an_older_delete_are_delivered_before_it(
    db: Database, clock: ManualClock
) -> None:
    orders, _, sub, got = await watched(db, write_timeout=10)
    await orders.insert({"id": "r", "item": "one"})
    obj = await db.store.get(orders.key_for("r"))
    assert await orders._writer.deleting("r", obj) is not None  # the delete read "one" ...
    clock.advance(1)
    await orders.update("r", {"n": 1})  # ... two updates landed after that read ...
    await orders.update("r", {"n": 2})
    await db.store.delete_many([orders.key_for("r")])  # ... then its DELETE ran: gone unseen
    await drain(sub)
    assert [c.op for c in got] == ["insert", "update"]  # the second names the first; ...
    assert sub.stats().held == 1  # ... the second is not provable before its deadline
    clock.advance(12)
    await drain(sub)
    assert [(c.op, c.after and c.after.get("n")) for c in got] == [
        ("insert", None),
        ("update", 1),
        ("update", 2),
        ("delete", None),
    ]
    assert got[-1].before == {"id": "r", "item": "one", "n": 2}  # the last form it had
    assert replay(got) == await current(orders) == {}


async def test_retention_keeps_intents_until_every_consumer_passed_them(
    db: Database, clock: ManualClock
) -> None:
    orders, plugin, fast, _ = await watched(db)
    slow_got: list[Change] = []
    slow = await plugin.subscribe(orders, slow_got.extend, consumer="slow", poll_interval=None)
    for i in range(4):
        await orders.insert({"id": f"r{i}", "item": str(i)})
    clock.advance(21)  # cursors stay 2 * INTENT_MARGIN behind the listing (late keys)
    await drain(fast)
    assert await fast.collect() == 0 and len(await intents(orders)) == 4
    await drain(slow)
    assert await fast.collect() == 4 and await intents(orders) == []
    assert fast.stats().collected == 4

    kept = await plugin.subscribe(
        orders, lambda cs: None, consumer="kept", poll_interval=None, retention=3600
    )
    await orders.insert({"id": "r9", "item": "9"})
    clock.advance(21)
    for s in (fast, slow, kept):
        await drain(s)
    assert await kept.collect() == 0 and len(await intents(orders)) == 1
    clock.advance(3601)
    await kept.poll()  # and a poll collects by itself every collect_every (60) seconds
    assert await intents(orders) == [] and kept.stats().collected == 1


async def test_collection_respects_a_consumer_another_process_added(
    store_url: str, clock: ManualClock
) -> None:
    async with Database(store_url) as a, Database(store_url) as b:
        orders, _, sub, _ = await watched(a)
        await b.reload()
        other = await b.use_plugin(Sink(alias="other"))
        late = await other.subscribe("orders", lambda cs: None, poll_interval=None)
        await orders.insert({"id": "r", "item": "x"})  # a's process never heard of "other"
        clock.advance(21)
        await drain(sub)
        assert await sub.collect() == 0 and len(await intents(orders)) == 1
        await drain(late)
        assert await sub.collect() == 1


async def test_uninstall_with_purge_forgets_the_consumers(db: Database) -> None:
    orders, plugin, sub, _ = await watched(db)
    await orders.insert({"id": "r", "item": "x"})
    await db.uninstall_plugin(plugin, purge_data=True)
    assert sub.stopped and "feed" not in db.metadata["resources"]["orders"]
    assert orders._writer.feed is None
    db.store.stats.reset()
    await orders.update("r", {"n": 1})
    assert dict(db.store.stats) == {"get": 1, "put": 1}  # unwatched again: no intent


async def test_a_second_process_learns_the_subscription(store_url: str) -> None:
    async with Database(store_url) as a, Database(store_url) as b:
        await a.create_resource("orders", attributes=ATTRS)
        await b.reload()
        plugin = await a.use_plugin(Sink())
        got: list[Change] = []
        sub = await plugin.subscribe("orders", got.extend, poll_interval=None)
        assert b.get_resource("orders")._writer.feed is None  # not yet known there
        await b.reload()  # connect or reload picks it up
        await b.get_resource("orders").insert({"id": "from-b", "item": "x"})
        await drain(sub)
        assert [c.id for c in got] == ["from-b"]
        again = await b.create_resource("orders", attributes={**ATTRS, "extra": "string|optional"})
        assert again._writer.feed is not None  # a new schema version keeps its consumers
        assert "feed" in b.metadata["resources"]["orders"]


async def test_the_background_loop_delivers_and_stops(db: Database) -> None:
    import asyncio

    orders = await db.create_resource("orders", attributes=ATTRS)
    plugin = await db.use_plugin(Sink())
    got: list[Change] = []
    sub = await plugin.subscribe(orders, got.extend, poll_interval=0.01)
    await orders.insert({"id": "r", "item": "x"})
    for _ in range(500):
        if got:
            break
        await asyncio.sleep(0.01)
    assert [c.id for c in got] == ["r"]
    await plugin.stop()
    assert not plugin.tasks
    await plugin.start()
    assert plugin.tasks  # restarted with the plugin
    await db.uninstall_plugin(plugin)
    assert sub.stopped and not plugin.tasks


async def test_processes_sharing_a_consumer_name_deliver_each_change_once(
    store_url: str,
) -> None:
    """The background loop polls under the consumer's lease: two processes subscribing the
    same consumer name share one delivery stream, and the other takes over on a stop."""
    import asyncio

    async with Database(store_url) as a, Database(store_url) as b:
        orders = await a.create_resource("orders", attributes=ATTRS)
        await b.reload()
        got: dict[str, list[Change]] = {"a": [], "b": []}
        plugins = {}
        for name, db in (("a", a), ("b", b)):
            plugins[name] = await db.use_plugin(Sink())
            await plugins[name].subscribe(
                "orders", got[name].extend, consumer="shared", poll_interval=0.01, lease_ttl=1.0
            )
        await b.reload()
        for i in range(10):
            await orders.insert({"id": f"r{i}", "item": "x"})

        async def delivered(n: int) -> None:
            for _ in range(1000):
                if len(got["a"]) + len(got["b"]) >= n:
                    return
                await asyncio.sleep(0.01)

        await delivered(10)
        await asyncio.sleep(0.2)  # a second poller would have delivered them again by now
        assert sorted(c.id for c in got["a"] + got["b"]) == [f"r{i}" for i in range(10)]
        first = "a" if got["a"] else "b"
        assert not got["b" if first == "a" else "a"]
        await plugins[first].stop()  # releases the lease
        other = b if first == "a" else a
        await other.get_resource("orders").insert({"id": "late", "item": "y"})
        await delivered(11)
        assert [c.id for c in got["b" if first == "a" else "a"]] == ["late"]


async def test_bad_options_raise_typed_errors(db: Database) -> None:
    orders, plugin, _, _ = await watched(db)
    with pytest.raises(ConfigError) as bad_name:
        await plugin.subscribe(orders, print, consumer="no/slash")
    assert bad_name.value.suggestion and bad_name.value.metadata["field"] == "consumer"
    with pytest.raises(ConfigError):
        await plugin.subscribe(orders, print, consumer="sink")  # already subscribed
    with pytest.raises(ConfigError) as bad_from:
        await plugin.subscribe(orders, print, consumer="x", from_="yesterday")
    assert bad_from.value.metadata["field"] == "from_"
    with pytest.raises(ConfigError):
        await plugin.subscribe(orders, print, consumer="y", batch_size=0)
    with pytest.raises(NotFoundError):
        await plugin.subscribe("missing", print)


def test_change_ids_are_ordered_and_follow_their_prev() -> None:
    a = new_change_id(at=1_700_000_000.0)
    b = new_change_id(at=1_700_000_000.001)
    assert len(a) == 26 and a < b
    later = new_change_id(b, at=1_600_000_000.0)  # a clock behind: still after prev
    assert later > b
    assert change_time(a) == datetime.fromtimestamp(1_700_000_000.0, UTC)


# -- real OS processes, SIGKILLed at each step (file store and SeaweedFS) -----------------

WORKER = Path(__file__).with_name("_feed_worker.py")
ANSWER_TIMEOUT = 120  # seconds; SeaweedFS can hold contended keys 8-9 s


def _spawn(*args: str) -> subprocess.Popen[str]:
    return spawn(WORKER, *args)


def _lines(proc: subprocess.Popen[str], until: str) -> list[Any]:
    """JSON lines of ``proc`` up to and including the first one holding ``until``."""
    assert proc.stdout is not None
    out: list[Any] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"worker exited with {proc.returncode}; said {out}")
        out.append(json.loads(line))
        if (isinstance(out[-1], dict) and until in out[-1]) or out[-1] == until:
            return out


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    with reaped() as started:
        yield started


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


async def _register(url: str, consumer: str = "c") -> None:
    """Create ``orders`` and its durable consumer (cursor saved now), then leave."""
    async with Database(url) as db:
        orders = await db.create_resource("orders", attributes=ATTRS)
        plugin = await db.use_plugin(Sink())
        sub = await plugin.subscribe(orders, print, consumer=consumer, poll_interval=None,
                                     write_timeout=20)  # fmt: skip
        await sub.stop()


async def _deliver_all(url: str, consumer: str = "c") -> tuple[list[Change], Any, Any]:
    """Resume ``consumer`` well after every writer's deadline; its changes, stats, state."""
    with use_clock(ManualClock(start=time.time() + 60)):
        async with Database(url) as db:
            plugin = await db.use_plugin(Sink())
            got: list[Change] = []
            sub = await plugin.subscribe("orders", got.extend, consumer=consumer,
                                         poll_interval=None)  # fmt: skip
            await drain(sub)
            return got, sub.stats(), await current(db.get_resource("orders"))


@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
@pytest.mark.parametrize("where", ["intent", "put", "refused"])
async def test_a_writer_killed_at_each_step_loses_nothing_acknowledged(
    store_url: str, procs: list[subprocess.Popen[str]], where: str
) -> None:
    await _register(store_url)
    k = 8  # write 8 of the script: the update of w3 (w2 was inserted, updated, deleted)
    procs.append(_spawn("write", store_url, where, str(k), "6"))
    said = _lines(procs[-1], "paused")
    _kill(procs[-1])
    acks = [tuple(x["ack"]) for x in said if isinstance(x, dict) and "ack" in x]
    assert acks[k - 1] == ("insert", "w3", None)
    assert len(acks) == k + (where == "refused")  # refused: the racing update was acknowledged

    got, stats, state = await _deliver_all(store_url)
    assert replay(got) == state  # a replica built from the feed is the database
    delivered = {(c.op, c.id, c.after.get("n") if c.after else None) for c in got}
    delivered |= {(c.op, c.id, c.after.get("tag")) for c in got if c.after and "tag" in c.after}
    assert set(acks) <= delivered  # every acknowledged write is there
    killed = ("update", "w3", 103)
    if where == "intent":  # the record never took it: failed, not delivered
        assert killed not in delivered and stats.failed == 1
        assert state["w3"].get("n") is None
    elif where == "put":  # the record took it before the kill: committed, delivered
        assert killed in delivered and state["w3"]["n"] == 103 and stats.failed == 0
    else:  # lost its race with a 412: its intent outlived the process, never delivered
        assert killed not in delivered and stats.failed == 1
        assert state["w3"] == {"id": "w3", "item": "w3", "tag": "racer"}
    assert stats.backlog == 0 and stats.held == 0


@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
async def test_a_consumer_killed_during_a_batch_gets_it_again(
    store_url: str, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    await _register(store_url)
    async with Database(store_url) as db:
        orders = db.get_resource("orders")
        for i in range(8):
            await orders.insert({"id": f"r{i}", "item": str(i)})
            if i % 2:
                await orders.update(f"r{i}", {"n": i})
            if i % 4 == 3:
                await orders.delete(f"r{i}")
        state = await current(orders)
    out = tmp_path / "delivered.jsonl"
    procs.append(_spawn("consume", store_url, str(out), "3"))
    _lines(procs[-1], "paused")
    _kill(procs[-1])
    first = [json.loads(line) for line in out.read_text().splitlines()]
    marks = [i for i, row in enumerate(first) if row[0] == "batch"]
    assert len(marks) == 3
    unacknowledged = [row[0] for row in first[marks[-1] + 1 :]]
    assert unacknowledged
    procs.append(_spawn("consume", store_url, str(out), "0"))
    _lines(procs[-1], "done")
    assert procs[-1].wait(timeout=60) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    changes = [r for r in rows if r[0] != "batch"]
    again = [r[0] for r in rows[len(first) :] if r[0] != "batch"]
    assert set(unacknowledged) <= set(again)  # the interrupted batch came again
    assert len({r[0] for r in changes}) == 8 + 4 + 2  # every change, at least once
    replica: dict[str, Any] = {}
    for _, op, rid, after in changes:
        if op == "delete":
            replica.pop(rid, None)
        else:
            replica[rid] = after
    assert replica == state


@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
async def test_contending_writers_in_four_processes(
    store_url: str, procs: list[subprocess.Popen[str]]
) -> None:
    await _register(store_url)
    async with Database(store_url) as db:
        for i in range(4):
            await db.get_resource("orders").insert({"id": f"k{i}", "item": "k"})
    procs.extend(_spawn("hammer", store_url, f"w{i}", "6") for i in range(4))
    for p in procs:
        _lines(p, "ready")
    for p in procs:  # release every worker at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    acks = [tuple(x["ack"]) for p in procs for x in _lines(p, "finished") if "ack" in x]
    for p in procs:
        assert p.wait(timeout=ANSWER_TIMEOUT) == 0
    got, stats, state = await _deliver_all(store_url)
    tags = [(c.id, c.after["tag"]) for c in got if c.op == "update" and c.after]
    assert sorted(tags) == sorted(acks)  # every acknowledged update, and no lost race
    assert replay(got) == state and stats.backlog == 0
    for rid in state:  # each record's changes chain in order: each before is the last after
        chain = [c for c in got if c.id == rid]
        for a, b in itertools.pairwise(chain):
            assert b.before == a.after


# -- the decision rules alone (no store) ------------------------------------------------


def _key(op: str, at: float, prev: IntentKey | None = None, rid: str = "r") -> IntentKey:
    cid = new_change_id(prev.cid if prev else None, at=at)
    return IntentKey(cid, op, prev.cid if prev else None, rid, f"k/{cid}")


def _run(keys: list[IntentKey], state: str, now: float) -> tuple[list[str], Any]:
    window = {k.cid: k for k in keys}
    d = decide(keys, keys, state, window=window, old=now - 10, timeout=10)
    order = [e.key.cid for e in sorted(d.emit, key=lambda e: e.pos)]
    return order, d


def test_rules_commit_by_state_or_by_a_later_prev() -> None:
    i = _key("insert", 100)
    u = _key("update", 101, i)
    order, d = _run([i, u], u.cid, now=102)
    assert order == [i.cid, u.cid] and not d.held and d.failed == 0


def test_rules_hold_an_unproven_write_until_overdue_then_fail_it() -> None:
    i = _key("insert", 100)
    lost = _key("update", 101, i)  # never landed: the record still carries i
    u = _key("update", 102, i)  # landed instead (same prev)
    order, d = _run([i, lost, u], u.cid, now=105)
    assert order == [i.cid] and d.held  # lost may still land: u waits behind it
    order, d = _run([i, lost, u], u.cid, now=200)
    assert order == [i.cid, u.cid] and d.failed == 1 and lost.cid in d.decided


def test_rules_deliver_one_delete_per_life_before_the_next_insert() -> None:
    i = _key("insert", 100)
    d1 = _key("delete", 101, i)
    d2 = _key("delete", 101.5, i)  # two processes deleted the same life
    n = _key("insert", 102)
    order, d = _run([i, d1, d2, n], n.cid, now=103)
    assert order == [i.cid, d2.cid, n.cid] and {d1.cid, d2.cid} <= d.decided
    order, d = _run([i, d1], ABSENT, now=103)
    assert order == [i.cid, d1.cid]


def test_rules_fail_a_delete_the_record_outlived() -> None:
    i = _key("insert", 100)
    gone = _key("delete", 101, i)  # died before its DELETE
    order, d = _run([i, gone], i.cid, now=105)
    assert order == [i.cid] and d.held
    order, d = _run([i, gone], i.cid, now=200)
    assert order == [i.cid] and d.failed == 1 and not d.held
