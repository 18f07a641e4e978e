"""FileStore stays inside its directory (issue 16.6) and only opens s3db stores (16.7, 15.4)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app
from s3db_async.errors import ConfigError, NotFoundError, S3dbError, StoreError
from s3db_async.stores import FileStore

# -- symbolic links under the root (16.6) ------------------------------------------------------


def _files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
async def linked(tmp_path: Path) -> tuple[FileStore, Path]:
    """A store whose ``resource=t/data/id=evil`` is a link to a directory outside it."""
    outside = tmp_path / "outside"
    other = FileStore(f"file://{outside}", fsync=False)  # a real object out there
    await other.put("x", b"secret", {"k": "v"})
    store = FileStore(f"file://{tmp_path / 'root'}", fsync=False)
    await store.connect()
    await store.put("resource=t/data/id=ok", b"1")
    os.symlink(outside, tmp_path / "root" / "resource=t" / "data" / "id=evil")
    return store, outside


def _is_link_error(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.metadata.get("reason") == "symlink"


async def test_write_through_a_linked_directory_is_refused(
    linked: tuple[FileStore, Path],
) -> None:
    store, outside = linked
    before = _files(outside)
    for write in (
        store.put("resource=t/data/id=evil/x", b"pwned"),
        store.put("resource=t/data/id=evil/new", b"pwned"),
        store.put("resource=t/data/id=evil/deep/er", b"pwned"),
        store.put("resource=t/data/id=evil/y", b"pwned", if_none_match=True),
        store.copy("resource=t/data/id=ok", "resource=t/data/id=evil/copy"),
        store.delete("resource=t/data/id=evil/x"),
        store.delete_many(["resource=t/data/id=evil/x"]),
    ):
        with pytest.raises(StoreError) as info:
            await write
        assert _is_link_error(info.value), info.value
        assert "symbolic link" in info.value.message
    assert _files(outside) == before
    assert (outside / "x~o").read_bytes().endswith(b"secret")


async def test_read_through_a_linked_directory_is_refused(
    linked: tuple[FileStore, Path],
) -> None:
    store, _ = linked
    for read in (
        store.get("resource=t/data/id=evil/x"),
        store.head("resource=t/data/id=evil/x"),
        store.copy("resource=t/data/id=evil/x", "resource=t/data/id=copy"),
        store.list_keys("resource=t/data/id=evil/"),
    ):
        with pytest.raises(StoreError) as info:
            await read
        assert _is_link_error(info.value), info.value
    assert await store.list_keys("resource=t/") == ["resource=t/data/id=ok"]
    assert (await store.get("resource=t/data/id=ok")).body == b"1"


async def test_a_linked_directory_higher_up_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = FileStore(f"file://{tmp_path / 'root'}", fsync=False)
    await store.connect()
    os.symlink(outside, tmp_path / "root" / "resource=t")
    with pytest.raises(StoreError) as info:
        await store.put("resource=t/data/id=1", b"1")
    assert _is_link_error(info.value)
    with pytest.raises(StoreError):
        await store.get("resource=t/data/id=1")
    assert _files(outside) == []


async def test_a_linked_internal_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "~s3db")
    with pytest.raises(StoreError) as info:
        await FileStore(f"file://{root}").connect()
    assert _is_link_error(info.value)
    assert _files(outside) == []


async def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    async with FileStore(f"file://{tmp_path / 'alias'}", fsync=False) as store:
        await store.put("a/b", b"1")
        assert (await store.get("a/b")).body == b"1"
        assert await store.list_keys("a/") == ["a/b"]
        await store.delete("a/b")
    assert (real / "~s3db").is_dir()


# -- which directories connect opens (16.7) ----------------------------------------------------


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A directory with someone else's files in it."""
    path = tmp_path / "home"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "sub").mkdir()
    return path


async def test_connect_refuses_a_foreign_directory(foreign: Path) -> None:
    before = _files(foreign)
    with pytest.raises(ConfigError) as info:
        await FileStore(f"file://{foreign}").connect()
    assert info.value.metadata["reason"] == "not an s3db store"
    assert "create=True" in (info.value.suggestion or "")
    assert "s3db" in (info.value.suggestion or "") and "init" in (info.value.suggestion or "")
    with pytest.raises(ConfigError):
        await Database(f"file://{foreign}").connect()
    assert _files(foreign) == before  # neither s3db.json~o nor ~s3db/


async def test_create_true_is_the_explicit_way_into_a_foreign_directory(foreign: Path) -> None:
    async with Database(f"file://{foreign}", create=True) as db:
        await db.create_resource("t", attributes={"n": "integer"})
    async with Database(f"file://{foreign}") as db:  # now it is a store
        assert db.list_resources() == ["t"]
    assert (foreign / "notes.txt").read_text() == "mine"


async def test_missing_and_empty_directories_become_stores(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("missing/deeper", "empty"):
        async with Database(f"file://{tmp_path / name}") as db:
            await db.create_resource("t", attributes={"n": "integer"})
        async with Database(f"file://{tmp_path / name}", create=False) as db:
            assert db.list_resources() == ["t"]


async def test_create_false_opens_only_an_existing_database(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("missing", "empty"):
        with pytest.raises(NotFoundError) as info:
            await Database(f"file://{tmp_path / name}", create=False).connect()
        assert "init" in (info.value.suggestion or "")
    assert not (tmp_path / "missing").exists()
    assert _files(tmp_path / "empty") == []
    async with FileStore(f"file://{tmp_path / 'bare'}") as store:  # a store, no database
        await store.put("k", b"1")
    with pytest.raises(NotFoundError):
        await Database(f"file://{tmp_path / 'bare'}", create=False).connect()
    assert not (tmp_path / "bare" / "s3db.json~o").exists()


async def test_create_false_needs_s3db_json_on_every_store() -> None:
    with pytest.raises(NotFoundError):
        await Database("memory://hardening-none/app", create=False).connect()
    async with Database("memory://hardening-none/app"):
        pass
    async with Database("memory://hardening-none/app", create=False) as db:
        assert db.list_resources() == []


@pytest.mark.parametrize("create", [None, True, False])
async def test_proc_self_is_a_typed_error(create: bool | None) -> None:
    if not os.path.isdir("/proc/self"):
        if os.environ.get("CI") == "true":  # CI runs on Linux: /proc must be there
            pytest.fail("no /proc/self on this machine")
        pytest.skip("no /proc (not Linux)")
    with pytest.raises(S3dbError):
        await Database("file:///proc/self", create=create).connect()


async def test_a_file_in_place_of_the_root_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for create in (None, True, False):
        with pytest.raises(S3dbError):
            await FileStore(f"file://{tmp_path / 'file'}", create=create).connect()


# -- the CLI (15.4) ------------------------------------------------------------------------


def _cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout + result.stderr


def test_cli_reads_refuse_a_missing_database(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'nothing'}"
    for args in (["resources"], ["list", "users"], ["count", "users"], ["stats"]):
        code, text = _cli(url, *args)
        assert code == 1, text
        assert "NotFoundError" in text and "init" in text
    assert not (tmp_path / "nothing").exists()


def test_cli_init_creates_the_database(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'fresh'}"
    code, text = _cli(url, "init")
    assert code == 0, text
    assert (tmp_path / "fresh" / "s3db.json~o").is_file()
    code, text = _cli(url, "resources")
    assert code == 0, text


def test_cli_refuses_a_file_url_with_a_host() -> None:
    code, text = _cli("file://tmp/x", "resources")
    assert code == 1
    assert "file://./tmp/x" in text and "file:///tmp/x" in text


async def test_concurrent_first_connects_all_succeed(tmp_path: Path) -> None:
    """Writers racing to open one fresh directory never see each other's files as foreign."""
    for round_ in range(15):
        url = f"file://{tmp_path / f'race{round_}'}"
        dbs = [Database(url) for _ in range(8)]
        results = await asyncio.gather(*(db.connect() for db in dbs), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        for db in dbs:
            await db.disconnect()
