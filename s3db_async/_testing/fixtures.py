"""The pytest fixtures of :mod:`s3db_async.testing` (registered by its ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .._database import Database
from .db import TEST_PASSPHRASE, file_database, memory_database

__all__ = ["s3db_db", "s3db_file_db", "s3db_memory_db", "s3db_passphrase"]

try:  # pytest-asyncio in strict mode only runs fixtures it decorated
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - anyio's plugin runs plain async fixtures
    _async_fixture = pytest.fixture  # type: ignore[assignment]


@pytest.fixture
def s3db_passphrase() -> str | None:
    """The passphrase of ``s3db_*_db`` databases; override this fixture to change it."""
    return TEST_PASSPHRASE


@_async_fixture
async def s3db_memory_db(s3db_passphrase: str | None) -> AsyncIterator[Database]:
    """A connected in-memory database on a bucket of its own, dropped after the test."""
    async with memory_database(passphrase=s3db_passphrase) as db:
        yield db


@_async_fixture
async def s3db_file_db(s3db_passphrase: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    """A connected database under the test's ``tmp_path``."""
    async with file_database(tmp_path / "s3db", passphrase=s3db_passphrase) as db:
        yield db


@_async_fixture
async def s3db_db(
    request: pytest.FixtureRequest, s3db_passphrase: str | None, tmp_path: Path
) -> AsyncIterator[Database]:
    """A connected database: in memory unless parametrized (indirectly) with ``"file"``,
    ``"memory"`` or a connection string::

        @pytest.mark.parametrize("s3db_db", ["memory", "file"], indirect=True)
        async def test_both(s3db_db): ...
    """
    kind = getattr(request, "param", None) or "memory"
    if kind == "memory":
        async with memory_database(passphrase=s3db_passphrase) as db:
            yield db
    elif kind == "file":
        async with file_database(tmp_path / "s3db", passphrase=s3db_passphrase) as db:
            yield db
    else:
        async with Database(str(kind), passphrase=s3db_passphrase) as db:
            yield db
