"""``s3db import`` runs the ImporterPlugin: formats, mapping, id field, duplicates, error file,
resumable job id (file store, in-process)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'db'}"

    async def setup() -> None:
        async with Database(url) as db:
            await db.create_resource(
                "users", attributes={"name": "string|required", "email": "string", "age": "integer"}
            )

    asyncio.run(setup())
    return url


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stderr


def ids(url: str) -> list[str]:
    async def go() -> list[str]:
        async with Database(url) as db:
            return sorted(await db.get_resource("users").list_ids())

    return asyncio.run(go())


def test_tsv_with_mapping_id_field_and_duplicates(url: str, tmp_path: Path) -> None:
    f = tmp_path / "u.tsv"
    f.write_text("Who\tmail\tage\nAda\ta@x\t36\nBob\tb@x\t\nNoName\t\t5\n")
    mapping = json.dumps({"Who": "name", "mail": "email"})
    errors = tmp_path / "errors.ndjson"
    args = ("import", "users", str(f), "--mapping", mapping, "--id-field", "email")
    code, err = run(url, *args, "--errors", str(errors))
    assert code == 1 and "imported 2 of 3 rows" in err and "row 3 (email)" in err, err
    assert ids(url) == ["a@x", "b@x"]
    assert json.loads(errors.read_text())["row"] == 3
    code, err = run(url, *args)  # existing ids are errors by default
    assert code == 1 and "imported 0 of 3" in err
    code, err = run(url, *args, "--skip-existing")
    assert "2 skipped" in err
    code, err = run(url, "import", "users", str(f), "--mapping", "[1]")
    assert code == 1 and "--mapping" in err


def test_job_id_resumes_and_finished_job_is_a_no_op(url: str, tmp_path: Path) -> None:
    f = tmp_path / "u.ndjson"
    f.write_text("".join(json.dumps({"name": f"n{i}", "age": i}) + "\n" for i in range(12)))
    code, err = run(url, "import", "users", str(f), "--job-id", "j", "--batch-size", "5")
    assert code == 0 and "imported 12 of 12" in err, err
    code, err = run(url, "import", "users", str(f), "--job-id", "j")
    assert code == 0 and "imported 12 of 12" in err
    assert ids(url) == sorted(f"j-{i}" for i in range(1, 13))
