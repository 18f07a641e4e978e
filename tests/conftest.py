"""Test matrix: every store test runs on memory, file, moto (HTTP) and SeaweedFS.

``S3DB_TEST_STORES=memory,file`` narrows the matrix locally. Under ``CI=true`` a
server that cannot start fails the run instead of skipping it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from s3db_async import Database
from s3db_async.errors import ConfigError
from s3db_async.stores import MemoryStore, ObjectStore, open_store
from s3db_async.testing import STORE_KINDS, S3Server, selected_stores, store_url_for

ALL_STORES = STORE_KINDS


def _selected() -> list[str]:
    try:
        return selected_stores()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


STORES = _selected()


# One server per session, shared with the public kit's fixtures (s3db_async.testing).
@pytest.fixture(scope="session")
def seaweedfs_server(s3db_seaweedfs_server: S3Server) -> S3Server:
    return s3db_seaweedfs_server


@pytest.fixture(scope="session")
def moto_server(s3db_moto_server: S3Server) -> S3Server:
    return s3db_moto_server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``store_kind`` over the selected stores (``@pytest.mark.stores`` narrows)."""
    if "store_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("stores")
        kinds = [k for k in STORES if marker is None or k in marker.args]
        metafunc.parametrize("store_kind", kinds)


@pytest.fixture
def make_store_url(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], str]:
    """``make_store_url(name)``: a connection string to another empty place on the current
    store kind (a restore target, a second database)."""
    server = None
    if store_kind in ("moto", "seaweedfs"):
        server = request.getfixturevalue(f"{store_kind}_server")
    return lambda name: store_url_for(store_kind, folder=tmp_path / name, server=server)


@pytest.fixture
def store_url(make_store_url: Callable[[str], str]) -> str:
    """A connection string to an empty namespace on the current store kind."""
    return make_store_url("db")


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
