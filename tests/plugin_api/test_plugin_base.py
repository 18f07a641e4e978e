"""Plugin base class: lifecycle, events, background tasks, recording helpers, deferred setup,
plugin attributes, static and bundle plugins, the database registry."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import s3db_async
from s3db_async import Database, Plugin, PluginStorage, Resource
from s3db_async.errors import ConfigError, PluginError, SchemaError

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.stores("memory")


class Recorder(Plugin):
    """Records its lifecycle calls."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[str] = []

    async def on_install(self) -> None:
        self.calls.append("install")

    async def on_start(self) -> None:
        self.calls.append("start")

    async def on_stop(self) -> None:
        self.calls.append("stop")

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        self.calls.append(f"uninstall(purge_data={purge_data})")


def test_names_and_options() -> None:
    class EventualConsistencyPlugin(Plugin):
        pass

    class Custom(Plugin):
        name = "MyCustomPlugin"
        slug = "my-plugin"

    p = EventualConsistencyPlugin(namespace="eu", foo={"a": 1}, resource_names={"tx": "my_tx"})
    assert p.name == "EventualConsistencyPlugin" and p.slug == "eventual-consistency"
    assert p.alias == "eventual_consistency_eu" and p.namespace == "eu"
    assert p.options == {"foo": {"a": 1}}
    assert p.resource_name("tx") == "my_tx"
    assert p.resource_name("hosts") == "plg_eu_eventual_consistency_hosts"
    assert EventualConsistencyPlugin().resource_name("hosts") == "plg_eventual_consistency_hosts"
    assert Custom().slug == "my-plugin" and Custom().alias == "my_plugin"
    assert Custom(namespace="default").namespace is None
    assert Custom(log_level="debug").log.level == logging.DEBUG
    assert Custom(log_level="silent").log.level > logging.CRITICAL
    with pytest.raises(ConfigError):
        Custom(namespace="prod env")
    with pytest.raises(ConfigError):
        Custom(log_level="chatty")
    with pytest.raises(ConfigError):
        Custom(alias="has space")
    assert "started" not in repr(Custom())


async def test_lifecycle_and_events(db: Database) -> None:
    seen: list[tuple[str, str]] = []
    for event in (
        "plugin.installed",
        "plugin.started",
        "plugin.stopped",
        "plugin.before_uninstall",
        "plugin.data_purged",
        "plugin.after_uninstall",
    ):
        db.on(event, lambda payload, event=event: seen.append(("db", event)))
    p = Recorder()
    own: list[dict[str, Any]] = []
    p.on("plugin.data_purged", own.append)
    assert not p.installed
    assert await db.use_plugin(p) is p
    assert p.installed and p.started and p.db is db
    assert p.calls == ["install", "start"]
    await p.get_storage().set("state", {"n": 1})
    await p.get_storage().set(p.get_storage().get_plugin_key("users", "x"), 1)
    await db.uninstall_plugin(p, purge_data=True)
    assert p.calls == ["install", "start", "stop", "uninstall(purge_data=True)"]
    assert not p.installed and not p.started
    with pytest.raises(PluginError, match="not installed"):
        p.db  # noqa: B018
    assert [e for _, e in seen] == [
        "plugin.installed",
        "plugin.started",
        "plugin.before_uninstall",
        "plugin.stopped",
        "plugin.data_purged",
        "plugin.after_uninstall",
    ]
    assert own[0]["deleted"] == 2 and own[0]["plugin"] == "Recorder"
    assert await PluginStorage(db, "recorder").list() == []
    with pytest.raises(PluginError):
        p.get_storage()
    with pytest.raises(PluginError):
        await p.start()


async def test_uninstall_without_purge_keeps_data(db: Database) -> None:
    p = await db.use_plugin(Recorder())
    await p.get_storage().set("state", {"kept": True})
    await p.uninstall()
    assert "recorder" not in db.plugins
    assert await PluginStorage(db, "recorder").get("state") == {"kept": True}
    await p.uninstall()  # a second uninstall is a no-op


async def test_plugins_from_constructor_install_on_connect(store_url: str) -> None:
    a, b = Recorder(alias="first"), Recorder(alias="second")
    db = Database(store_url, plugins=[a, b])
    assert list(db.plugins) == ["first", "second"] and not a.installed
    late = Recorder(alias="late")
    await db.use_plugin(late)  # before connect: queued
    assert not late.installed
    await db.connect()
    try:
        assert all(p.installed and p.started for p in (a, b, late))
        assert db.plugins["first"] is a and db.plugins.second is b
        with pytest.raises(KeyError, match="ambiguous"):
            db.plugins["Recorder"]
        await db.disconnect()
        assert all(p.installed and not p.started for p in (a, b, late))
        assert a.calls == ["install", "start", "stop"]
        await db.connect()  # reconnect restarts them
        assert a.started and a.calls[-1] == "start"
    finally:
        await db.disconnect()


async def test_registry_and_errors(db: Database) -> None:
    p = await db.use_plugin(Recorder())
    assert db.plugins["recorder"] is p and db.plugins["Recorder"] is p
    assert db.plugins.recorder is p
    with pytest.raises(AttributeError):
        _ = db.plugins.nothing
    with pytest.raises(PluginError, match="already registered"):
        await db.use_plugin(Recorder())
    assert await db.use_plugin(p) is p  # same instance again: no-op
    other = await db.use_plugin(Recorder(), alias="recorder_two")
    assert db.plugins["recorder_two"] is other and len(db.plugins) == 2
    with pytest.raises(PluginError):
        await db.use_plugin(object())
    with pytest.raises(PluginError, match="already installed"):
        await p.install(db)

    class Failing(Plugin):
        async def on_install(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.use_plugin(Failing())
    assert "failing" not in db.plugins


async def test_background_tasks_cancelled_on_stop_and_disconnect(store_url: str) -> None:
    ticks: list[int] = []
    cancelled: list[str] = []

    class Worker(Plugin):
        async def on_start(self) -> None:
            self.spawn(self.loop, name="loop")
            self.spawn(self.forever(), name="coro")

        async def loop(self) -> None:
            try:
                while True:
                    ticks.append(1)
                    await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                cancelled.append("loop")
                raise

        async def forever(self) -> None:
            await asyncio.Event().wait()

    db = Database(store_url)
    await db.connect()
    w = await db.use_plugin(Worker())
    await asyncio.sleep(0.05)
    assert ticks and len(w.tasks) == 2
    tasks = set(w.tasks)
    await w.stop()
    assert not w.tasks and all(t.done() for t in tasks) and cancelled == ["loop"]
    assert not db._supervisor.tasks

    await w.start()
    tasks = set(w.tasks)
    assert len(tasks) == 2
    await db.disconnect()
    assert all(t.done() for t in tasks)
    assert not db._supervisor.tasks
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("plugin:")]
    assert leftover == []
    with pytest.raises(PluginError):
        Worker().spawn(asyncio.sleep(0))


async def test_recording_helpers_are_undone(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    events: list[str] = []

    async def mw(nxt: Any, *args: Any, **kwargs: Any) -> Any:
        events.append("mw")
        return await nxt(*args, **kwargs)

    class Helper(Plugin):
        async def on_install(self) -> None:
            self.add_resource_hook(users, "before_insert", self.hook)
            self.add_resource_method("users", "shout", self.shout)
            self.add_middleware(users, "get", mw)
            self.listen(users, "inserted", lambda r: events.append("inserted"))
            self.add_database_hook("after_create_resource", self.created)
            await self.add_plugin_attribute(users, "_helper_seen", "boolean|optional")

        def hook(self, data: dict[str, Any]) -> dict[str, Any]:
            events.append("hook")
            return {**data, "_helper_seen": True}

        async def shout(self, text: str) -> str:
            return text.upper()

        def created(self, resource: Resource) -> None:
            events.append(f"created:{resource.name}")

    h = await db.use_plugin(Helper())
    rec = await users.insert({"name": "Ann"})
    assert rec["_helper_seen"] is True
    await users.get(rec["id"])
    assert await users.shout("hi") == "HI"  # type: ignore[attr-defined]
    await db.create_resource("other", attributes={"x": "string"})
    assert events == ["hook", "inserted", "mw", "created:other"]
    with pytest.raises(ConfigError):
        h.add_resource_method(users, "shout", h.shout)  # name taken
    with pytest.raises(ConfigError):
        h.add_resource_method(users, "insert", h.shout)  # core method

    await h.uninstall()
    events.clear()
    rec2 = await users.insert({"name": "Bob"})
    await users.get(rec2["id"])
    await db.create_resource("third", attributes={"x": "string"})
    assert events == []
    assert "_helper_seen" not in rec2 and not hasattr(users, "shout")
    assert "_helper_seen" not in users.schema.fields


async def test_when_resource_before_and_after_creation(db: Database) -> None:
    await db.create_resource("early", attributes={"x": "string"})
    seen: list[str] = []

    class Deferred(Plugin):
        async def on_install(self) -> None:
            await self.when_resource("early", self.setup)
            await self.when_resource("wallets", self.setup)
            await self.when_resource("wallets", lambda r: seen.append(f"sync:{r.name}"))

        async def setup(self, resource: Resource) -> None:
            seen.append(resource.name)
            self.add_resource_method(resource, "balance_of", self.balance)

        async def balance(self, rid: str) -> int:
            return 0

    p = await db.use_plugin(Deferred())
    assert seen == ["early"]
    wallets = await db.create_resource("wallets", attributes={"balance": "number"})
    assert seen == ["early", "wallets", "sync:wallets"]
    assert await wallets.balance_of("w1") == 0  # type: ignore[attr-defined]
    await db.create_resource("wallets", attributes={"balance": "number", "n": "string"})
    assert seen == ["early", "wallets", "sync:wallets"]  # once
    await p.uninstall()
    assert not hasattr(wallets, "balance_of")


async def test_plugin_attributes(db: Database) -> None:
    users = await db.create_resource(
        "users", attributes={"email": "string|required|email", "name": "string"}
    )

    class Vector(Plugin):
        async def on_install(self) -> None:
            await self.add_plugin_attribute(users, "_hasEmbedding", "boolean|optional")
            await self.add_plugin_attribute(users, "_vector_version", {"type": "number"})

    class Intruder(Plugin):
        pass

    v = await db.use_plugin(Vector())
    props = users.schema.to_json_schema()["properties"]
    assert set(props) == {"email", "name"}  # plugin fields hidden from generated schemas
    assert {"_hasEmbedding", "_vector_version"} <= set(users.schema.fields)
    rec = await users.insert({"email": "a@b.co", "_hasEmbedding": True, "_vector_version": 2})
    got = await users.get(rec["id"])
    assert got["_hasEmbedding"] is True and got["_vector_version"] == 2
    assert all(i.startswith("p") for i in users.registry.plugin_ids.values())

    intruder = await db.use_plugin(Intruder())
    with pytest.raises(SchemaError, match="user field"):
        await intruder.add_plugin_attribute(users, "email", "string|optional")
    with pytest.raises(SchemaError, match="belongs to plugin"):
        await intruder.add_plugin_attribute(users, "_hasEmbedding", "boolean|optional")
    with pytest.raises(SchemaError, match="belongs to plugin"):
        await users.remove_plugin_attribute("_hasEmbedding", "Intruder")
    assert not await users.remove_plugin_attribute("_never_added", "Intruder")
    assert "_hasEmbedding" in users.schema.fields

    await v.uninstall()
    assert "_hasEmbedding" not in users.schema.fields
    assert (await users.get(rec["id"]))["email"] == "a@b.co"


async def test_static_plugins(db: Database) -> None:
    calls: list[str] = []

    class CostsPlugin:  # a class used without instantiation
        @classmethod
        async def setup(cls, database: Database) -> None:
            calls.append(f"setup:{database is db}")

        @classmethod
        def start(cls) -> None:
            calls.append("start")

        @classmethod
        async def stop(cls) -> None:
            calls.append("stop")

    module = types.ModuleType("acme.tracker")

    def install(database: Database) -> None:
        calls.append("module-install")

    def uninstall(*, purge_data: bool) -> None:
        calls.append(f"module-uninstall:{purge_data}")

    module.install = install  # type: ignore[attr-defined]
    module.uninstall = uninstall  # type: ignore[attr-defined]

    costs = await db.use_plugin(CostsPlugin)
    assert costs.name == "CostsPlugin" and db.plugins["costs"] is costs
    tracker = await db.use_plugin(module)
    assert tracker.name == "tracker"
    assert calls == ["setup:True", "start", "module-install"]
    await db.uninstall_plugin(costs)
    await db.uninstall_plugin("tracker", purge_data=True)
    assert calls[-2:] == ["stop", "module-uninstall:True"]

    sub = await db.use_plugin(Recorder)  # a Plugin subclass: instantiated with defaults
    assert isinstance(sub, Recorder) and sub.started


async def test_bundle_plugins_forward_options(db: Database) -> None:
    class PuppeteerPlugin(Recorder):
        pass

    class CachePlugin(Recorder):
        pass

    class SpiderSuitePlugin(Plugin):
        async def on_install(self) -> None:
            self.browser = await self.install_child(PuppeteerPlugin)
            self.cache = await self.install_child(CachePlugin, ttl=30)

    suite = SpiderSuitePlugin(namespace="crawler", puppeteer={"pool": {"enabled": False}})
    await db.use_plugin(suite)
    browser = db.plugins["spider_suite_crawler_puppeteer"]
    assert isinstance(browser, PuppeteerPlugin) and browser.started
    assert browser.namespace == "crawler" and browser.options == {"pool": {"enabled": False}}
    assert browser.resource_name("pages") == "plg_crawler_puppeteer_pages"
    assert suite.cache.options == {"ttl": 30} and suite.children == (browser, suite.cache)
    await browser.get_storage().set("k", 1)
    assert browser.get_storage().root == "plugin=puppeteer/crawler/"
    await db.uninstall_plugin(suite, purge_data=True)
    assert list(db.plugins) == []
    assert browser.calls[-1] == "uninstall(purge_data=True)"
    assert await PluginStorage(db, "puppeteer", namespace="crawler").list() == []


def test_public_exports() -> None:
    for name in ("Plugin", "PluginStorage", "Lock", "LockError", "UnsupportedCapabilityError"):
        assert name in s3db_async.__all__ and hasattr(s3db_async, name)
    from s3db_async import plugin

    for name in plugin.__all__:
        assert hasattr(plugin, name), name


def test_plugins_package_is_lazy() -> None:
    code = (
        "import sys, s3db_async, s3db_async.plugins as p\n"
        "loaded = [m for m in sys.modules if m.startswith('s3db_async.plugins.')]\n"
        "assert loaded == [], loaded\n"
        "for heavy in ('numpy', 'tantivy', 'asyncpg', 'playwright', 'aioboto3'):\n"
        "    assert heavy not in sys.modules, heavy\n"
        "assert all(n.endswith('Plugin') for n in p.__all__)\n"
        "try:\n"
        "    p.NoSuchPlugin\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('expected AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_custom_plugin_example_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "custom_plugin.py")],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    assert "inserts: 3" in out and "stamped: True" in out and "method removed: True" in out


def test_building_plugins_doc_shows_the_example() -> None:
    doc = (REPO / "docs" / "plugins" / "building-plugins.md").read_text()
    example = (REPO / "examples" / "custom_plugin.py").read_text()
    assert f"```python\n{example}```" in doc
    start = example.index("class InsertCounterPlugin")
    plugin_lines = example[start : example.index("async def main")].strip().splitlines()
    assert len(plugin_lines) <= 55  # "a complete plugin in about 50 lines"
