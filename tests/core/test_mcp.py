"""``s3db mcp``: a real subprocess spoken to by the ``mcp`` SDK's own stdio client."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app

READ_TOOLS = {"list_resources", "get_schema", "get", "query", "count"}
WRITE_TOOLS = {"insert", "update", "delete"}


@pytest.fixture
async def url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'db'}"
    async with Database(url) as db:
        users = await db.create_resource(
            "users",
            attributes={
                "name": "string|required|min:2",
                "region": "string",
                "age": "integer",
                "born": "date",
            },
            partitions={"by_region": {"fields": {"region": "string"}}},
        )
        for i, region in enumerate(["eu", "us", "eu"]):
            await users.insert(
                {"id": f"u{i}", "name": f"User{i}", "region": region, "age": 30 + i}
                | ({"born": "1990-05-17"} if i == 0 else {})
            )
    return url


@asynccontextmanager
async def session(url: str, *flags: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "s3db_async", "--url", url, "mcp", *flags],
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


async def call(s: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    result = await s.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    return result


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data(result: CallToolResult) -> Any:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert json.loads(text(result)) == result.structured_content
    return result.structured_content


async def test_read_only_server_lists_queries_counts_and_gets(url: str) -> None:
    async with session(url) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == READ_TOOLS
        assert tools["query"].annotations is not None
        assert tools["query"].annotations.read_only_hint is True
        assert "filter" in tools["query"].input_schema["properties"]

        listed = data(await call(s, "list_resources"))
        assert listed["resources"][0]["name"] == "users"
        assert listed["resources"][0]["partitions"] == {"by_region": ["region"]}

        schema = data(await call(s, "get_schema", resource="users"))
        assert schema["version"] == "v1"
        assert schema["json_schema"]["properties"]["name"]["type"] == "string"
        assert "name" in schema["json_schema"]["required"]

        found = data(await call(s, "query", resource="users", filter={"region": "eu"}))
        assert [r["id"] for r in found["records"]] == ["u0", "u2"]
        assert found["partition"] == "by_region" and found["truncated"] is False
        assert found["records"][0]["born"] == "1990-05-17"  # dates come back as ISO text

        page = data(await call(s, "query", resource="users", filter={}, limit=2))
        assert page["count"] == 2 and page["truncated"] is True
        everything = data(await call(s, "query", resource="users", limit=None))
        assert everything["count"] == 3

        assert data(await call(s, "count", resource="users")) == {"count": 3}
        assert data(
            await call(
                s,
                "count",
                resource="users",
                partition="by_region",
                partition_values={"region": "eu"},
            )
        ) == {"count": 2}
        by = data(await call(s, "count", resource="users", by="region"))
        assert by == {"by": "region", "groups": {"eu": 2, "us": 1}}
        by_age = data(await call(s, "count", resource="users", by="age"))
        assert by_age["groups"] == {"30": 1, "31": 1, "32": 1}

        record = data(await call(s, "get", resource="users", id="u1"))
        assert record == {"id": "u1", "name": "User1", "region": "us", "age": 31}

        # errors: our message and suggestion, as tool errors, never a traceback
        missing = await call(s, "get", resource="users", id="nope")
        assert missing.is_error and "NotFoundError" in text(missing)
        assert "Traceback" not in text(missing)
        ghost = await call(s, "query", resource="ghosts")
        assert ghost.is_error and "ResourceNotFoundError" in text(ghost)
        assert "existing: users" in text(ghost)  # the suggestion
        bad = await call(s, "query", resource="users", filter={"age": {"$nope": 1}})
        assert bad.is_error and "Traceback" not in text(bad)
        negative = await call(s, "query", resource="users", limit=-1)
        assert negative.is_error and "limit must be >= 0" in text(negative)
        wrong = await call(s, "count", resource="users", partition="by_planet")
        assert wrong.is_error and "by_planet" in text(wrong) and "by_region" in text(wrong)

        # write tools are not there at all without --allow-writes
        refused = await call(s, "insert", resource="users", data={"name": "Zed"})
        assert refused.is_error and "insert" in text(refused)
    async with Database(url) as db:
        assert await db.get_resource("users").count() == 3


async def test_allow_writes_adds_insert_update_delete(url: str) -> None:
    async with session(url, "--allow-writes") as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == READ_TOOLS | WRITE_TOOLS
        annotations = tools["delete"].annotations
        assert annotations is not None and annotations.destructive_hint is True

        inserted = data(
            await call(s, "insert", resource="users", data={"id": "new", "name": "Nia"})
        )
        assert inserted == {"id": "new", "name": "Nia"}
        invalid = await call(s, "insert", resource="users", data={"name": "N", "age": "old"})
        assert invalid.is_error
        message = text(invalid)
        assert "ValidationError" in message and "name" in message and "age" in message

        updated = data(
            await call(s, "update", resource="users", id="new", changes={"region": "eu"})
        )
        assert updated["region"] == "eu"
        found = data(await call(s, "query", resource="users", filter={"region": "eu"}))
        assert "new" in [r["id"] for r in found["records"]]

        assert data(await call(s, "delete", resource="users", id="u1"))["deleted"] is True
        again = await call(s, "delete", resource="users", id="u1")
        assert again.is_error and "NotFoundError" in text(again)
    async with Database(url) as db:
        users = db.get_resource("users")
        assert sorted(await users.list_ids()) == ["new", "u0", "u2"]
        assert (await users.get("new"))["region"] == "eu"


def test_missing_mcp_package_names_the_extra(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "mcp" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(app, ["--url", url, "mcp"])
    assert result.exit_code == 1
    assert "MissingDependencyError" in result.stderr
    assert "pip install 's3db-async[mcp]'" in result.stderr
    assert "Traceback" not in result.stderr
