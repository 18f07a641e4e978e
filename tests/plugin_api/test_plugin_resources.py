"""Plugin-owned resources: ``plugin.create_plugin_resource`` (issue 18.4) and
``db.drop_resource``, on every store."""

from __future__ import annotations

from typing import Any

import pytest

from s3db_async import Database, Plugin, PluginStorage
from s3db_async.errors import ConfigError, SchemaError
from s3db_async.testing import WorkerContext, spawn_processes

LOGS = {"op": "string|required", "region": "string"}
BY_REGION = {"by_region": {"fields": {"region": "string"}}}


class AuditTrailPlugin(Plugin):
    """Creates ``logs`` on install and writes one entry per call to :meth:`log_op`."""

    def __init__(self, *, attributes: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.attributes = attributes or LOGS

    async def on_install(self) -> None:
        self.logs = await self.create_plugin_resource(
            "logs", attributes=self.attributes, partitions=BY_REGION
        )


async def keys_under(db: Database, prefix: str) -> list[str]:
    return await db.store.list_keys(prefix)


async def test_names_follow_the_seed(db: Database) -> None:
    plain = await db.use_plugin(AuditTrailPlugin())
    spaced = await db.use_plugin(AuditTrailPlugin(namespace="eu"))
    renamed = await db.use_plugin(
        AuditTrailPlugin(namespace="us", resource_names={"logs": "us_audit"})
    )
    assert plain.logs.name == "plg_audit_trail_logs"
    assert spaced.logs.name == "plg_eu_audit_trail_logs"
    assert renamed.logs.name == "us_audit"
    assert {"plg_audit_trail_logs", "plg_eu_audit_trail_logs", "us_audit"} <= set(
        db.list_resources()
    )
    assert await PluginStorage(db, "audit-trail").list("_s3db/resources/") == [
        "plugin=audit-trail/_s3db/resources/plg_audit_trail_logs"
    ]
    assert await PluginStorage(db, "audit-trail", namespace="eu").list("_s3db/resources/") == [
        "plugin=audit-trail/eu/_s3db/resources/plg_eu_audit_trail_logs"
    ]


async def test_created_once_across_installs_and_restarts(store_url: str) -> None:
    async with Database(store_url) as db:
        first = await db.use_plugin(AuditTrailPlugin())
        await first.logs.insert({"id": "a", "op": "insert", "region": "eu"})
        again = await first.create_plugin_resource("logs", attributes=LOGS, partitions=BY_REGION)
        assert again is first.logs and again.version == "v1"
        await first.uninstall()  # keeps resource, records and recording
        assert db.resource_exists("plg_audit_trail_logs")
        second = await db.use_plugin(AuditTrailPlugin())
        assert second.logs is first.logs
    async with Database(store_url) as db:  # a restart: a new process sees the same resource
        third = await db.use_plugin(AuditTrailPlugin())
        assert third.logs.version == "v1"
        assert [r["id"] for r in await third.logs.list()] == ["a"]
        eu = await third.logs.list(partition="by_region", partition_values={"region": "eu"})
        assert [r["id"] for r in eu] == ["a"]


async def test_an_existing_plugin_resource_costs_one_get(db: Database) -> None:
    first = await db.use_plugin(AuditTrailPlugin())
    await first.uninstall()
    db.store.stats.reset()
    await db.use_plugin(AuditTrailPlugin())  # the recording is read; nothing is written
    assert db.store.stats.snapshot() == {"get": 1}


async def test_a_changed_definition_is_a_new_schema_version(store_url: str) -> None:
    async with Database(store_url) as db:
        plugin = await db.use_plugin(AuditTrailPlugin())
        await plugin.logs.insert({"id": "old", "op": "insert", "region": "eu"})
    wider = {**LOGS, "actor": "string|optional"}
    async with Database(store_url) as db:
        plugin = await db.use_plugin(AuditTrailPlugin(attributes=wider))
        assert plugin.logs.version == "v2"
        await plugin.logs.insert({"id": "new", "op": "update", "region": "us", "actor": "ann"})
        old = await plugin.logs.get("old")  # written under v1, read under v2
        assert old["op"] == "insert" and old.get("actor") is None
    async with Database(store_url) as db:
        with pytest.raises(SchemaError):  # a bad definition is refused as for any resource
            await db.use_plugin(AuditTrailPlugin(attributes={"op": "no-such-type"}))
        assert db.get_resource("plg_audit_trail_logs").version == "v2"


async def test_a_resource_it_does_not_own_is_refused(db: Database) -> None:
    mine = await db.create_resource("plg_audit_trail_logs", attributes={"x": "number"})
    await mine.insert({"id": "keep", "x": 1})
    with pytest.raises(ConfigError) as info:
        await db.use_plugin(AuditTrailPlugin())
    assert info.value.suggestion and "resource_names" in info.value.suggestion
    assert info.value.metadata["field"] == "name"
    assert db.get_resource("plg_audit_trail_logs").version == "v1"  # untouched
    assert (await mine.get("keep"))["x"] == 1
    with pytest.raises(ConfigError):  # a bad logical name
        await (await db.use_plugin(Plugin(alias="bare"))).create_plugin_resource(
            "bad name", attributes=LOGS
        )


async def test_a_sibling_process_creating_it_meanwhile_is_not_a_stranger(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving of a race seen on moto: this process reads "no recording", then a
    sibling records and creates the resource, then this process sees the resource."""
    async with Database(store_url) as here, Database(store_url) as sibling:
        real_get = PluginStorage.get
        interleaved: list[str] = []

        async def get_then_sibling(self: PluginStorage, key: str) -> Any:
            value = await real_get(self, key)
            if key.startswith("_s3db/resources/") and not interleaved:
                interleaved.append(key)
                await sibling.use_plugin(AuditTrailPlugin())  # records, then creates
            return value

        monkeypatch.setattr(PluginStorage, "get", get_then_sibling)
        plugin = await here.use_plugin(AuditTrailPlugin())
        assert interleaved and plugin.logs.name == "plg_audit_trail_logs"
        assert plugin.logs.version == "v1"


async def test_purge_drops_records_definition_and_recording(store_url: str) -> None:
    async with Database(store_url) as db:
        plugin = await db.use_plugin(AuditTrailPlugin())
        other = await db.use_plugin(AuditTrailPlugin(namespace="eu"))
        users = await db.create_resource("users", attributes={"name": "string"})
        await users.insert({"id": "u1", "name": "Ann"})
        for i in range(3):
            await plugin.logs.insert({"id": f"l{i}", "op": "insert", "region": "eu"})
            await other.logs.insert({"id": f"l{i}", "op": "insert", "region": "us"})
        assert len(await keys_under(db, "resource=plg_audit_trail_logs/")) == 6  # + refs
        purged: list[dict[str, Any]] = []
        db.on("plugin.data_purged", purged.append)
        await db.uninstall_plugin(plugin, purge_data=True)
        assert purged[0]["resources"] == ["plg_audit_trail_logs"]
        assert not db.resource_exists("plg_audit_trail_logs")
        assert await keys_under(db, "resource=plg_audit_trail_logs/") == []
        assert await PluginStorage(db, "audit-trail").list() == []
        # the other namespace and the user's data are untouched
        assert len(await other.logs.list()) == 3
        assert [r["id"] for r in await users.list()] == ["u1"]
    async with Database(store_url) as db:  # gone from s3db.json too
        assert "plg_audit_trail_logs" not in db.list_resources()
        assert "plg_eu_audit_trail_logs" in db.list_resources()
        again = await db.use_plugin(AuditTrailPlugin())  # a fresh, empty resource
        assert again.logs.version == "v1" and await again.logs.list() == []


async def test_purge_finishes_what_a_crash_left(store_url: str) -> None:
    async with Database(store_url) as db:
        plugin = await db.use_plugin(AuditTrailPlugin())
        await plugin.logs.insert({"id": "a", "op": "insert", "region": "eu"})
        # a crash between recording and creating: a recording without a resource
        await plugin.get_storage().set(
            "_s3db/resources/plg_audit_trail_x_ghost", {"resource": "plg_audit_trail_x_ghost"}
        )
        # a crash during the drop, after the records went and before the definition did
        real = db._update_meta

        async def crash(mutate: Any) -> Any:
            raise RuntimeError("killed")

        db._update_meta = crash  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await db.uninstall_plugin(plugin, purge_data=True)
        db._update_meta = real  # type: ignore[method-assign]
    async with Database(store_url) as db:
        assert db.resource_exists("plg_audit_trail_logs")  # definition left, records gone
        assert await db.get_resource("plg_audit_trail_logs").list() == []
        plugin = await db.use_plugin(AuditTrailPlugin())
        await db.uninstall_plugin(plugin, purge_data=True)
        assert not db.resource_exists("plg_audit_trail_logs")
        assert await PluginStorage(db, "audit-trail").list() == []
        assert await keys_under(db, "resource=plg_audit_trail_") == []


async def test_drop_resource(store_url: str) -> None:
    async with Database(store_url) as db, Database(store_url) as other:
        res = await db.create_resource("things", attributes={"n": "number"}, history=True)
        await res.insert({"id": "t1", "n": 1})
        await res.update("t1", {"n": 2})
        await other.reload()
        assert other.resource_exists("things")
        dropped: list[Any] = []
        db.on("resource.dropped", dropped.append)
        with pytest.raises(ConfigError):
            await db.drop_resource("things")
        assert await db.drop_resource("things", confirm=True) >= 2  # record + history
        assert dropped == [res] and not db.resource_exists("things")
        assert await keys_under(db, "resource=things/") == []
        assert await db.drop_resource("things", confirm=True) == 0  # idempotent
        for bad in ("things/data", "", "../x"):  # never a prefix inside another resource
            with pytest.raises(ConfigError):
                await db.drop_resource(bad, confirm=True)
        await other.reload()  # another process sees it go
        assert not other.resource_exists("things")


async def install_and_write(ctx: WorkerContext) -> dict[str, Any]:
    """A worker process: connect, wait for the others, install the plugin (which creates its
    resource) at the same moment, write one entry."""
    async with Database(ctx.url) as db:
        await ctx.barrier("connected")
        plugin = await db.use_plugin(AuditTrailPlugin())
        await plugin.logs.insert({"id": f"w{ctx.index}", "op": "insert", "region": "eu"})
        return {"name": plugin.logs.name, "version": plugin.logs.version}


@pytest.mark.slow
@pytest.mark.stores("file", "moto", "seaweedfs")
async def test_two_processes_create_the_same_plugin_resource(store_url: str) -> None:
    async with spawn_processes(install_and_write, store_url, 2) as group:
        await group.release("connected")
        answers = await group.results(timeout=300)
    assert answers == [{"name": "plg_audit_trail_logs", "version": "v1"}] * 2
    async with Database(store_url) as db:
        entry = db.metadata["resources"]["plg_audit_trail_logs"]
        assert list(entry["versions"]) == ["v1"]  # one definition, not one per process
        plugin = await db.use_plugin(AuditTrailPlugin())
        assert sorted(r["id"] for r in await plugin.logs.list()) == ["w0", "w1"]
        assert await plugin.get_storage().list("_s3db/resources/") == [
            "plugin=audit-trail/_s3db/resources/plg_audit_trail_logs"
        ]
        await db.uninstall_plugin(plugin, purge_data=True)
    async with Database(store_url) as db:
        assert db.list_resources() == []
        assert await keys_under(db, "resource=") == []
