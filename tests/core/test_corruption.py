"""One damaged object never poisons a read (issue 16 items 4 and 5).

Faults are injected by writing garbage straight through ``db.store.put`` (every store)
or by damaging files on disk (file store): a corrupt record raises ``CorruptRecordError``
on ``get``, is skipped and reported by listings, and is removed by ``delete``; a damaged
``s3db.json`` raises ``CorruptMetadataError`` at connect and a kept copy restores it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database, Record
from s3db_async._resource.partitions import is_dead
from s3db_async.cli import app
from s3db_async.cli.doctor import doctor, metadata_copies, restore_metadata
from s3db_async.errors import (
    AlreadyExistsError,
    ConfigError,
    CorruptMetadataError,
    CorruptRecordError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from s3db_async.stores import ListEntry

ATTRS = {"n": "number", "name": "string|optional", "region": "string|optional"}


async def things(db: Database, **kw: Any) -> Any:
    return await db.create_resource("things", attributes=ATTRS, **kw)


async def garbage(res: Any, rid: str, metadata: dict[str, str], body: bytes = b"") -> None:
    """Write a record object outside s3db-async."""
    await res.db.store.put(res.key_for(rid), body, metadata)


def n_id(res: Any) -> str:
    return str(res.registry.id_of("n"))


# -- get -------------------------------------------------------------------------------


async def test_garbage_metadata_raises_corrupt_record_error_naming_id_and_key(
    db: Database,
) -> None:
    res = await things(db)
    await garbage(res, "bad", {"_v": "v1", n_id(res): "not a number"})
    with pytest.raises(CorruptRecordError) as info:
        await res.get("bad")
    err = info.value
    assert err.id == "bad" and err.key == res.key_for("bad") == "resource=things/data/id=bad"
    assert err.metadata["id"] == "bad" and err.metadata["key"] == err.key
    assert err.metadata["resource"] == "things" and err.reason
    assert "'bad'" in str(err) and err.key in str(err) and "s3db doctor" in str(err.suggestion)
    assert isinstance(err, ValidationError)  # what a decode failure raised before


async def test_unknown_schema_version_is_corrupt_not_an_empty_record(db: Database) -> None:
    res = await things(db)
    await garbage(res, "bad2", {"_v": "v999", n_id(res): "1"})
    db.store.stats.reset()
    with pytest.raises(CorruptRecordError, match="v999"):
        await res.get("bad2")
    # the version could be new: s3db.json is re-read once (1 GET), then never again
    assert db.store.stats.snapshot() == {"get": 2}
    db.store.stats.reset()
    with pytest.raises(CorruptRecordError):
        await res.get("bad2")
    assert db.store.stats.snapshot() == {"get": 1}


async def test_record_without_schema_version_is_corrupt(db: Database) -> None:
    res = await things(db)
    await garbage(res, "nov", {"zz": "1"}, b"\x00\xff garbage")
    with pytest.raises(CorruptRecordError, match="schema version"):
        await res.get("nov")


async def test_truncated_body_is_corrupt(db: Database) -> None:
    res = await things(db)
    await res.insert({"id": "big", "n": 1, "name": "x" * 3000})  # overflows into the body
    obj = await db.store.get(res.key_for("big"))
    assert obj.metadata.get("_b") == "1"
    await garbage(res, "big", dict(obj.metadata), obj.body[: len(obj.body) // 2])
    with pytest.raises(CorruptRecordError, match="big"):
        await res.get("big")


async def test_non_object_extra_blob_is_corrupt(db: Database) -> None:
    res = await things(db)
    await garbage(res, "x", {"_v": "v1", "_b": "1"}, b'{"_x": [1, 2]}')
    with pytest.raises(CorruptRecordError):
        await res.get("x")


async def test_version_made_by_another_process_is_learned_not_corrupt(store_url: str) -> None:
    async with Database(store_url) as db1, Database(store_url) as db2:
        res1 = await things(db1)
        res2 = await db2.create_resource("things", attributes={**ATTRS, "extra": "string"})
        assert res2.version == "v2"
        await res2.insert({"id": "new", "n": 2, "extra": "yes"})
        got = await res1.get("new")
        assert got["n"] == 2 and got.version == "v2"


# -- listings --------------------------------------------------------------------------


async def corrupt_resource(db: Database) -> Any:
    res = await things(db)
    for i in range(3):
        await res.insert({"id": f"ok{i}", "n": i, "region": "eu"})
    await garbage(res, "bad1", {"_v": "v1", n_id(res): "not a number"})
    await garbage(res, "bad2", {"_v": "v999"})
    return res


async def test_listings_skip_corrupt_records_report_them_and_carry_on(db: Database) -> None:
    res = await corrupt_resource(db)
    events: list[tuple[Any, Any]] = []
    res.on("error", lambda exc, ctx: events.append((exc, ctx)))

    listed = await res.list()
    assert [r.id for r in listed] == ["ok0", "ok1", "ok2"]
    assert [e.id for e in listed.skipped] == ["bad1", "bad2"]
    assert all(isinstance(e, CorruptRecordError) for e in listed.skipped)
    assert sorted(ctx["id"] for _, ctx in events) == ["bad1", "bad2"]
    assert all(isinstance(exc, CorruptRecordError) for exc, _ in events)

    found = await res.query({"n": {"$gte": 1}})
    assert [r.id for r in found] == ["ok1", "ok2"] and len(found.skipped) == 2
    assert [r.id async for r in res.stream()] == ["ok0", "ok1", "ok2"]
    page = await res.page(size=10)
    assert [r.id for r in page] == ["ok0", "ok1", "ok2"]
    assert [e.id for e in page.skipped] == ["bad1", "bad2"]
    batch = await res.get_many(["ok0", "bad1", "ok2"])
    assert [r.ok for r in batch] == [True, False, True]
    assert [e.id for e in batch.skipped] == ["bad1"]
    assert await res.count() == 5 and await res.list_ids() == [
        "bad1", "bad2", "ok0", "ok1", "ok2"
    ]  # fmt: skip
    assert await res.count(by="region") == {"eu": 3}
    assert len(events) == 2 + 2 + 2 + 2 + 1 + 2


async def test_strict_listings_raise(db: Database) -> None:
    res = await corrupt_resource(db)
    with pytest.raises(CorruptRecordError):
        await res.list(strict=True)
    with pytest.raises(CorruptRecordError):
        await res.query({}, strict=True)
    with pytest.raises(CorruptRecordError):
        [r async for r in res.stream(strict=True)]
    with pytest.raises(CorruptRecordError):
        await res.page(size=10, strict=True)
    with pytest.raises(CorruptRecordError):
        await res.get_many(["ok0", "bad1"], strict=True)
    with pytest.raises(CorruptRecordError):
        await res.count(by="region", strict=True)


# -- deletes ---------------------------------------------------------------------------


async def keys_of(db: Database, name: str) -> list[str]:
    """Keys of a resource, without killed partition references (1-byte markers)."""
    return [
        e.key
        async for e in db.store.list(f"resource={name}/")
        if isinstance(e, ListEntry) and not ("/partition=" in e.key and is_dead(e.size))
    ]


@pytest.mark.parametrize("history", [False, True])
async def test_delete_removes_a_corrupt_record_its_content_and_refs(
    db: Database, history: bool
) -> None:
    res = await things(
        db, partitions={"by_region": {"fields": {"region": "string"}}}, history=history
    )
    await res.insert({"id": "a", "n": 1, "region": "eu"})
    await res.insert({"id": "keep", "n": 2, "region": "eu"})
    await res.set_content("a", b"blob")
    await garbage(res, "a", {"_v": "v1", n_id(res): "not a number"})
    deleted: list[Record] = []
    res.on("deleted", deleted.append)
    assert await res.delete("a") is True
    assert deleted == [{"id": "a"}]
    remaining = [k for k in await keys_of(db, "things") if "/history/" not in k]
    assert all("id=a" not in k for k in remaining), remaining
    assert await res.count(partition="by_region", partition_values={"region": "eu"}) == 1
    await res.insert({"id": "a", "n": 3, "region": "us"})  # the id is free again
    await garbage(res, "a", {"_v": "v999"})
    result = await res.delete_many(["a", "keep"])
    assert result.all_ok
    assert [k for k in await keys_of(db, "things") if "/history/" not in k] == []


async def test_delete_all_removes_corrupt_records(db: Database) -> None:
    res = await corrupt_resource(db)
    assert await res.delete_all(confirm=True) == 5
    assert await res.count() == 0


# -- the file store: damaged files stay visible -------------------------------------------


def _record_file(db: Database, rid: str) -> Path:
    root = Path(db.store.root)  # type: ignore[attr-defined]
    return root / "resource=things" / "data" / f"id={rid}~o"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _scribble(path: Path) -> None:
    path.write_bytes(b"not an s3db object at all")


def _symlink(path: Path) -> None:
    path.unlink()
    os.symlink("/etc/hostname", path)


@pytest.mark.stores("file")
@pytest.mark.parametrize("damage", [_truncate, _scribble, _symlink])
async def test_file_store_damaged_files_are_listed_corrupt_and_deletable(
    db: Database, damage: Any
) -> None:
    res = await things(db)
    await res.insert({"id": "good", "n": 1})
    await res.insert({"id": "bad", "n": 2})
    damage(_record_file(db, "bad"))
    assert await res.list_ids() == ["bad", "good"]
    assert await res.count() == 2 and await res.exists("bad")
    with pytest.raises(CorruptRecordError) as info:
        await res.get("bad")
    assert info.value.key == res.key_for("bad") and "unreadable" in info.value.reason
    listed = await res.list()
    assert [r.id for r in listed] == ["good"] and [e.id for e in listed.skipped] == ["bad"]
    with pytest.raises(AlreadyExistsError):  # consistent: list, count and get see it too
        await res.insert({"id": "bad", "n": 3})
    assert await res.delete("bad") is True
    assert not os.path.lexists(_record_file(db, "bad"))
    await res.insert({"id": "bad", "n": 3})
    assert (await res.get("bad"))["n"] == 3
    damage(_record_file(db, "bad"))
    assert await res.delete_all(confirm=True) == 2
    assert await res.count() == 0 and not os.path.lexists(_record_file(db, "bad"))


# -- s3db.json -------------------------------------------------------------------------


async def _corrupt_meta(store_url: str, body: bytes) -> None:
    async with Database(store_url) as db:
        await things(db)
        await db.store.put("s3db.json", body)


SALT = "A" * 22 + "=="


def _doc(resources: Any) -> bytes:
    return msgspec.json.encode({"secrets": {"salt": SALT}, "resources": resources})


def _one(entry: Any) -> bytes:
    return _doc({"t": entry})


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{not json", ""),
        (b"", ""),
        (b"[]", ""),
        (b"{}", "secrets"),
        (b'{"secrets": {}, "resources": {}}', "secrets.salt"),
        (b'{"secrets": {"salt": "AAAA"}, "resources": {}}', "secrets.salt"),
        (_doc([]), "resources"),
        (_one([]), "resources.t"),
        (_one({"current_version": "v1"}), "resources.t.versions"),
        (
            _one({"current_version": "v2", "versions": {"v1": {"definition": {}}}}),
            "resources.t.current_version",
        ),
        (
            _one({"current_version": "v1", "versions": {"v1": {"definition": {"attributes": 1}}}}),
            "resources.t",
        ),
        (
            _one(
                {
                    "current_version": "v1",
                    "versions": {"v1": {"definition": {"attributes": {"a": "nosuchtype"}}}},
                }
            ),
            "resources.t",
        ),
    ],
    ids=lambda v: None if isinstance(v, str) else "",
)
async def test_malformed_metadata_raises_typed_error_at_connect(
    store_url: str, body: bytes, path: str
) -> None:
    await _corrupt_meta(store_url, body)
    db = Database(store_url, passphrase="pw")
    with pytest.raises(CorruptMetadataError) as info:
        await db.connect()
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.metadata["key"] == "s3db.json" and err.metadata["path"] == path
    assert "s3db doctor --restore-metadata" in str(err.suggestion)
    await db.disconnect()


async def test_metadata_changes_keep_copies_with_one_put_each(db: Database) -> None:
    await things(db)
    db.store.stats.reset()
    await db.create_resource("other", attributes={"a": "string"})
    assert db.store.stats.snapshot() == {"put": 2}  # s3db.json + its copy
    db.store.stats.reset()
    res = db.resources["other"]
    await res.insert({"a": "x"})
    assert db.store.stats.snapshot() == {"put": 1}  # no copy per record write
    for i in range(6):
        await db.create_resource(f"r{i}", attributes={"a": "string"})
    copies = await db.store.list_keys("s3db.json.history/")
    assert len(copies) == 5
    newest = msgspec.json.decode((await db.store.get("s3db.json")).body)
    revisions = [msgspec.json.decode((await db.store.get(k)).body)["revision"] for k in copies]
    assert max(revisions) == newest["revision"] and sorted(revisions) == list(
        range(newest["revision"] - 4, newest["revision"] + 1)
    )


async def test_restore_metadata_from_a_kept_copy(store_url: str) -> None:
    async with Database(store_url) as db:
        await things(db)
        await db.create_resource("other", attributes={"a": "string"})
        await db.store.put("s3db.json", b'{"truncated": ')
        copies = await metadata_copies(db.store)
        assert [c.revision for c in copies] == [3, 2, 1]  # connect, things, other
        assert copies[0].resources == ["other", "things"]
        chosen = await restore_metadata(db.store)
        assert chosen.revision == 3
    async with Database(store_url) as db:
        assert db.list_resources() == ["other", "things"]
        assert db.metadata["revision"] == 4 and db.metadata["restored_from"] == 3
        await db.store.put("s3db.json", b"[]")
        await restore_metadata(db.store, 3)  # revision 2: before 'other' existed
    async with Database(store_url) as db:
        assert db.list_resources() == ["things"]
        with pytest.raises(NotFoundError):
            await restore_metadata(db.store, 9)


# -- doctor ----------------------------------------------------------------------------


async def damaged(db: Database) -> Any:
    """A resource with one of each problem the doctor looks for."""
    res = await things(db, partitions={"by_region": {"fields": {"region": "string"}}}, history=True)
    await res.insert({"id": "fine", "n": 1, "region": "eu"})
    await res.insert({"id": "moved", "n": 2, "region": "eu"})
    await res.insert({"id": "gone", "n": 3, "region": "eu"})
    await res.update("gone", {"n": 4})  # a history entry
    await res.set_content("gone", b"blob")
    await garbage(res, "bad", {"_v": "v1", n_id(res): "not a number"})
    ref = res.partitions["by_region"].ref_key
    # a crash left 'moved' in eu while it is in us now, and 'gone' without its record
    await res.update("moved", {"region": "us"})
    await db.store.put(ref("things", {"region": "eu"}, "moved"), b"")
    await db.store.delete(ref("things", {"region": "us"}, "moved"))
    await db.store.delete_many([res.key_for("gone")])
    return res


async def test_doctor_finds_corrupt_and_orphaned_objects_and_repairs_refs(
    db: Database,
) -> None:
    res = await damaged(db)
    report = await doctor(db, "things")
    assert report.records == 3 and not report.healthy and not report.resolved
    assert [(e.id, e.key) for e in report.corrupt] == [("bad", res.key_for("bad"))]
    eu = "resource=things/partition=by_region/region=eu"
    us = "resource=things/partition=by_region/region=us"
    assert report.orphan_refs == [f"{eu}/id=gone"]
    assert report.stale_refs == [f"{eu}/id=moved"]
    assert report.missing_refs == [f"{us}/id=moved"]
    assert report.orphan_content == ["resource=things/content/id=gone"]
    assert report.orphan_history and all("id=gone/" in k for k in report.orphan_history)
    assert report.to_dict()["corrupt"][0]["id"] == "bad"

    repaired = await doctor(db, res, repair=True)
    assert repaired.repaired == {"added": 1, "removed": 2}
    again = await doctor(db, "things")
    assert again.orphan_refs == again.stale_refs == again.missing_refs == []
    assert await res.list_ids(partition="by_region", partition_values={"region": "us"}) == ["moved"]


# -- the CLI ---------------------------------------------------------------------------


def cli(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def damaged_url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'doctordb'}"

    async def setup() -> None:
        async with Database(url) as db:
            await damaged(db)

    asyncio.run(setup())
    return url


def test_cli_doctor_lists_problems_and_repairs(damaged_url: str) -> None:
    code, out, _ = cli(damaged_url, "doctor", "things")
    assert code == 2
    assert "corrupt record 'bad'" in out and "resource=things/content/id=gone" in out
    assert "orphan reference" in out and "missing reference" in out
    code, out, _ = cli(damaged_url, "doctor", "things", "--repair")
    assert code == 2 and "1 added, 2 removed" in out  # the corrupt record remains
    code, out, _ = cli(damaged_url, "doctor", "--json")
    (report,) = msgspec.json.decode(out)
    assert report["resource"] == "things" and report["corrupt"][0]["id"] == "bad"
    assert report["orphan_refs"] == report["missing_refs"] == []
    assert cli(damaged_url, "delete", "things", "bad")[0] == 0  # a corrupt record deletes
    code, out, _ = cli(damaged_url, "doctor")
    assert code == 2 and "corrupt" not in out and "content without record" in out

    async def drop_content() -> None:
        async with Database(damaged_url) as db:
            await db.resources["things"].delete_content("gone")

    asyncio.run(drop_content())
    code, out, _ = cli(damaged_url, "doctor")
    assert code == 0 and "healthy" in out and "history of a deleted record" in out


def test_cli_doctor_restores_metadata(damaged_url: str) -> None:
    path = Path(damaged_url.removeprefix("file://")) / "s3db.json~o"
    path.write_bytes(b"garbage")
    code, _, err = cli(damaged_url, "resources")
    assert code == 1 and "CorruptMetadataError" in err and "--restore-metadata" in err
    code, out, err = cli(damaged_url, "doctor", "things", "--restore-metadata")
    assert "s3db.json restored from s3db.json.history/" in err
    assert "corrupt record 'bad'" in out
    assert cli(damaged_url, "resources")[0] == 0
    code, _, err = cli(damaged_url, "doctor", "--restore-metadata", "--copy", "7")
    assert code == 1 and "no copy #7" in err


async def test_a_failed_metadata_copy_never_fails_the_change(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    put = db.store.put

    async def flaky(key: str, *args: Any, **kw: Any) -> str:
        if key.startswith("s3db.json.history/"):
            raise StoreError("copy refused", metadata={"key": key})
        return await put(key, *args, **kw)

    monkeypatch.setattr(db.store, "put", flaky)
    res = await things(db)
    assert db.metadata["resources"]["things"]["current_version"] == res.version == "v1"


async def test_reload_of_a_damaged_metadata_raises_typed_error(db: Database) -> None:
    await things(db)
    await db.store.put("s3db.json", b'{"secrets": {"salt": 1}, "resources": {}}')
    with pytest.raises(CorruptMetadataError) as info:
        await db.reload()
    assert info.value.metadata["path"] == "secrets.salt"
    assert db.resources["things"].version == "v1"  # the loaded definitions stay usable
