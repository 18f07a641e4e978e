"""The plugin test kit of ``s3db_async.testing`` (issue 18.6), run the way a third-party plugin
author runs it: a separate pytest session on a project of its own, with ``-p
s3db_async.testing``. Each run checks which stores the tests really ran on, so a store that
was skipped, or silently replaced by another, fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from s3db_async.errors import ConfigError
from s3db_async.testing import STORE_KINDS, selected_stores, store_url_for

THIRD_PARTY_TESTS = '''
import json
import os

import pytest

from s3db_async import Database, Plugin


class NotesPlugin(Plugin):
    """A third-party plugin: one plugin resource, one resource method."""

    async def on_install(self) -> None:
        self.notes = await self.create_plugin_resource("notes", attributes={"text": "string"})


def record(**row):
    with open(os.environ["KIT_LOG"], "a") as f:
        f.write(json.dumps(row) + "\\n")


async def test_plugin_on_every_store(s3db_store_kind, s3db_store_db, request):
    plugin = await s3db_store_db.use_plugin(NotesPlugin())
    await plugin.notes.insert({"id": "n1", "text": "hello"})
    assert [r["text"] for r in await plugin.notes.list()] == ["hello"]
    await s3db_store_db.uninstall_plugin(plugin, purge_data=True)
    assert not s3db_store_db.resource_exists("plg_notes_notes")
    endpoint = None
    if s3db_store_kind in ("moto", "seaweedfs"):
        server = request.getfixturevalue(f"s3db_{s3db_store_kind}_server")
        assert server.name == s3db_store_kind
        endpoint = server.endpoint
    record(
        test="every",
        kind=s3db_store_kind,
        store=type(s3db_store_db.store).__name__,
        url=s3db_store_db.url,
        endpoint=endpoint,
    )


@pytest.mark.s3db_stores("file", "seaweedfs")
async def test_narrowed(s3db_store_kind, s3db_store_url):
    async with Database(s3db_store_url) as db:
        await db.create_resource("things", attributes={"n": "number"})
    record(test="narrowed", kind=s3db_store_kind)
'''


PYTEST_ARGS = ("-p", "no:cacheprovider", "-rA", "-q")
LOAD = ("-p", "s3db_async.testing")


def run_suite(
    tmp_path: Path, env: dict[str, str], *extra: str, load: tuple[str, ...] = LOAD
) -> tuple[int, str, list[Any]]:
    project = tmp_path / "third_party"
    project.mkdir(exist_ok=True)
    (project / "test_notes.py").write_text(THIRD_PARTY_TESTS)
    (project / "pytest.ini").write_text(
        textwrap.dedent(
            """\
            [pytest]
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            addopts = --strict-markers
            """
        )
    )
    log = tmp_path / "kit.log"
    log.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *load, *PYTEST_ARGS, *extra],
        cwd=project,
        env={**os.environ, **env, "KIT_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return proc.returncode, proc.stdout + proc.stderr, rows


@pytest.mark.slow
def test_a_third_party_suite_runs_on_every_store(tmp_path: Path) -> None:
    code, out, rows = run_suite(tmp_path, {"S3DB_TEST_STORES": ",".join(STORE_KINDS)})
    assert code == 0, out
    assert "6 passed" in out and "skipped" not in out, out
    every = {r["kind"]: r for r in rows if r["test"] == "every"}
    assert sorted(every) == sorted(STORE_KINDS)
    assert every["memory"]["store"] == "MemoryStore"
    assert every["file"]["store"] == "FileStore"
    assert every["moto"]["store"] == every["seaweedfs"]["store"] == "S3Store"
    assert every["moto"]["endpoint"] != every["seaweedfs"]["endpoint"]
    for kind in ("moto", "seaweedfs"):  # the database really talks to that server
        port = every[kind]["endpoint"].rsplit(":", 1)[1]
        assert f":{port}/" in every[kind]["url"], every[kind]
    assert sorted(r["kind"] for r in rows if r["test"] == "narrowed") == ["file", "seaweedfs"]


def test_the_selection_narrows_the_matrix(tmp_path: Path) -> None:
    code, out, rows = run_suite(tmp_path, {"S3DB_TEST_STORES": "memory, file"})
    assert code == 0, out
    assert sorted(r["kind"] for r in rows if r["test"] == "every") == ["file", "memory"]
    assert [r["kind"] for r in rows if r["test"] == "narrowed"] == ["file"]
    assert "test_plugin_on_every_store[memory]" in out and "[moto]" not in out


def test_the_conftest_line_loads_the_kit_without_autoload(tmp_path: Path) -> None:
    project = tmp_path / "third_party"
    project.mkdir()
    (project / "conftest.py").write_text(
        'pytest_plugins = ["pytest_asyncio.plugin", "s3db_async.testing"]\n'
    )
    env = {"S3DB_TEST_STORES": "memory,file", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    code, out, rows = run_suite(tmp_path, env, load=())
    assert code == 0, out
    assert "3 passed" in out
    assert sorted(r["kind"] for r in rows) == ["file", "file", "memory"]


def test_a_server_that_cannot_start_fails_the_test(tmp_path: Path) -> None:
    code, out, rows = run_suite(
        tmp_path,
        {"S3DB_TEST_STORES": "seaweedfs", "S3DB_WEED": str(tmp_path / "no-such-weed")},
        "-k",
        "every",
    )
    assert code == 1, out
    assert "ServerStartError" in out and "S3DB_WEED" in out
    assert "1 error" in out and "skipped" not in out and "passed" not in out, out
    assert rows == []


def test_an_unknown_store_is_a_usage_error(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, {"S3DB_TEST_STORES": "memory,dynamo"})
    assert code == 4, out  # pytest's usage error
    assert "dynamo" in out


def test_store_helpers() -> None:
    assert selected_stores({}) == list(STORE_KINDS)
    assert selected_stores({"S3DB_TEST_STORES": "file,memory,file"}) == ["file", "memory"]
    with pytest.raises(ConfigError) as info:
        selected_stores({"S3DB_TEST_STORES": "mongo"})
    assert info.value.suggestion
    assert store_url_for("memory").startswith("memory://")
    assert store_url_for("memory") != store_url_for("memory")
    assert store_url_for("file", folder="/tmp/x") == "file:///tmp/x"
    for kind, kwargs in (("file", {}), ("moto", {}), ("dynamo", {})):
        with pytest.raises(ConfigError):
            store_url_for(kind, **kwargs)
