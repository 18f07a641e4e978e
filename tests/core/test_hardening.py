"""Hostile and mistyped input: connection strings, ids, nested data (issues 15.4, 16.8)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3db_async import Database
from s3db_async._resource.ids import check_id, validate_id
from s3db_async.errors import (
    ConnectionStringError,
    InvalidKeyError,
    MetadataLimitError,
    ValidationError,
)
from s3db_async.stores import S3Store, open_store
from s3db_async.stores._base import (
    METADATA_LIMIT,
    check_key,
    check_metadata_limit,
    checked_metadata,
    encode_metadata_value,
    metadata_size,
    normalize_metadata,
    validate_key,
)
from s3db_async.stores._url import parse_connection_string

# -- connection strings --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file://tmp/x", "file://data", "file://tmp/x?fsync=false"])
def test_file_url_with_a_host_names_both_spellings(url: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(url)
    assert info.value.metadata["part"] == "host"
    text = str(info.value)
    name = url.split("://", 1)[1].split("?", 1)[0]
    assert f"file://./{name}" in text
    assert f"file:///{name}" in text


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///tmp/x", "/tmp/x"),
        ("file://./tmp/x", "./tmp/x"),
        ("file://../x", "../x"),
        ("file://~/x", "~/x"),
        ("file://localhost/tmp/x", "/tmp/x"),
    ],
)
def test_file_url_spellings_that_stay_valid(url: str, path: str) -> None:
    assert parse_connection_string(url).path == path


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/bucket/app?timeout=1e308",
        "http://127.0.0.1:9000/bucket/app?timeout=inf",
        "http://127.0.0.1:9000/bucket/app?timeout=nan",
        "http://127.0.0.1:9000/bucket/app?connect_timeout=-1",
        "http://127.0.0.1:9000/bucket/app?deadline=0",
        "http://127.0.0.1:9000/bucket/app?max_retries=1000000",
        "http://127.0.0.1:9000/bucket/app?max_retries=-1",
        "file:///tmp/x?parallelism=0",
        "file:///tmp/x?parallelism=99999999999999999999",
    ],
)
def test_option_out_of_range_is_a_connection_string_error(url: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(url)
    assert info.value.metadata["part"] == "query"


def test_huge_timeout_never_reaches_the_client() -> None:
    """``?timeout=1e308`` used to overflow timedelta when the client was built."""
    with pytest.raises(ConnectionStringError):
        S3Store("http://k:s@127.0.0.1:9/bucket/app?timeout=1e308")
    store = S3Store("http://k:s@127.0.0.1:9/bucket/app?timeout=86400&deadline=0.5")
    assert store.timeout == 86400
    assert store.deadline == 0.5
    assert store.client is not None


@pytest.mark.parametrize(
    "url",
    [
        "memory://bucket/pre\nfix",
        "http://127.0.0.1:9000/bucket/pre\nfix",
        "s3://bucket/a\tb",
        "file:///tmp/x\ny",
        "file:///tmp/x\n",
        "\nmemory://bucket",
        "memory://bucket/a%0Ab",
        "http://127.0.0.1:9000/bucket/a%00b",
        "file:///tmp/a%0Db",
        "s3://bucket/x\x7f",
    ],
)
def test_control_characters_are_refused_not_dropped(url: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(url)
    assert info.value.metadata["part"] == "url"
    assert "control character" in info.value.message


def test_surrounding_spaces_are_still_trimmed() -> None:
    assert parse_connection_string("  memory://bucket/app  ").prefix == "app"


def test_open_store_refuses_a_file_url_with_a_host() -> None:
    with pytest.raises(ConnectionStringError):
        open_store("file://tmp/x")


# -- ids and nested data -------------------------------------------------------------------


async def _users(db: Database) -> Any:
    return await db.create_resource(
        "users", attributes={"name": "string|optional", "doc": "json|optional"}
    )


async def test_lone_surrogate_id_is_a_validation_error() -> None:
    async with Database("memory://hardening-ids") as db:
        users = await _users(db)
        db.store.stats.reset()
        for bad in ["\ud800", "a\udfffb"]:
            with pytest.raises(ValidationError) as info:
                await users.insert({"id": bad, "name": "x"})
            assert info.value.fields == ["id"]
            with pytest.raises(ValidationError):
                await users.get(bad)
        assert db.store.stats.total() == 0  # refused before any request


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_deeply_nested_value_is_a_validation_error() -> None:
    async with Database("memory://hardening-deep") as db:
        users = await _users(db)
        db.store.stats.reset()
        with pytest.raises(ValidationError) as info:
            await users.insert({"name": "x", "doc": _deep(5000)})
        assert "doc" in info.value.fields
        assert db.store.stats.total() == 0
        ok = await users.insert({"name": "x", "doc": _deep(20)})
        assert (await users.get(ok["id"]))["doc"] == _deep(20)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "\ud800"}, "name"),
        ({"doc": {"k": "a\udfffb"}}, "doc"),
        ({"doc": {"\ud800": 1}}, "doc"),
        ({"doc": ["ok", "\udc80"]}, "doc"),
    ],
)
async def test_lone_surrogate_values_are_validation_errors(
    data: dict[str, Any], field: str
) -> None:
    async with Database("memory://hardening-values") as db:
        users = await _users(db)
        db.store.stats.reset()
        with pytest.raises(ValidationError) as info:
            await users.insert(data)
        assert any(f.startswith(field) for f in info.value.fields)
        assert db.store.stats.total() == 0
        ok = await users.insert({"name": "ünïcode ✓", "doc": {"ключ": ["значение"]}})
        assert (await users.get(ok["id"]))["doc"] == {"ключ": ["значение"]}


_KEY_ALPHABET = "aZ09_-.=/~+,:;@%!$&'()* \x00\x1f\x7fé/"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_KEY_ALPHABET, max_size=24))
def test_key_fast_path_agrees_with_the_rules(key: str) -> None:
    """validate_key's one-regex fast path accepts only keys the rule-by-rule check accepts."""
    try:
        check_key(key)
        expected: str | None = None
    except InvalidKeyError as exc:
        expected = str(exc)
    try:
        validate_key(key)
        got: str | None = None
    except InvalidKeyError as exc:
        got = str(exc)
    assert got == expected


_ID_ALPHABET = "aZ09_-./ \x00\x1f\x7fé\ud800~"


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=_ID_ALPHABET, max_size=8),
        st.text(alphabet="ab", min_size=250, max_size=260),
        st.integers(-5, 5),
        st.booleans(),
        st.none(),
    )
)
def test_id_fast_path_agrees_with_the_rules(value: object) -> None:
    """validate_id's fast path answers exactly like the rule-by-rule check."""
    outcomes = []
    for check in (check_id, validate_id):
        try:
            outcomes.append(check(value, resource="r"))
        except ValidationError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text("aZ_-.ü", min_size=1, max_size=5), st.text(" a=?Bé\t~", max_size=8)))
def test_metadata_size_fast_path_counts_like_s3(metadata: dict[str, str]) -> None:
    slow = sum(
        len(k.lower().encode()) + len(encode_metadata_value(v).encode())
        for k, v in metadata.items()
    )
    assert metadata_size(metadata) == slow


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text("abz_-.", min_size=1, max_size=40),
        st.text(" a=?Bé\t~\x00", max_size=400),
        max_size=12,
    )
)
def test_metadata_limit_bound_never_lets_an_oversize_through(metadata: dict[str, str]) -> None:
    """check_metadata_limit's quick bound refuses exactly what the exact count refuses."""
    try:
        check_metadata_limit("k", metadata)
        refused = False
    except MetadataLimitError:
        refused = True
    assert refused == (metadata_size(metadata) > METADATA_LIMIT)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["_v", "0", "1", "name", "Name", "bad key", "content-type"]),
        st.one_of(st.text(" a=?Bé\t~\x00", max_size=300), st.integers()),
        max_size=8,
    ),
    st.booleans(),
)
def test_checked_metadata_answers_like_normalize_then_check(
    metadata: dict[str, Any], enforce: bool
) -> None:
    """The one-pass fast path keeps, refuses and sizes exactly like the two steps."""

    def outcome(fn: Any) -> Any:
        try:
            return fn()
        except (InvalidKeyError, MetadataLimitError) as exc:
            return type(exc).__name__

    def two_steps() -> dict[str, str]:
        md = normalize_metadata(metadata)
        if enforce:
            check_metadata_limit("k", md)
        return md

    for _ in range(2):  # the second time the keys are known ("good"): the fast path
        assert outcome(lambda: checked_metadata("k", metadata, enforce)) == outcome(two_steps)
