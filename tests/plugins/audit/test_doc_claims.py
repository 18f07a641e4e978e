"""AuditPlugin does what docs/plugins/audit.md says (issue 19 audit): an ``actor(change)``
that raises leaves the actor ``None`` (it must not block the trail: the feed would deliver
the batch again forever), and bad ``limit``/``batch_size`` values raise typed errors."""

from __future__ import annotations

import asyncio

import pytest
from s3db_async.plugins import AuditPlugin

from s3db_async import Change, Database
from s3db_async.errors import ConfigError, ValidationError

pytestmark = pytest.mark.stores("memory", "file")


async def test_a_raising_actor_resolver_records_none_and_does_not_block_the_trail(
    store_url: str,
) -> None:
    def resolver(change: Change) -> str | None:
        if (change.after or {}).get("item") == "bad":
            raise RuntimeError("no user on this record")
        return "derived"

    async with Database(store_url) as db:
        orders = await db.create_resource("orders", attributes={"item": "string"})
        audit = await db.use_plugin(
            AuditPlugin(resources=["orders"], poll_interval=None, leader=False, actor=resolver)
        )
        await orders.insert({"item": "bad"})
        await orders.insert({"item": "good"})
        assert await asyncio.wait_for(audit.flush(), timeout=30) == 2
        logs = await audit.get_audit_logs(resource="orders")
        assert sorted((e["after"]["item"], e["actor"]) for e in logs) == [
            ("bad", None),
            ("good", "derived"),
        ]


async def test_bad_limit_and_batch_size_raise_typed_errors(store_url: str) -> None:
    with pytest.raises(ConfigError) as cfg:
        AuditPlugin(batch_size=True)
    assert cfg.value.metadata["field"] == "batch_size" and cfg.value.suggestion
    async with Database(store_url) as db:
        await db.create_resource("orders", attributes={"item": "string"})
        audit = await db.use_plugin(AuditPlugin(resources=["orders"], poll_interval=None))
        for bad in (-1, "2", 1.5):
            with pytest.raises(ValidationError) as err:
                await audit.get_audit_logs(limit=bad)  # type: ignore[arg-type]
            assert err.value.metadata["field"] == "limit" and err.value.suggestion
        assert await audit.get_audit_logs(limit=0) == []


async def test_operation_filter_accepts_the_event_names_like_the_option(store_url: str) -> None:
    async with Database(store_url) as db:
        orders = await db.create_resource("orders", attributes={"item": "string"})
        audit = await db.use_plugin(
            AuditPlugin(resources=["orders"], operations=["inserted"], poll_interval=None)
        )
        await orders.insert({"item": "tea"})
        await audit.flush()
        assert [e["operation"] for e in await audit.get_audit_logs(operation="inserted")] == [
            "insert"
        ]
        assert await audit.get_audit_logs(operation="deleted") == []
