"""Databases for tests: a fresh in-memory bucket, or a folder (see :mod:`s3db_async.testing`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .._database import Database
from ..stores import MemoryStore

__all__ = ["TEST_PASSPHRASE", "file_database", "memory_database"]

TEST_PASSPHRASE = "s3db-testing-passphrase"
"""The passphrase of the test databases (a test value, never a default elsewhere)."""


@asynccontextmanager
async def memory_database(
    *, passphrase: str | None = TEST_PASSPHRASE, **options: Any
) -> AsyncIterator[Database]:
    """A connected in-memory database on a fresh bucket, dropped on exit."""
    bucket = f"s3db-test-{uuid.uuid4().hex[:16]}"
    db = Database(f"memory://{bucket}/db", passphrase=passphrase, **options)
    await db.connect()
    try:
        yield db
    finally:
        await db.disconnect()
        MemoryStore._buckets.pop(bucket, None)


@asynccontextmanager
async def file_database(
    path: str | Path, *, passphrase: str | None = TEST_PASSPHRASE, **options: Any
) -> AsyncIterator[Database]:
    """A connected database in the folder ``path`` (created if needed)."""
    folder = Path(path)
    where = folder.as_posix() if folder.is_absolute() else f"./{folder.as_posix()}"
    db = Database(f"file://{where}", passphrase=passphrase, **options)
    await db.connect()
    try:
        yield db
    finally:
        await db.disconnect()
