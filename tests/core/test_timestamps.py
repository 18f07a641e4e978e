"""Timestamps are real (issue 15.5): aware UTC datetimes, created_at never rewritten,
no-op writes skipped, preserve_timestamps on insert and import, legacy ISO strings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database, Resource, Schema
from s3db_async._codec.codec import RecordCodec
from s3db_async.cli import app
from s3db_async.errors import SchemaError, ValidationError

# every store: the timestamps travel in S3 metadata and bodies like any datetime

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


class Clock:
    """A fake clock for the timestamps: each reading is one second after the last."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr("s3db_async._resource.timestamps.utc_now", fake)
    yield fake


async def _notes(db: Database, **options: Any) -> Resource:
    return await db.create_resource(
        "notes",
        attributes={"title": "string|required", "body": "string", "tags": "array|items:string"},
        timestamps=True,
        **options,
    )


def _writes(db: Database) -> int:
    stats = db.store.stats
    return sum(n for op, n in stats.items() if op in ("put", "delete", "delete_many", "copy"))


async def test_timestamps_are_aware_utc_datetimes(db: Database, clock: Clock) -> None:
    notes = await _notes(db)
    rec = await notes.insert({"title": "a"})
    assert isinstance(rec["created_at"], datetime) and rec["created_at"].tzinfo is UTC
    assert rec["created_at"] == rec["updated_at"] == clock.now
    got = await notes.get(rec["id"])
    assert got["created_at"] == clock.now and got["created_at"].tzinfo is UTC
    assert got["updated_at"] == clock.now
    assert notes.schema.fields["created_at"].type == "datetime"
    assert (await notes.query({"created_at": {"$lte": clock.now}}))[0]["id"] == rec["id"]


async def test_writes_never_rewrite_created_at(db: Database, clock: Clock) -> None:
    notes = await _notes(db)
    rec = await notes.insert({"title": "a"})
    created = rec["created_at"]
    other = datetime(1999, 1, 1, tzinfo=UTC)
    for write in (
        lambda: notes.update(rec["id"], {"title": "b", "created_at": other}),
        lambda: notes.update(rec["id"], lambda r: {"title": r["title"] + "!"}),
        lambda: notes.patch(rec["id"], {"title": "c", "created_at": other}),
        lambda: notes.replace(rec["id"], {"title": "d", "created_at": other}),
        lambda: notes.upsert({"id": rec["id"], "title": "e", "created_at": other}),
        lambda: notes.upsert(
            {"id": rec["id"], "title": "f", "created_at": other}, preserve_timestamps=True
        ),
    ):
        out = await write()
        assert out["created_at"] == created
        assert out["updated_at"] == clock.now > created
        stored = await notes.get(rec["id"])
        assert stored["created_at"] == created and stored["updated_at"] == clock.now


async def test_a_write_that_changes_nothing_writes_nothing(db: Database, clock: Clock) -> None:
    notes = await _notes(db)
    updates: list[Any] = []
    notes.on("updated", lambda new, old: updates.append(new))
    rec = await notes.insert({"title": "a", "tags": ["x"]})
    stamp = rec["updated_at"]
    for write in (
        lambda: notes.update(rec["id"], {"title": "a"}),
        lambda: notes.update(rec["id"], {"tags": ("x",)}),  # coerced to the same value
        lambda: notes.update(rec["id"], {}),
        lambda: notes.patch(rec["id"], {"title": "a"}),
        lambda: notes.replace(rec["id"], {"title": "a", "tags": ["x"]}),
        lambda: notes.upsert({"id": rec["id"], "title": "a"}),
        lambda: notes.update(rec["id"], {"title": "a", "updated_at": T0}),
    ):
        db.store.stats.reset()
        out = await write()
        assert db.store.stats.get("get", 0) == 1 and _writes(db) == 0  # 1 GET, no PUT
        assert out["updated_at"] == stamp and out.etag == rec.etag
        assert dict(out) == dict(rec)
    assert updates == []
    db.store.stats.reset()
    changed = await notes.update(rec["id"], {"title": "b"})
    assert db.store.stats["put"] == 1 and changed["updated_at"] == clock.now > stamp
    assert len(updates) == 1


async def test_no_op_updates_are_skipped_without_timestamps_too(db: Database) -> None:
    plain = await db.create_resource("plain", attributes={"n": "integer"})
    rec = await plain.insert({"n": 1})
    db.store.stats.reset()
    assert (await plain.update(rec["id"], {"n": 1})).etag == rec.etag
    assert _writes(db) == 0


async def test_a_record_of_an_older_version_is_still_rewritten(db: Database) -> None:
    notes = await _notes(db)
    rec = await notes.insert({"title": "a"})
    await db.create_resource(
        "notes",
        attributes={
            "title": "string|required",
            "body": "string",
            "tags": "array|items:string",
            "extra": "string",
        },
        timestamps=True,
    )
    assert notes.version == "v2" and (await notes.get(rec["id"])).version == "v1"
    db.store.stats.reset()
    out = await notes.update(rec["id"], {})
    assert db.store.stats["put"] == 1 and out.version == "v2"
    assert out["created_at"] == rec["created_at"]


async def test_insert_preserves_given_timestamps_when_asked(db: Database, clock: Clock) -> None:
    notes = await _notes(db)
    later = T0 + timedelta(days=3)
    kept = await notes.insert(
        {"title": "a", "created_at": T0, "updated_at": later}, preserve_timestamps=True
    )
    assert kept["created_at"] == T0 and kept["updated_at"] == later
    got = await notes.get(kept["id"])
    assert got["created_at"] == T0 and got["updated_at"] == later
    # ISO strings (what an export holds) and other zones are accepted, stored as UTC
    paris = timezone(timedelta(hours=2))
    iso = await notes.insert(
        {
            "title": "b",
            "created_at": "2024-05-01T12:00:00.123Z",
            "updated_at": T0.astimezone(paris),
        },
        preserve_timestamps=True,
    )
    assert iso["created_at"] == T0 and iso["created_at"].tzinfo is UTC
    assert iso["updated_at"] == T0 and iso["updated_at"].tzinfo is UTC
    only_created = await notes.insert({"title": "c", "created_at": T0}, preserve_timestamps=True)
    assert only_created["created_at"] == T0 and only_created["updated_at"] == clock.now
    # without the flag, the database stamps the record itself
    fresh = await notes.insert({"title": "d", "created_at": T0})
    assert fresh["created_at"] == clock.now
    batch = await notes.insert_many(
        [{"title": "e", "created_at": T0, "updated_at": T0}], preserve_timestamps=True
    )
    assert batch.all_ok and batch.ok[0]["created_at"] == T0


@pytest.mark.parametrize(
    "bad",
    [datetime(2024, 5, 1, 12, 0), "yesterday", 1714564800, "2024-05-01T12:00:00"],
)
async def test_preserved_timestamps_are_validated(db: Database, bad: Any) -> None:
    notes = await _notes(db)
    db.store.stats.reset()
    with pytest.raises(ValidationError) as info:
        await notes.insert({"title": "a", "created_at": bad}, preserve_timestamps=True)
    assert info.value.fields == ["created_at"]
    assert _writes(db) == 0


async def test_a_declared_timestamp_field_must_be_a_datetime(db: Database) -> None:
    with pytest.raises(SchemaError) as info:
        await db.create_resource(
            "bad", attributes={"title": "string", "created_at": "string"}, timestamps=True
        )
    assert info.value.fields == ["created_at"]
    ok = await db.create_resource(
        "ok", attributes={"created_at": "datetime|optional"}, timestamps=True
    )
    assert isinstance((await ok.insert({}))["created_at"], datetime)


@pytest.mark.parametrize("behavior", ["body-overflow", "body-only"])
async def test_legacy_iso_string_timestamps_decode_as_datetimes(
    db: Database, clock: Clock, behavior: str
) -> None:
    """Records written while timestamps were ISO strings still read (as datetimes)."""
    notes = await _notes(db, behavior=behavior)
    legacy = Schema(
        {
            **notes.definition["attributes"],
            "created_at": "string|optional",
            "updated_at": "string|optional",
        }
    )
    codec = RecordCodec(legacy, notes.registry, version=notes.version, behavior=behavior)
    old = {
        "title": "old",
        "created_at": "2024-05-01T12:00:00.123Z",
        "updated_at": "2024-05-02T00:00:00.000Z",
    }
    enc = codec.encode(old)
    await db.store.put(
        notes.key_for("legacy"), enc.body, enc.metadata, content_type=enc.content_type
    )
    got = await notes.get("legacy")
    assert got["created_at"] == T0 and got["created_at"].tzinfo is UTC
    assert got["updated_at"] == datetime(2024, 5, 2, tzinfo=UTC)
    updated = await notes.update("legacy", {"title": "new"})
    assert updated["created_at"] == T0 and updated["updated_at"] == clock.now
    assert (await notes.get("legacy"))["created_at"] == T0


async def test_restore_keeps_created_at_as_a_datetime(db: Database, clock: Clock) -> None:
    notes = await _notes(db, history=True)
    rec = await notes.insert({"title": "a"})
    await notes.update(rec["id"], {"title": "b"})
    restored = await notes.restore(rec["id"], 1)
    assert restored["created_at"] == rec["created_at"]
    assert restored["updated_at"] == clock.now > rec["updated_at"]


# -- CLI: export -> import round-trips a database ------------------------------------


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_export_import_round_trips_timestamps(tmp_path: Path) -> None:
    src, dst = f"file://{tmp_path / 'src'}", f"file://{tmp_path / 'dst'}"
    definition = {"title": "string|required", "tags": "array|items:string"}

    async def setup() -> list[dict[str, Any]]:
        async with Database(src) as db:
            notes = await db.create_resource("notes", attributes=definition, timestamps=True)
            for i in range(3):
                await notes.insert(
                    {
                        "id": f"n{i}",
                        "title": f"note {i}",
                        "created_at": T0 + timedelta(days=i),
                        "updated_at": T0 + timedelta(days=i, hours=1),
                    },
                    preserve_timestamps=True,
                )
            await notes.update("n2", {"title": "changed"})
            rows = [dict(r) for r in await notes.list()]
        async with Database(dst) as db:
            await db.create_resource("notes", attributes=definition, timestamps=True)
        return rows

    originals = asyncio.run(setup())
    code, out, _ = _cli(src, "get", "notes", "n0")
    assert code == 0 and msgspec.json.decode(out)["created_at"] == "2024-05-01T12:00:00.123000Z"
    code, out, _ = _cli(src, "list", "notes", "--json")
    assert code == 0 and len(out.splitlines()) == 3
    code, out, err = _cli(src, "export", "notes")
    assert code == 0 and "exported 3" in err
    dump = tmp_path / "notes.ndjson"
    dump.write_text(out)
    code, _, err = _cli(dst, "import", "notes", str(dump))
    assert code == 0 and "imported 3 of 3" in err, err

    async def read() -> list[dict[str, Any]]:
        async with Database(dst) as db:
            return [dict(r) for r in await db.resources["notes"].list()]

    assert asyncio.run(read()) == originals
    # --upsert over the same rows keeps them as they are (nothing changes)
    code, _, err = _cli(dst, "import", "notes", str(dump), "--upsert")
    assert code == 0 and "imported 3 of 3" in err
    assert asyncio.run(read()) == originals
    # --no-preserve-timestamps stamps the imported records anew
    fresh = f"file://{tmp_path / 'fresh'}"

    async def prepare() -> None:
        async with Database(fresh) as db:
            await db.create_resource("notes", attributes=definition, timestamps=True)

    asyncio.run(prepare())
    code, _, err = _cli(fresh, "import", "notes", str(dump), "--no-preserve-timestamps")
    assert code == 0 and "imported 3 of 3" in err

    async def stamps() -> list[datetime]:
        async with Database(fresh) as db:
            return [r["created_at"] for r in await db.resources["notes"].list()]

    assert all(stamp > originals[-1]["updated_at"] for stamp in asyncio.run(stamps()))
