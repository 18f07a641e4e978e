"""Issue 16 items 2, 3 and 9a: partition references under races, crashes and deletes.

The property: after any interleaving (and, with crashes, after ``rebuild_partitions``),
a partition read returns exactly the records whose current values match and
``count(partition=...)`` is exact; without ``rebuild_partitions`` a crash may leave stale
references but never a record missing from its partition.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import anyio
import pytest

from s3db_async import Database, Resource
from s3db_async._resource.partitions import DEAD_REF
from s3db_async.errors import NotFoundError, StoreError
from s3db_async.stores import ListEntry, open_store
from s3db_async.testing import spawn_processes

from .._faults import LostReplyStore
from ._partition_worker import IDS, REGIONS, define, move


async def live_refs(res: Resource) -> dict[str, str]:
    """``{ref key: region}`` of every live reference (one LIST)."""
    out = {}
    async for entry in res.db.store.list(f"resource={res.name}/partition="):
        if isinstance(entry, ListEntry) and entry.size != len(DEAD_REF):
            out[entry.key] = entry.key.split("/region=", 1)[1].split("/", 1)[0]
    return out


async def check_partitions(res: Resource, *, exact: bool) -> None:
    """No record missing from its partition; with ``exact``, no stale reference either,
    and every partition read and count gives exactly the matching records."""
    records = {r.id: r for r in await res.list()}
    refs = await live_refs(res)
    for rid, rec in records.items():
        if rec.get("region") is not None:
            key = res._ref_keys(rec, rid)["by_region"]
            assert key in refs, f"{rid} ({rec['region']}) missing from its partition"
    if not exact:
        return
    assert len(refs) == sum(1 for r in records.values() if r.get("region") is not None)
    for region in REGIONS:
        want = sorted(rid for rid, r in records.items() if r.get("region") == region)
        values = {"region": region}
        assert await res.list_ids(partition="by_region", partition_values=values) == want
        assert await res.count(partition="by_region", partition_values=values) == len(want)
    by = await res.count(by="region")
    assert {k: v for k, v in by.items() if k is not None} == {
        region: n
        for region in REGIONS
        if (n := sum(1 for r in records.values() if r.get("region") == region))
    }


def partitioned(db: Database, name: str = "things") -> Resource:
    return db.create_resource(  # type: ignore[return-value]
        name,
        attributes={"region": "string|optional", "n": "integer|optional"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )


# -- item 9a -------------------------------------------------------------------------------
async def test_delete_many_leaves_no_live_reference(db: Database) -> None:
    res = await partitioned(db)
    ids = [(await res.insert({"region": REGIONS[i % 4]}))["id"] for i in range(8)]
    result = await res.delete_many(ids[:6])
    assert len(result.ok) == 6 and not result.errors
    kept = [await res.get(rid) for rid in ids[6:]]
    assert sorted(await live_refs(res)) == sorted(
        res._ref_keys(rec, rec.id)["by_region"] for rec in kept
    )
    await res.delete_many(ids[6:])
    assert await live_refs(res) == {}
    for region in REGIONS:
        assert await res.count(partition="by_region", partition_values={"region": region}) == 0
    assert await res.count(partition="by_region") == 0


async def test_delete_then_reinsert_revives_reference(db: Database) -> None:
    res = await partitioned(db)
    await res.insert({"id": "a", "region": "eu"})
    await res.delete("a")
    db.store.stats.reset()
    await res.insert({"id": "a", "region": "eu"})
    assert db.store.stats.snapshot() == {"put": 3}  # create fails on the dead ref, revive
    await check_partitions(res, exact=True)


async def test_legacy_empty_references_are_live_and_moved(db: Database) -> None:
    res = await partitioned(db)
    await res.insert({"id": "a", "region": "eu"})
    key = res._ref_keys({"region": "eu"}, "a")["by_region"]
    raw = await db.store.get(res.key_for("a"))
    legacy = {k: v for k, v in raw.metadata.items() if k != "_pt"}
    await db.store.put(res.key_for("a"), raw.body, legacy, content_type=raw.content_type)
    await db.store.put(key, b"")  # what earlier versions wrote
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == ["a"]
    await res.update("a", {"region": "us"})
    await check_partitions(res, exact=True)


def _move_to(region: str):  # type: ignore[no-untyped-def]
    return lambda r: {"region": region, "n": r["n"] + 1}


# -- races in one process (every store) ------------------------------------------------------
async def test_concurrent_moves_keep_partitions_exact(db: Database) -> None:
    res = await partitioned(db)
    for rid in IDS[:3]:
        await res.insert({"id": rid, "region": "eu", "n": 0})
    rng = random.Random(7)

    async def mover(k: int) -> None:
        for _ in range(6):
            rid = rng.choice(IDS[:3])
            region = rng.choice(REGIONS)
            await res.update(rid, _move_to(region))

    await asyncio.gather(*(mover(k) for k in range(8)))
    await check_partitions(res, exact=True)
    assert sum(r["n"] for r in await res.list()) == 48


async def test_function_update_survives_contention_by_default(db: Database) -> None:
    """Item 2: 24 concurrent increments of one record with default settings (the old
    5-attempt limit raised ConflictError here); ``retries=`` still caps when given."""
    res = await partitioned(db)
    await res.insert({"id": "hot", "region": "eu", "n": 0})
    await asyncio.gather(*(res.update("hot", _move_to(REGIONS[k % 4])) for k in range(24)))
    assert (await res.get("hot"))["n"] == 24
    await check_partitions(res, exact=True)


async def test_lost_create_race_hands_reference_back(db: Database) -> None:
    """Two inserts of one id with the same value: the loser's reference write must not
    kill the winner's reference (the loser wrote the key last)."""
    res = await partitioned(db)
    results = await asyncio.gather(
        *(res.insert({"id": "x", "region": "eu"}) for _ in range(6)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    await check_partitions(res, exact=True)


# -- crashes ---------------------------------------------------------------------------------
class _Crash(Exception):
    pass


class CrashingStore(LostReplyStore):
    """Dies (raises) before the request number ``at`` reaches the store."""

    def __init__(self, inner, at: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner)
        self.at = at
        self.count = 0

    async def put(self, key, body, metadata=None, **kw):  # type: ignore[no-untyped-def]
        self.count += 1
        if self.count == self.at:
            raise _Crash(key)
        return await super().put(key, body, metadata, **kw)


@pytest.mark.stores("memory", "file")
async def test_crash_at_every_write_leaves_no_missing_reference(store_url: str) -> None:
    """Crash an insert and two moves before each of their PUTs in turn."""
    for at in range(1, 7):
        store = CrashingStore(open_store(store_url), 10**9)
        async with Database(store=store) as db:
            res = await partitioned(db)
            rid = f"c{at}"
            store.count, store.at = 0, at
            steps = (
                {"id": rid, "region": "eu", "n": 0},
                {"region": "us"},
                {"region": "eu"},
            )
            for i, data in enumerate(steps):
                try:
                    if i == 0:
                        await res.insert(data)
                    else:
                        await res.update(rid, data)
                except (_Crash, NotFoundError):
                    pass
            await check_partitions(res, exact=False)  # stale maybe, missing never
    async with Database(store_url) as db:
        res = db.resources["things"]
        await res.rebuild_partitions()
        await check_partitions(res, exact=True)


# -- real OS processes (file and SeaweedFS) ---------------------------------------------------
def _mp_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if store_kind == "file":
        return f"file://{tmp_path / 'db'}"
    server = request.getfixturevalue(f"{store_kind}_server")
    return str(server.url(f"parts-{uuid.uuid4().hex[:8]}"))


async def _seed(url: str) -> None:
    async with Database(url) as db:
        res = await define(db)
        for i, rid in enumerate(IDS):
            await res.insert({"id": rid, "region": REGIONS[i % len(REGIONS)], "n": 0})


async def _check(url: str, exact: bool, rebuild: bool = False) -> int:
    async with Database(url) as db:
        res = db.resources["moves"]
        if rebuild:
            await check_partitions(res, exact=False)
            await res.rebuild_partitions()
        await check_partitions(res, exact=exact)
        return sum(r["n"] for r in await res.list())


@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
async def test_multi_process_moves_keep_partitions_exact(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _mp_url(store_kind, request, tmp_path)
    await _seed(url)
    procs, rounds = 4, (5 if store_kind == "file" else 3)
    async with spawn_processes(move, url, procs, (0, 5, rounds)) as group:
        await group.release("connected")
        assert await group.results(timeout=300) == ["done"] * procs
    updates = await _check(url, True)
    assert updates <= procs * 5 * rounds


@pytest.mark.slow
@pytest.mark.stores("file", "seaweedfs")
async def test_sigkilled_writers_leave_no_missing_reference(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _mp_url(store_kind, request, tmp_path)
    await _seed(url)
    rng = random.Random(11)
    for round_ in range(3):
        async with spawn_processes(move, url, 3, (100 * round_, 4, 1000)) as group:
            await group.release("connected")
            await anyio.sleep(rng.uniform(1.0, 2.0))  # let them get going; killed at random
            for i in range(3):
                group.kill(i)
            assert all(o.killed for o in await group.outcomes())
        await _check(url, False)
    await _check(url, True, True)


async def test_passphrase_rotation_keeps_reference_tokens(db: Database) -> None:
    """A rewrite by rotation keeps ``_pt``: the next move kills the old reference."""
    res = await db.create_resource(
        "secrets",
        attributes={"region": "string", "token": "secret"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )
    await res.insert({"id": "s", "region": "eu", "token": "t0p"})
    totals = await db.rotate_passphrase("test-passphrase", "another-passphrase")
    assert totals["rewritten"] >= 1
    await res.update("s", {"region": "us"})
    assert list((await live_refs(res)).values()) == ["us"]


class _KillFails(LostReplyStore):
    async def put(self, key, body, metadata=None, **kw):  # type: ignore[no-untyped-def]
        if body == DEAD_REF:
            raise StoreError(f"put {key!r}: connection refused")
        return await super().put(key, body, metadata, **kw)


@pytest.mark.stores("memory", "file")
async def test_failed_kill_never_fails_the_write(store_url: str) -> None:
    """The record write happened: a failing kill leaves a stale reference, not an error
    (which would make a caller retry a function update that was applied)."""
    async with Database(store=_KillFails(open_store(store_url))) as db:
        res = await partitioned(db)
        await res.insert({"id": "a", "region": "eu", "n": 0})
        updated = await res.update("a", _move_to("us"))
        assert updated["n"] == 1
        assert sorted((await live_refs(res)).values()) == ["eu", "us"]  # stale, not missing
        await check_partitions(res, exact=False)
        assert await res.list(partition="by_region", partition_values={"region": "eu"}) == []


# -- deletes that decode only the partition fields ------------------------------------------
async def test_unobserved_delete_kills_refs_of_every_field_placement(db: Database) -> None:
    """With partitions but no delete hooks or listeners, a delete decodes only the partition
    fields: from metadata, nested, null, absent, or (overflowed) from the body."""
    res = await db.create_resource(
        "placed",
        attributes={
            "region": "string|optional",
            "geo": {"city": "string|optional"},
            "bio": "string|optional",
        },
        partitions={
            "by_region": {"fields": {"region": "string"}},
            "by_city": {"fields": {"geo.city": "string"}},
        },
    )
    rows = [
        {"region": "eu", "geo": {"city": "Lisbon"}},
        {"region": None, "geo": {"city": "Porto"}},
        {"geo": {"city": "Faro"}},
        {"region": "us"},
        {"region": "é ~ /odd", "geo": {"city": "=?x"}},
        {"region": "big", "geo": {"city": "Braga"}, "bio": "x" * 5000},  # body overflow
        {"region": "r" * 900, "geo": {"city": "c" * 900}, "bio": "b" * 900},  # some in the body
    ]
    ids = [(await res.insert(row))["id"] for row in rows]
    assert len(await live_refs_all(res)) == 11
    for i in (5, 6):  # these have a body: decoded the whole way
        assert "_b" in (await db.store.head(res.key_for(ids[i]))).metadata
    assert not res._records.delete_sees_record()
    for rid in ids:
        assert await res.delete(rid) is True
    assert await live_refs_all(res) == set()
    assert await res.delete(ids[0]) is False
    with pytest.raises(NotFoundError):
        await res.delete(ids[0], must_exist=True)


async def live_refs_all(res: Resource) -> set[str]:
    return {
        e.key
        async for e in res.db.store.list(f"resource={res.name}/partition=")
        if isinstance(e, ListEntry) and e.size != len(DEAD_REF)
    }


async def test_delete_decodes_fields_like_the_whole_record(db: Database) -> None:
    """The partition-fields-only decode gives the reference keys the full decode gives,
    including for records written under an older schema version."""
    res = await partitioned(db)
    ids = [(await res.insert({"region": REGIONS[i % 4], "n": i}))["id"] for i in range(6)]
    res = await db.create_resource(  # v2: a new field, same partition
        "things",
        attributes={
            "region": "string|optional",
            "n": "integer|optional",
            "note": "string|optional",
        },
        partitions={"by_region": {"fields": {"region": "string"}}},
    )
    assert res.version != "v1"
    for rid in ids:
        obj = await db.store.get(res.key_for(rid))
        _, record = await res._records.read(rid)
        full = res._writer.ref_tokens(record, rid, obj.metadata)
        assert await res._records.stored_refs(rid) == full
    for rid in ids:
        await res.delete(rid)
    assert await live_refs(res) == {}


async def test_unobserved_delete_of_a_corrupt_partition_value_lists_its_refs(
    db: Database,
) -> None:
    res = await partitioned(db)
    rid = (await res.insert({"region": "eu", "n": 1}))["id"]
    obj = await db.store.get(res.key_for(rid))
    fid = res.codec._by_path["region"].id
    await db.store.put(res.key_for(rid), obj.body, {**obj.metadata, fid: "~zz"})  # bad escape
    assert await res.delete(rid) is True
    assert await live_refs(res) == {}


async def test_observed_delete_still_hands_the_whole_record_over(db: Database) -> None:
    res = await partitioned(db)
    rid = (await res.insert({"region": "eu", "n": 7}))["id"]
    seen: list[dict[str, object]] = []
    res.on("deleted", lambda record: seen.append(dict(record)))
    assert res._records.delete_sees_record()
    await res.delete(rid)
    assert seen == [{"id": rid, "region": "eu", "n": 7}]
    assert await live_refs(res) == {}
