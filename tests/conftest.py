"""Test matrix: every store test runs on memory, file, moto (HTTP) and SeaweedFS.

``S3DB_TEST_STORES=memory,file`` narrows the matrix locally. Under ``CI=true`` a
server that cannot start fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from s3db_async import Database
from s3db_async.stores import MemoryStore, ObjectStore, open_store

from ._servers import S3Server, start_moto, start_seaweedfs

ALL_STORES = ("memory", "file", "moto", "seaweedfs")


def selected_stores() -> list[str]:
    raw = os.environ.get("S3DB_TEST_STORES", "")
    names = [s.strip() for s in raw.split(",") if s.strip()] or list(ALL_STORES)
    unknown = set(names) - set(ALL_STORES)
    if unknown:
        raise pytest.UsageError(f"S3DB_TEST_STORES: unknown store(s) {sorted(unknown)}")
    return names


STORES = selected_stores()


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


def _unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``store_kind`` over the selected stores (``@pytest.mark.stores`` narrows)."""
    if "store_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("stores")
        kinds = [k for k in STORES if marker is None or k in marker.args]
        metafunc.parametrize("store_kind", kinds)


@pytest.fixture
def store_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A connection string to an empty namespace on the current store kind."""
    if store_kind == "memory":
        return f"memory://{_unique('mem')}/data"
    if store_kind == "file":
        return f"file://{tmp_path / 'db'}"
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    return server.url(_unique())


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ObjectStore]:
    s = open_store(store_url)
    await s.connect()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(autouse=True)
def _reset_memory_buckets() -> Iterator[None]:
    yield
    MemoryStore.reset_all()


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    """A connected database on the current store kind (passphrase set for secret fields)."""
    database = Database(store_url, passphrase="test-passphrase")
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()
