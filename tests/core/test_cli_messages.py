"""CLI messages speak CLI (issue 15.7): hints, option placement, create-resource, help."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app
from s3db_async.errors import (
    MissingDependencyError,
    NotFoundError,
    SchemaError,
    ValidationError,
)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'db'}"

    async def setup() -> None:
        async with Database(url, passphrase="pw-1") as db:
            users = await db.create_resource(
                "users",
                attributes={
                    "name": "string|required|min:2",
                    "region": "string",
                    "profile": {"age": "integer|optional", "tags": "array|items:string"},
                    "token": "secret",
                },
                partitions={"by_region": {"fields": {"region": "string"}}},
                timestamps=True,
                behavior="body-only",
            )
            for i, region in enumerate(["eu", "us", "eu"]):
                await users.insert(
                    {
                        "id": f"u{i}",
                        "name": f"User{i}",
                        "region": region,
                        "profile": {"age": 20 + i, "tags": ["a", str(i)]},
                        "token": f"t{i}",
                    }
                )

    asyncio.run(setup())
    return url


def test_missing_passphrase_hint_names_the_flag_and_variable(url: str) -> None:
    code, _, err = run("--url", url, "get", "users", "u1", env={"S3DB_PASSPHRASE": ""})
    assert code == 1
    assert "--passphrase" in err and "S3DB_PASSPHRASE" in err
    assert "passphrase=" not in err and "Database" not in err
    assert err.count("S3DB_PASSPHRASE") == 1 and err.count("--passphrase") == 1  # one hint


def test_not_found_hint_names_a_command_not_a_method(url: str) -> None:
    code, _, err = run("--url", url, "--passphrase", "pw-1", "get", "users", "nope")
    assert code == 1 and "NotFoundError" in err
    assert "get_or_none" not in err and "s3db list users" in err


def test_duplicate_insert_hint_names_import_upsert(url: str) -> None:
    code, _, err = run(
        "--url", url, "--passphrase", "pw-1", "insert", "users", '{"id": "u1", "name": "Xy"}'
    )
    assert code == 1 and "AlreadyExistsError" in err
    assert "upsert()" not in err and "--upsert" in err


def test_wrong_passphrase_and_unknown_resource_hints_speak_cli(url: str) -> None:
    code, _, err = run("--url", url, "--passphrase", "wrong", "resources")
    assert code == 1 and "DecryptionError" in err
    assert "--passphrase or S3DB_PASSPHRASE" in err and "rotate it" not in err
    code, _, err = run("--url", url, "--passphrase", "pw-1", "count", "orders")
    assert code == 1 and "ResourceNotFoundError" in err
    assert "s3db create-resource NAME --schema FILE" in err and "existing: users" in err


def test_partition_value_without_partition_names_the_flag(url: str) -> None:
    code, _, err = run("--url", url, "count", "users", "--value", "region=eu")
    assert code == 1 and "--partition NAME" in err and "partition='" not in err


def test_passphrase_and_url_after_the_command(url: str) -> None:
    code, out, err = run("get", "users", "u1", "--url", url, "--passphrase", "pw-1")
    assert code == 0, err
    assert msgspec.json.decode(out)["token"] == "t1"
    code, out, err = run("list", "users", "--json", f"--url={url}", "--passphrase=pw-1")
    assert code == 0, err
    assert len(out.splitlines()) == 3
    code, out, _ = run("count", "users", "--by", "region", "--url", url)
    assert msgspec.json.decode(out) == {"eu": 2, "us": 1}


def test_a_validation_error_is_one_message_with_one_line_per_field(url: str) -> None:
    code, _, err = run("--url", url, "--passphrase", "pw-1", "insert", "users", '{"name": "A"}')
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ValidationError: 1 field failed validation")
    field_message = lines[1].split(": ", 1)[1]
    assert lines[1].startswith("  - name: ")
    assert field_message not in lines[0]  # not repeated in the suggestion slot
    assert len(lines) == 2


def test_missing_dependency_quick_fix_is_not_repeated(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3db_async.cli import commands as cli

    def fail(*args: object, **kwargs: object) -> None:
        raise MissingDependencyError(
            "mcp: missing dependencies detected!\n\nQuick fix: pip install 's3db-async[mcp]'",
            suggestion="pip install 's3db-async[mcp]'",
        )

    monkeypatch.setattr(cli, "_schema_options", fail)  # any code path inside _run
    schema = Path(url.removeprefix("file://")).parent / "s.json"
    schema.write_text('{"attributes": {}}')
    code, _, err = run("--url", url, "create-resource", "x", "--schema", str(schema))
    assert code == 1
    assert err.count("pip install 's3db-async[mcp]'") == 1


def test_cli_suggestion_keeps_library_messages_unchanged() -> None:
    from s3db_async.cli import cli_suggestion

    exc = NotFoundError(
        "users record 'x' not found",
        suggestion="check the id, or use get_or_none()",
        metadata={"resource": "users"},
    )
    assert cli_suggestion(exc) == "check the id ('s3db list users' shows records)"
    assert exc.suggestion == "check the id, or use get_or_none()"
    other = SchemaError("x", suggestion="pass Database(url, passphrase=...) or S3DB_PASSPHRASE")
    assert cli_suggestion(other) == "pass --passphrase or set S3DB_PASSPHRASE"
    plain = ValidationError("bad", suggestion="use one of: a, b")
    assert cli_suggestion(plain) == "use one of: a, b"


def test_schema_json_create_resource_import_restores_a_database(url: str, tmp_path: Path) -> None:
    src = ("--url", url, "--passphrase", "pw-1")
    code, schema_json, err = run(*src, "schema", "users", "--json")
    assert code == 0, err
    code, export, err = run(*src, "export", "users")
    assert code == 0, err
    (tmp_path / "users.schema.json").write_text(schema_json)
    (tmp_path / "users.ndjson").write_text(export)

    new_url = f"file://{tmp_path / 'restored'}"
    dst = ("--url", new_url, "--passphrase", "pw-2")
    code, _, err = run(*dst, "init")
    assert code == 0, err
    code, _, err = run(
        *dst, "create-resource", "users", "--schema", str(tmp_path / "users.schema.json")
    )
    assert code == 0, err
    code, _, err = run(*dst, "import", "users", str(tmp_path / "users.ndjson"))
    assert code == 0, err

    code, restored_schema, _ = run(*dst, "schema", "users", "--json")
    old, new = msgspec.json.decode(schema_json), msgspec.json.decode(restored_schema)
    assert new == old

    def records(args: tuple[str, ...]) -> dict[str, dict[str, object]]:
        lines = run(*args, "export", "users")[1].splitlines()
        rows = [msgspec.json.decode(line) for line in lines]
        return {r["id"]: {k: v for k, v in r.items() if k != "updated_at"} for r in rows}

    before, after = records(src), records(dst)
    assert set(after) == {"u0", "u1", "u2"}
    for rid, row in before.items():
        assert {k: v for k, v in after[rid].items() if k != "created_at"} == {
            k: v for k, v in row.items() if k != "created_at"
        }
    assert (
        run(*dst, "count", "users", "--partition", "by_region", "--value", "region=eu")[1].strip()
        == "2"
    )


def test_create_resource_refuses_a_file_that_is_not_a_definition(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'db'}"
    bad = tmp_path / "bad.json"
    bad.write_text('{"attributes": {"name": "string"}, "colour": "red"}')
    code, _, err = run("--url", url, "create-resource", "x", "--schema", str(bad))
    assert code == 1 and "'colour'" in err and "s3db schema NAME --json" in err
    bad.write_text('["not", "an", "object"]')
    code, _, err = run("--url", url, "create-resource", "x", "--schema", str(bad))
    assert code == 1 and "attributes" in err


def test_count_help_says_when_by_reads_every_record() -> None:
    code, out, _ = run("count", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "reads every record" in text and "LIST only" in text
