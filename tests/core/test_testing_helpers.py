"""``s3db_async.testing``: the pytest plugin's fixtures, schema strategies and ``seed``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3db_async import Database, Schema
from s3db_async._schema.types import TYPES
from s3db_async.errors import ConfigError, ValidationError
from s3db_async.stores import MemoryStore
from s3db_async.testing import (
    TEST_PASSPHRASE,
    fake_records,
    memory_database,
    register_type_strategy,
    resource_strategy,
    seed,
)

EVERY_TYPE: dict[str, Any] = {
    "name": "string|required|min:2|max:30",
    "code": "string|pattern:^[A-Z]{3}-[0-9]{2}$",
    "status": "string|enum:active,inactive|default:active",
    "level": "integer|enum:1,2,3",
    "email": "email|required",
    "site": "url|max:80",
    "score": "number|min:0|max:100",
    "ratio": "number|min:0.25|max:0.75",
    "age": "integer|required|min:0|max:150",
    "big": "integer",
    "ok": "boolean|required",
    "born": "date",
    "tags": "array|items:string|min:1|max:3",
    "matrix": {"type": "array", "items": "array|items:integer", "max": 3},
    "anything": "array",
    "vec": "embedding:4",
    "meta": "json",
    "obj": "object",
    "token": "secret|min:8",
    "ip": "ip4",
    "ip6": "ip6",
    "maybe": "string|required|nullable",
    "profile": {"bio": "string|max:40", "nick": "string|required", "deep": {"n": "number"}},
    "lines": {"type": "array", "items": {"sku": "string|required", "qty": "integer|min:1"}},
    "at": "datetime",
    "blob": "bytes|max:16",
    "mac": "mac",
    "net": "cidr",
    "ref": "uuid",
    "ver": "semver",
    "flags": "bits:6",
    "price": "decimal:2|min:0|max:1000",
    "sats": "crypto",
    "yen": "money:JPY",
    "eur": "money",
    "lat": "geo:lat",
    "lon": "geo:lon",
    "where": "geo:point",
}
SCHEMA = Schema(EVERY_TYPE)


# -- the plugin and its fixtures -------------------------------------------------------------


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    import s3db_async.testing

    # named after its module, so `pytest -p s3db_async.testing` finds it already loaded
    assert pytestconfig.pluginmanager.get_plugin("s3db_async.testing") is s3db_async.testing


async def test_memory_fixture_is_connected_with_a_passphrase(s3db_memory_db: Database) -> None:
    assert s3db_memory_db.is_connected and s3db_memory_db.url.startswith("memory://s3db-test-")
    assert s3db_memory_db.list_resources() == []  # a bucket of its own
    r = await s3db_memory_db.create_resource("vault", attributes={"pin": "secret|required"})
    rec = await r.insert({"pin": "1234"})
    assert (await r.get(rec["id"]))["pin"] == "1234"


async def test_file_fixture_lives_in_tmp_path(s3db_file_db: Database, tmp_path: Path) -> None:
    await s3db_file_db.create_resource("x", attributes={"a": "string"})
    assert str(tmp_path) in s3db_file_db.url
    assert any((tmp_path / "s3db").iterdir())


@pytest.mark.parametrize("s3db_db", ["memory", "file"], indirect=True)
async def test_s3db_db_is_parametrizable(s3db_db: Database) -> None:
    r = await s3db_db.create_resource("things", attributes={"n": "integer"})
    await r.insert({"n": 1})
    assert await r.count() == 1


async def test_s3db_db_defaults_to_memory(s3db_db: Database) -> None:
    assert s3db_db.url.startswith("memory://")


async def test_memory_database_drops_its_bucket() -> None:
    async with memory_database(passphrase=None) as db:
        bucket = db.url.split("://", 1)[1].split("/", 1)[0]
        await db.create_resource("x", attributes={"a": "string"})
        assert bucket in MemoryStore._buckets
    assert bucket not in MemoryStore._buckets and not db.is_connected


def test_plugin_works_in_a_strict_mode_project(tmp_path: Path) -> None:
    """A foreign project (no conftest, pytest-asyncio strict mode) gets the fixtures."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from s3db_async.testing import seed

            @pytest.mark.asyncio
            async def test_app(s3db_memory_db):
                r = await s3db_memory_db.create_resource(
                    "users", attributes={"name": "string|required|min:1", "age": "integer"}
                )
                rows = await seed(r, 7)
                assert await r.count() == 7 and all(row["name"] for row in rows)

            @pytest.mark.asyncio
            async def test_file(s3db_file_db, tmp_path):
                assert str(tmp_path) in s3db_file_db.url
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


# -- strategies ---------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(resource_strategy(SCHEMA))
def test_every_generated_record_is_valid(record: dict[str, Any]) -> None:
    clean = SCHEMA.validate(record)  # raises if anything is off
    assert 2 <= len(record["name"]) <= 30
    assert isinstance(record["ok"], bool) and 0 <= record["age"] <= 150
    if record.get("code") is not None:
        assert record["code"][:3].isupper()
    assert record.get("status") in (None, "active", "inactive")
    assert record.get("level") in (None, 1, 2, 3)
    if record.get("score") is not None:
        assert 0 <= record["score"] <= 100
    if record.get("ratio") is not None:
        assert 0.25 <= record["ratio"] <= 0.75
    if record.get("tags") is not None:
        assert 1 <= len(record["tags"]) <= 3
    if record.get("vec") is not None:
        assert len(record["vec"]) == 4
    if record.get("token") is not None:
        assert len(record["token"]) >= 8
    if record.get("big") is not None:
        assert abs(record["big"]) <= 2**53
    assert "maybe" in record  # required (but nullable)
    assert "nick" in record["profile"]  # a nested object with a required field is required
    for line in record.get("lines") or []:
        assert "sku" in line and (line.get("qty") is None or line["qty"] >= 1)
    if "status" not in record:
        assert clean["status"] == "active"  # the default fills an absent status
    if record.get("price") is not None:
        assert 0 <= record["price"] <= 1000 and record["price"].as_tuple().exponent == -2
    if record.get("flags") is not None:
        assert len(record["flags"]) == 6
    if record.get("where") is not None:
        lat, lon = record["where"]
        assert -90 <= lat <= 90 and -180 <= lon <= 180


def test_optional_fields_are_sometimes_absent_and_sometimes_none() -> None:
    seen_absent = seen_none = seen_value = False
    for record in fake_records(SCHEMA, 200, random_seed=3):
        seen_absent |= "born" not in record
        seen_none |= "born" in record and record["born"] is None
        seen_value |= record.get("born") is not None
    assert seen_absent and seen_none and seen_value


def test_every_schema_type_has_a_strategy() -> None:
    """A type added to the schema language needs a strategy here (or resource_strategy
    raises for it): this test names the ones missing."""
    from s3db_async._testing.strategies import STRATEGIES

    missing = sorted(set(TYPES) - {"enum", "array"} - set(STRATEGIES))
    assert missing == []


def test_unknown_type_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3db_async._testing.strategies import STRATEGIES

    monkeypatch.delitem(STRATEGIES, "ip4")
    with pytest.raises(ConfigError) as info:
        resource_strategy(Schema({"nested": {"addr": "ip4"}}))
    assert "'ip4'" in info.value.message and "'nested.addr'" in info.value.message
    assert info.value.suggestion is not None and "register_type_strategy" in info.value.suggestion
    with pytest.raises(ConfigError, match="'ip4'"):
        resource_strategy(Schema({"hosts": "array|items:ip4"}))  # array items too

    register_type_strategy("ip4", lambda spec: st.just("10.0.0.1"))
    assert {r["addr"] for r in fake_records(Schema({"addr": "ip4|required"}), 5)} == {"10.0.0.1"}


def test_custom_strategies_still_pass_the_field_validator() -> None:
    from s3db_async._testing.strategies import STRATEGIES

    original = STRATEGIES["integer"]
    try:
        register_type_strategy("integer", lambda spec: st.sampled_from([-5, 5, 50]))
        values = {r["n"] for r in fake_records(Schema({"n": "integer|required|min:0"}), 30)}
        assert values <= {5, 50} and values
    finally:
        register_type_strategy("integer", original)


# -- fake records and seed ----------------------------------------------------------------------


def test_fake_records_are_varied_reproducible_and_overridable() -> None:
    a = fake_records(SCHEMA, 40, random_seed=7)
    assert a == fake_records(SCHEMA, 40, random_seed=7)
    assert len({r["name"] for r in a}) > 10  # varied, not one shrunk example repeated
    over = fake_records(
        SCHEMA,
        5,
        overrides={"status": "inactive", "age": lambda i: i * 10, "profile.nick": "nick"},
    )
    assert [r["age"] for r in over] == [0, 10, 20, 30, 40]
    assert {r["status"] for r in over} == {"inactive"}
    assert {r["profile"]["nick"] for r in over} == {"nick"}
    assert fake_records(SCHEMA, 0) == []
    with pytest.raises(ValueError):
        fake_records(SCHEMA, -1)


@pytest.mark.parametrize("s3db_db", ["memory", "file"], indirect=True)
async def test_seed_inserts_valid_records_that_round_trip(s3db_db: Database) -> None:
    r = await s3db_db.create_resource(
        "things",
        attributes=EVERY_TYPE,
        partitions={
            "by_status": {"fields": {"status": "string"}},
            "by_nick": {"fields": {"profile.nick": "string"}},
        },
        timestamps=True,
    )
    rows = await seed(r, 60, random_seed=11)
    assert len(rows) == 60 and len({row["id"] for row in rows}) == 60
    assert await r.count() == 60
    for row in rows:
        assert await r.get(row["id"]) == row
    # partition references were written for every record with a status; count(by=) counts
    # the records without one under None, exactly as reading every record would
    expected = Counter(row.get("status") for row in rows)
    assert await r.count(by="status") == dict(expected)
    active = await r.count(partition="by_status", partition_values={"status": "active"})
    assert active == expected["active"]


async def test_seed_with_a_tiny_value_space_and_timestamps(s3db_memory_db: Database) -> None:
    r = await s3db_memory_db.create_resource(
        "flags", attributes={"on": "boolean|required"}, timestamps=True
    )
    assert all("created_at" not in rec for rec in fake_records(r, 10))
    rows = await seed(r, 25, overrides={"on": lambda i: i % 2 == 0})
    assert len(rows) == 25 and await r.count() == 25
    assert await r.count(by="on") == {True: 13, False: 12}
    assert all(row["created_at"] for row in rows)


async def test_seed_hashes_passwords(s3db_memory_db: Database) -> None:
    r = await s3db_memory_db.create_resource(
        "accounts", attributes={"login": "string|required|min:1", "pw": "password|required|min:4"}
    )
    rows = await seed(r, 3, overrides={"pw": lambda i: f"secret-{i}"})
    for i, row in enumerate(rows):
        stored = await r.get(row["id"])
        assert stored["login"] == row["login"] and f"secret-{i}" not in repr(stored)


async def test_seed_reports_invalid_overrides(s3db_memory_db: Database) -> None:
    r = await s3db_memory_db.create_resource("p", attributes={"age": "integer|min:0"})
    with pytest.raises(ValidationError):
        await seed(r, 3, overrides={"age": -1})


def test_passphrase_constant_is_only_for_tests() -> None:
    assert "test" in TEST_PASSPHRASE
