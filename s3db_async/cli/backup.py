"""Backup commands of ``s3db`` (the BackupPlugin): backup, backups, restore.

::

    s3db --url s3://bucket/db backup --to ./backups --incremental
    s3db --url s3://bucket/db backups --from ./backups
    s3db --url s3://other/db restore 20261204T031500123456Z-full-a1b2c3 --from ./backups
"""

from __future__ import annotations

import importlib
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from .commands import _json, _open, _progress, _run, app, err, out

__all__: list[str] = []

_KEY = typer.Option(
    "--key",
    envvar="S3DB_BACKUP_KEY",
    help="encryption passphrase (AES-256-GCM); needed again to restore",
)


def _plugin(destination: str, key: str | None, progress: Any, **options: Any) -> Any:
    # imported by name when a backup command runs: plugins/ sits above the core's layers
    plugin_class = importlib.import_module("s3db_async.plugins.backup").BackupPlugin
    return plugin_class(destination=destination, encryption_key=key, progress=progress, **options)


@app.command()
def backup(
    to: Annotated[str, typer.Option("--to", help="folder or store URL (s3://bucket/prefix)")],
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="resource to back up (repeat)")
    ] = None,
    incremental: Annotated[
        bool, typer.Option(help="only what changed since the previous backup")
    ] = False,
    compression: Annotated[str, typer.Option(help="gzip or none")] = "gzip",
    key: Annotated[str | None, _KEY] = None,
) -> None:
    """Back up resources (default: all) with a progress bar; prints the manifest as JSON."""

    async def go() -> None:
        with _progress() as progress:
            tasks: dict[str, Any] = {}

            def tick(name: str, copied: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(f"backup {name}", total=None)
                progress.update(tasks[name], completed=copied)

            plugin = _plugin(to, key, tick, resources=resource, compression=compression)
            async with _open() as db:
                await db.use_plugin(plugin)
                info = await plugin.backup(kind="incremental" if incremental else "full")
        out.print(_json(asdict(info)), highlight=False, soft_wrap=True)
        err.print(f"backup {info.id}: {info.objects} objects, {info.size} bytes")

    _run(go)


@app.command()
def backups(
    source: Annotated[str, typer.Option("--from", help="folder or store URL of the backups")],
    key: Annotated[str | None, _KEY] = None,
    verify: Annotated[bool, typer.Option(help="verify each backup end to end")] = False,
) -> None:
    """List the backups at a destination (oldest first)."""

    async def go() -> None:
        plugin = _plugin(source, key, None)
        async with _open() as db:
            await db.use_plugin(plugin)
            table = Table()
            table.add_column("id", no_wrap=True)
            for column in ("kind", "objects", "bytes", "encrypted", "parent", "verified"):
                table.add_column(column)
            for info in await plugin.list_backups():
                verified = ""
                if verify:
                    await plugin.verify(info.id)
                    verified = "ok"
                table.add_row(
                    info.id,
                    info.kind,
                    str(info.objects),
                    str(info.size),
                    "yes" if info.encrypted else "no",
                    info.parent or "",
                    verified,
                )
        out.print(table)

    _run(go)


@app.command()
def restore(
    backup_id: str,
    source: Annotated[str, typer.Option("--from", help="folder or store URL of the backups")],
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="resource to restore (repeat)")
    ] = None,
    mode: Annotated[str, typer.Option(help="merge, replace or skip")] = "merge",
    key: Annotated[str | None, _KEY] = None,
) -> None:
    """Restore a backup into the database at --url, with a progress bar."""

    async def go() -> None:
        with _progress() as progress:
            task = progress.add_task(f"restore {backup_id}", total=None)

            def tick(_: str, done: int) -> None:
                progress.update(task, completed=done)

            plugin = _plugin(source, key, tick)
            async with _open(create=True) as db:
                await db.use_plugin(plugin)
                report = await plugin.restore(backup_id, resources=resource, mode=mode)
        out.print(_json(asdict(report)), highlight=False, soft_wrap=True)
        err.print(
            f"restored {report.written} objects ({report.skipped} skipped, "
            f"{report.deleted} deleted) into {', '.join(report.resources)}"
        )

    _run(go)
