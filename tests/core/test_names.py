"""Names settled before 1.0 (issue 17 item 5): renamed methods and events, keyword-only
``purge_data``, one plugin attribute for the database, one thread helper, lean ``__all__``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import s3db_async
import s3db_async.plugin as plugin_module
from s3db_async import Database, Plugin
from s3db_async.errors import NotFoundError, PluginError

pytestmark = pytest.mark.stores("memory")
PACKAGE = Path(s3db_async.__file__).parent


class Keeper(Plugin):
    """Stores one object, so purging has something to delete."""

    async def on_install(self) -> None:
        await self.get_storage().set("state", {"n": 1})


async def test_purge_data_is_keyword_only(db: Database) -> None:
    keeper = await db.use_plugin(Keeper())
    with pytest.raises(TypeError):
        await keeper.uninstall(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        await db.uninstall_plugin(keeper, True)  # type: ignore[misc]
    assert keeper.installed, "a refused call changes nothing"
    storage = keeper.get_storage()
    await db.uninstall_plugin(keeper, purge_data=True)
    assert not keeper.installed
    assert await storage.list() == []


async def test_get_revision_and_the_deprecated_get_version(db: Database) -> None:
    notes = await db.create_resource("notes", attributes={"t": "string"}, history=True)
    rec = await notes.insert({"t": "a"})
    await notes.update(rec["id"], {"t": "b"})
    assert (await notes.get_revision(rec["id"], 1))["t"] == "a"
    assert (await notes.get_revision(rec["id"], 2))["t"] == "b"
    with pytest.deprecated_call(match="get_revision"):
        old = await notes.get_version(rec["id"], 1)
    assert old["t"] == "a" and old.revision == 1
    with pytest.raises(NotFoundError):
        await notes.get_revision(rec["id"], 3)


async def test_plugin_db_is_the_one_name_and_database_is_deprecated(db: Database) -> None:
    keeper = Keeper()
    with pytest.raises(PluginError, match="not installed"):
        keeper.db  # noqa: B018
    with pytest.deprecated_call(match="Plugin.db"):
        assert keeper.database is None
    await db.use_plugin(keeper)
    assert keeper.db is db
    with pytest.deprecated_call(match="Plugin.db"):
        assert keeper.database is db


async def test_event_names_follow_one_style(db: Database) -> None:
    seen: list[str] = []
    db.on("resource.created", lambda r: seen.append(f"created:{r.name}"))
    res = await db.create_resource("docs", attributes={"t": "string"}, behavior="user-managed")
    res.on("limits_exceeded", lambda info: seen.append(f"exceeded:{info['fields']}"))
    await res.insert({"t": "x" * 3000})
    assert seen == ["created:docs", "exceeded:['t']"]
    names = db.event_names | res.event_names | Plugin.event_names  # type: ignore[operator]
    for name in names:
        assert re.fullmatch(r"([a-z]+\.)?[a-z_]+", name), name
        assert not name.startswith(("exceeds", "resource_")), name


async def test_renamed_events_still_subscribe_with_a_warning(db: Database) -> None:
    seen: list[Any] = []

    def created(resource: Any) -> None:
        seen.append(resource)

    with pytest.deprecated_call(match="resource.created"):
        db.on("resource_created", created)
    res = await db.create_resource("docs", attributes={"t": "string"}, behavior="user-managed")
    with pytest.deprecated_call(match="limits_exceeded"):
        res.on("exceeds_limits", seen.append)
    await res.insert({"t": "x" * 3000})
    assert seen[0] is res and seen[1]["fields"] == ["t"]
    db.off("resource_created", created)
    assert not db.has_listeners("resource.created")


def test_one_thread_helper_across_the_library() -> None:
    """Work goes to threads through ``anyio.to_thread`` only (one limiter model)."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if re.search(r"asyncio\.to_thread|run_in_executor", path.read_text())
    ]
    assert offenders == []


def test_plugin_module_exports_no_internals() -> None:
    exported = set(plugin_module.__all__)
    assert not {"coerce_plugin", "STORAGE_BEHAVIORS"} & exported
    assert all(not n.startswith("_") for n in exported)
    for name in exported:
        assert name in vars(plugin_module), name
    assert {"Plugin", "PluginStorage", "Lock", "Dependency", "validate_namespace"} <= exported


class Other(Plugin):
    """A second plugin class, for lookups by class."""


async def test_plugins_get_by_class_is_typed_and_exact(db: Database) -> None:
    keeper = await db.use_plugin(Keeper())
    assert db.plugins.get(Keeper) is keeper
    assert db.plugins.get("keeper") is keeper  # by alias, as a Mapping
    assert db.plugins.get("nope") is None
    assert db.plugins.get(Other, None) is None
    with pytest.raises(NotFoundError, match="Other") as info:
        db.plugins.get(Other)
    assert isinstance(info.value, KeyError) and info.value.suggestion
    second = await db.use_plugin(Keeper(namespace="two"))
    with pytest.raises(PluginError, match="ambiguous"):
        db.plugins.get(Keeper)
    assert db.plugins.get("keeper_two") is second
    with pytest.raises(NotFoundError, match="nope"):
        db.plugins["nope"]
