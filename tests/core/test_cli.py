"""The ``s3db`` command line, run in-process on the embedded file store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'clidb'}"

    async def setup() -> None:
        async with Database(url) as db:
            users = await db.create_resource(
                "users",
                attributes={"name": "string|required", "region": "string", "age": "integer"},
                partitions={"by_region": {"fields": {"region": "string"}}},
            )
            for i, region in enumerate(["eu", "us", "eu"]):
                await users.insert({"id": f"u{i}", "name": f"User{i}", "region": region, "age": i})

    asyncio.run(setup())
    return url


def run(url: str, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_resources_schema_count(url: str) -> None:
    code, out, _ = run(url, "resources")
    assert code == 0 and "users" in out and "by_region" in out
    code, out, _ = run(url, "schema", "users")
    assert code == 0 and '"version": "v1"' in out
    assert run(url, "count", "users")[1].strip() == "3"
    code, out, _ = run(url, "count", "users", "--partition", "by_region", "--value", "region=eu")
    assert out.strip() == "2"
    assert msgspec.json.decode(run(url, "count", "users", "--by", "region")[1]) == {
        "eu": 2,
        "us": 1,
    }


def test_get_insert_delete_list_query(url: str) -> None:
    code, out, _ = run(url, "get", "users", "u1")
    assert code == 0 and msgspec.json.decode(out)["name"] == "User1"
    code, out, _ = run(url, "insert", "users", '{"id": "u9", "name": "Nine", "region": "us"}')
    assert code == 0 and msgspec.json.decode(out)["id"] == "u9"
    code, out, _ = run(url, "list", "users", "--json", "--limit", "2")
    assert [msgspec.json.decode(line)["id"] for line in out.splitlines()] == ["u0", "u1"]
    code, out, _ = run(url, "query", "users", '{"age": {"$gte": 1}, "region": "eu"}')
    assert [msgspec.json.decode(line)["id"] for line in out.splitlines()] == ["u2"]
    code, out, _ = run(url, "explain", "users", '{"region": "eu"}')
    assert '"partition": "by_region"' in out
    code, _, err = run(url, "delete", "users", "u9")
    assert code == 0 and "deleted" in err
    code, _, err = run(url, "delete", "users", "u9")
    assert code == 1 and "NotFoundError" in err and "Traceback" not in err


def test_export_import_roundtrip(url: str, tmp_path: Path) -> None:
    code, out, err = run(url, "export", "users")
    assert code == 0 and "exported 3" in err
    path = tmp_path / "users.ndjson"
    path.write_text(out)
    other = f"file://{tmp_path / 'other'}"

    async def make() -> None:
        async with Database(other) as db:
            await db.create_resource(
                "users",
                attributes={"name": "string|required", "region": "string", "age": "integer"},
            )

    asyncio.run(make())
    code, _, err = run(other, "import", "users", str(path))
    assert code == 0 and "imported 3 of 3" in err
    assert run(other, "count", "users")[1].strip() == "3"

    csv_path = tmp_path / "more.csv"
    csv_path.write_text("id,name,region,age\nc1,Csv One,eu,41\nc2,X,,\n")
    code, _, err = run(other, "import", "users", str(csv_path))
    assert code == 0, err
    assert run(other, "count", "users")[1].strip() == "5"
    assert msgspec.json.decode(run(other, "get", "users", "c1")[1])["age"] == 41
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,age\nb1,Bad,old\n")
    code, _, err = run(other, "import", "users", str(bad))
    assert code == 1 and "row 1" in err and "imported 0 of 1" in err


def test_errors_are_one_line(url: str) -> None:
    code, _, err = run(url, "get", "ghosts", "x")
    assert code == 1 and "ResourceNotFoundError" in err and "Traceback" not in err
    code, _, err = run(url, "insert", "users", "{not json")
    assert code == 1 and "not valid JSON" in err
    code, _, err = run(url, "insert", "users", '{"region": "eu"}')
    assert code == 1 and "ValidationError" in err and "name" in err
    code, _, err = run("ftp://nowhere", "resources")
    assert code == 1 and "ConnectionStringError" in err
    runner = CliRunner()
    result = runner.invoke(app, ["--url", url, "--debug", "get", "ghosts", "x"])
    assert result.exit_code == 1 and result.exception is not None
