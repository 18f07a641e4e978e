"""The ``s3db`` app: global options, error reporting and the record commands.

::

    s3db --url file://./data resources
    s3db --url file://./data list users --limit 10 --partition by_region --value region=eu
    s3db export users > users.ndjson
    s3db import users users.ndjson

``--url`` defaults to ``S3DB_URL``; ``--passphrase`` to ``S3DB_PASSPHRASE``; both (and
``--debug``) go before or after the command. Errors print one message with a hint in CLI
terms and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from .._codec.crypto import NO_PASSPHRASE_HINT
from .._database import Database
from ..errors import ConfigError, S3dbError, ValidationError

__all__ = ["app", "cli_suggestion", "main"]

T = TypeVar("T")

_GLOBAL_VALUE_OPTIONS = ("--url", "--passphrase")
_GLOBAL_FLAGS = ("--debug",)


class _Group(TyperGroup):
    """Accepts the global options after the command too (``s3db list users --url ...``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click
        return super().parse_args(ctx, _hoist_global_options(args))


def _hoist_global_options(args: list[str]) -> list[str]:
    """Move ``--url``/``--passphrase`` (with their values) and ``--debug`` before the command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        name = arg.split("=", 1)[0]
        if arg in _GLOBAL_FLAGS or (name in _GLOBAL_VALUE_OPTIONS and "=" in arg):
            front.append(arg)
        elif arg in _GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            front += args[i : i + 2]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


app = typer.Typer(
    cls=_Group,
    name="s3db",
    help="Inspect and change an s3db-async database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class _State:
    url: str | None = None
    passphrase: str | None = None
    debug: bool = False


state = _State()


@app.callback()
def _options(
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="S3DB_URL", help="connection string (also after COMMAND)"),
    ] = None,
    passphrase: Annotated[
        str | None,
        typer.Option(
            "--passphrase",
            envvar="S3DB_PASSPHRASE",
            help="key for secret fields (also after COMMAND)",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    state.url = url
    state.passphrase = passphrase
    state.debug = debug


@asynccontextmanager
async def _open(*, create: bool = False) -> AsyncIterator[Database]:
    """The database at ``--url``; only ``s3db init`` (``create=True``) makes a new one."""
    if not state.url:
        raise ConfigError("no database given", suggestion="pass --url or set S3DB_URL")
    async with Database(state.url, passphrase=state.passphrase, create=create) as db:
        yield db


def _run(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except (S3dbError, OSError, ValueError) as exc:
        if state.debug:
            raise
        head, *details = _error_lines(exc)
        # escape: '[mcp]' is no markup; soft_wrap: the terminal wraps, rich does not cut words
        err.print(f"[bold red]error:[/] {escape(head)}", highlight=False, soft_wrap=True)
        for line in details:
            err.print(escape(line), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


# Library suggestions name Python calls; the CLI says the same in flags and commands.
_CLI_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(re.escape(NO_PASSPHRASE_HINT)), "pass --passphrase or set S3DB_PASSPHRASE"),
    (
        re.compile(
            r"open the [Dd]atabase with the passphrase (?:the data|it) was written with"
            r"|pass the original passphrase, or rotate it with the old one"
            r"|pass the passphrase the database was written with"
        ),
        "pass the passphrase the data was written with (--passphrase or S3DB_PASSPHRASE)",
    ),
    (
        re.compile(r"open the Database with passphrase=\.\.\.|pass passphrase=\.\.\. to Database"),
        "pass --passphrase or set S3DB_PASSPHRASE",
    ),
    (
        re.compile(r"check the id, or use get_or_none\(\)"),
        "check the id ('s3db list {resource}' shows records)",
    ),
    (
        re.compile(r"use update\(\) or upsert\(\)"),
        "use 's3db import {resource} FILE --upsert'",
    ),
    (re.compile(r"^create it first"), "create it with 's3db create-resource NAME --schema FILE'"),
    (re.compile(r"pass partition='<name>' too"), "pass --partition NAME too"),
    (
        re.compile(r"pass the same migrations= to create_resource\(\) in every process.*"),
        "pass the migrations with 's3db migrate {resource} --module package.module[:NAME]'",
    ),
    (re.compile(r"read or migrate\(\) again"), "run 's3db migrate {resource}' again"),
    (re.compile(r"run migrate\(\) again"), "run 's3db migrate {resource}' again"),
]


def cli_suggestion(exc: S3dbError) -> str | None:
    """``exc.suggestion`` in CLI terms: flags, environment variables and commands."""
    text = exc.suggestion
    if not text:
        return None
    resource = str(exc.metadata.get("resource") or "NAME")
    for pattern, replacement in _CLI_HINTS:
        text = pattern.sub(replacement.replace("{resource}", resource), text)
    if "passphrase=" in text:  # any other wording of "give Database(passphrase=...)"
        return "pass --passphrase or set S3DB_PASSPHRASE"
    return text


def _error_lines(exc: Exception) -> list[str]:
    """One message per error: ``Class: message (hint)``, plus one line per failing field."""
    if not isinstance(exc, S3dbError):
        return [f"{type(exc).__name__}: {exc}"]
    message = exc.message
    hint = cli_suggestion(exc)
    details: list[str] = []
    if isinstance(exc, ValidationError) and exc.errors:
        details = [f"  - {e.get('field')}: {e.get('message')}" for e in exc.errors]
        if hint in {e.get("message") for e in exc.errors}:
            hint = None  # a field's message, already on its own line
    if hint and hint in message:
        hint = None  # e.g. the "Quick fix: pip install ..." of a missing dependency
    head = f"{type(exc).__name__}: {message}" + (f" ({hint})" if hint else "")
    return [head, *details]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _parse_json(text: str, what: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValidationError(
            f"{what} is not valid JSON: {exc}",
            suggestion='quote the argument, e.g. \'{"name": "Ann"}\'',
        ) from None


def _values(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise ConfigError(f"bad --value {pair!r}", suggestion="write --value field=value")
        out[k] = v
    return out


def _table(records: Sequence[Mapping[str, Any]], title: str) -> Table:
    columns: list[str] = []
    for r in records:
        for k in r:
            if k not in columns:
                columns.append(k)
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in records:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _json(value)


def _progress() -> Progress:
    """The progress bar of long commands (on stderr, so stdout stays data)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@app.command()
def resources() -> None:
    """List the resources with their version and partitions."""

    async def go() -> None:
        async with _open() as db:
            table = Table(title=db.url)
            for col in ("resource", "version", "behavior", "partitions", "fields"):
                table.add_column(col)
            for name in db.list_resources():
                r = db.resources[name]
                table.add_row(
                    name, r.version, r.behavior, ", ".join(r.partitions), str(len(r.schema.fields))
                )
            out.print(table)

    _run(go)


@app.command()
def schema(
    name: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="one line of plain JSON, for create-resource --schema")
    ] = False,
) -> None:
    """Show a resource's definition as JSON."""

    async def go() -> None:
        async with _open() as db:
            r = db.get_resource(name)
            text = _json({"name": name, "version": r.version, **r.definition})
            if as_json:
                typer.echo(text)
            else:
                out.print_json(text)

    _run(go)


# keys of `s3db schema --json` that are create_resource() options
_SCHEMA_OPTIONS = (
    "attributes",
    "partitions",
    "behavior",
    "timestamps",
    "id_generator",
    "id_size",
    "allow_extra",
    "conflict_retries",
    "description",
    "history",
)
_SCHEMA_INFO = ("name", "version", "migrations")  # shown by `schema`, not options


def _schema_options(doc: Any, path: Path) -> dict[str, Any]:
    """The create_resource() keyword arguments of a `schema --json` document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes"), dict):
        raise ValidationError(
            f'{path} is not a resource definition: it needs an "attributes" object',
            suggestion="write it with 's3db schema NAME --json > FILE'",
        )
    unknown = sorted(set(doc) - set(_SCHEMA_OPTIONS) - set(_SCHEMA_INFO))
    if unknown:
        raise ValidationError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))}",
            suggestion="keep the keys 's3db schema NAME --json' prints: "
            + ", ".join(_SCHEMA_OPTIONS),
        )
    options = {k: doc[k] for k in _SCHEMA_OPTIONS if doc.get(k) is not None}
    if options.get("id_generator") == "custom":
        del options["id_generator"]  # a Python callable cannot be restored; imports keep ids
        err.print(
            f"{path}: the id generator was a Python function; new ids use the default",
            highlight=False,
        )
    return options


@app.command("create-resource")
def create_resource(
    name: str,
    schema_file: Annotated[
        Path,
        typer.Option("--schema", help="the JSON that 's3db schema NAME --json' prints"),
    ],
) -> None:
    """Create a resource (or a new version of it) from a definition file.

    Restores a database from the CLI alone: 's3db schema users --json > users.schema.json',
    's3db export users > users.ndjson', then on the new database 's3db create-resource users
    --schema users.schema.json' and 's3db import users users.ndjson'. Migration functions
    live in code and are not part of the file.
    """

    async def go() -> None:
        text = schema_file.read_text(encoding="utf-8")
        options = _schema_options(_parse_json(text, str(schema_file)), schema_file)
        async with _open() as db:
            r = await db.create_resource(name, **options)
            err.print(f"resource {name} at {r.version}", highlight=False)

    _run(go)


@app.command("list")
def list_(
    name: str,
    limit: Annotated[int | None, typer.Option(help="at most this many records")] = 20,
    partition: Annotated[str | None, typer.Option(help="partition name")] = None,
    value: Annotated[list[str] | None, typer.Option(help="partition value field=value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print NDJSON")] = False,
) -> None:
    """List records (a table, or NDJSON with --json)."""

    async def go() -> None:
        async with _open() as db:
            r = db.get_resource(name)
            records = await r.list(
                partition=partition, partition_values=_values(value), limit=limit
            )
            if as_json:
                for rec in records:
                    typer.echo(_json(rec))
            else:
                out.print(_table(records, f"{name} ({len(records)})"))

    _run(go)


@app.command()
def get(name: str, record_id: str) -> None:
    """Print one record as JSON."""

    async def go() -> None:
        async with _open() as db:
            typer.echo(_json(await db.get_resource(name).get(record_id)))

    _run(go)


@app.command()
def insert(name: str, data: str) -> None:
    """Insert a record given as a JSON object; prints it with its id."""

    async def go() -> None:
        async with _open() as db:
            payload = _parse_json(data, "record")
            if not isinstance(payload, dict):
                raise ValidationError("record must be a JSON object", suggestion="pass '{...}'")
            typer.echo(_json(await db.get_resource(name).insert(payload)))

    _run(go)


@app.command()
def count(
    name: str,
    partition: Annotated[str | None, typer.Option(help="partition name")] = None,
    value: Annotated[list[str] | None, typer.Option(help="partition value field=value")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="count per value of this field; LIST only when a single-field partition "
            "keeps whole values of it, otherwise it reads every record (1 GET each)"
        ),
    ] = None,
) -> None:
    """Count records (LIST only), optionally by a field.

    --by FIELD is LIST only when a partition on exactly FIELD keeps its whole values (text,
    integer, boolean); otherwise it reads every record, one GET each.
    """

    async def go() -> None:
        async with _open() as db:
            n = await db.get_resource(name).count(
                partition=partition, partition_values=_values(value), by=by
            )
            if isinstance(n, dict):  # by=: JSON keys are text (None, booleans, numbers as JSON)
                n = {k if isinstance(k, str) else _json(k): v for k, v in n.items()}
                typer.echo(_json(n))
            else:
                typer.echo(str(n))

    _run(go)


@app.command()
def delete(name: str, record_id: str) -> None:
    """Delete a record (fails if it does not exist)."""

    async def go() -> None:
        async with _open() as db:
            await db.get_resource(name).delete(record_id, must_exist=True)
            err.print(f"deleted {name}/{record_id}")

    _run(go)


@app.command()
def query(
    name: str,
    filter: str,
    limit: Annotated[int | None, typer.Option(help="at most this many records")] = None,
) -> None:
    """Print the records matching a JSON filter as NDJSON."""

    async def go() -> None:
        async with _open() as db:
            flt = _parse_json(filter, "filter")
            for rec in await db.get_resource(name).query(flt, limit=limit):
                typer.echo(_json(rec))

    _run(go)


@app.command()
def explain(name: str, filter: str) -> None:
    """Show which partition a query uses and how many S3 requests it will cost.

    Runs the query's LIST (pages of 1000 keys) to count the candidate records, one GET each.
    """

    async def go() -> None:
        async with _open() as db:
            flt = _parse_json(filter, "filter")
            if flt is not None and not isinstance(flt, dict):
                raise ValidationError("filter must be a JSON object", suggestion="pass '{...}'")
            out.print_json(_json(await db.get_resource(name).estimate_query_cost(flt)))

    _run(go)


@app.command()
def export(name: str) -> None:
    """Write every record as NDJSON to stdout."""

    async def go() -> None:
        async with _open() as db:
            n = 0
            async for rec in db.get_resource(name).stream():
                sys.stdout.write(_json(rec) + "\n")
                n += 1
            sys.stdout.flush()
            err.print(f"exported {n} {name} records")

    _run(go)


def _mapping_option(text: str | None) -> dict[str, str | None] | None:
    if text is None:
        return None
    value = _parse_json(text, "--mapping")
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or v is None for v in value.values()
    ):
        raise ConfigError(
            "--mapping must be a JSON object of column -> field (or null to drop)",
            suggestion='pass --mapping \'{"E-mail": "email", "junk": null}\'',
            metadata={"field": "mapping", "reason": "not an object of strings"},
        )
    return value


@app.command("import")
def import_(
    name: str,
    path: Path,
    upsert: Annotated[bool, typer.Option(help="update records whose id exists")] = False,
    skip_existing: Annotated[
        bool, typer.Option(help="skip rows whose record id exists (default: report them)")
    ] = False,
    preserve_timestamps: Annotated[
        bool,
        typer.Option(
            help="keep the rows' created_at/updated_at (so export -> import round-trips); "
            "--no-preserve-timestamps stamps the records with the import time"
        ),
    ] = True,
    format: Annotated[
        str | None,
        typer.Option(help="json, ndjson, csv, tsv, parquet or excel (default: from the suffix)"),
    ] = None,
    mapping: Annotated[
        str | None, typer.Option(help='JSON {"column": "field"} renames; null drops a column')
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="the field that becomes the id")] = None,
    dedup_key: Annotated[
        str | None, typer.Option(help="drop later rows repeating this field's value")
    ] = None,
    job_id: Annotated[
        str | None, typer.Option(help="checkpoint name: the same --job-id resumes")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="rows per batch (and checkpoint)")] = 500,
    sheet: Annotated[str | None, typer.Option(help="Excel sheet (default: the active one)")] = None,
    errors: Annotated[
        Path | None, typer.Option(help="write every failed row there as NDJSON")
    ] = None,
) -> None:
    """Import records from JSON, NDJSON, CSV, TSV, Parquet or Excel (ImporterPlugin), with a
    progress bar; bad rows are reported and never block good ones."""
    # the plugins package is a separate folder (mypy cannot follow its install hook)
    importer_module: Any = importlib.import_module("s3db_async.plugins.importer")

    async def go() -> None:
        async with _open() as db:
            r = db.get_resource(name)
            importer = importer_module.ImporterPlugin(batch_size=batch_size, alias="cli-importer")
            await db.use_plugin(importer)
            mode = "update" if upsert else "skip" if skip_existing else "error"
            report = await importer.import_file(
                path,
                resource=r,
                format=format,
                sheet=sheet,
                mapping=_mapping_option(mapping),
                id_field=id_field,
                dedup_key=dedup_key,
                job_id=job_id,
                on_duplicate=mode,
                preserve_timestamps=preserve_timestamps,
                error_file=errors,
                progress=True,
            )
            for e in report.errors[:20]:
                where = f" ({e.field})" if e.field else ""
                err.print(f"[red]row {e.row}{where}: {e.reason}[/]", highlight=False)
            extra = [
                f"{n} {what}"
                for n, what in (
                    (report.skipped, "skipped"),
                    (report.duplicates, "duplicates dropped"),
                    (report.failed, "failed"),
                )
                if n
            ]
            tail = f" ({', '.join(extra)})" if extra else ""
            err.print(f"imported {report.imported} of {report.rows} rows into {name}{tail}")
            if report.failed:
                raise typer.Exit(1)

    _run(go)


def main() -> None:
    """Entry point of the ``s3db`` script."""
    app()
