"""BackupPlugin (issue 19): full and incremental backups, gzip, AES-GCM, checksums, manifest,
retention, filesystem / s3 / multi destinations, verify, and restores that reproduce every
record, history entry and binary content exactly (s3db.js's restore restores nothing; its
incremental is a full copy; its encryption only sets a flag).
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import BackupPlugin
from s3db_async.plugins.backup import BackupCorruptError, MultiDestination

from s3db_async import Database
from s3db_async.errors import ConfigError, NotFoundError
from s3db_async.plugin import MissingDependencyError
from s3db_async.stores import MIN_PART_SIZE

Opener = Callable[..., Awaitable[tuple[Database, BackupPlugin]]]


@pytest.fixture
def third_url(make_store_url: Callable[[str], str]) -> str:
    return make_store_url("db3")


@pytest.fixture
async def open_db(tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(url: str, **options: Any) -> tuple[Database, BackupPlugin]:
        db = Database(url)
        await db.connect()
        opened.append(db)
        options.setdefault("destination", str(tmp_path / "backups"))
        plugin = BackupPlugin(**options)
        await db.use_plugin(plugin)
        return db, plugin

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


async def fill(db: Database) -> None:
    users = await db.create_resource(
        "users",
        attributes={"name": "string", "age": "integer|optional"},
        history=True,
        partitions={"by_age": {"fields": {"age": "integer"}}},
    )
    await users.insert({"id": "u1", "name": "ann", "age": 30})
    await users.insert({"id": "u2", "name": "bob", "age": 40})
    await users.update("u1", {"age": 31})
    await users.update("u1", {"name": "anne"})
    await users.set_content("u2", b"\x00\x01binary\xff", "application/octet-stream")
    notes = await db.create_resource("notes", attributes={"text": "string"})
    await notes.insert_many([{"id": f"n{i}", "text": f"note {i}"} for i in range(25)])


async def snapshot(db: Database, name: str) -> dict[str, Any]:
    res = db.get_resource(name)
    out: dict[str, Any] = {}
    for record in await res.list():
        rid = record["id"]
        entry: dict[str, Any] = {"record": dict(record)}
        if await res.has_content(rid):
            entry["content"] = await res.get_content(rid)
        if name == "users":
            entry["history"] = await history_of(db, rid)
        out[rid] = entry
    return out


async def history_of(db: Database, rid: str) -> list[Any]:
    return [
        (r.revision, r.superseded_at, dict(r)) for r in await db.get_resource("users").history(rid)
    ]


async def test_full_backup_restores_everything_into_an_empty_database(
    open_db: Opener, store_url: str, second_url: str
) -> None:
    src, plugin = await open_db(store_url)
    await fill(src)
    info = await plugin.backup()
    assert info.kind == "full" and info.resources["notes"] == 25 and info.encrypted is False
    assert [b.id for b in await plugin.list_backups()] == [info.id]
    await plugin.verify(info.id)

    dst, plugin2 = await open_db(second_url)
    assert await plugin2.list_backups() != []  # same destination folder
    report = await plugin2.restore(info.id)
    assert report.written == info.objects
    assert sorted(dst.list_resources()) == ["notes", "users"]
    for name in ("users", "notes"):
        assert await snapshot(dst, name) == await snapshot(src, name)
    assert await history_of(dst, "u1") == await history_of(src, "u1")
    assert len(await history_of(dst, "u1")) == 2
    assert await dst.get_resource("users").get_content("u2") == (
        b"\x00\x01binary\xff",
        "application/octet-stream",
    )
    by_age = await dst.get_resource("users").list(partition="by_age", partition_values={"age": 40})
    assert [r["id"] for r in by_age] == ["u2"]


async def test_incremental_holds_only_changes_and_restores_exact_state(
    open_db: Opener, store_url: str, second_url: str
) -> None:
    src, plugin = await open_db(store_url, resources=["notes"])
    await fill(src)
    full = await plugin.backup()
    notes = src.get_resource("notes")
    await notes.update("n3", {"text": "changed"})
    await notes.delete("n4")
    await notes.insert({"id": "n99", "text": "new"})
    inc = await plugin.backup(kind="incremental")
    assert inc.kind == "incremental" and inc.parent == full.id
    assert inc.objects < full.objects  # not a full copy (s3db.js copies everything)
    await plugin.verify(inc.id)

    dst, plugin2 = await open_db(second_url)
    await plugin2.restore(inc.id)
    assert await snapshot(dst, "notes") == await snapshot(src, "notes")
    assert not await dst.get_resource("notes").exists("n4")


async def test_encrypted_backup_is_unreadable_without_the_key(
    open_db: Opener, store_url: str, tmp_path: Path
) -> None:
    src, plugin = await open_db(store_url, encryption_key="correct horse battery")
    await fill(src)
    info = await plugin.backup()
    assert info.encrypted
    raw = (tmp_path / "backups" / info.id / "data").read_bytes()
    assert b"anne" not in raw and b"note 1" not in raw
    await plugin.verify(info.id)
    plugin.encryption_key = "wrong passphrase!!"
    with pytest.raises(BackupCorruptError):
        await plugin.verify(info.id)


async def test_verify_detects_a_tampered_archive(
    open_db: Opener, store_url: str, tmp_path: Path
) -> None:
    src, plugin = await open_db(store_url, compression="none")
    await fill(src)
    info = await plugin.backup()
    path = tmp_path / "backups" / info.id / "data"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BackupCorruptError):
        await plugin.verify(info.id)


@pytest.mark.parametrize("mode", ["merge", "replace", "skip"])
async def test_restore_modes(open_db: Opener, store_url: str, mode: str) -> None:
    db, plugin = await open_db(store_url)
    await fill(db)
    info = await plugin.backup(resources=["notes"])
    notes = db.get_resource("notes")
    await notes.update("n1", {"text": "edited"})
    await notes.insert({"id": "extra", "text": "after backup"})
    await notes.delete("n2")
    await plugin.restore(info.id, mode=mode)
    n1 = (await notes.get("n1"))["text"]
    assert n1 == ("edited" if mode == "skip" else "note 1")
    assert (await notes.get("n2"))["text"] == "note 2"  # deleted, restored by every mode
    assert await notes.exists("extra") is (mode != "replace")


async def test_s3_and_multi_destinations(
    open_db: Opener, store_url: str, second_url: str, tmp_path: Path
) -> None:
    dest = {
        "driver": "multi",
        "strategy": "all",
        "destinations": [
            {"driver": "s3", "url": second_url, "prefix": "bk/"},
            {"driver": "filesystem", "path": str(tmp_path / "copy")},
        ],
    }
    db, plugin = await open_db(store_url, destination=dest)
    await fill(db)
    info = await plugin.backup()
    assert isinstance(plugin.destination, MultiDestination)
    s3, fs = plugin.destination.destinations
    assert f"{info.id}/manifest.json" in await s3.names()
    assert f"{info.id}/manifest.json" in await fs.names()
    await fs.delete(f"{info.id}/data")  # one copy lost: reads fall back to the other
    await plugin.verify(info.id)


async def test_s3_destination_works_again_after_a_reconnect(
    store_url: str, second_url: str
) -> None:
    """disconnect() stops the plugin, which closes its destinations; the next connect()
    must open them again (it used to raise 'S3Destination used before open()')."""
    plugin = BackupPlugin(destination={"driver": "s3", "url": second_url, "prefix": "bk/"})
    db = Database(store_url, plugins=[plugin])
    await db.connect()
    try:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        await notes.insert({"id": "n1", "text": "a"})
        first = await plugin.backup()
        await db.disconnect()
        await db.connect()
        second = await plugin.backup()
        assert [b.id for b in await plugin.list_backups()] == [first.id, second.id]
        await plugin.verify(second.id)
    finally:
        await db.disconnect()


async def test_retention_keeps_newest_per_bucket(open_db: Opener, store_url: str) -> None:
    db, plugin = await open_db(store_url, retention={"last": 2})
    await fill(db)
    ids = [(await plugin.backup(resources=["notes"])).id for _ in range(4)]
    assert [b.id for b in await plugin.list_backups()] == ids[-2:]


async def test_apply_retention_without_a_policy_deletes_nothing(
    open_db: Opener, store_url: str
) -> None:
    """``retention=None`` means keep everything: calling apply_retention() by hand must not
    delete every backup (it kept none of them before)."""
    db, plugin = await open_db(store_url)
    await fill(db)
    ids = [(await plugin.backup(resources=["notes"])).id for _ in range(2)]
    assert await plugin.apply_retention() == []
    assert [b.id for b in await plugin.list_backups()] == ids


async def test_resources_given_as_one_string_is_a_config_error(
    open_db: Opener, store_url: str
) -> None:
    db, plugin = await open_db(store_url)
    await fill(db)
    with pytest.raises(ConfigError) as info:
        await plugin.backup(resources="notes")  # type: ignore[arg-type]
    assert info.value.metadata["field"] == "resources" and "['notes']" in info.value.suggestion
    backup_id = (await plugin.backup(resources=["notes"])).id
    with pytest.raises(ConfigError) as info:
        await plugin.restore(backup_id, resources="notes")  # type: ignore[arg-type]
    assert info.value.metadata["field"] == "resources"


async def test_date_in_the_path_puts_each_backup_in_its_day_and_sees_every_day(
    open_db: Opener, store_url: str, tmp_path: Path
) -> None:
    """The seed's ``path: './backups/{date}/'``: a backup lands in the folder of its UTC
    day; listing, verify, restore and retention read every day's folder."""
    db, plugin = await open_db(
        store_url, destination={"driver": "filesystem", "path": str(tmp_path / "bk" / "{date}")}
    )
    await fill(db)
    info = await plugin.backup(resources=["notes"])
    day = f"{info.id[:4]}-{info.id[4:6]}-{info.id[6:8]}"
    assert (tmp_path / "bk" / day / info.id / "manifest.json").is_file()
    # an older backup, as if taken on 1 November (same archive, manifest moved in time)
    old_id = "20261101T030000000000Z-full-0a0b0c"
    old_dir = tmp_path / "bk" / "2026-11-01" / old_id
    old_dir.mkdir(parents=True)
    for blob in ("data", "index"):
        (old_dir / blob).write_bytes((tmp_path / "bk" / day / info.id / blob).read_bytes())
    manifest = json.loads((tmp_path / "bk" / day / info.id / "manifest.json").read_text())
    manifest.update(id=old_id, started_at="2026-11-01T03:00:00+00:00")
    (old_dir / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "bk" / "notes.txt").write_text("not a backup")  # ignored
    assert [b.id for b in await plugin.list_backups()] == [old_id, info.id]
    await plugin.verify(old_id)
    await db.get_resource("notes").delete("n3")
    await plugin.restore(old_id)
    assert (await db.get_resource("notes").get("n3"))["text"] == "note 3"
    plugin.retention = {"daily": 1}
    assert await plugin.apply_retention() == [old_id]
    assert not (tmp_path / "bk" / "2026-11-01").exists()  # the emptied day folder goes too
    assert [b.id for b in await plugin.list_backups()] == [info.id]


async def test_manifest_is_written_last(open_db: Opener, store_url: str, tmp_path: Path) -> None:
    """A crash between archive and manifest leaves an archive that is never listed."""
    db, plugin = await open_db(store_url)
    await fill(db)

    async def crash(name: str, body: bytes) -> None:
        raise RuntimeError("killed")

    plugin.destination.put_bytes = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await plugin.backup()
    assert await plugin.list_backups() == []
    assert any(n.endswith("/data") for n in await plugin.destination.names())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"compression": "lz4"}, "compression"),
        ({"destination": {"driver": "ftp"}}, "driver"),
        ({"destination": {"driver": "s3"}}, "url"),
        ({"retention": {"hourly": 3}}, "retention"),
        ({"encryption_key": "short"}, "encryption_key"),
        ({"destination": "./backups/{day}"}, "path"),
        ({"concurrency": 0}, "concurrency"),
        ({"destination": {"driver": "multi", "destinations": []}}, "destinations"),
        # the seed's nested form, and typos, are not silently ignored
        (
            {"destination": {"driver": "filesystem", "config": {"path": "./b"}}},
            "destination['config']",
        ),
        (
            {"destination": {"driver": "s3", "url": "memory://b", "prefx": "x/"}},
            "destination['prefx']",
        ),
        ({"destination": {"driver": "s3", "url": "memory://b", "prefix": 3}}, "prefix"),
        # checked when created, not when the schedule starts
        ({"schedule": "every night"}, "schedule"),
        ({"schedule": "0 3 * * *", "tz": "Mars/Olympus"}, "tz"),
        ({"tz": 1}, "tz"),
        ({"progress": "bar"}, "progress"),
    ],
)
def test_bad_options_are_typed_errors(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        BackupPlugin(**options)
    assert info.value.metadata["field"] == field and info.value.suggestion


async def test_unknown_backup_and_resource(open_db: Opener, store_url: str) -> None:
    db, plugin = await open_db(store_url)
    await fill(db)
    with pytest.raises(NotFoundError):
        await plugin.restore("nope")
    with pytest.raises(NotFoundError):
        await plugin.backup(resources=["ghosts"])
    with pytest.raises(ConfigError):
        await plugin.restore((await plugin.backup()).id, mode="overwrite")


async def test_backup_memory_is_bounded(open_db: Opener, tmp_path: Path) -> None:
    """Streaming: four times the records do not need more memory (tracemalloc peak)."""
    import tracemalloc

    peaks = []
    for n in (1500, 6000):
        db, plugin = await open_db(f"memory://bounded{n}/db", resources=["big"])
        big = await db.create_resource("big", attributes={"s": "string"})
        await big.insert_many([{"id": f"r{i:06d}", "s": f"{i}" * 200} for i in range(n)])
        await plugin.backup()
        await big.update("r000001", {"s": "changed"})
        tracemalloc.start()
        full = await plugin.backup()
        inc = await plugin.backup(kind="incremental")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert full.resources == {"big": n} and inc.resources == {"big": 0}
    assert peaks[1] < peaks[0] + 2**20, peaks  # data grew by ~4 MiB; the peak did not


@pytest.mark.parametrize("compression", ["zstd", "none"])
async def test_other_compressions_round_trip(
    open_db: Opener, store_url: str, second_url: str, compression: str
) -> None:
    if compression == "zstd" and importlib.util.find_spec("zstandard") is None:
        with pytest.raises(MissingDependencyError) as missing:  # the extra is not installed
            BackupPlugin(compression="zstd")
        assert "zstandard" in str(missing.value) and "backup" in str(missing.value.suggestion)
        return
    src, plugin = await open_db(store_url, compression=compression, encryption_key=b"k" * 32)
    await fill(src)
    info = await plugin.backup()
    assert info.compression == compression
    await plugin.verify(info.id)
    dst, plugin2 = await open_db(second_url, encryption_key=b"k" * 32)
    await plugin2.restore(info.id)
    for name in ("users", "notes"):
        assert await snapshot(dst, name) == await snapshot(src, name)


async def test_s3_destination_streams_a_backup_larger_than_a_part(
    open_db: Opener, store_url: str, second_url: str, third_url: str
) -> None:
    """The archive goes up as a multipart upload (parts of ``part_size``, never whole in
    memory), comes back in chunks for verify and restore, and restores exactly."""
    dest = {"driver": "s3", "url": second_url, "prefix": "bk/", "part_size": MIN_PART_SIZE}
    src, plugin = await open_db(store_url, destination=dest, compression="none")
    blobs = await src.create_resource("blobs", attributes={"name": "string"})
    rng = random.Random(19)
    contents = {f"b{i}": rng.randbytes(4 * 2**20 + i) for i in range(3)}  # ~12 MiB in all
    for rid, body in contents.items():
        await blobs.insert({"id": rid, "name": rid})
        await blobs.set_content(rid, body, "application/octet-stream")
    store = plugin.destination.store
    assert store is not None
    store.stats.reset()
    info = await plugin.backup()
    parts = math.ceil(info.size / MIN_PART_SIZE)
    assert info.size > 2 * MIN_PART_SIZE and parts == 3
    assert store.stats["multipart_create"] == store.stats["multipart_complete"] == 1
    assert store.stats["put_part"] == parts  # the archive; index and manifest: one PUT each
    assert store.stats["put"] == 2
    head = await store.head(f"bk/{info.id}/data")
    assert head.size == info.size and head.etag.endswith(f'-{parts}"')  # S3's multipart etag
    store.stats.reset()
    await plugin.verify(info.id)
    assert store.stats["get"] == 3  # manifest, archive and index: one GET each, streamed

    dst, plugin2 = await open_db(third_url, destination=dest, compression="none")
    report = await plugin2.restore(info.id)
    assert report.written == info.objects
    restored = dst.get_resource("blobs")
    for rid, body in contents.items():
        assert await restored.get_content(rid) == (body, "application/octet-stream")
        assert (await restored.get(rid))["name"] == rid


def test_s3_destination_part_size_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        BackupPlugin(destination={"driver": "s3", "url": "memory://x/y", "part_size": 1024})
    assert info.value.metadata["field"] == "part_size" and info.value.suggestion
