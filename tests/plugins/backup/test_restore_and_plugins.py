"""A restore rewrites records outside the write path: the plugins that derived state from
them hear of it (``Database.records_replaced``): the cache drops what it held, TTL indexes
the restored records so that they expire too."""

from __future__ import annotations

from pathlib import Path

from s3db_async.plugins import BackupPlugin, CachePlugin, TTLPlugin

from s3db_async import Database, Plugin
from s3db_async.plugin import ManualClock, use_clock


async def test_a_restore_drops_the_cached_entries_of_what_it_replaced(
    store_url: str, tmp_path: Path
) -> None:
    backup = BackupPlugin(destination=str(tmp_path / "backups"))
    cache = CachePlugin()
    async with Database(store_url, plugins=[cache, backup]) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        await notes.insert({"id": "n1", "text": "first"})
        taken = await backup.backup()
        await notes.update("n1", {"text": "second"})
        assert (await notes.get("n1"))["text"] == "second"  # cached now
        await backup.restore(taken.id, mode="replace")
        db.store.stats.reset()
        assert (await notes.get("n1"))["text"] == "first"
        assert db.store.stats["get"] == 1  # read again, not served from the cache


async def test_restored_records_are_indexed_by_ttl_and_swept(
    store_url: str, second_url: str, tmp_path: Path
) -> None:
    """The restored records come without change-feed intents (the source had no TTL), so
    only the hook gets them into the expiry index."""
    attributes = {"v": "integer", "expires_at": "number"}
    rule = {"sessions": {"field": "expires_at"}}
    with use_clock(ManualClock(1_700_000_000.0)) as clock:
        assert isinstance(clock, ManualClock)
        source = BackupPlugin(destination=str(tmp_path / "backups"))
        async with Database(store_url, plugins=[source]) as db:
            sessions = await db.create_resource("sessions", attributes=attributes)
            await sessions.insert({"id": "s1", "v": 1, "expires_at": 1_700_000_100.0})
            taken = await source.backup()
        ttl = TTLPlugin(resources=rule, sweep_interval=86400)
        restore = BackupPlugin(destination=str(tmp_path / "backups"))
        async with Database(second_url, plugins=[restore, ttl]) as db:
            # the resource exists and TTL has indexed it (empty) before the restore
            await db.create_resource("sessions", attributes=attributes)
            await ttl.sweep()
            await restore.restore(taken.id)
            sessions = db.get_resource("sessions")
            assert (await sessions.get("s1"))["v"] == 1
            clock.advance(101)
            report = await ttl.sweep()
            assert report.expired == 1
            assert await sessions.count() == 0


def test_the_hook_is_part_of_the_plugin_api() -> None:
    assert Plugin.on_records_replaced.__doc__
