"""``s3db backup`` / ``s3db backups`` / ``s3db restore`` (issue 19): a backup taken from the
command line restores into an empty database with the same records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout, result.stderr


async def _fill(url: str) -> None:
    async with Database(url) as db:
        notes = await db.create_resource("notes", attributes={"text": "string"})
        await notes.insert_many([{"id": f"n{i}", "text": f"t{i}"} for i in range(30)])


async def _check(url: str) -> None:
    async with Database(url) as db:
        assert await db.get_resource("notes").count() == 30
        assert (await db.get_resource("notes").get("n7"))["text"] == "t7"


def test_cli_backup_and_restore_round_trip(tmp_path: Path) -> None:
    src_url, dst_url = f"file://{tmp_path / 'src'}", f"file://{tmp_path / 'dst'}"
    folder = str(tmp_path / "backups")
    asyncio.run(_fill(src_url))

    code, out, err = run(src_url, "backup", "--to", folder, "--key", "cli passphrase")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["resources"] == {"notes": 30} and manifest["encrypted"] is True

    code, out, err = run(
        src_url, "backups", "--from", folder, "--key", "cli passphrase", "--verify"
    )
    assert code == 0, err
    assert manifest["id"] in out and "ok" in out

    code, out, err = run(dst_url, "restore", manifest["id"], "--from", folder)
    assert code != 0 and "encryption_key" in err  # encrypted: the key is required

    code, out, err = run(
        dst_url, "restore", manifest["id"], "--from", folder, "--key", "cli passphrase"
    )
    assert code == 0, err
    assert json.loads(out)["written"] == 30
    asyncio.run(_check(dst_url))
