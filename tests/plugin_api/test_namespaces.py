"""Namespaces: validation, naming, detection with logged warnings, and isolation of two
instances of one plugin."""

from __future__ import annotations

import logging

import pytest

from s3db_async import Database, Plugin, PluginStorage
from s3db_async.errors import ConfigError
from s3db_async.plugin import (
    detect_and_warn_namespaces,
    get_namespaced_resource_name,
    get_validated_namespace,
    list_plugin_namespaces,
    validate_namespace,
    warn_namespace_usage,
)


class ReconPlugin(Plugin):
    async def on_install(self) -> None:
        await self.db.create_resource(self.resource_name("hosts"), attributes={"host": "string"})

    async def save_report(self, report_id: str) -> None:
        storage = self.get_storage()
        await storage.set(storage.get_plugin_key(None, "reports", report_id), {"id": report_id})
        await storage.set(storage.get_plugin_key("targets", "seen", report_id), True)


@pytest.mark.parametrize("name", ["production", "client-acme", "env_staging_2", "a", "x" * 50])
def test_valid_namespaces(name: str) -> None:
    assert validate_namespace(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "non-empty string"),
        (None, "non-empty string"),
        (42, "non-empty string"),
        ("prod env", "can only contain"),
        ("client@acme", "can only contain"),
        ("a" * 51, "50 characters or less"),
        ("ns/sub", "can only contain"),
    ],
)
def test_invalid_namespaces(name: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_namespace(name)


def test_validated_namespace_and_resource_names() -> None:
    assert get_validated_namespace({"namespace": "uptime"}) == "uptime"
    assert get_validated_namespace({}) == "default"
    assert get_validated_namespace(None, "main") == "main"
    with pytest.raises(ConfigError):
        get_validated_namespace({"namespace": "invalid space"})

    assert get_namespaced_resource_name("plg_recon_hosts", "default", "plg_recon") == (
        "plg_recon_hosts"
    )
    assert get_namespaced_resource_name("plg_recon_hosts", None) == "plg_recon_hosts"
    assert get_namespaced_resource_name("plg_recon_hosts", "uptime", "plg_recon") == (
        "plg_uptime_recon_hosts"
    )
    assert get_namespaced_resource_name("plg_scheduler_jobs", "prod", "plg_scheduler") == (
        "plg_prod_scheduler_jobs"
    )
    with pytest.raises(ConfigError):
        get_namespaced_resource_name("hosts", "uptime", "plg_recon")
    with pytest.raises(ConfigError):
        get_namespaced_resource_name("plg_recon_hosts", "bad ns", "plg_recon")


def test_warn_namespace_usage(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="s3db_async.plugins.namespace"):
        warn_namespace_usage("ReconPlugin", "uptime", ["stealth", "default"])
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 2, "notices, not warnings"
    assert caplog.messages == [
        "[ReconPlugin] Detected 2 existing namespace(s): default, stealth",
        '[ReconPlugin] Using namespace: "uptime"',
    ]
    assert caplog.records[0].namespace == "uptime"  # type: ignore[attr-defined]


@pytest.mark.stores("memory", "file", "moto")
async def test_install_lists_existing_namespaces(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3db_async.plugins")
    await db.use_plugin(ReconPlugin(namespace="uptime"))
    assert caplog.messages == ['[ReconPlugin] Using namespace: "uptime"']
    caplog.clear()
    await db.use_plugin(ReconPlugin(namespace="stealth"))
    assert caplog.messages == [
        "[ReconPlugin] Detected 1 existing namespace(s): uptime",
        '[ReconPlugin] Using namespace: "stealth"',
    ]
    caplog.clear()
    aggressive = await db.use_plugin(ReconPlugin(namespace="aggressive"))
    assert caplog.messages == [
        "[ReconPlugin] Detected 2 existing namespace(s): stealth, uptime",
        '[ReconPlugin] Using namespace: "aggressive"',
    ]
    assert caplog.records[-1].name == "s3db_async.plugins.recon.aggressive"
    assert {r.levelno for r in caplog.records} == {logging.INFO}
    storage = aggressive.get_storage()
    assert await list_plugin_namespaces(storage, "recon") == ["aggressive", "stealth", "uptime"]
    assert await list_plugin_namespaces(storage) == ["aggressive", "stealth", "uptime"]
    caplog.clear()
    found = await detect_and_warn_namespaces(storage, "ReconPlugin", "recon", "uptime")
    assert found == ["aggressive", "stealth", "uptime"] and len(caplog.messages) == 2
    caplog.clear()
    await db.use_plugin(ReconPlugin())  # no namespace: no scan, no warning
    assert caplog.messages == []
    assert {
        "plg_uptime_recon_hosts",
        "plg_stealth_recon_hosts",
        "plg_aggressive_recon_hosts",
        "plg_recon_hosts",
    } <= set(db.list_resources())


async def test_two_instances_are_isolated(db: Database) -> None:
    ns1 = await db.use_plugin(ReconPlugin(namespace="ns1"))
    ns2 = await db.use_plugin(ReconPlugin(namespace="ns2"))
    plain = await db.use_plugin(ReconPlugin())
    assert [p.alias for p in (ns1, ns2, plain)] == ["recon_ns1", "recon_ns2", "recon"]
    for p, rid in ((ns1, "r1"), (ns2, "r2"), (plain, "r0")):
        await p.save_report(rid)

    s1, s2, s0 = ns1.get_storage(), ns2.get_storage(), plain.get_storage()
    assert await s1.list() == ["plugin=recon/ns1/reports/r1"]
    assert await s2.list() == ["plugin=recon/ns2/reports/r2"]
    assert await s0.list() == ["plugin=recon/reports/r0"]  # namespaces are not its data
    assert await s1.list_for_resource("targets") == ["resource=targets/plugin=recon/ns1/seen/r1"]
    assert await s0.list_for_resource("targets") == ["resource=targets/plugin=recon/seen/r0"]
    assert await s1.get("reports/r2") is None
    assert await s0.list(s0.get_plugin_key(None)) == ["plugin=recon/reports/r0"]
    assert await s0.list(s0.get_plugin_key("targets")) == ["resource=targets/plugin=recon/seen/r0"]
    assert await s1.list(s1.get_plugin_key("targets")) == [
        "resource=targets/plugin=recon/ns1/seen/r1"
    ]
    with pytest.raises(ConfigError):
        await s0.list("resource=targets/data/")
    assert await s1.increment("hits") == 1 and await s2.increment("hits") == 1

    # purging the instance without namespace leaves both namespaces alone
    await db.uninstall_plugin(plain, purge_data=True)
    assert await s1.list() == ["plugin=recon/ns1/hits", "plugin=recon/ns1/reports/r1"]
    assert len(await s2.list_for_resource("targets")) == 1
    # purging ns1 drops its data and its registration, ns2 is untouched
    await db.uninstall_plugin(ns1, purge_data=True)
    check = PluginStorage(db, "recon")
    assert await check.list_namespaces() == ["ns2"]
    assert await PluginStorage(db, "recon", namespace="ns1").list() == []
    assert await s2.list() == ["plugin=recon/ns2/hits", "plugin=recon/ns2/reports/r2"]
    assert await check.list() == []
