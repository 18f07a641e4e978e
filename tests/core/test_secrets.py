"""Secrets never leak: partitions, count(by=), queries, Record repr, missing passphrase.

Issue 15 items 1 and 6, issue 16 item 8 (Record repr).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from s3db_async import Database
from s3db_async.errors import (
    DecryptionError,
    EncryptionError,
    SchemaError,
    ValidationError,
)

PASS = "pw-Correct-Horse-42"
SECRET = "hunter2-CLEARTEXT-9"

SENSITIVE_PARTITIONS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"pw": "secret"}, {"fields": {"pw": "string"}}, "pw"),
    ({"pw": {"type": "secret", "required": True}}, {"fields": {"pw": "string"}}, "pw"),
    ({"pw": "password"}, {"fields": {"pw": "string"}}, "pw"),
    ({"creds": {"pw": "secret"}}, {"fields": {"creds.pw": "string"}}, "creds.pw"),
    (
        {"region": "string", "pw": "secret"},
        {"fields": {"region": "string", "pw": "string|maxlength:2"}},
        "pw",
    ),
    ({"tokens": "array|items:secret"}, {"fields": {"tokens": "string"}}, "tokens"),
    ({"keys": {"type": "array", "items": {"k": "secret"}}}, {"fields": {"keys": "string"}}, "keys"),
]


@pytest.mark.parametrize(("attrs", "partition", "field"), SENSITIVE_PARTITIONS)
async def test_partition_on_secret_or_password_is_refused(
    store_url: str, attrs: dict[str, Any], partition: dict[str, Any], field: str
) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        db.store.stats.reset()
        with pytest.raises(SchemaError) as info:
            await db.create_resource("u", attributes=attrs, partitions={"by_pw": partition})
        err = info.value
        assert err.metadata["field"] == field and err.metadata["partition"] == "by_pw"
        assert err.errors and err.errors[0]["field"] == field
        assert field in err.message and err.suggestion
        assert db.store.stats.get("put", 0) == 0
        assert not db.resource_exists("u")


async def test_partition_on_object_holding_a_secret_is_refused_without_strict(
    store_url: str,
) -> None:
    """Unchecked partition fields (strict_validation=False) still cannot reach a secret."""
    async with Database(store_url, passphrase=PASS, strict_validation=False) as db:
        with pytest.raises(SchemaError) as info:
            await db.create_resource(
                "u",
                attributes={"creds": {"pw": "secret", "user": "string"}},
                partitions={"by_creds": {"fields": {"creds": "string"}}},
            )
        assert info.value.metadata["field"] == "creds"


async def test_unknown_partition_field_never_suggests_secrets(store_url: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        with pytest.raises(SchemaError) as info:
            await db.create_resource(
                "u",
                attributes={
                    "name": "string",
                    "pw": "secret",
                    "hash": "password",
                    "c": {"k": "secret"},
                },
                partitions={"by_x": {"fields": {"nmae": "string"}}},
            )
        text = str(info.value) + str(info.value.suggestion)
        assert "name" in text
        for sensitive in ("pw", "hash", "c.k"):
            assert f"{sensitive}," not in text and not text.endswith(sensitive), text


@pytest.mark.parametrize("by", ["pw", "creds.pw", "creds", "hash"])
async def test_count_by_secret_or_password_is_refused(store_url: str, by: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource(
            "u",
            attributes={
                "name": "string",
                "pw": "secret",
                "hash": "password",
                "creds": {"pw": "secret"},
            },
        )
        await res.insert({"name": "ann", "pw": SECRET, "hash": SECRET, "creds": {"pw": SECRET}})
        db.store.stats.reset()
        with pytest.raises(ValidationError) as info:
            await res.count(by=by)
        assert info.value.metadata["field"] == by and info.value.suggestion
        assert SECRET not in str(info.value)
        assert db.store.stats.get("get", 0) == 0 and db.store.stats.get("list", 0) == 0


async def test_query_on_a_secret_reads_records_and_never_a_partition(store_url: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource(
            "u",
            attributes={"name": "string", "pw": "secret"},
            partitions={"by_name": {"fields": {"name": "string"}}},
        )
        await res.insert({"id": "a", "name": "ann", "pw": SECRET})
        await res.insert({"id": "b", "name": "bob", "pw": "other"})
        assert [r.id for r in await res.query({"pw": SECRET})] == ["a"]
        assert [r.id for r in await res.query({"name": "ann", "pw": SECRET})] == ["a"]
        plan = res.explain({"pw": SECRET})
        assert plan["scan"] is True and plan["partition"] is None
        assert SECRET not in repr(plan)
        plan = res.explain({"name": "ann", "pw": {"$eq": SECRET}})
        assert plan["partition"] == "by_name" and SECRET not in repr(plan)
        cost = await res.estimate_query_cost({"pw": SECRET})
        assert SECRET not in repr(cost)
        keys = await db.store.list_keys()
        assert not any(SECRET in k or "pw=" in k for k in keys), keys


@pytest.mark.parametrize(
    "flt",
    [
        {"hash": SECRET},
        {"hash": {"$gt": "a"}},
        {"$or": [{"name": "x"}, {"hash": {"$in": [SECRET]}}]},
        {"$not": {"creds": {"hash": SECRET}}},
        {"creds.hash": {"$contains": "x"}},
    ],
)
async def test_query_conditions_on_passwords_are_refused(
    store_url: str, flt: dict[str, Any]
) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource(
            "u", attributes={"name": "string", "hash": "password", "creds": {"hash": "password"}}
        )
        await res.insert({"name": "ann", "hash": SECRET})
        with pytest.raises(ValidationError) as info:
            await res.query(flt)
        assert "verify_password" in (info.value.suggestion or "")
        assert SECRET not in str(info.value) + repr(info.value.to_dict())
        with pytest.raises(ValidationError):
            res.explain(flt)
        assert len(await res.query({"hash": {"$exists": True}})) == 1


async def test_stored_partition_on_a_secret_is_ignored_and_warned(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A definition written before partitions on secrets were refused never writes keys."""
    async with Database(store_url, passphrase=PASS) as db:
        await db.create_resource("u", attributes={"name": "string", "pw": "secret"})

        def sneak(doc: dict[str, Any]) -> bool:
            entry = doc["resources"]["u"]
            definition = entry["versions"][entry["current_version"]]["definition"]
            definition["partitions"] = {"by_pw": {"fields": {"pw": "string"}}}
            return True

        await db._update_meta(sneak)
    with caplog.at_level(logging.WARNING, logger="s3db_async"):
        async with Database(store_url, passphrase=PASS) as db:
            res = db.resources["u"]
            assert "by_pw" not in res.partitions
            await res.insert({"id": "a", "name": "ann", "pw": SECRET})
            assert [r.id for r in await res.query({"pw": SECRET})] == ["a"]
            keys = await db.store.list_keys()
    assert not any("partition=" in k for k in keys), keys
    assert "by_pw" in caplog.text and "rebuild_partitions" in caplog.text
    assert SECRET not in caplog.text


async def test_secret_default_is_refused_at_create_resource(store_url: str) -> None:
    """A default would sit in clear in s3db.json."""
    async with Database(store_url, passphrase=PASS) as db:
        db.store.stats.reset()
        with pytest.raises(SchemaError) as info:
            await db.create_resource("u", attributes={"c": {"pw": f"secret|default:{SECRET}"}})
        assert info.value.metadata["field"] == "c.pw" and info.value.suggestion
        assert SECRET not in str(info.value)
        assert db.store.stats.get("put", 0) == 0


async def test_rebuild_partitions_removes_keys_of_a_dropped_secret_partition(
    store_url: str,
) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource("u", attributes={"name": "string", "pw": "secret"})
        await res.insert({"id": "a", "name": "ann", "pw": SECRET})
        leaked = f"resource=u/partition=by_pw/pw={SECRET}/id=a"  # as an older version wrote
        await db.store.put(leaked, b"")
        assert await res.rebuild_partitions() == {"added": 0, "removed": 1}
        assert not [k for k in await db.store.list_keys() if SECRET in k]


# -- Record repr (issue 16 item 8) -------------------------------------------------------


async def test_record_repr_and_str_mask_secrets_and_passwords(store_url: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource(
            "u",
            attributes={
                "name": "string",
                "pw": "secret",
                "hash": "password",
                "creds": {"token": "secret", "user": "string"},
                "keys": "array|items:secret",
                "empty": "secret",
            },
        )
        data = {
            "id": "a",
            "name": "ann",
            "pw": SECRET,
            "hash": SECRET,
            "creds": {"token": SECRET, "user": "ann-user"},
            "keys": [SECRET],
            "empty": None,
        }
        seen = [await res.insert(data)]
        seen.append(await res.get("a"))
        seen.append(await res.update("a", {"name": "anne"}))
        seen += await res.list()
        seen += await res.query({"pw": SECRET})
        seen.append((await res.page(size=10)).items[0])
        seen.append((await res.get_many(["a"])).ok[0])
        async for rec in res.stream():
            seen.append(rec)
        for rec in seen:
            for text in (repr(rec), str(rec), f"{rec}", repr([rec])):
                assert SECRET not in text and "$argon2" not in text, text
                assert "'pw': '***'" in text and "'hash': '***'" in text
                assert "'token': '***'" in text and "'keys': '***'" in text
                assert "ann-user" in text and "'empty': None" in text
            # the data itself is the user's: unchanged
            assert dict(rec)["pw"] == SECRET and rec["creds"]["token"] == SECRET
            assert msgspec.json.decode(msgspec.json.encode(rec))["keys"] == [SECRET]
        assert str(seen[1]).startswith("Record(")


def test_record_without_secrets_reprs_as_before() -> None:
    from s3db_async import Record

    assert repr(Record({"id": "a", "n": 1})) == "Record({'id': 'a', 'n': 1})"


# -- passphrase missing (issue 15 item 6) ---------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"name": "string", "token": "secret"}, "token"),
        ({"creds": {"token": "secret|required"}}, "creds.token"),
        ({"tokens": "array|items:secret"}, "tokens"),
    ],
)
async def test_secret_field_without_passphrase_fails_at_create_resource(
    store_url: str, monkeypatch: pytest.MonkeyPatch, attrs: dict[str, Any], field: str
) -> None:
    monkeypatch.delenv("S3DB_PASSPHRASE", raising=False)
    async with Database(store_url) as db:
        db.store.stats.reset()
        with pytest.raises(EncryptionError) as info:
            await db.create_resource("acct", attributes=attrs)
        err = info.value
        text = f"{err.message} {err.suggestion}"
        assert repr(field) in text and "'acct'" in text
        assert "passphrase=" in text and "S3DB_PASSPHRASE" in text
        assert err.metadata["field"] == field and err.metadata["resource"] == "acct"
        assert db.store.stats.get("put", 0) == 0 and not db.resource_exists("acct")


async def test_reopened_without_passphrase_fails_only_when_a_secret_is_touched(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3DB_PASSPHRASE", raising=False)
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource("acct", attributes={"user": "string", "token": "secret"})
        await res.insert({"id": "a", "user": "ann", "token": SECRET})
        other = await db.create_resource("plain", attributes={"n": "integer"})
        await other.insert({"id": "p", "n": 1})
    async with Database(store_url) as db:  # connects: nothing needs the passphrase yet
        assert (await db.resources["plain"].get("p"))["n"] == 1
        res = db.resources["acct"]
        assert await res.count() == 1
        rec = await res.insert({"id": "b", "user": "bob"})  # no secret value: nothing to encrypt
        assert rec["user"] == "bob"
        assert (await res.get("b"))["user"] == "bob"
        with pytest.raises(EncryptionError) as enc:
            await res.insert({"user": "cy", "token": "x"})
        with pytest.raises(DecryptionError) as dec:
            await res.get("a")
        for err in (enc.value, dec.value):
            text = f"{err.message} {err.suggestion}"
            assert "'acct'" in text and "'token'" in text, text
            assert "passphrase=" in text and "S3DB_PASSPHRASE" in text, text
            assert SECRET not in text
        assert await res.count() == 2


# -- MCP server -----------------------------------------------------------------------

MCP_ATTRS = {
    "name": "string",
    "pw": "secret",
    "hash": "password",
    "creds": {"api": "secret", "user": "string"},
    "keys": "array|items:secret",
}


def _mcp_text(result: Any) -> str:
    from mcp.types import TextContent

    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def _mcp_call(server: Any, tool: str, **arguments: Any) -> tuple[bool, Any, str]:
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        result = await server.call_tool(tool, arguments)
    except ToolError as exc:  # in process, a tool error is raised (a client gets is_error)
        return True, None, str(exc)
    return bool(result.is_error), result.structured_content, _mcp_text(result)


async def _mcp_db(url: str) -> Database:
    db = await Database(url, passphrase=PASS).connect()
    res = await db.create_resource("u", attributes=MCP_ATTRS)
    await res.insert(
        {
            "id": "a",
            "name": "ann",
            "pw": SECRET,
            "hash": SECRET,
            "creds": {"api": SECRET, "user": "ann-user"},
            "keys": [SECRET],
        }
    )
    return db


async def test_mcp_masks_secrets_and_password_hashes_by_default(tmp_path: Any) -> None:
    from s3db_async.cli.mcp import build_server

    db = await _mcp_db(f"file://{tmp_path / 'db'}")
    try:
        server = build_server(db, allow_writes=True)
        texts: list[str] = []
        err, got, text = await _mcp_call(server, "get", resource="u", id="a")
        assert not err and got["pw"] == "***" and got["hash"] == "***" and got["keys"] == "***"
        assert got["creds"] == {"api": "***", "user": "ann-user"} and got["name"] == "ann"
        texts.append(text)
        err, found, text = await _mcp_call(server, "query", resource="u", filter={"name": "ann"})
        assert not err and found["records"][0]["creds"]["api"] == "***"
        texts.append(text)
        err, _, text = await _mcp_call(server, "query", resource="u", filter={"pw": {"$exists": 1}})
        assert not err
        for probe in (
            {"pw": SECRET},
            {"pw": {"$gte": "h"}},
            {"creds": {"api": {"$contains": "h"}}},
            {"$or": [{"name": "x"}, {"keys": {"$contains": SECRET}}]},
            {"hash": {"$eq": "x"}},
        ):
            err, _, text = await _mcp_call(server, "query", resource="u", filter=probe)
            assert err and "--reveal-secrets" in text, (probe, text)
            texts.append(text)
        err, _, text = await _mcp_call(server, "count", resource="u", by="pw")
        assert err and "ValidationError" in text
        texts.append(text)
        err, inserted, text = await _mcp_call(
            server, "insert", resource="u", data={"id": "b", "name": "bob", "pw": SECRET}
        )
        assert not err and inserted["pw"] == "***"
        texts.append(text)
        err, updated, text = await _mcp_call(
            server, "update", resource="u", id="b", changes={"hash": SECRET}
        )
        assert not err and updated["hash"] == "***" and updated["pw"] == "***"
        texts.append(text)
        for text in texts:
            assert SECRET not in text and "argon2" not in text, text
        assert (await db.resources["u"].get("b"))["pw"] == SECRET  # stored for real
    finally:
        await db.disconnect()


async def test_mcp_reveal_secrets_hands_them_over(tmp_path: Any) -> None:
    from s3db_async.cli.mcp import build_server

    db = await _mcp_db(f"file://{tmp_path / 'db'}")
    try:
        server = build_server(db, reveal_secrets=True)
        err, got, _ = await _mcp_call(server, "get", resource="u", id="a")
        assert not err and got["pw"] == SECRET and got["creds"]["api"] == SECRET
        assert got["hash"].startswith("$argon2id$")
        err, found, _ = await _mcp_call(server, "query", resource="u", filter={"pw": SECRET})
        assert not err and [r["id"] for r in found["records"]] == ["a"]
    finally:
        await db.disconnect()


async def test_cli_mcp_masks_unless_reveal_secrets(tmp_path: Any) -> None:
    import os
    import sys

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    url = f"file://{tmp_path / 'db'}"
    await (await _mcp_db(url)).disconnect()
    env = {**os.environ, "S3DB_PASSPHRASE": PASS}
    seen = {}
    for flags in ((), ("--reveal-secrets",)):
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "s3db_async", "--url", url, "mcp", *flags], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            result = await s.call_tool("get", {"resource": "u", "id": "a"})
            assert not result.is_error, _mcp_text(result)
            assert result.structured_content is not None
            seen[flags] = result.structured_content["pw"]
    assert seen == {(): "***", ("--reveal-secrets",): SECRET}
