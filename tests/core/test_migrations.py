"""Schema migrations: lazy upgrades on read, eager resumable migrate(), the CLI command."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async._resource import migrations as migrations_module
from s3db_async.cli import app
from s3db_async.errors import SchemaError, ValidationError

V1 = {"name": "string|required", "region": "string"}
V2 = {**V1, "trail": "array|items:string|optional"}
V3 = {**V2, "hits": "integer|default:0"}
BY_REGION = {"by_region": {"fields": {"region": "string"}}}


def to_v2(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "trail": [*record.get("trail", []), "v2"]}


async def to_v3(record: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {**record, "trail": [*record.get("trail", []), "v3"], "hits": record.get("hits", 0) + 1}


MIGRATIONS = {2: to_v2, 3: to_v3}


async def v1_records(db: Database, n: int, **kw: Any) -> tuple[Any, list[str]]:
    res = await db.create_resource("items", attributes=V1, **kw)
    result = await res.insert_many(
        [{"id": f"r{i:05d}", "name": f"n{i}", "region": "EU"} for i in range(n)]
    )
    result.raise_first()
    return res, [r.id for r in result.ok]


async def to_v3_resource(db: Database, **kw: Any) -> Any:
    await db.create_resource("items", attributes=V2, **kw)
    return await db.create_resource("items", attributes=V3, migrations=MIGRATIONS, **kw)


async def stored_versions(db: Database, res: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for record in res.stream():
        counts[record.version] = counts.get(record.version, 0) + 1
    return counts


async def test_lazy_upgrade_on_read_writes_nothing(db: Database) -> None:
    res, ids = await v1_records(db, 3)
    assert (await to_v3_resource(db)) is res and res.version == "v3"
    assert res.definition["migrations"] == [2, 3]
    db.store.stats.reset()
    got = await res.get(ids[0])
    assert db.store.stats.snapshot() == {"get": 1}  # no write-back on read
    assert got == {"id": ids[0], "name": "n0", "region": "EU", "trail": ["v2", "v3"], "hits": 1}
    assert got.version == "v1"  # where it is stored
    assert all(r["trail"] == ["v2", "v3"] for r in await res.list())
    assert [r.id async for r in res.stream()] == ids
    assert len(await res.query({"hits": 1})) == 3
    updated = await res.update(ids[1], {"name": "x"})  # a write stores the upgraded record
    assert updated["trail"] == ["v2", "v3"] and updated.version == "v3"
    assert (await res.get(ids[1])).version == "v3"
    assert (await res.get(ids[1]))["trail"] == ["v2", "v3"]


async def test_missing_step_names_the_version(db: Database) -> None:
    res, ids = await v1_records(db, 1)
    await db.create_resource("items", attributes=V2)
    v2 = await res.insert({"name": "two", "region": "EU", "trail": []})
    await db.create_resource("items", attributes=V3, migrations={3: to_v3})
    with pytest.raises(SchemaError, match="no migration to v2") as info:
        await res.get(ids[0])
    assert info.value.metadata["missing"] == "v2"
    assert (await res.get(v2["id"]))["trail"] == ["v3"]  # v2 records need only step 3
    with pytest.raises(SchemaError, match="v2"):
        await res.migrate()
    res.set_migrations({2: None, 3: to_v3})  # None: v2 needs no change
    assert (await res.get(ids[0]))["trail"] == ["v3"]


async def test_steps_without_attribute_changes_need_no_function(db: Database) -> None:
    res, ids = await v1_records(db, 1)
    await db.create_resource("items", attributes=V1, history=True)  # v2: same attributes
    await db.create_resource("items", attributes=V3, history=True, migrations={3: to_v2})
    assert res.version == "v3"
    assert (await res.get(ids[0]))["trail"] == ["v2"]


async def test_declared_steps_need_registered_functions(store_url: str) -> None:
    async with Database(store_url) as db:
        res, ids = await v1_records(db, 2)
        await to_v3_resource(db)
    async with Database(store_url) as db:  # another process: migrations not registered
        res = db.resources["items"]
        with pytest.raises(SchemaError, match="not registered") as info:
            await res.get(ids[0])
        assert info.value.metadata["missing"] == "v2"
        res.set_migrations(MIGRATIONS)
        assert (await res.get(ids[0]))["hits"] == 1
        same = await db.create_resource("items", attributes=V3)  # migrations=None keeps them
        assert same.version == "v3" and same.definition["migrations"] == [2, 3]


async def test_migration_keys_number_the_versions(db: Database) -> None:
    res, ids = await v1_records(db, 1)
    await db.create_resource("items", attributes=V2)
    again = await db.create_resource("items", attributes=V2, migrations={2: to_v2})
    assert again.version == "v2" and again.definition["migrations"] == [2]  # no new version
    for bad in ({1: to_v2}, {"x": to_v2}, {2: "not callable"}, [to_v2]):
        with pytest.raises(SchemaError):
            await db.create_resource("items", attributes=V2, migrations=bad)  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        res.set_migrations({3: to_v3})
    res.set_migrations({"v2": to_v2})
    assert set(res.migrations) == {2}
    # same definition, a higher step: a data-only migration creates that version
    data_only = await db.create_resource("items", attributes=V2, migrations={2: to_v2, 3: to_v2})
    assert data_only.version == "v3" and data_only.definition["migrations"] == [2, 3]
    assert data_only.versions["v3"]["hash"] == data_only.versions["v2"]["hash"]
    same = await db.create_resource("items", attributes=V2, migrations={2: to_v2, 3: to_v2})
    assert same.version == "v3"
    # a changed definition takes the number of its highest step
    steps = {2: to_v2, 3: to_v2, 4: None, 5: to_v3}
    v5 = await db.create_resource("items", attributes=V3, migrations=steps)
    assert v5.version == "v5" and sorted(v5.versions) == ["v1", "v2", "v3", "v5"]
    assert (await res.get(ids[0]))["trail"] == ["v2", "v2", "v3"]


async def test_a_new_database_starts_at_the_highest_step(store_url: str) -> None:
    async with Database(store_url) as db:
        res = await db.create_resource("items", attributes=V3, migrations=MIGRATIONS)
        assert res.version == "v3" and list(res.versions) == ["v3"]
        rec = await res.insert({"name": "a", "region": "eu"})
        assert (await res.get(rec["id"])) == {**rec, "hits": 0}
        assert (await db.create_resource("items", attributes=V3, migrations=MIGRATIONS)) is res
        assert res.version == "v3"


async def test_no_new_version_for_a_step_without_versioning(store_url: str) -> None:
    async with Database(store_url, versioning=False) as db:
        await db.create_resource("items", attributes=V1)
        etag = db._meta_etag
        with pytest.raises(SchemaError, match="versioning is off"):
            await db.create_resource("items", attributes=V2, migrations={2: to_v2})
        assert db._meta_etag == etag  # nothing written


async def test_failing_migrations_are_reported(db: Database) -> None:
    res, ids = await v1_records(db, 2)

    def broken(record: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("nope")

    await db.create_resource("items", attributes=V2, migrations={2: broken})
    with pytest.raises(SchemaError, match="migration to v2 failed") as info:
        await res.get(ids[0])
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(SchemaError) as failed:
        await res.migrate()
    assert any(ids[0] in note or ids[1] in note for note in failed.value.__notes__)
    res.set_migrations({2: lambda r: ["not", "a", "dict"]})
    with pytest.raises(SchemaError, match="not a mapping"):
        await res.get(ids[0])
    res.set_migrations({2: lambda r: {**r, "id": "other"}})
    with pytest.raises(SchemaError, match="changed the id"):
        await res.get(ids[0])
    res.set_migrations({2: lambda r: {**r, "trail": "not a list"}})
    with pytest.raises(ValidationError, match="does not satisfy v2"):
        await res.get(ids[0])


async def test_migrate_v1_to_v3_interrupted_and_resumed_exactly_once(db: Database) -> None:
    """Acceptance: 2,000 v1 records to v3, cancelled half way, resumed: every record at v3
    exactly once (each step appends to ``trail``; a double application would show).

    Timing (2 cores): memory 0.3 s, file 3 s, SeaweedFS 4 s, moto 24 s (~12,000 requests
    through moto's Python server).
    """
    n = 2000
    res, ids = await v1_records(db, n)
    await to_v3_resource(db)
    seen: list[dict[str, Any]] = []

    def progress(p: dict[str, Any]) -> None:
        seen.append(p)
        if p["done"] == n // 2:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # interrupt the run half way, requests in flight

    with pytest.raises(asyncio.CancelledError):
        await res.migrate(on_progress=progress)
    first = seen[-1]["migrated"]
    assert seen[0]["total"] == n and n // 2 <= first < n

    result = await res.migrate(on_progress=lambda p: None)
    assert result["total"] == n and result["done"] == n
    # the resumed run upgrades what the first left (some in flight may have landed)
    assert n // 4 <= result["migrated"] <= n - first
    records = await res.list()
    assert [r.id for r in records] == ids
    assert all(r.version == "v3" for r in records)
    assert all(r["trail"] == ["v2", "v3"] and r["hits"] == 1 for r in records)  # exactly once

    db.store.stats.reset()  # idempotent: a second run only reads (1 GET each), writes nothing
    again = await res.migrate()
    assert again["migrated"] == 0 and again["skipped"] == n
    assert "put" not in db.store.stats and "delete" not in db.store.stats
    assert await db.store.list_keys("resource=items/plugin=migrations/") == []


async def test_checkpoint_lets_a_resumed_run_skip_done_records(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations_module, "CHECKPOINT_EVERY", 10)
    res, _ = await v1_records(db, 50)
    await to_v3_resource(db)

    def crash(p: dict[str, Any]) -> None:
        if p["done"] == 25:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        await res.migrate(on_progress=crash, concurrency=1)
    assert len(await db.store.list_keys("resource=items/plugin=migrations/")) == 1
    db.store.stats.reset()
    result = await res.migrate(concurrency=1)
    # checkpoint after record 20: records 21-50 are read again, 26-50 migrated
    assert result["done"] == 30 and result["migrated"] == 25 and result["skipped"] == 5
    assert db.store.stats["get"] == 1 + 30
    assert await stored_versions(db, res) == {"v3": 50}
    assert await db.store.list_keys("resource=items/plugin=migrations/") == []


async def test_migrate_moves_partition_references(db: Database) -> None:
    res, ids = await v1_records(db, 4, partitions=BY_REGION)

    def lower(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "region": record["region"].lower()}

    await db.create_resource("items", attributes=V1, partitions=BY_REGION, migrations={2: lower})
    assert (await res.get(ids[0]))["region"] == "eu"
    await res.update(ids[0], {"name": "moved by an update"})  # refs follow the stored value
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == ids[:1]
    result = await res.migrate()
    assert result["migrated"] == 3
    assert await res.list_ids(partition="by_region", partition_values={"region": "eu"}) == ids
    assert await res.count(partition="by_region", partition_values={"region": "EU"}) == 0
    assert await res.rebuild_partitions() == {"added": 0, "removed": 0}
    await res.delete(ids[1])
    assert await res.count(partition="by_region") == 3


async def test_migrate_without_functions_applies_the_new_schema(db: Database) -> None:
    res, ids = await v1_records(db, 3)
    await db.create_resource("items", attributes=V3)  # no migrations: decode-only reads
    assert "hits" not in await res.get(ids[0])
    events: list[Any] = []
    res.on("updated", lambda new, old: events.append((new, old)))
    result = await res.migrate()
    assert result == {
        "resource": "items",
        "version": "v2",
        "total": 3,
        "done": 3,
        "migrated": 3,
        "skipped": 0,
    }
    assert [(await res.get(i))["hits"] for i in ids] == [0, 0, 0]
    assert len(events) == 3 and events[0][0]["hits"] == 0 and "hits" not in events[0][1]


async def test_migrate_keeps_history_and_history_is_upgraded(db: Database) -> None:
    res, ids = await v1_records(db, 2, history=True)
    await res.update(ids[0], {"name": "renamed"})
    await db.create_resource("items", attributes=V2, history=True, migrations={2: to_v2})
    db.store.stats.reset()
    await res.migrate()
    assert db.store.stats["put"] == 4  # per record: history entry + the upgraded record
    history = await res.history(ids[0])
    assert [(r.revision, r.version, r["name"]) for r in history] == [
        (1, "v1", "n0"),
        (2, "v1", "renamed"),
    ]
    assert all(r["trail"] == ["v2"] for r in history)  # shown in the current shape
    assert (await res.get(ids[0])).version == "v2"
    restored = await res.restore(ids[0], 1)
    assert restored["name"] == "n0" and restored["trail"] == ["v2"]


def test_cli_migrate_with_module_and_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path / 'clidb'}"
    package = tmp_path / "mods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "item_migrations.py").write_text(
        textwrap.dedent(
            """
            def to_v2(record):
                return {**record, "trail": [*record.get("trail", []), "v2"]}

            async def to_v3(record):
                return {**record, "trail": [*record["trail"], "v3"], "hits": 1}

            STEPS = {2: to_v2, 3: to_v3}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    async def setup() -> None:
        async with Database(url) as db:
            await v1_records(db, 30)
            await db.create_resource("items", attributes=V2)
            await db.create_resource("items", attributes=V3, migrations={2: to_v2, 3: to_v3})

    asyncio.run(setup())
    runner = CliRunner()
    result = runner.invoke(app, ["--url", url, "migrate", "items"])
    assert result.exit_code == 1 and "not registered" in result.stderr
    result = runner.invoke(app, ["--url", url, "migrate", "items", "--module", "mods.nope:X"])
    assert result.exit_code == 1 and "cannot import" in result.stderr
    result = runner.invoke(
        app, ["--url", url, "migrate", "items", "--module", "mods.item_migrations:STEPS"]
    )
    assert result.exit_code == 0, result.stderr
    assert "30 migrated" in result.stderr and "migrate items" in result.stderr
    out = runner.invoke(app, ["--url", url, "list", "items", "--json", "--limit", "1"]).stdout
    first = msgspec.json.decode(out.splitlines()[0])
    assert first["trail"] == ["v2", "v3"] and first["hits"] == 1
    # every record current: no functions needed any more
    again = runner.invoke(app, ["--url", url, "migrate", "items"])
    assert again.exit_code == 0 and "0 migrated" in again.stderr and "30 already" in again.stderr
