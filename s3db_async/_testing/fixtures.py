"""The pytest fixtures and hooks of :mod:`s3db_async.testing` (its ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .._database import Database
from ..errors import ConfigError
from ..stores import MemoryStore
from .db import TEST_PASSPHRASE, file_database, memory_database
from .servers import S3Server, start_moto, start_seaweedfs
from .stores import selected_stores, store_url_for

__all__ = [
    "pytest_configure",
    "pytest_generate_tests",
    "s3db_db",
    "s3db_file_db",
    "s3db_memory_db",
    "s3db_moto_server",
    "s3db_passphrase",
    "s3db_seaweedfs_server",
    "s3db_store_db",
    "s3db_store_url",
]

try:  # pytest-asyncio in strict mode only runs fixtures it decorated
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - anyio's plugin runs plain async fixtures
    _async_fixture = pytest.fixture  # type: ignore[assignment]

MARKER = "s3db_stores"


def _kinds() -> list[str]:
    try:
        return selected_stores()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    _kinds()  # a bad $S3DB_TEST_STORES is a usage error before anything runs
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*kinds): run this test only on these store kinds "
        "(memory, file, moto, seaweedfs) of the s3db store matrix",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``s3db_store_kind`` over ``$S3DB_TEST_STORES`` (``@pytest.mark.s3db_stores``
    narrows it)."""
    if "s3db_store_kind" not in metafunc.fixturenames:
        return
    kinds = _kinds()
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is not None:
        kinds = [k for k in kinds if k in marker.args]
    metafunc.parametrize("s3db_store_kind", kinds, ids=kinds)


@pytest.fixture(scope="session")
def s3db_seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS server (master, volume, filer, S3) for the whole session; a server that
    cannot start fails the tests that need it (never skips them)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3db_moto_server() -> Iterator[S3Server]:
    """moto's S3 server (in a thread) for the whole session."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3db_store_url(s3db_store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A connection string to an empty place on the current store kind of the matrix (the
    test runs once per kind in ``$S3DB_TEST_STORES``; moto and SeaweedFS start on first use)."""
    server = None
    if s3db_store_kind in ("moto", "seaweedfs"):
        server = request.getfixturevalue(f"s3db_{s3db_store_kind}_server")
    return store_url_for(s3db_store_kind, folder=tmp_path / "db", server=server)


@_async_fixture
async def s3db_store_db(
    s3db_store_url: str, s3db_passphrase: str | None
) -> AsyncIterator[Database]:
    """A connected :class:`Database` on the current store kind of the matrix."""
    async with Database(s3db_store_url, passphrase=s3db_passphrase) as db:
        yield db
    if s3db_store_url.startswith("memory://"):  # free the bucket
        MemoryStore._buckets.pop(s3db_store_url[len("memory://") :].split("/", 1)[0], None)


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

    For every store of the matrix (memory, file, moto, SeaweedFS), use ``s3db_store_db``.
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
