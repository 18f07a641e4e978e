"""Database administration commands of ``s3db``: init, migrate, stats, schema-diff, doctor, mcp."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from .commands import _cell, _json, _open, _progress, _run, app, err, out, state

__all__: list[str] = []


@app.command()
def migrate(
    name: str,
    module: Annotated[
        str | None,
        typer.Option(
            "--module",
            help="import the migrations mapping from package.module[:NAME] (default NAME: "
            "MIGRATIONS)",
        ),
    ] = None,
) -> None:
    """Rewrite every record below the current schema version, with a progress bar.

    Resumable and idempotent. Without --module only schema changes that need no migration
    function (added fields with defaults ...) can be applied.
    """
    from .._resource.migrations import load_migrations

    async def go() -> None:
        async with _open() as db:
            r = db.get_resource(name)
            if module:
                r.set_migrations(load_migrations(module))
            with _progress() as progress:
                task = progress.add_task(f"migrate {name} to {r.version}", total=None)

                def show(p: dict[str, Any]) -> None:
                    progress.update(task, completed=p["done"], total=p["total"])

                result = await r.migrate(on_progress=show)
            err.print(
                f"{name}: {result['migrated']} migrated to {r.version}, "
                f"{result['skipped']} already there (of {result['total']})",
                highlight=False,
            )

    _run(go)


@app.command()
def init() -> None:
    """Create the bucket (S3 endpoints) and the database's s3db.json.

    The only command that creates a database (other commands refuse a missing one); on
    file:// it also takes a directory that holds other files.
    """

    async def go() -> None:
        if not state.url:
            raise ConfigError("no database given", suggestion="pass --url or set S3DB_URL")
        from ..stores._url import parse_connection_string

        config = parse_connection_string(state.url)
        if config.scheme not in ("memory", "file"):
            from ..stores._aws import ensure_bucket

            created = await ensure_bucket(config)
            err.print(f"bucket {config.bucket} {'created' if created else 'exists'}")
        async with _open(create=True) as db:
            err.print(f"database ready at {db.url}")

    _run(go)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Records, versions, partition references and bytes per resource (LIST only, no GET).

    Ends with the requests the command sent.
    """
    from .inspect import database_stats

    async def go() -> None:
        async with _open() as db:
            report = await database_stats(db)
        if as_json:
            typer.echo(_json(report))
            return
        table = Table(title=f"{report['url']}")
        for col in ("resource", "records", "version", "versions", "partitions (refs)", "objects"):
            table.add_column(col)
        table.add_column("bytes", justify="right")
        for r in report["resources"]:
            table.add_row(
                r["name"],
                str(r["records"]),
                r["version"],
                ", ".join(r["versions"]),
                ", ".join(f"{p}: {n}" for p, n in r["partitions"].items()),
                str(r["objects"]),
                _size(r["bytes"]),
            )
        out.print(table)
        totals, requests = report["totals"], report["requests"]
        n = len(report["resources"])
        out.print(
            f"{n} resource{'' if n == 1 else 's'}, {totals['records']} records, "
            f"{totals['objects']} objects, {_size(totals['bytes'])}",
            highlight=False,
        )
        shown = ", ".join(f"{op} {n}" for op, n in requests.items() if op != "total")
        out.print(f"requests: {requests['total']} ({shown})", highlight=False)

    _run(go)


@app.command("schema-diff")
def schema_diff(
    name: str,
    from_version: Annotated[
        str | None, typer.Option("--from", help="older version (default: the one before --to)")
    ] = None,
    to_version: Annotated[
        str | None, typer.Option("--to", help="newer version (default: the current one)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Differences between two versions of a resource: fields, rules, partitions, options."""
    from .inspect import schema_diff as diff_versions

    async def go() -> None:
        async with _open() as db:
            diff = diff_versions(db, name, from_version, to_version)
        if as_json:
            typer.echo(_json(diff))
            return
        title = f"{name}: {diff['from']} → {diff['to']}"
        if diff["identical"]:
            out.print(f"{title}: no differences", highlight=False)
            return
        table = Table(title=title)
        for col in ("change", "kind", "name", "from", "to"):
            table.add_column(col, overflow="fold")
        for kind in ("fields", "partitions"):
            section = diff[kind]
            for path, d in section["added"].items():
                table.add_row("[green]added[/]", kind[:-1], escape(path), "", escape(_json(d)))
            for path, d in section["removed"].items():
                table.add_row("[red]removed[/]", kind[:-1], escape(path), escape(_json(d)), "")
            for path, d in section["changed"].items():
                rules = d["changes"] or {"": [d["from"], d["to"]]}
                for rule, (a, b) in rules.items():
                    label = f"{path} ({rule})" if rule else path
                    cells = (escape(label), escape(_cell(a)), escape(_cell(b)))
                    table.add_row("[yellow]changed[/]", kind[:-1], *cells)
        for option, (a, b) in diff["options"].items():
            cells = (escape(option), escape(_cell(a)), escape(_cell(b)))
            table.add_row("[yellow]changed[/]", "option", *cells)
        out.print(table)

    _run(go)


@app.command()
def doctor(
    name: Annotated[
        str | None, typer.Argument(help="resource to check (default: every resource)")
    ] = None,
    repair: Annotated[bool, typer.Option("--repair", help="rebuild partition references")] = False,
    restore_metadata: Annotated[
        bool,
        typer.Option("--restore-metadata", help="first restore s3db.json from a kept copy"),
    ] = False,
    copy: Annotated[
        int, typer.Option("--copy", min=1, help="which copy to restore: 1 = newest")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List corrupt records and orphaned objects; --repair rebuilds partition references.

    Exits with status 2 when something is wrong (after a repair: when corrupt records or
    orphaned objects remain).
    """
    from . import doctor as _doctor

    async def go() -> bool:
        if not state.url:
            raise ConfigError("no database given", suggestion="pass --url or set S3DB_URL")
        if restore_metadata:
            from ..stores import open_store

            store = open_store(state.url)
            await store.connect()
            try:
                kept = await _doctor.restore_metadata(store, copy)
            finally:
                await store.close()
            err.print(
                f"s3db.json restored from {kept.key} (revision {kept.revision}, "
                f"{kept.updated_at}): {', '.join(kept.resources) or 'no resources'}",
                highlight=False,
            )
        async with _open() as db:
            names = [name] if name else db.list_resources()
            reports = [await _doctor.doctor(db, n, repair=repair) for n in names]
        if as_json:
            typer.echo(_json([r.to_dict() for r in reports]))
        for r in reports if not as_json else ():
            _print_report(r)
        return all(r.resolved for r in reports)

    if not _run(go):
        raise typer.Exit(2)


def _print_report(report: Any) -> None:
    status = "[green]healthy[/]" if report.healthy else "[red]problems found[/]"
    out.print(f"{escape(report.resource)}: {report.records} records, {status}")
    for e in report.corrupt:
        out.print(escape(f"  corrupt record {e.id!r} ({e.key}): {e.reason}"), highlight=False)
    sections = (
        ("orphan reference (no record)", report.orphan_refs),
        ("stale reference (record changed)", report.stale_refs),
        ("missing reference", report.missing_refs),
        ("content without record", report.orphan_content),
        ("history of a deleted record", report.orphan_history),
    )
    for label, keys in sections:
        for key in keys:
            out.print(escape(f"  {label}: {key}"), highlight=False)
    if report.repaired is not None:
        fixed = report.repaired
        out.print(
            f"  repaired references: {fixed['added']} added, {fixed['removed']} removed",
            highlight=False,
        )


@app.command()
def mcp(
    allow_writes: Annotated[
        bool, typer.Option("--allow-writes", help="also expose insert, update and delete")
    ] = False,
    reveal_secrets: Annotated[
        bool,
        typer.Option(
            "--reveal-secrets",
            help="hand decrypted secrets and password hashes to the assistant (masked as "
            "*** by default)",
        ),
    ] = False,
) -> None:
    """Serve the database to AI assistants: a Model Context Protocol server over stdio."""
    from .mcp import build_server

    async def go() -> None:
        async with _open() as db:
            server = build_server(db, allow_writes=allow_writes, reveal_secrets=reveal_secrets)
            await server.run_stdio_async()

    _run(go)
