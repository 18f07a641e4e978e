"""Leader leases (issue 18 item 1) on every store, with a ManualClock: one holder per name,
epochs that only grow, renewal, a holder that stops before anyone can take over, fencing of a
deposed leader, lost replies on the lease PUT, release on stop/uninstall, run_as_leader.

The process-level tests (4 OS processes, SIGKILL of the leader) are in
``test_leases_processes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest

from s3db_async import Database, PluginStorage
from s3db_async._clock import ManualClock, use_clock
from s3db_async.errors import (
    ConfigError,
    LeaseLostError,
    StaleFenceError,
)
from s3db_async.plugin import Fence, Lease

from .._faults import ReplyDroppingProxy
from .._servers import S3Server
from ._runtime import FlakyStore, Runtime, node_factory, until

TTL = 30.0
RENEW = 10.0
MARGIN = 6.0  # the default ttl / 5
LEASE_KEY = "plugin=runtime/leases/main"


class SkewedClock(ManualClock):
    """Another host's clock: the wall time of ``base`` plus ``skew``, same monotonic."""

    def __init__(self, base: ManualClock, skew: float) -> None:
        super().__init__()
        self.base, self.skew = base, skew

    def time(self) -> float:
        return self.base.time() + self.skew

    def monotonic(self) -> float:
        return self.base.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    with use_clock(ManualClock()) as manual:
        assert isinstance(manual, ManualClock)
        yield manual


class Node:
    """One 'process': a database on the shared store (behind a FlakyStore) and a plugin."""

    def __init__(self, db: Database, store: FlakyStore, plugin: Runtime) -> None:
        self.db, self.store, self.plugin = db, store, plugin
        self.events: list[tuple[str, dict[str, Any]]] = []
        for event in ("leader.elected", "leader.lost"):
            plugin.on(event, lambda p, e=event: self.events.append((e, p)))

    def lease(self, name: str = "main", **options: Any) -> Lease:
        options.setdefault("ttl", TTL)
        options.setdefault("renew_every", RENEW)
        return self.plugin.leader(name, holder=self.plugin.alias, **options)


@pytest.fixture
async def nodes(store_url: str) -> AsyncIterator[Callable[[], Awaitable[Node]]]:
    async with node_factory(store_url, Node) as make:
        yield make


async def drive(clock: ManualClock, check: Callable[[], bool], what: str = "condition") -> None:
    """Move the clock one second at a time until ``check()`` holds (bounded)."""
    for _ in range(300):
        if check():
            return
        clock.advance(1)
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def lease_object(node: Node, name: str = "main") -> dict[str, Any]:
    entry = await PluginStorage(node.db, "runtime")._read(f"plugin=runtime/leases/{name}")
    assert entry is not None
    data: dict[str, Any] = entry.data
    return data


# -- election ------------------------------------------------------------------------------
async def test_one_holder_per_name_and_epochs_grow(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    la, lb = a.lease(), b.lease()
    assert await la.acquire(timeout=0)
    assert la.is_leader and la.epoch == 1 and la.fence == Fence("main", 1, "n1")
    assert not await lb.acquire(timeout=0)
    assert not lb.is_leader and lb.current_holder == "n1"
    with pytest.raises(LeaseLostError):
        _ = lb.fence
    other = b.lease("other")  # another name is independent
    assert await other.acquire(timeout=0) and other.epoch == 1

    waiting = asyncio.ensure_future(lb.acquire())
    await la.release()
    assert not la.is_leader
    await drive(clock, waiting.done, "b to notice the release")  # b polls every renew_every
    assert await waiting and lb.epoch == 2
    assert (await lease_object(b))["holder"] == "n2"
    await lb.release()
    assert await la.acquire(timeout=0) and la.epoch == 3
    assert [(e, p["epoch"]) for e, p in a.events] == [
        ("leader.elected", 1),
        ("leader.lost", 1),
        ("leader.elected", 3),
    ]
    assert a.events[1][1]["reason"] == "released"
    assert {"name", "epoch", "holder", "plugin", "at"} <= set(a.events[0][1])


async def test_context_manager_and_wait_elected(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    async with a.lease() as lease:
        assert lease.is_leader
        lb = b.lease()
        assert not await lb.wait_elected(timeout=0)  # one attempt, then the answer
        lb.start()
        assert not lb.is_leader
    assert not lease.is_leader
    waiting = asyncio.ensure_future(lb.wait_elected(timeout=RENEW + 1))
    await drive(clock, waiting.done, "b to notice the release")
    assert await waiting  # polls every renew_every: within one
    assert lb.epoch == 2


async def test_the_holder_renews_and_keeps_the_lease(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    la, lb = a.lease(), b.lease()
    assert await la.acquire(timeout=0)
    for n in range(1, 6):  # 50 s, well past the ttl: renewals keep it
        clock.advance(RENEW)
        await until(lambda n=n: la.stats["renewals"] >= n, "a renewal")
        assert la.is_leader
        assert not await lb.acquire(timeout=0)
    assert la.epoch == 1 and la.stats["lost"] == 0
    data = await lease_object(a)
    assert data["expires_at"] == pytest.approx(clock.time() + TTL)


async def test_a_holder_that_cannot_renew_stops_before_anyone_takes_over(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    la, lb = a.lease(), b.lease()
    assert await la.acquire(timeout=0)
    a.store.down = True
    clock.advance(RENEW)  # the renewal fails and is retried
    await until(lambda: la.stats["renewals"] >= 1 or la.stats["campaigns"] > 1)
    assert la.is_leader
    clock.advance(TTL - MARGIN - RENEW + 0.01)  # past the holder's own deadline
    assert not la.is_leader  # at once, whatever its task is doing
    await until(lambda: any(e == "leader.lost" for e, _ in a.events), "leader.lost")
    assert a.events[-1][1]["reason"] == "expired"
    assert not await lb.acquire(timeout=0)  # the stored expiry has not passed yet
    clock.advance(MARGIN)
    assert await lb.acquire(timeout=0) and lb.epoch == 2
    lost_at = a.events[-1][1]["ended"]
    elected_at = lb.elected_at
    assert elected_at is not None and lost_at <= elected_at - MARGIN + 0.02


async def test_a_contender_whose_clock_lags_still_takes_over_after_watching_a_ttl(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    la = a.lease()
    lb = b.plugin.leader("main", ttl=TTL, renew_every=RENEW, clock=SkewedClock(clock, -3600))
    assert await la.acquire(timeout=0)
    assert not await lb.acquire(timeout=0)  # starts watching the etag
    a.store.down = True  # the holder is cut off: its object stays as it is
    lb.start()
    clock.advance(TTL - 1)  # the wall clock of b is an hour behind: expiry is far away
    await asyncio.sleep(0.05)
    assert not lb.is_leader
    clock.advance(RENEW)  # but b watched the same etag for a whole ttl
    await until(lambda: lb.is_leader, "b to take over by observation")
    assert lb.epoch == 2 and not la.is_leader


# -- fencing -------------------------------------------------------------------------------
async def test_a_fenced_write_from_a_deposed_leader_is_refused(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    la = a.lease(margin=0.5)
    # b's clock runs ahead by more than a's margin: the documented limit is broken on purpose
    lb = b.plugin.leader("main", ttl=TTL, renew_every=RENEW, clock=SkewedClock(clock, 5))
    assert await la.acquire(timeout=0)
    await la.fenced_set("state", {"by": "a"})
    a.store.down = True  # a cannot renew, but believes its term runs until its deadline
    clock.advance(TTL - 4)
    assert la.is_leader
    assert await lb.acquire(timeout=0) and lb.epoch == 2  # b thinks a's term expired
    await lb.fenced_set("state", {"by": "b"})
    a.store.down = False
    assert la.is_leader  # a has not noticed yet
    with pytest.raises(StaleFenceError) as info:
        await la.fenced_set("state", {"by": "a, stale"})
    assert info.value.metadata["epoch"] == 1 and info.value.metadata["seen"] == 2
    with pytest.raises(LeaseLostError):
        await la.check()
    assert await PluginStorage(b.db, "runtime").get("state") == {"by": "b"}
    assert (await lb.check()).epoch == 2


async def test_fence_metadata_and_admits() -> None:
    fence = Fence("main", 4, "n1")
    assert fence.metadata == {"fence": "4@main"}
    assert fence.admits({})
    assert fence.admits({"fence": "4@main"}) and fence.admits({"fence": "3@main"})
    assert not fence.admits({"fence": "5@main"})
    assert fence.admits({"fence": "9@other"})  # another lease's stamp


async def test_a_fenced_write_needs_the_lease(nodes: Callable[[], Awaitable[Node]]) -> None:
    a = await nodes()
    with pytest.raises(LeaseLostError):
        await a.lease().fenced_set("state", 1)


# -- faults ---------------------------------------------------------------------------------
@pytest.mark.parametrize("error", ["unknown", "precondition"])
async def test_lost_replies_on_the_lease_put_are_resolved(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock, error: str
) -> None:
    a, b = await nodes(), await nodes()
    la, lb = a.lease(), b.lease()

    def lease_key(key: str) -> bool:
        return key.endswith("/leases/main")

    a.store.lose(1, match=lease_key, error=error)  # the create
    assert await la.acquire(timeout=0)
    assert a.store.lost == [LEASE_KEY] and la.epoch == 1
    a.store.lose(1, match=lease_key, error=error)  # a renewal
    clock.advance(RENEW)
    await until(lambda: len(a.store.lost) == 2 and la.stats["renewals"] >= 1)
    await asyncio.sleep(0.05)
    assert la.is_leader and la.epoch == 1
    assert (await lease_object(a))["expires_at"] == pytest.approx(clock.time() + TTL)
    await la.release()
    b.store.lose(1, match=lease_key, error=error)  # the takeover
    assert await lb.acquire(timeout=0)
    assert b.store.lost == [LEASE_KEY] and lb.epoch == 2
    assert not await la.acquire(timeout=0)


async def test_a_store_without_conditional_writes_is_refused(
    nodes: Callable[[], Awaitable[Node]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3db_async.errors import UnsupportedCapabilityError
    from s3db_async.stores import Capabilities

    a = await nodes()

    async def no_cas() -> Capabilities:
        return Capabilities(conditional_update=False, detail="test")

    monkeypatch.setattr(a.store, "capabilities", no_cas)
    with pytest.raises(UnsupportedCapabilityError):
        await a.lease().acquire(timeout=0)


# -- lifecycle ------------------------------------------------------------------------------
async def test_stop_releases_and_purge_removes_the_lease(
    nodes: Callable[[], Awaitable[Node]],
) -> None:
    a, b = await nodes(), await nodes()
    la = a.lease()
    assert await la.acquire(timeout=0)
    await a.db.uninstall_plugin(a.plugin)  # stop releases: the epoch is kept
    assert not la.is_leader and not la._runner
    assert (await lease_object(b))["released"] is True
    lb = b.lease()
    assert await lb.acquire(timeout=0) and lb.epoch == 2
    await b.db.uninstall_plugin(b.plugin, purge_data=True)
    assert await PluginStorage(b.db, "runtime").list("leases/") == []
    c = await nodes()
    lc = c.lease()
    assert await lc.acquire(timeout=0) and lc.epoch == 1  # purged: counting starts again


async def test_run_as_leader_runs_only_while_leading(
    nodes: Callable[[], Awaitable[Node]], clock: ManualClock
) -> None:
    a, b = await nodes(), await nodes()
    log: list[tuple[str, str, int]] = []

    def work(who: str) -> Callable[[Lease], Awaitable[str]]:
        async def fn(lease: Lease) -> str:
            log.append((who, "start", lease.fence.epoch))
            try:
                await asyncio.Event().wait()  # until cancelled
            except asyncio.CancelledError:
                log.append((who, "cancelled", lease.epoch or 0))
                raise
            return who

        return fn

    ta = a.plugin.run_as_leader(work("a"), name="main", ttl=TTL, renew_every=RENEW)
    await until(lambda: log == [("a", "start", 1)], "a to start")
    tb = b.plugin.run_as_leader(work("b"), name="main", ttl=TTL, renew_every=RENEW)
    await asyncio.sleep(0.05)
    assert log == [("a", "start", 1)]
    a.store.down = True
    clock.advance(TTL - MARGIN + 0.01)  # a's deadline: its work is cancelled
    await until(lambda: ("a", "cancelled", 1) in log, "a's work to be cancelled")
    clock.advance(MARGIN)
    await until(lambda: ("b", "start", 2) in log, "b to start")
    assert log.index(("a", "cancelled", 1)) < log.index(("b", "start", 2))
    assert not ta.done()  # a campaigns again
    a.store.down = False
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)
    await a.db.uninstall_plugin(a.plugin)
    assert ta.done()


async def test_run_as_leader_returns_when_the_work_is_done(
    nodes: Callable[[], Awaitable[Node]],
) -> None:
    a = await nodes()

    async def once(lease: Lease) -> int:
        await lease.fenced_set("done", {"epoch": lease.fence.epoch})
        return lease.fence.epoch

    assert await a.plugin.run_as_leader(once, name="main", ttl=TTL) == 1
    assert not a.plugin.leader("main", ttl=TTL).is_leader  # released when fn returned
    assert (await lease_object(a))["released"] is True


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.stores("memory")
async def test_invalid_lease_options_raise_config_errors(
    nodes: Callable[[], Awaitable[Node]],
) -> None:
    a = await nodes()
    cases: list[Mapping[str, Any]] = [
        {"name": "bad/name"},
        {"name": ""},
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": 10, "renew_every": 9},  # not below ttl - margin (8)
        {"ttl": 10, "margin": 10},
        {"ttl": 10, "margin": "2"},
        {"ttl": 10, "renew_every": True},
    ]
    for case in cases:
        options = dict(case)
        name = options.pop("name", "ok")
        with pytest.raises(ConfigError) as info:
            a.plugin.leader(name, **options)
        assert info.value.metadata.get("field") or info.value.metadata.get("ttl") is not None
    a.plugin.leader("same", ttl=10)
    with pytest.raises(ConfigError, match="already in use"):
        a.plugin.leader("same", ttl=20)


# -- a real lost answer over HTTP (moto, SeaweedFS) --------------------------------------------
def _conditional_put_of(fragment: bytes) -> Callable[[bytes], bool]:
    def match(head: bytes) -> bool:
        lowered = head.lower()
        return (
            head.startswith(b"PUT ")
            and fragment in head.split(b"\r\n", 1)[0]
            and (b"\r\nif-match:" in lowered or b"\r\nif-none-match:" in lowered)
        )

    return match


@pytest.mark.stores("moto", "seaweedfs")
async def test_dropped_replies_on_lease_writes_over_http_are_resolved(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    proxy = ReplyDroppingProxy("127.0.0.1", server.port).start()
    url = server.url(f"lease{id(proxy):x}", endpoint=f"http://127.0.0.1:{proxy.port}")
    db = Database(url + "?max_retries=2")
    await db.connect()
    try:
        plugin = await db.use_plugin(Runtime())
        lease = plugin.leader("main", ttl=TTL, renew_every=RENEW)
        proxy.drop(1, _conditional_put_of(b"leases/main"))  # the create
        assert await lease.acquire(timeout=0) and lease.epoch == 1
        proxy.drop(1, _conditional_put_of(b"/state"))  # a fenced write
        await lease.fenced_set("state", {"n": 1})
        proxy.drop(1, _conditional_put_of(b"leases/main"))  # the release
        await lease.release()
        assert len(proxy.dropped) == 3
        entry = await plugin.get_storage()._read(LEASE_KEY)
        assert entry is not None and entry.data["released"] is True
        proxy.drop(1, _conditional_put_of(b"leases/main"))  # the take-over
        assert await lease.acquire(timeout=0) and lease.epoch == 2
        assert len(proxy.dropped) == 4
        assert await plugin.get_storage().get("state") == {"n": 1}
    finally:
        await db.disconnect()
        proxy.close()


async def test_stop_cancels_leader_work_and_releases_without_campaigning_again(
    nodes: Callable[[], Awaitable[Node]],
) -> None:
    a = await nodes()
    started = asyncio.Event()

    async def forever(lease: Lease) -> None:
        started.set()
        await asyncio.Event().wait()

    task = a.plugin.run_as_leader(forever, name="main", ttl=TTL)
    await started.wait()
    await a.db.uninstall_plugin(a.plugin)
    assert task.done() and task.cancelled()
    data = await lease_object(a) if a.db.is_connected else None
    assert data is not None and data["released"] is True and data["epoch"] == 1
    assert a.plugin.tasks == frozenset()


@pytest.mark.stores("memory")
async def test_run_as_leader_on_a_store_without_conditional_writes_fails(
    nodes: Callable[[], Awaitable[Node]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3db_async.errors import UnsupportedCapabilityError
    from s3db_async.stores import Capabilities

    a = await nodes()

    async def no_cas() -> Capabilities:
        return Capabilities(conditional_update=False, detail="test")

    monkeypatch.setattr(a.store, "capabilities", no_cas)

    async def fn(lease: Lease) -> None:
        raise AssertionError("never elected")

    with pytest.raises(UnsupportedCapabilityError):
        await a.plugin.run_as_leader(fn, name="main", ttl=TTL)
