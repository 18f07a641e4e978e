"""Optional dependencies: actionable errors, the skip switch, the report."""

from __future__ import annotations

import importlib.metadata

import pytest

from s3db_async import Database, Plugin
from s3db_async.errors import MissingDependencyError, PluginError
from s3db_async.plugin import (
    SKIP_ENV,
    Dependency,
    get_plugin_dependency_report,
    require_dependencies,
    require_dependency,
)

MISSING = "s3db-test-not-a-real-package"
pytestmark = pytest.mark.stores("memory")


@pytest.fixture(autouse=True)
def _checks_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SKIP_ENV, raising=False)


def test_installed_dependency_passes() -> None:
    require_dependency("msgspec", extra="core")
    require_dependency("msgspec", extra="core", min_version="0.1")
    require_dependency("anyio", extra="core", min_version="4")


def test_missing_dependency_message() -> None:
    with pytest.raises(MissingDependencyError) as info:
        require_dependency(
            MISSING,
            extra="postgres",
            min_version="8.0",
            plugin="PostgresReplicator",
            description="PostgreSQL client",
        )
    err = info.value
    text = str(err)
    assert "PostgresReplicator: missing dependencies detected!" in text
    assert f"missing dependency: {MISSING}" in text
    assert f"required: {MISSING}>=8.0" in text
    assert "description: PostgreSQL client" in text
    assert "install: pip install 's3db-async[postgres]'" in text
    assert "Quick fix: pip install 's3db-async[postgres]'" in text
    assert isinstance(err, ImportError) and isinstance(err, PluginError)
    assert err.metadata["missing"] == [MISSING] and err.metadata["extras"] == ["postgres"]
    assert err.suggestion == "pip install 's3db-async[postgres]'"


def test_too_old_version_is_reported() -> None:
    installed = importlib.metadata.version("msgspec")
    with pytest.raises(MissingDependencyError) as info:
        require_dependency("msgspec", extra="core", min_version="999.0")
    assert f"version {installed} installed, >=999.0 required" in str(info.value)


def test_every_missing_package_is_listed() -> None:
    deps = [
        Dependency(MISSING, "postgres", "0.29"),
        Dependency("msgspec", "core"),
        Dependency(MISSING + "-two", "rabbitmq", None, module="s3db_test_nope"),
    ]
    with pytest.raises(MissingDependencyError) as info:
        require_dependencies(deps, plugin="Combo")
    text = str(info.value)
    assert f"missing dependency: {MISSING}\n" in text
    assert f"missing dependency: {MISSING}-two" in text
    assert "msgspec" not in text
    assert f"required: {MISSING}-two (any version)" in text
    assert "Quick fix: pip install 's3db-async[postgres,rabbitmq]'" in text


def test_skip_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SKIP_ENV, "1")
    require_dependency(MISSING, extra="postgres")
    require_dependencies([Dependency(MISSING, "x")])


async def test_plugin_dependencies_checked_on_install(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NeedsThings(Plugin):
        dependencies = (Dependency(MISSING, "queue", "1.0", description="queue client"),)

    with pytest.raises(MissingDependencyError, match=r"s3db-async\[queue\]"):
        await db.use_plugin(NeedsThings())
    assert "needs_things" not in db.plugins

    monkeypatch.setenv(SKIP_ENV, "1")
    p = await db.use_plugin(NeedsThings())
    assert p.started

    report = {s.package: s for s in get_plugin_dependency_report()}
    mine = report[MISSING]
    assert not mine.ok and mine.reason == "not installed" and "NeedsThings" in mine.used_by
    assert mine.install_command == "pip install 's3db-async[queue]'"
    # the package's own extras are reported too
    assert report["aioboto3"].extra == "aws"
    assert report["numpy"].extra == "vector" and report["numpy"].min_version == "1.26"
    assert all(s.extra != "dev" for s in report.values())
