"""ImporterPlugin (issue 19): JSON, NDJSON, CSV/TSV, Parquet and Excel streamed into a
resource; mapping, transforms, per-row validation with an error report (bad rows never block
good rows), dedup, duplicates by id, a resumable checkpoint (a crash mid-import is resumed
without duplicates), events.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from s3db_async.plugins import ImporterPlugin
from s3db_async.plugins.importer import read_rows

from s3db_async import Database, Resource
from s3db_async.errors import ConfigError, MissingDependencyError, ValidationError

Opener = Callable[..., Awaitable[tuple[Database, ImporterPlugin, Resource]]]


@pytest.fixture
async def open_db(store_url: str) -> AsyncIterator[Opener]:
    opened: list[Database] = []

    async def make(**options: Any) -> tuple[Database, ImporterPlugin, Resource]:
        db = Database(store_url)
        await db.connect()
        opened.append(db)
        plugin = ImporterPlugin(**options)
        await db.use_plugin(plugin)
        if db.resource_exists("users"):
            res = db.get_resource("users")
        else:
            res = await db.create_resource(
                "users",
                attributes={
                    "name": "string|required",
                    "email": "string|optional",
                    "age": "integer|optional",
                    "active": "boolean|optional",
                },
            )
        return db, plugin, res

    yield make
    for db in opened:
        if db.is_connected:
            await db.disconnect()


def people(n: int) -> list[dict[str, Any]]:
    return [{"name": f"p{i}", "email": f"p{i}@x.io", "age": 20 + i % 50} for i in range(n)]


async def names(res: Resource) -> set[str]:
    return {r["name"] for r in await res.list()}


async def test_csv_with_mapping_transform_and_types(open_db: Opener, tmp_path: Path) -> None:
    _, imp, res = await open_db()
    f = tmp_path / "u.csv"
    f.write_text("Full Name,E-mail,age,active,junk\nAda,ADA@X.IO,36,true,z\nBob,bob@x.io,,no,z\n")
    report = await imp.import_file(
        f,
        resource="users",
        mapping={"Full Name": "name", "E-mail": "email", "junk": None},
        transforms={"email": str.lower},
        id_field="email",
    )
    assert (report.rows, report.inserted, report.failed, report.done) == (2, 2, 0, True)
    ada = await res.get("ada@x.io")
    assert (ada["name"], ada["age"], ada["active"], ada["email"]) == ("Ada", 36, True, "ada@x.io")
    bob = await res.get("bob@x.io")
    assert bob.get("age") is None and bob["active"] is False and "junk" not in bob


async def test_tsv_ndjson_and_json_array(open_db: Opener, tmp_path: Path) -> None:
    _, imp, res = await open_db()
    (tmp_path / "a.tsv").write_text("name\tage\nt1\t1\nt2\t2\n")
    (tmp_path / "b.ndjson").write_text('{"name": "n1"}\n\n{"name": "n2", "age": 3}\n')
    rows = [{"name": f"j{i}", "age": i} for i in range(300)]
    (tmp_path / "c.json").write_text(json.dumps(rows, indent=1))
    for name in ("a.tsv", "b.ndjson", "c.json"):
        report = await imp.import_file(tmp_path / name, resource=res, batch_size=64)
        assert report.failed == 0, report.errors
    got = await names(res)
    assert {"t1", "t2", "n1", "n2"} <= got and {f"j{i}" for i in range(300)} <= got
    assert await res.count() == 304


def test_json_array_streams_across_chunks(tmp_path: Path) -> None:
    big = [{"name": "x" * 5000, "i": i, "nested": {"a": [1, 2, {"b": "]},"}]}} for i in range(60)]
    f = tmp_path / "big.json"
    f.write_text(json.dumps(big))  # 300 KB: several 64 KB chunks, elements split across them
    assert list(read_rows(f)) == big
    (tmp_path / "nums.json").write_text("[" + " " * 65530 + "123456, 7]")
    assert list(read_rows(tmp_path / "nums.json")) == [123456, 7]
    (tmp_path / "one.json").write_text('{"name": "solo"}')
    assert list(read_rows(tmp_path / "one.json")) == [{"name": "solo"}]
    (tmp_path / "bad.json").write_text('[{"name": "a"}, {"name": ')
    with pytest.raises(ValidationError) as exc:
        list(read_rows(tmp_path / "bad.json"))
    assert exc.value.metadata["field"] == "file" and exc.value.suggestion


async def test_bad_rows_never_block_good_rows(open_db: Opener, tmp_path: Path) -> None:
    _, imp, res = await open_db()
    f = tmp_path / "mixed.ndjson"
    lines = [
        '{"name": "good1", "age": 1}',
        "{not json",
        '{"age": 5}',  # missing required name: the schema rejects it
        "[1, 2]",  # not an object
        '{"name": "bad-age", "age": "old"}',
        '{"name": "veto", "age": 99}',  # the validate callback rejects it
        '{"name": "good2", "age": 2}',
    ]
    f.write_text("\n".join(lines) + "\n")
    errors_file = tmp_path / "errors.ndjson"
    failed: list[dict[str, Any]] = []
    imp.on("import.row_failed", failed.append)
    report = await imp.import_file(
        f,
        resource="users",
        validate=lambda row: "age over 90" if row.get("age") == 99 else None,
        error_file=errors_file,
        batch_size=2,
    )
    assert (report.rows, report.inserted, report.failed) == (7, 2, 5)
    assert await names(res) == {"good1", "good2"}
    by_row = {e.row: e for e in report.errors}
    assert sorted(by_row) == [2, 3, 4, 5, 6]
    assert "JSON" in by_row[2].reason
    assert by_row[3].field == "name"
    assert by_row[5].field == "age"
    assert by_row[6].reason == "age over 90"
    assert sorted(json.loads(x)["row"] for x in errors_file.read_text().splitlines()) == [
        2,
        3,
        4,
        5,
        6,
    ]
    assert len(failed) == 5


async def test_dedup_key_and_duplicates_by_id(open_db: Opener) -> None:
    _, imp, res = await open_db()
    rows = [
        {"name": "a", "email": "a@x"},
        {"name": "a2", "email": "a@x"},
        {"name": "b", "email": "b@x"},
    ]
    report = await imp.import_rows(rows, resource="users", dedup_key="email")
    assert (report.inserted, report.duplicates) == (2, 1)
    assert await names(res) == {"a", "b"}

    again = [{"name": "A", "email": "a@x"}, {"name": "c", "email": "c@x"}]
    skip = await imp.import_rows(again, resource="users", id_field="email")
    assert (skip.inserted, skip.skipped) == (2, 0)  # the first import used generated ids
    skip = await imp.import_rows(again, resource="users", id_field="email")
    assert (skip.inserted, skip.skipped) == (0, 2)
    err = await imp.import_rows(again, resource="users", id_field="email", on_duplicate="error")
    assert err.failed == 2 and err.errors[0].field == "id"
    upd = await imp.import_rows(
        [{"name": "A!", "email": "a@x"}, {"name": "d", "email": "d@x"}],
        resource="users",
        id_field="email",
        on_duplicate="update",
    )
    assert (upd.updated, upd.inserted) == (1, 1)
    assert (await res.get("a@x"))["name"] == "A!"


async def test_row_transform_skips_and_async_iterable(open_db: Opener) -> None:
    _, imp, res = await open_db()

    async def source() -> AsyncIterator[dict[str, Any]]:
        for i in range(10):
            yield {"name": f"r{i}", "age": str(i)}

    report = await imp.import_rows(
        source(),
        resource="users",
        transforms={"age": int, "*": lambda row: row if row["age"] % 2 == 0 else None},
        batch_size=3,
    )
    assert (report.rows, report.inserted, report.skipped, report.batches) == (10, 5, 5, 4)
    assert await names(res) == {f"r{i}" for i in range(0, 10, 2)}
    boom = await imp.import_rows(
        [{"name": "z", "age": "x"}], resource="users", transforms={"age": int}
    )
    assert boom.failed == 1 and boom.errors[0].field == "age"


class Crash(Exception):
    pass


async def test_resume_after_crash_writes_each_row_once(open_db: Opener) -> None:
    _, imp, _ = await open_db()
    rows = people(50)

    def crashing() -> Any:
        for i, row in enumerate(rows):
            if i == 27:  # dies while reading batch 3 (rows 21-30), batches 1-2 committed
                raise Crash
            yield row

    with pytest.raises(Crash):
        await imp.import_rows(crashing(), resource="users", job_id="nightly", batch_size=10)
    saved = await imp.checkpoint("nightly")
    assert saved is not None and saved["rows"] == 20 and not saved["done"]

    # a new process (database) resumes from the checkpoint
    _, imp2, res2 = await open_db()
    batches: list[dict[str, Any]] = []
    imp2.on("import.batch", batches.append)
    report = await imp2.import_rows(rows, resource="users", job_id="nightly", batch_size=10)
    assert report.resumed_from == 20 and report.rows == 50 and report.inserted == 50
    assert len(batches) == 3
    assert await res2.count() == 50
    assert sorted(await res2.list_ids()) == sorted(f"nightly-{n}" for n in range(1, 51))
    # a finished job does nothing when run again
    done = await imp2.import_rows(rows, resource="users", job_id="nightly")
    assert done.done and done.rows == 50 and await res2.count() == 50
    await imp2.reset("nightly")
    assert await imp2.checkpoint("nightly") is None


async def test_crash_after_writes_before_checkpoint_is_harmless(open_db: Opener) -> None:
    """The batch in flight is written again on resume: deterministic ids make it a no-op."""
    _, imp, res = await open_db()
    rows = people(30)
    storage = imp.get_storage()
    real_update = storage.update
    calls = 0

    async def dying_update(key: str, fn: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # batch 2 written, its checkpoint lost
            raise Crash
        return await real_update(key, fn, **kw)

    storage.update = dying_update  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await imp.import_rows(rows, resource="users", job_id="j1", batch_size=10)
    storage.update = real_update  # type: ignore[method-assign]
    assert await res.count() == 20
    report = await imp.import_rows(rows, resource="users", job_id="j1", batch_size=10)
    # batch 2 was written by the crashed run (not counted there): now it is skipped
    assert (report.resumed_from, report.skipped, report.inserted, report.rows) == (10, 10, 20, 30)
    assert await res.count() == 30


async def test_events_and_bad_options(open_db: Opener, tmp_path: Path) -> None:
    db, imp, _ = await open_db()
    seen: list[str] = []
    db.on("import.started", lambda p: seen.append("started"))
    db.on("import.finished", lambda p: seen.append(f"finished {p['inserted']}"))
    await imp.import_rows(people(3), resource="users")
    assert seen == ["started", "finished 3"]
    with pytest.raises(ConfigError) as exc:
        ImporterPlugin(batch_size=0)
    assert exc.value.metadata["field"] == "batch_size" and exc.value.suggestion
    with pytest.raises(ConfigError):
        ImporterPlugin(on_duplicate="replace")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(ConfigError) as exc:
        await imp.import_file(tmp_path / "x.xml", resource="users")
    assert exc.value.metadata["field"] == "format"
    with pytest.raises(ConfigError):
        await imp.import_rows([], resource="users", job_id="no spaces")
    with pytest.raises(ConfigError):
        await imp.import_rows([], resource="users", transforms={"age": 3})


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_errors": -1}, "max_errors"),
        ({"max_errors": "10"}, "max_errors"),
        ({"preserve_timestamps": "yes"}, "preserve_timestamps"),
    ],
)
def test_bad_plugin_options_are_typed_errors(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ImporterPlugin(**options)
    assert exc.value.metadata["field"] == field and exc.value.suggestion


@pytest.mark.parametrize(
    ("options", "field"),
    [
        # 0 is a bad value, not "use the default" (it silently was)
        ({"batch_size": 0}, "batch_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"on_duplicate": ""}, "on_duplicate"),
        ({"mapping": ["name"]}, "mapping"),
        ({"mapping": {"Name": 1}}, "mapping"),
        ({"dedup_key": 5}, "dedup_key"),
        ({"dedup_key": []}, "dedup_key"),
        ({"validate": "strict"}, "validate"),
        ({"id_field": 3}, "id_field"),
        ({"preserve_timestamps": 1}, "preserve_timestamps"),
    ],
)
async def test_bad_call_options_are_typed_errors_and_write_nothing(
    open_db: Opener, options: dict[str, Any], field: str
) -> None:
    _, imp, users = await open_db()
    with pytest.raises(ConfigError) as exc:
        await imp.import_rows(people(2), resource="users", **options)
    assert exc.value.metadata["field"] == field and exc.value.suggestion
    assert await users.count() == 0


@pytest.mark.stores("memory")
async def test_max_errors_is_also_a_per_call_option(open_db: Opener) -> None:
    """The page: plugin options are defaults that every call takes by the same name."""
    _, imp, _ = await open_db(max_errors=100)
    rows = [{"age": i} for i in range(5)]  # no name: every row fails
    report = await imp.import_rows(rows, resource="users", max_errors=2)
    assert report.failed == 5 and [e.row for e in report.errors] == [1, 2]
    assert len((await imp.import_rows(rows, resource="users")).errors) == 5
    with pytest.raises(ConfigError) as exc:
        await imp.import_rows(rows, resource="users", max_errors=-1)
    assert exc.value.metadata["field"] == "max_errors"


async def test_a_row_transform_returning_a_non_row_fails_that_row_only(open_db: Opener) -> None:
    """Bad rows never block good rows: a ``"*"`` transform that returns neither a row nor
    None fails its row, and an unhashable dedup value (a json cell) still dedups."""
    db, imp, _ = await open_db()
    report = await imp.import_rows(
        people(4),
        resource="users",
        transforms={"*": lambda row: row if row["age"] % 2 == 0 else [row["name"]]},
    )
    assert (report.inserted, report.failed) == (2, 2)
    assert [e.row for e in report.errors] == [2, 4] and report.errors[0].field == "*"
    tags = await db.create_resource("tags", attributes={"t": "json"})
    report = await imp.import_rows(
        [{"t": [1, 2]}, {"t": [1, 2]}, {"t": {"a": 1}}], resource=tags, dedup_key="t"
    )
    assert (report.inserted, report.duplicates, report.failed) == (2, 1, 0)


@pytest.mark.stores("memory")
async def test_progress_bar_goes_to_stderr_not_stdout(
    open_db: Opener, capsys: pytest.CaptureFixture[str]
) -> None:
    _, imp, _ = await open_db()
    capsys.readouterr()
    report = await imp.import_rows(people(3), resource="users", progress=True)
    assert report.inserted == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "import users" in captured.err


def _optional(module: str) -> Any:
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


async def test_parquet_and_excel(open_db: Opener, tmp_path: Path) -> None:
    # the real readers (s3db.js ships stubs for both); never skipped under CI=true
    pa, pq, openpyxl = (_optional(m) for m in ("pyarrow", "pyarrow.parquet", "openpyxl"))
    _, imp, res = await open_db()
    table = pa.table({"name": [f"q{i}" for i in range(25)], "age": list(range(25))})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=7)
    report = await imp.import_file(tmp_path / "p.parquet", resource="users", batch_size=10)
    assert (report.rows, report.inserted) == (25, 25)

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "people"
    ws.append(["Name", "Age"])
    for i in range(5):
        ws.append([f"x{i}", i])
    ws.append([None, None])
    ws.append(["bad", "not a number"])
    book.save(tmp_path / "p.xlsx")
    report = await imp.import_file(
        tmp_path / "p.xlsx",
        resource="users",
        sheet="people",
        mapping={"Name": "name", "Age": "age"},
    )
    assert (report.rows, report.inserted, report.failed) == (6, 5, 1)
    assert {f"x{i}" for i in range(5)} | {f"q{i}" for i in range(25)} == await names(res)


async def test_missing_optional_dependency_names_the_extra(
    open_db: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    _, imp, _ = await open_db()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    with pytest.raises(MissingDependencyError) as exc:
        await imp.import_file(tmp_path / "p.parquet", resource="users")
    assert "s3db-async[importer]" in str(exc.value.suggestion) + str(exc.value)


async def test_two_runs_of_one_job_at_once_checkpoint_never_goes_back(open_db: Opener) -> None:
    _, imp, res = await open_db()
    _, imp2, _ = await open_db()
    rows = people(60)
    seen: list[int] = []

    async def watch() -> None:
        while True:
            saved = await imp.checkpoint("both")
            if saved:
                seen.append(int(saved["rows"]))
                if saved["done"]:
                    return
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    a, b = await asyncio.gather(
        imp.import_rows(rows, resource="users", job_id="both", batch_size=5),
        imp2.import_rows(list(rows), resource="users", job_id="both", batch_size=5),
    )
    await asyncio.wait_for(watcher, 30)
    assert seen == sorted(seen) and seen[-1] == 60
    assert await res.count() == 60
    assert (await imp.checkpoint("both") or {})["done"] is True
    assert a.done and b.done
