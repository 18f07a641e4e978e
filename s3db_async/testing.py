"""Test helpers for applications built on s3db-async; also a pytest plugin.

Installed with the package, the plugin (entry point ``pytest11`` named ``s3db_async.testing``;
with autoload off, ``pytest -p s3db_async.testing``) gives every test suite:

- ``s3db_memory_db``: a connected in-memory :class:`Database` on a bucket of its own,
  disconnected and dropped after the test;
- ``s3db_file_db``: a connected database in the test's ``tmp_path``;
- ``s3db_db``: memory by default; parametrize it indirectly with ``"memory"``, ``"file"``
  or a connection string to run a test on several stores;
- ``s3db_passphrase``: the passphrase those databases use for ``secret`` fields (override
  the fixture to change it);
- the **store matrix**: a test asking for ``s3db_store_db`` (a connected database),
  ``s3db_store_url`` or ``s3db_store_kind`` runs once per store of ``$S3DB_TEST_STORES``
  (``memory``, ``file``, ``moto``, ``seaweedfs``; default all four), narrowed per test by
  ``@pytest.mark.s3db_stores(...)``; moto and SeaweedFS start once per session when selected
  (``s3db_moto_server``, ``s3db_seaweedfs_server``), and one that cannot start fails the
  tests needing it, never skips them.

Several OS processes on one store: :func:`spawn_processes` / :func:`run_processes` run a
module-level ``async def fn(ctx: WorkerContext)`` in N processes, with barriers, reports,
messages, SIGKILL and the results or remote tracebacks back (``docs/testing.md``).

With the ``testing`` extra (``pip install 's3db-async[testing]'``, which brings hypothesis,
moto and SeaweedFS):

- :func:`resource_strategy` - a hypothesis strategy of valid records for a resource;
- :func:`fake_records` / :func:`seed` - n valid records drawn from that strategy
  (inserted, for :func:`seed`).

::

    from hypothesis import given
    from s3db_async.testing import resource_strategy, seed

    async def test_listing(s3db_memory_db):
        users = await s3db_memory_db.create_resource("users", attributes={...})
        inserted = await seed(users, 50, overrides={"region": "eu"})
        assert await users.count() == 50

Async fixtures need an async test runner: pytest-asyncio (``asyncio_mode = "auto"``, or
``@pytest.mark.asyncio``) or anyio's plugin.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._deps import require_dependency
from ._testing.db import TEST_PASSPHRASE, file_database, memory_database
from ._testing.processes import (
    ProcessGroup,
    WorkerContext,
    WorkerError,
    WorkerOutcome,
    run_processes,
    spawn_processes,
)
from ._testing.servers import S3Server, ServerStartError, start_moto, start_seaweedfs
from ._testing.stores import STORE_KINDS, STORES_ENV, selected_stores, store_url_for

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from ._record import Record
    from ._resource.resource import Resource
    from ._schema.fields import FieldSpec
    from ._schema.schema import Schema

__all__ = [
    "STORES_ENV",
    "STORE_KINDS",
    "TEST_PASSPHRASE",
    "S3Server",
    "ServerStartError",
    "selected_stores",
    "start_moto",
    "start_seaweedfs",
    "store_url_for",
    "s3db_moto_server",
    "s3db_seaweedfs_server",
    "s3db_store_db",
    "s3db_store_url",
    "ProcessGroup",
    "WorkerContext",
    "WorkerError",
    "WorkerOutcome",
    "run_processes",
    "spawn_processes",
    "fake_records",
    "file_database",
    "memory_database",
    "register_type_strategy",
    "resource_strategy",
    "s3db_db",
    "s3db_file_db",
    "s3db_memory_db",
    "s3db_passphrase",
    "seed",
]

HYPOTHESIS_MIN = "6.100"


def _require_hypothesis() -> None:
    require_dependency(
        "hypothesis",
        extra="testing",
        min_version=HYPOTHESIS_MIN,
        description="property-based data generation for s3db_async.testing",
    )


# -- strategies and fake records -------------------------------------------------------------


def resource_strategy(
    resource: Resource | Schema, *, exclude: tuple[str, ...] | frozenset[str] = ()
) -> SearchStrategy[dict[str, Any]]:
    """A hypothesis strategy of records that ``resource.insert`` accepts.

    Derived from the schema: every user field with its rules (lengths, bounds, patterns,
    enums, array items, nested objects, embedding sizes...), optional fields sometimes
    absent or ``None``. Plugin attributes, the automatic timestamps and ``exclude``\\ d
    top-level fields are left out. Every value is checked by the field's own validator.

    :raises ConfigError: a field's type has no strategy (the message names it; add one with
        :func:`register_type_strategy`).
    :raises MissingDependencyError: hypothesis is not installed.
    """
    _require_hypothesis()
    from ._testing.strategies import resource_strategy as build

    return build(resource, exclude=exclude)


def register_type_strategy(
    type_name: str, factory: Callable[[FieldSpec], SearchStrategy[Any]]
) -> None:
    """Teach :func:`resource_strategy` an attribute type: ``factory(spec)`` returns a
    strategy of valid values for the field ``spec`` (its rules are in ``spec.rules``)."""
    _require_hypothesis()
    from ._testing.strategies import register_type_strategy as register

    register(type_name, factory)


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = record
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def fake_records(
    resource: Resource | Schema,
    n: int,
    *,
    overrides: Mapping[str, Any] | None = None,
    random_seed: int | None = None,
) -> list[dict[str, Any]]:
    """``n`` valid records drawn by hypothesis from :func:`resource_strategy` (not inserted).

    Hypothesis generates them (its generate phase only: varied, unshrunk examples); when a
    small schema has fewer distinct records than ``n``, the ones found are repeated.

    :param overrides: field path (``"region"``, ``"profile.age"``) → a value, or a callable
        taking the record's index (0-based) and returning the value.
    :param random_seed: the same seed gives the same records.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    strategy = resource_strategy(resource)
    drawn = _draw(strategy, n, random_seed) if n else []
    records: list[dict[str, Any]] = []
    for i in range(n):
        record = dict(drawn[i % len(drawn)]) if drawn else {}
        for path, value in (overrides or {}).items():
            _set_path(record, path, value(i) if callable(value) else value)
        records.append(record)
    return records


def _draw(strategy: SearchStrategy[Any], n: int, random_seed: int | None) -> list[Any]:
    import copy

    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    drawn: list[Any] = []

    def collect(example: Any) -> bool:
        if len(drawn) < n:
            drawn.append(copy.deepcopy(example))
        return len(drawn) >= n

    config = settings(
        max_examples=max(2 * n, 10),
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    rng = random.Random(random_seed) if random_seed is not None else None
    try:
        find(strategy, collect, settings=config, random=rng)
    except (NoSuchExample, Unsatisfiable):
        pass  # fewer distinct examples than n: fake_records repeats them
    return drawn


async def seed(
    resource: Resource,
    n: int,
    *,
    overrides: Mapping[str, Any] | None = None,
    random_seed: int | None = None,
    concurrency: int | None = None,
) -> list[Record]:
    """Insert ``n`` valid fake records (see :func:`fake_records`); return them as inserted.

    ::

        users = await seed(db.resources["users"], 100, overrides={"region": "eu"})

    :param concurrency: inserts in flight (default: the database's ``parallelism``).
    """
    from ._concurrency import bounded_gather

    records = fake_records(resource, n, overrides=overrides, random_seed=random_seed)
    return await bounded_gather(resource.insert, records, concurrency or resource.db.parallelism)


try:  # the fixtures and hooks, when pytest is installed (this module is also its plugin)
    from ._testing.fixtures import (
        pytest_configure as pytest_configure,
    )
    from ._testing.fixtures import (
        pytest_generate_tests as pytest_generate_tests,
    )
    from ._testing.fixtures import (
        s3db_db,
        s3db_file_db,
        s3db_memory_db,
        s3db_moto_server,
        s3db_passphrase,
        s3db_seaweedfs_server,
        s3db_store_db,
        s3db_store_url,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - data helpers work without pytest
    if exc.name not in ("pytest", "_pytest"):
        raise
