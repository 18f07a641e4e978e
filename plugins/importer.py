"""ImporterPlugin: stream rows from JSON, NDJSON, CSV/TSV, Parquet or Excel into a resource.

::

    importer = ImporterPlugin()
    await db.use_plugin(importer)
    report = await importer.import_file(
        "users.csv", resource="users",
        mapping={"E-mail": "email"}, transforms={"age": int},
        id_field="email", job_id="users-2026-12",
    )
    print(report.inserted, report.failed, report.errors[:3])

How it works:

- **Streaming.** Files are read a batch at a time in a worker thread (``batch_size`` rows;
  a JSON array is decoded element by element), so memory stays flat whatever the file size.
  Parquet needs ``pyarrow`` and Excel ``openpyxl`` (``pip install 's3db-async[importer]'``).
- **Per row:** ``mapping`` renames columns (``None`` drops one), ``transforms`` convert
  fields (a callable per field, or ``"*"`` for the whole row; returning ``None`` from ``"*"``
  skips the row), ``validate`` checks the row, then the resource's schema validates it on
  write. A row that fails anywhere becomes a :class:`RowError` in the report and the import
  goes on: bad rows never block good rows.
- **Dedup.** ``dedup_key`` drops later rows whose key repeats within the import;
  ``id_field`` makes a field the record id, so a row whose record exists is skipped
  (``on_duplicate="skip"``), updated (``"update"``) or reported (``"error"``).
- **Resumable.** With a ``job_id`` the number of rows done is checkpointed in PluginStorage
  after each batch, by compare-and-swap (it never goes backwards). A run that dies is
  resumed by running the same call again: it skips the rows already done. The batch in
  flight at the crash is written again; that is harmless because a row without
  ``id_field`` gets the deterministic id ``{job_id}-{row number}`` (so it is skipped as a
  duplicate, not inserted twice).
- **Events:** ``import.started``, ``import.batch``, ``import.row_failed``, ``import.finished``.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import itertools
import json
import re
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from s3db_async import Resource
from s3db_async.errors import AlreadyExistsError, ConfigError, ValidationError
from s3db_async.plugin import Plugin, require_dependency

__all__ = ["FORMATS", "ImportReport", "ImporterPlugin", "RowError", "detect_format", "read_rows"]

FORMATS = ("json", "ndjson", "csv", "tsv", "parquet", "excel")
_SUFFIXES = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}
ON_DUPLICATE = ("skip", "update", "error")
_CHUNK = 1 << 16
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _config(field_name: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"ImporterPlugin: {field_name} {reason}",
        suggestion=suggestion,
        metadata={"field": field_name, "reason": reason, "value": repr(value)},
    )


@dataclass(frozen=True)
class RowError:
    """One row that was not imported: its 1-based row number, the field and the reason."""

    row: int
    reason: str
    field: str | None = None
    data: Any = None


@dataclass
class ImportReport:
    """What an import did. ``errors`` keeps the first ``max_errors`` :class:`RowError`."""

    resource: str
    job_id: str | None = None
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    failed: int = 0
    batches: int = 0
    resumed_from: int = 0
    done: bool = False
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Rows written (inserted plus updated)."""
        return self.inserted + self.updated

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (errors included)."""
        return asdict(self)


def detect_format(path: str | Path) -> str:
    """The format named by a file's suffix.

    :raises ConfigError: an unknown suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise _config(
            "format",
            f"cannot be told from the suffix {suffix!r}",
            f"pass format= one of {FORMATS}",
            str(path),
        )
    return _SUFFIXES[suffix]


class _BadRow:
    """A row that could not even be parsed (kept in the stream so row numbers stay right)."""

    __slots__ = ("reason", "text")

    def __init__(self, reason: str, text: str) -> None:
        self.reason, self.text = reason, text


def _json_rows(f: IO[str], source: str) -> Iterator[Any]:
    """Elements of a top-level JSON array (or one top-level object), decoded one at a time."""
    decoder = json.JSONDecoder()
    buf, pos, eof = "", 0, False

    def fill() -> None:
        nonlocal buf, pos, eof
        chunk = f.read(_CHUNK)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    def skip_ws() -> bool:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos].isspace():
                pos += 1
            if pos < len(buf):
                return True
            if eof:
                return False
            fill()

    def bad(reason: str) -> ValidationError:
        return ValidationError(
            f"{source}: {reason}",
            suggestion="fix the file, or use NDJSON so that one bad line is only one bad row",
            metadata={"field": "file", "reason": reason, "source": source},
        )

    if not skip_ws():
        return
    if buf[pos] == "{":
        while not eof:
            fill()
        try:
            yield json.loads(buf[pos:])
        except json.JSONDecodeError as exc:
            raise bad(f"invalid JSON ({exc.msg})") from None
        return
    if buf[pos] != "[":
        raise bad("must hold a JSON array of objects or one object")
    pos += 1
    first = True
    while True:
        if not skip_ws():
            raise bad("ends inside the array")
        if buf[pos] == "]":
            return
        if not first:
            if buf[pos] != ",":
                raise bad(f"expected ',' or ']' at character {pos}")
            pos += 1
            if not skip_ws():
                raise bad("ends inside the array")
        first = False
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if eof:
                    raise bad(f"invalid JSON ({exc.msg})") from None
                fill()
                continue
            if end == len(buf) and not eof and not isinstance(value, dict | list | str):
                fill()  # a number or literal may go on in the next chunk
                continue
            pos = end
            yield value
            break


def _ndjson_rows(f: IO[str]) -> Iterator[Any]:
    for line in f:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            yield _BadRow(f"invalid JSON ({exc.msg})", line.rstrip("\n"))


def _excel_rows(path: Path, sheet: str | None) -> Iterator[Any]:
    require_dependency("openpyxl", extra="importer", plugin="ImporterPlugin", description="Excel")
    openpyxl: Any = importlib.import_module("openpyxl")

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet else book.active
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        names = [str(h) if h is not None else f"column{i + 1}" for i, h in enumerate(header)]
        for values in rows:
            if all(v is None for v in values):
                continue
            yield {n: v for n, v in zip(names, values, strict=False) if v is not None}
    finally:
        book.close()


def _parquet_rows(path: Path, batch_size: int) -> Iterator[Any]:
    require_dependency("pyarrow", extra="importer", plugin="ImporterPlugin", description="Parquet")
    pq: Any = importlib.import_module("pyarrow.parquet")

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield {k: v for k, v in row.items() if v is not None}


def read_rows(
    path: str | Path,
    format: str | None = None,
    *,
    sheet: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    batch_size: int = 1000,
) -> Iterator[Any]:
    """Stream the rows of a file (dicts; CSV/TSV cells are strings).

    A line of NDJSON that is not JSON is yielded as a bad row (the importer reports it);
    a JSON array that is malformed raises :class:`ValidationError` where it breaks.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise _config("format", "is not supported", f"use one of {FORMATS}", fmt)
    if fmt == "parquet":
        yield from _parquet_rows(p, batch_size)
        return
    if fmt == "excel":
        yield from _excel_rows(p, sheet)
        return
    newline = "" if fmt in ("csv", "tsv") else None
    with p.open(encoding=encoding, newline=newline) as f:
        if fmt == "json":
            yield from _json_rows(f, str(p))
        elif fmt == "ndjson":
            yield from _ndjson_rows(f)
        else:
            sep = delimiter or ("\t" if fmt == "tsv" else ",")
            yield from csv.DictReader(f, delimiter=sep)


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def _coerce(value: Any, kind: str) -> Any:
    """A CSV cell (a string) as the attribute's type; left as is when it does not parse."""
    if not isinstance(value, str):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "boolean":
            return _BOOLS[value.strip().lower()]
        if kind in ("json", "object", "array", "embedding"):
            return json.loads(value)
    except (ValueError, KeyError):
        pass
    return value


def _hashable(value: Any) -> Any:
    """``value`` as a dedup key: itself when hashable, else its canonical JSON (a list or a
    dict cell of a json field)."""
    try:
        hash(value)
    except TypeError:
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return value


RowTransform = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Validator = Callable[[dict[str, Any]], Any]


class ImporterPlugin(Plugin):
    """Bulk import with mapping, transforms, validation, dedup and resumable checkpoints.

    Every option is a default for :meth:`import_file` / :meth:`import_rows`, which take the
    same names per call.

    :param batch_size: rows read, written and checkpointed together (default 500).
    :param concurrency: writes in flight within a batch (default: the database's parallelism).
    :param on_duplicate: ``"skip"``, ``"update"`` or ``"error"`` for a row whose id exists.
    :param max_errors: how many :class:`RowError` the report keeps (all are counted).
    :param preserve_timestamps: keep ``created_at``/``updated_at`` found in the rows.
    """

    name = "ImporterPlugin"
    slug = "importer"
    event_names = Plugin.event_names  # plus the dotted "import.*" events

    def __init__(
        self,
        *,
        batch_size: int = 500,
        concurrency: int | None = None,
        on_duplicate: str = "skip",
        max_errors: int = 1000,
        preserve_timestamps: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.batch_size = self._positive("batch_size", batch_size)
        self.concurrency = (
            None if concurrency is None else self._positive("concurrency", concurrency)
        )
        self.on_duplicate = self._mode(on_duplicate)
        self.max_errors = self._max_errors(max_errors)
        self.preserve_timestamps = self._flag("preserve_timestamps", preserve_timestamps)

    @staticmethod
    def _positive(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _config(name, "must be a positive integer", f"pass {name}=100", value)
        return value

    @staticmethod
    def _max_errors(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _config("max_errors", "must be an integer >= 0", "pass max_errors=1000", value)
        return value

    @staticmethod
    def _flag(name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _config(name, "must be True or False", f"pass {name}=True", value)
        return value

    @staticmethod
    def _mode(value: Any) -> str:
        if value not in ON_DUPLICATE:
            raise _config("on_duplicate", "is not a mode", f"use one of {ON_DUPLICATE}", value)
        return str(value)

    # -- checkpoints -----------------------------------------------------------------
    @staticmethod
    def _checkpoint_key(job_id: str) -> str:
        return f"checkpoints/{job_id}"

    async def checkpoint(self, job_id: str) -> dict[str, Any] | None:
        """The saved progress of job ``job_id`` (``None`` when it never ran)."""
        value = await self.get_storage().get(self._checkpoint_key(job_id))
        return dict(value) if isinstance(value, Mapping) else None

    async def reset(self, job_id: str) -> None:
        """Forget job ``job_id``'s checkpoint, so the next run starts from the first row."""
        await self.get_storage().delete(self._checkpoint_key(job_id))

    # -- public entry points ---------------------------------------------------------
    async def import_file(
        self,
        path: str | Path,
        *,
        resource: Resource | str,
        format: str | None = None,
        sheet: str | None = None,
        delimiter: str | None = None,
        encoding: str = "utf-8",
        **options: Any,
    ) -> ImportReport:
        """Import a file; the format comes from the suffix unless ``format`` is given.

        Takes the options of :meth:`import_rows`.

        :raises ConfigError: bad options or an unknown format.
        :raises MissingDependencyError: Parquet without pyarrow, Excel without openpyxl.
        """
        fmt = format or detect_format(path)
        if fmt not in FORMATS:
            raise _config("format", "is not supported", f"use one of {FORMATS}", fmt)
        if not await asyncio.to_thread(Path(path).is_file):
            raise _config("path", "is not a file", "check the path", str(path))
        if fmt == "parquet":
            require_dependency("pyarrow", extra="importer", plugin=self.name)
        if fmt == "excel":
            require_dependency("openpyxl", extra="importer", plugin=self.name)
        given = options.get("batch_size")
        batch = self._positive("batch_size", self.batch_size if given is None else given)
        rows = read_rows(
            path, fmt, sheet=sheet, delimiter=delimiter, encoding=encoding, batch_size=batch
        )
        options.setdefault("coerce", fmt in ("csv", "tsv"))
        return await self.import_rows(rows, resource=resource, source=str(path), **options)

    async def import_rows(
        self,
        rows: Iterable[Any] | AsyncIterable[Any],
        *,
        resource: Resource | str,
        mapping: Mapping[str, str | None] | None = None,
        transforms: Mapping[str, Callable[..., Any]] | None = None,
        validate: Validator | None = None,
        dedup_key: str | Sequence[str] | None = None,
        id_field: str | None = None,
        on_duplicate: str | None = None,
        batch_size: int | None = None,
        concurrency: int | None = None,
        job_id: str | None = None,
        coerce: bool = False,
        progress: bool = False,
        error_file: str | Path | None = None,
        preserve_timestamps: bool | None = None,
        max_errors: int | None = None,
        source: str | None = None,
    ) -> ImportReport:
        """Import rows (dicts) from any iterable or async iterable.

        :param mapping: ``{column: field}`` renames; ``None`` as the field drops the column.
        :param transforms: ``{field: fn(value)}``; ``"*"``: ``fn(row) -> row | None``.
        :param validate: ``fn(row)``; a returned string or raised exception fails the row.
        :param dedup_key: field(s) whose repeated values are dropped within the import.
        :param id_field: field whose value becomes the record id.
        :param job_id: checkpoint name: running the same ``job_id`` again resumes.
        :param coerce: convert string cells to the attribute types (CSV/TSV default).
        :param progress: show a Rich progress bar on stderr.
        :param error_file: also write every row error there, one JSON object per line.
        :param max_errors: :class:`RowError` kept in the report (default: the plugin's).
        """
        res = resource if isinstance(resource, Resource) else self.db.get_resource(resource)
        mode = self._mode(self.on_duplicate if on_duplicate is None else on_duplicate)
        kept = self.max_errors if max_errors is None else self._max_errors(max_errors)
        size = self._positive("batch_size", self.batch_size if batch_size is None else batch_size)
        width = self._positive(
            "concurrency",
            concurrency if concurrency is not None else self.concurrency or self.db.parallelism,
        )
        keep_ts = (
            self.preserve_timestamps
            if preserve_timestamps is None
            else self._flag("preserve_timestamps", preserve_timestamps)
        )
        if mapping is not None and (
            not isinstance(mapping, Mapping)
            or not all(v is None or isinstance(v, str) for v in mapping.values())
        ):
            raise _config(
                "mapping",
                "must be a dict of column -> field name (or None to drop it)",
                "pass mapping={'E-mail': 'email', 'junk': None}",
                mapping,
            )
        if validate is not None and not callable(validate):
            raise _config(
                "validate", "is not callable", "pass fn(row) -> None or a reason", validate
            )
        if id_field is not None and not isinstance(id_field, str):
            raise _config("id_field", "must be a field name", "pass id_field='email'", id_field)
        if dedup_key is not None and (
            not isinstance(dedup_key, str | Sequence)
            or not dedup_key
            or (not isinstance(dedup_key, str) and not all(isinstance(k, str) for k in dedup_key))
        ):
            raise _config(
                "dedup_key",
                "must be a field name or a list of field names",
                "pass dedup_key='email' or ['first', 'last']",
                dedup_key,
            )
        if job_id is not None and (not isinstance(job_id, str) or not _JOB_ID.match(job_id)):
            raise _config(
                "job_id",
                "must be 1-100 letters, digits, '_', '.', '-'",
                "pass job_id='users-2026-12'",
                job_id,
            )
        transforms = dict(transforms or {})
        for name, fn in transforms.items():
            if not callable(fn):
                raise _config(
                    f"transforms[{name!r}]", "is not callable", "pass int or a lambda", fn
                )
        whole = transforms.pop("*", None)
        keys = (dedup_key,) if isinstance(dedup_key, str) else tuple(dedup_key or ())
        kinds = {n: getattr(f, "type", "string") for n, f in res.schema.fields.items()}

        report = ImportReport(resource=res.name, job_id=job_id)
        storage = self.get_storage()
        ck_key = self._checkpoint_key(job_id) if job_id else None
        if ck_key is not None:
            saved = await storage.get(ck_key)
            if isinstance(saved, Mapping):
                for name in ("rows", "inserted", "updated", "skipped", "duplicates", "failed"):
                    setattr(report, name, int(saved.get(name, 0)))
                report.batches = int(saved.get("batches", 0))
                report.resumed_from = report.rows
                if saved.get("done"):
                    report.done = True
                    return report

        self._announce("import.started", resource=res.name, job_id=job_id, source=source)
        seen: set[tuple[Any, ...]] = set()
        error_lines: list[str] = []
        sem = asyncio.Semaphore(width)

        def fail(n: int, reason: str, field_name: str | None, data: Any) -> None:
            report.failed += 1
            err = RowError(row=n, reason=reason, field=field_name, data=data)
            if len(report.errors) < kept:
                report.errors.append(err)
            if error_file is not None:
                error_lines.append(json.dumps(asdict(err), default=str) + "\n")
            self.emit("import.row_failed", {"resource": res.name, "row": n, "reason": reason})

        def prepare(n: int, raw: Any) -> dict[str, Any] | None:
            if isinstance(raw, _BadRow):
                fail(n, raw.reason, None, raw.text)
                return None
            if not isinstance(raw, Mapping):
                fail(n, f"is a {type(raw).__name__}, not an object", None, raw)
                return None
            row: dict[str, Any] = {}
            for k, v in raw.items():
                target = mapping.get(k, k) if mapping else k
                if target is not None and not (coerce and v == ""):
                    row[target] = _coerce(v, kinds.get(target, "string")) if coerce else v
            for name, fn in transforms.items():
                if name in row:
                    try:
                        row[name] = fn(row[name])
                    except Exception as exc:  # a user function: report the row
                        fail(n, f"transform failed: {type(exc).__name__}: {exc}", name, dict(raw))
                        return None
            if whole is not None:
                try:
                    out = whole(row)
                except Exception as exc:
                    fail(n, f"transform failed: {type(exc).__name__}: {exc}", "*", dict(raw))
                    return None
                if out is None:
                    report.skipped += 1
                    return None
                if not isinstance(out, Mapping):
                    reason = f"transform returned a {type(out).__name__}, not a row or None"
                    fail(n, reason, "*", dict(raw))
                    return None
                row = dict(out)
            if validate is not None:
                try:
                    verdict = validate(row)
                except Exception as exc:
                    fail(n, str(getattr(exc, "message", exc)), getattr(exc, "field", None), row)
                    return None
                if isinstance(verdict, str) or verdict is False:
                    fail(n, verdict or "rejected by validate", None, row)
                    return None
            if keys:
                key = tuple(_hashable(row.get(k)) for k in keys)
                if key in seen:
                    report.duplicates += 1
                    return None
                seen.add(key)
            if id_field is not None:
                if row.get(id_field) in (None, ""):
                    fail(n, "has no id", id_field, row)
                    return None
                row["id"] = str(row[id_field])
            elif job_id is not None and "id" not in row:
                row["id"] = f"{job_id}-{n}"
            return row

        async def write(n: int, row: dict[str, Any]) -> None:
            async with sem:
                try:
                    if mode == "update":
                        existed = "id" in row and await res.exists(row["id"])
                        await res.upsert(row, preserve_timestamps=keep_ts)
                        if existed:
                            report.updated += 1
                        else:
                            report.inserted += 1
                        return
                    await res.insert(row, preserve_timestamps=keep_ts)
                    report.inserted += 1
                except AlreadyExistsError:
                    if mode == "skip":
                        report.skipped += 1
                    else:
                        fail(n, "a record with this id exists", "id", row)
                except ValidationError as exc:
                    errs = getattr(exc, "errors", None) or []
                    first = errs[0].get("field") if errs and isinstance(errs[0], dict) else None
                    fail(n, exc.message, first or exc.metadata.get("field"), row)

        from rich.console import Console
        from rich.progress import Progress

        # stderr, as documented: stdout stays for the caller's output (the CLI's report)
        bar = Progress(console=Console(stderr=True), transient=False, disable=not progress)
        task = bar.add_task(f"import {res.name}", total=None)
        with bar:
            async for batch in self._batches(rows, size, report.rows):
                start = report.rows
                prepared = [
                    (start + i + 1, prepare(start + i + 1, raw)) for i, raw in enumerate(batch)
                ]
                await asyncio.gather(*(write(n, r) for n, r in prepared if r is not None))
                report.rows += len(batch)
                report.batches += 1
                if error_file is not None and error_lines:  # before the checkpoint: a crash
                    await asyncio.to_thread(_append, Path(error_file), error_lines)  # repeats
                    error_lines.clear()  # lines at worst, never loses one
                if ck_key is not None:
                    await self._save(ck_key, report, source, done=False)
                bar.advance(task, len(batch))
                self.emit(
                    "import.batch",
                    {"resource": res.name, "rows": report.rows, "failed": report.failed},
                )
        report.done = True
        report.errors.sort(key=lambda e: e.row)
        if ck_key is not None:
            await self._save(ck_key, report, source, done=True)
        self._announce(
            "import.finished",
            resource=res.name,
            job_id=job_id,
            rows=report.rows,
            inserted=report.inserted,
            updated=report.updated,
            failed=report.failed,
        )
        return report

    async def _save(
        self, key: str, report: ImportReport, source: str | None, *, done: bool
    ) -> None:
        """Advance the checkpoint by compare-and-swap; it never goes back (a slower process
        running the same job cannot undo a faster one's progress)."""
        new = self._saved(report, source, done=done)

        def advance(current: Any) -> dict[str, Any] | None:
            if isinstance(current, Mapping) and (
                current.get("done") or int(current.get("rows", 0)) > new["rows"]
            ):
                return None
            return new

        await self.get_storage().update(key, advance)

    @staticmethod
    def _saved(report: ImportReport, source: str | None, *, done: bool) -> dict[str, Any]:
        return {
            "rows": report.rows,
            "inserted": report.inserted,
            "updated": report.updated,
            "skipped": report.skipped,
            "duplicates": report.duplicates,
            "failed": report.failed,
            "batches": report.batches,
            "source": source,
            "done": done,
        }

    @staticmethod
    async def _batches(
        rows: Iterable[Any] | AsyncIterable[Any], size: int, skip: int
    ) -> AsyncIterator[list[Any]]:
        """Batches of ``size`` rows after skipping ``skip``; sync iterables are read in a thread."""
        if isinstance(rows, AsyncIterable):
            batch: list[Any] = []
            seen = 0
            async for row in rows:
                seen += 1
                if seen <= skip:
                    continue
                batch.append(row)
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            return
        it = iter(rows)
        if skip:
            await asyncio.to_thread(lambda: next(itertools.islice(it, skip - 1, skip), None))
        while True:
            chunk = await asyncio.to_thread(lambda: list(itertools.islice(it, size)))
            if not chunk:
                return
            yield chunk
