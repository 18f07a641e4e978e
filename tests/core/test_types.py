"""The schema types of issue 12: parsing, validation, canonical values, compact encodings,
passwords and ``Resource.verify_password``."""

from __future__ import annotations

import ipaddress
import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3db_async import Database
from s3db_async import _deps as deps_module
from s3db_async._codec.codec import AttributeRegistry, RecordCodec
from s3db_async._schema.encoding import b62
from s3db_async._schema.passwords import (
    dec_password,
    enc_password,
    hash_algorithm,
    hash_password,
    is_password_hash,
    verify_password,
)
from s3db_async._schema.schema import FieldSpec, Schema
from s3db_async._schema.types_net import dec_ip4, dec_ip6, enc_cidr, enc_ip6
from s3db_async.errors import MissingDependencyError, NotFoundError, SchemaError, ValidationError
from s3db_async.stores._base import encode_metadata_value

from .._strategies import (
    ALL_TYPES,
    HASHES,
    RECORD,
    check_wire,
    fixed,
    make_codec,
    networks,
    points,
    same,
)

PARIS = timezone(timedelta(hours=2))


def errors_of(schema: Schema, data: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        schema.validate(data)
    return {e["field"]: e["rule"] for e in info.value.errors}


def one(rule: str, value: Any) -> Any:
    return Schema({"f": rule}).validate({"f": value})["f"]


def stored(rule: str, value: Any) -> str:
    """The metadata text of one validated value."""
    schema, codec = make_codec({"f": rule})
    enc = codec.encode(schema.validate({"f": value}))
    check_wire(enc)
    return enc.metadata["0"]


# -- parsing ---------------------------------------------------------------------------


def test_every_new_type_parses_with_its_canonical_parameter() -> None:
    s = Schema(
        {
            "a": "ip4", "b": "ip6", "c": "mac", "d": "cidr", "e": "semver", "f": "url",
            "g": "uuid", "h": "email", "i": "json", "j": "bits:16", "k": "money",
            "l": "money:eur", "m": "decimal:3", "n": "crypto", "o": "crypto:18",
            "p": "geo:lat", "q": "geo:LON", "r": "geo:point", "s": "date", "t": "datetime",
            "u": "bytes", "v": "password", "w": "password:bcrypt", "x": "password:argon2",
        }
    )  # fmt: skip
    got = {k: (f.type, f.param) for k, f in s.fields.items()}
    assert got == {
        "a": ("ip4", None), "b": ("ip6", None), "c": ("mac", None), "d": ("cidr", None),
        "e": ("semver", None), "f": ("url", None), "g": ("uuid", None), "h": ("email", None),
        "i": ("json", None), "j": ("bits", 16), "k": ("money", None), "l": ("money", "EUR"),
        "m": ("decimal", 3), "n": ("crypto", 8), "o": ("crypto", 18), "p": ("geo", "lat"),
        "q": ("geo", "lon"), "r": ("geo", "point"), "s": ("date", None),
        "t": ("datetime", None), "u": ("bytes", None), "v": ("password", "argon2id"),
        "w": ("password", "bcrypt"), "x": ("password", "argon2id"),
    }  # fmt: skip
    assert s.password_fields == ["v", "w", "x"] and s.has_passwords
    assert not Schema({"a": "string"}).has_passwords
    assert Schema({"p": "array|items:password"}).has_passwords
    d = s.definition()
    assert d["j"] == {"type": "bits:16"} and d["l"] == {"type": "money:EUR"}
    assert d["n"] == {"type": "crypto:8"} and d["v"] == {"type": "password:argon2id"}
    again = Schema(d)
    assert again.definition() == d and again.hash() == s.hash()


def test_the_tokenizer_reads_type_arguments_and_never_matches_substrings() -> None:
    s = Schema(
        {
            "fmt": "string|enum:json,xml",
            "kinds": "string|enum:uuid,bytes,password",
            "amounts": "array|items:decimal:2|max:3",
            "spots": {"type": "array", "items": "geo:point"},
            "price": {"type": "decimal:2", "min": "0.5", "max": 100},
            "id": "string|uuid",
            "v": "semver|string",
        }
    )
    f = s.fields
    assert (f["fmt"].type, f["fmt"].enum) == ("string", ("json", "xml"))
    assert (f["kinds"].type, f["kinds"].enum) == ("string", ("uuid", "bytes", "password"))
    items = f["amounts"].items
    assert isinstance(items, FieldSpec) and (items.type, items.param) == ("decimal", 2)
    assert f["amounts"].rules == {"max": 3}
    assert f["price"].rules == {"min": Decimal("0.5"), "max": Decimal("100")}
    assert f["id"].type == "uuid" and f["v"].type == "semver"
    assert s.validate({"amounts": ["1.5", 2]}) == {"amounts": [Decimal("1.50"), Decimal("2.00")]}
    assert s.definition()["price"] == {"type": "decimal:2", "min": "0.5", "max": "100"}
    assert Schema(s.definition()).hash() == s.hash()


@pytest.mark.parametrize(
    ("rule", "offending", "text"),
    [
        ("bits", "bits", "bits needs its size: 'bits:8'"),
        ("bits:0", "bits", "between 1 and 65536"),
        ("bits:x", "bits", "between 1 and 65536"),
        ("decimal", "decimal", "decimal needs its number of places: 'decimal:2'"),
        ("decimal:61", "decimal", "between 0 and 60"),
        ("crypto:-1", "crypto", "between 0 and 60"),
        ("money:EURO", "money", "ISO 4217"),
        ("geo", "geo", "'geo:lat', 'geo:lon' or 'geo:point'"),
        ("geo:alt", "geo", "'geo:lat', 'geo:lon' or 'geo:point'"),
        ("password:md5", "password", "unknown password algorithm"),
        ("password|default:x", "default", "does not apply"),
        ("uuid:4", "uuid", "takes no argument"),
        ("ip4|min:2", "min", "does not apply"),
        ("decimal:2|min:abc", "min", "bad argument"),
        ("decimal:2|max:nan", "max", "not a finite number"),
        ("bits:4|default:16", "default", "is invalid"),
        ("datetime|default:yesterday", "default", "is invalid"),
    ],
)
def test_bad_type_arguments_raise_schema_error(rule: str, offending: str, text: str) -> None:
    with pytest.raises(SchemaError) as info:
        Schema({"f": rule})
    assert text in info.value.message
    assert info.value.errors[0]["field"] == "f" and info.value.errors[0]["rule"] == offending


def test_typed_defaults_of_new_types() -> None:
    s = Schema(
        {
            "amount": "decimal:2|default:0",
            "flags": "bits:3|default:5",
            "spot": "geo:point|default:[1.5,2]",
            "lat": "geo:lat|default:45",
            "blob": "bytes|default:AP8",
            "when": "datetime|default:2024-01-15T10:00:00Z",
            "id": "uuid|default:12345678123456781234567812345678",
        }
    )
    out = s.validate({})
    assert out == {
        "amount": Decimal("0.00"),
        "flags": [True, False, True],
        "spot": [1.5, 2.0],
        "lat": 45.0,
        "blob": b"\x00\xff",
        "when": datetime(2024, 1, 15, 10, tzinfo=UTC),
        "id": "12345678-1234-5678-1234-567812345678",
    }
    d = s.definition()
    assert d["amount"]["default"] == "0.00" and d["blob"]["default"] == "AP8"
    assert Schema(d).validate({}) == out
    out["flags"].append(True)
    assert s.validate({})["flags"] == [True, False, True]  # defaults are not shared


# -- validation and canonical values ---------------------------------------------------------

U = uuid.UUID("0b1c5e4e-3f0a-4c1e-9a57-2f1d2c3b4a59")

GOOD = [
    ("ip4", "10.0.0.1", "10.0.0.1"),
    ("ip4", ipaddress.IPv4Address("192.168.0.1"), "192.168.0.1"),
    ("ip6", "2001:0DB8:0000::0001", "2001:db8::1"),
    ("ip6", ipaddress.IPv6Address("::1"), "::1"),
    ("ip6", "fe80::1%eth0", "fe80::1%eth0"),
    ("mac", "00:1A:2B:3C:4D:5E", "00:1a:2b:3c:4d:5e"),
    ("mac", "00-1a-2b-3c-4d-5e", "00:1a:2b:3c:4d:5e"),
    ("mac", "001a.2b3c.4d5e", "00:1a:2b:3c:4d:5e"),
    ("mac", "001A2B3C4D5E", "00:1a:2b:3c:4d:5e"),
    ("mac", "00:1a:2b:ff:fe:3c:4d:5e", "00:1a:2b:ff:fe:3c:4d:5e"),
    ("cidr", "10.0.0.0/8", "10.0.0.0/8"),
    ("cidr", "10.0.0.0/255.0.0.0", "10.0.0.0/8"),
    ("cidr", ipaddress.ip_network("2001:db8::/32"), "2001:db8::/32"),
    ("cidr", "0.0.0.0/0", "0.0.0.0/0"),
    ("semver", "1.0.0", "1.0.0"),
    ("semver", "1.0.0-alpha.1+build.5", "1.0.0-alpha.1+build.5"),
    ("semver", "10.20.30-0A.is.legal", "10.20.30-0A.is.legal"),
    ("url", "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ("uuid", U, str(U)),
    ("uuid", str(U).upper(), str(U)),
    ("uuid", U.hex, str(U)),
    ("uuid", f"urn:uuid:{U}", str(U)),
    ("email", "a.b+c@d.co", "a.b+c@d.co"),
    ("json", ("a", {"b": (1,)}), ["a", {"b": [1]}]),
    ("bits:4", 5, [True, False, True, False]),
    ("bits:4", (False, False, False, True), [False, False, False, True]),
    ("bits:1", 0, [False]),
    ("money", Decimal("12.5"), Decimal("12.50")),
    ("money", 7, Decimal("7.00")),
    ("money", "-0.00", Decimal("0.00")),
    ("money", "1E+3", Decimal("1000.00")),
    ("money:JPY", "1200", Decimal("1200")),
    ("money:KWD", "1.5", Decimal("1.500")),
    ("decimal:4", "3.14150000", Decimal("3.1415")),
    ("decimal:0", 10**40, Decimal(10**40)),
    ("crypto", "0.00000001", Decimal("0.00000001")),
    ("crypto:18", 2**200, Decimal(f"{2**200}.{'0' * 18}")),
    ("geo:lat", 45.123456789, 45.1234568),
    ("geo:lat", -90, -90.0),
    ("geo:lon", Decimal("179.99999999"), 180.0),
    ("geo:point", (48.8566, 2.3522), [48.8566, 2.3522]),
    ("geo:point", {"lat": 1, "lng": -2}, [1.0, -2.0]),
    ("date", "2024-01-15", date(2024, 1, 15)),
    ("datetime", "2024-01-15T10:20:30Z", datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)),
    ("datetime", "2024-01-15", datetime(2024, 1, 15)),
    ("datetime", date(2024, 1, 15), datetime(2024, 1, 15)),
    ("datetime", datetime(2024, 1, 15, 1, tzinfo=PARIS), datetime(2024, 1, 15, 1, tzinfo=PARIS)),
    ("bytes", bytearray(b"\x00\x01"), b"\x00\x01"),
    ("bytes", memoryview(b"ab"), b"ab"),
    ("bytes", b"", b""),
]


@pytest.mark.parametrize(("rule", "value", "expected"), GOOD)
def test_accepted_values_and_their_canonical_python_value(
    rule: str, value: Any, expected: Any
) -> None:
    got = one(rule, value)
    same(expected, got)
    same(got, one(rule, got))  # idempotent
    _, codec = make_codec({"f": rule})
    for behavior in ("body-overflow", "body-only"):
        _, codec = make_codec({"f": rule}, behavior=behavior)
        enc = codec.encode({"f": got})
        check_wire(enc)
        same({"f": got}, codec.decode(enc.metadata, enc.body))


BAD = [
    ("ip4", "10.0.0.256", "ip4"),
    ("ip4", "::1", "ip4"),
    ("ip4", ipaddress.IPv6Address("::1"), "ip4"),
    ("ip4", 167772161, "ip4"),
    ("ip6", "10.0.0.1", "ip6"),
    ("ip6", "2001:db8:::1", "ip6"),
    ("mac", "00:1a:2b:3c:4d", "mac"),
    ("mac", "00:1a:2b:3c:4d:5g", "mac"),
    ("mac", "00:1a-2b:3c:4d:5e", "mac"),
    ("mac", b"\x00" * 6, "mac"),
    ("cidr", "10.0.0.1/8", "cidr"),
    ("cidr", "10.0.0.0", "cidr"),
    ("cidr", "10.0.0.0/33", "cidr"),
    ("semver", "1.0", "semver"),
    ("semver", "01.0.0", "semver"),
    ("semver", "1.0.0-01", "semver"),
    ("semver", "v1.0.0", "semver"),
    ("semver", "1.0.0\n", "semver"),
    ("semver", "\uff11.0.0", "semver"),  # a fullwidth digit
    ("url", "example.com", "url"),
    ("uuid", "not-a-uuid", "uuid"),
    ("uuid", 12345, "uuid"),
    ("email", "a@b", "email"),
    ("json", {1: "a"}, "json"),
    ("bits:4", 16, "bits"),
    ("bits:4", -1, "bits"),
    ("bits:4", [True, False], "bits"),
    ("bits:4", [1, 0, 1, 0], "bits"),
    ("bits:4", True, "bits"),
    ("money", 12.5, "money"),
    ("money", "12.345", "money"),
    ("money", "NaN", "money"),
    ("money", "Infinity", "money"),
    ("money", "twelve", "money"),
    ("money", True, "money"),
    ("money:JPY", "12.5", "money"),
    ("decimal:2", 0.1, "decimal"),
    ("decimal:2", "1E-999999999", "decimal"),
    ("decimal:2", "1E+999999999", "decimal"),
    ("crypto", Decimal("1E-9"), "crypto"),
    ("geo:lat", 90.0000001, "geo"),
    ("geo:lat", math.nan, "geo"),
    ("geo:lat", "45", "geo"),
    ("geo:lon", -180.5, "geo"),
    ("geo:lon", True, "geo"),
    ("geo:point", [1, 2, 3], "geo"),
    ("geo:point", [91, 0], "geo"),
    ("geo:point", {"lat": 1}, "geo"),
    ("datetime", "tomorrow", "datetime"),
    ("datetime", 1700000000, "datetime"),
    ("bytes", "abc", "bytes"),
    ("password", 12345, "password"),
    ("password", "", "password"),
]


@pytest.mark.parametrize(("rule", "value", "failing_rule"), BAD)
def test_refused_values_fail_with_the_types_rule(rule: str, value: Any, failing_rule: str) -> None:
    assert errors_of(Schema({"f": rule}), {"f": value}) == {"f": failing_rule}


def test_errors_name_every_failing_field_and_explain() -> None:
    s = Schema(
        {
            "ip": "ip4",
            "net": "cidr",
            "price": "money",
            "spot": "geo:point",
            "p": {"flags": "bits:2", "amounts": "array|items:decimal:1"},
        }
    )
    with pytest.raises(ValidationError) as info:
        s.validate(
            {
                "ip": "300.1.1.1",
                "net": "10.0.0.1/8",
                "price": 9.99,
                "spot": [0, 200],
                "p": {"flags": 7, "amounts": ["1.5", "1.55"]},
            }
        )
    msgs = {e["field"]: e["message"] for e in info.value.errors}
    assert set(msgs) == {"ip", "net", "price", "spot", "p.flags", "p.amounts[1]"}
    assert "host bits set (the network is 10.0.0.0/8)" in msgs["net"]
    assert "floats are not exact" in msgs["price"] and "'12.33'" in msgs["price"]
    assert "longitude must be between -180 and 180" in msgs["spot"]
    assert "between 0 and 2**2 - 1" in msgs["p.flags"]
    assert "more than 1 decimal places" in msgs["p.amounts[1]"]


def test_fixed_point_min_max_are_exact_decimals() -> None:
    s = Schema({"p": "money|min:0.1|max:100", "w": {"type": "crypto:18", "min": 0.1}})
    assert s.validate({"p": "0.10", "w": "0.1"}) == {
        "p": Decimal("0.10"),
        "w": Decimal("0.100000000000000000"),
    }
    assert errors_of(s, {"p": "0.09", "w": "0.099999999999999999"}) == {"p": "min", "w": "min"}
    assert errors_of(s, {"p": "100.01"}) == {"p": "max"}


def test_bytes_and_password_length_rules() -> None:
    s = Schema({"b": "bytes|min:1|max:3", "pw": "password|min:8|max:64"})
    assert errors_of(s, {"b": b"", "pw": "short"}) == {"b": "min", "pw": "min"}
    assert errors_of(s, {"b": b"abcd", "pw": "x" * 65}) == {"b": "max", "pw": "max"}
    assert s.validate({"pw": HASHES[0]}) == {"pw": HASHES[0]}  # rules apply to cleartexts


def test_datetime_is_explicit_and_date_keeps_its_behavior() -> None:
    s = Schema({"d": "date", "t": "datetime"})
    out = s.validate({"d": date(2024, 1, 2), "t": date(2024, 1, 2)})
    assert type(out["d"]) is date and type(out["t"]) is datetime
    aware = datetime(2024, 3, 31, 2, 30, tzinfo=PARIS)
    schema, codec = make_codec({"t": "datetime"})
    enc = codec.encode(schema.validate({"t": aware}))
    back = codec.decode(enc.metadata, enc.body)["t"]
    assert back == aware and back.utcoffset() == timedelta(hours=2)


@settings(max_examples=200, deadline=None)
@given(RECORD)
def test_validation_is_idempotent_for_every_type(record: dict[str, Any]) -> None:
    """Canonical values stay canonical, and hashes are never hashed again."""
    s = Schema(ALL_TYPES)
    once = s.validate(record)
    same(once, s.validate(once))


@settings(max_examples=300, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180))
def test_geo_values_are_quantized_once_and_then_exact(lat: float, lon: float) -> None:
    point = one("geo:point", [lat, lon])
    assert abs(point[0] - lat) <= 0.5e-7 + 1e-12 and abs(point[1] - lon) <= 0.5e-7 + 1e-12
    assert one("geo:point", point) == point
    assert [one("geo:lat", lat), one("geo:lon", lon)] == point
    text = stored("geo:point", point)
    assert len(text) <= 11
    _, codec = make_codec({"p": "geo:point"})
    enc = codec.encode({"p": point})
    same({"p": point}, codec.decode(enc.metadata, enc.body))


@settings(max_examples=300, deadline=None)
@given(fixed(6, limit=10**40), st.integers(0, 12))
def test_fixed_point_never_rounds(value: Any, places: int) -> None:
    d = Decimal(value) if isinstance(value, (int, str)) else value
    fits = (Fraction(d) * 10**places).denominator == 1
    rule = f"decimal:{places}"
    if not fits:
        assert errors_of(Schema({"f": rule}), {"f": value}) == {"f": "decimal"}
        return
    got = one(rule, value)
    assert got == d and got.as_tuple().exponent == -places
    assert str(got) == str(one(rule, got))


# -- encodings ------------------------------------------------------------------------------


def test_compact_encodings_and_sizes() -> None:
    assert stored("ip4", "192.168.1.20") == "wKgBFA"
    assert len(stored("ip6", "2001:db8:85a3::8a2e:370:7334")) == 22
    assert stored("ip6", "::1") == "::1"  # the text is shorter than 22 chars
    assert stored("mac", "00:1a:2b:3c:4d:5e") == "ABorPE1e"
    assert len(stored("mac", "00:1a:2b:ff:fe:3c:4d:5e")) == 11
    assert stored("cidr", "10.0.0.0/8") == "Cg.8"
    assert stored("cidr", "192.168.0.0/16") == "wKg.G"
    assert stored("cidr", "2001:db8::/32") == "IAENuA:W"
    assert stored("cidr", "::1/128") == "::1/128"
    assert stored("uuid", U) == "CxxeTj8KTB6aVy8dLDtKWQ"
    assert stored("semver", "1.4.2-rc.1") == "1.4.2-rc.1"
    assert stored("bits:12", 0b101) == "5"
    assert stored("bits:12", 4095) == b62(4095)
    assert stored("money", "1234.50") == b62(123450) == "W78"
    assert stored("money", "-0.01") == "-1"
    assert stored("crypto:18", "1.5") == b62(15 * 10**17)
    assert stored("geo:lat", 48.8566) == b62(488566000)
    assert stored("geo:point", [0, 0]) == b62(900_000_000 * 3_600_000_001 + 1_800_000_000)
    assert stored("datetime", datetime(2024, 1, 15, 12, 30, tzinfo=UTC)) == "1rPM6K_"
    assert stored("bytes", b"\x00\xff") == "AP8"
    assert stored("bytes", b"") == "~e"
    assert stored("array|items:ip4", ["10.0.0.1", "10.0.0.2"]) == "CgAAAQ,CgAAAg"
    assert stored("array|items:money", ["1", "2.5"]) == "1c,42"


def test_packed_cidr_and_ip6_pick_the_shorter_form() -> None:
    for text in ("::/0", "::1/128", "fe80::/10", "2001:db8:1234:5678::/64", "0.0.0.0/0"):
        enc = enc_cidr(text)
        assert len(enc) <= len(text)
    scoped = enc_ip6("fe80::1%eth0")  # a scope id cannot be packed: kept as text
    assert ":" in scoped and dec_ip6(scoped) == "fe80::1%eth0"


@settings(max_examples=200, deadline=None)
@given(networks)
def test_cidr_encoding_round_trips(net: Any) -> None:
    text = str(net)
    schema, codec = make_codec({"n": "cidr", "l": "array|items:cidr"})
    rec = schema.validate({"n": net, "l": [net, text]})
    enc = codec.encode(rec)
    check_wire(enc)
    same(rec, codec.decode(enc.metadata, enc.body))
    assert len(enc.metadata["0"]) <= len(text)


def test_ip_values_written_as_text_before_packing_still_read() -> None:
    assert dec_ip4("10.0.0.1") == "10.0.0.1"
    assert dec_ip6("2001:db8::1") == "2001:db8::1"
    _, codec = make_codec({"a": "ip4", "b": "array|items:ip4", "c": "ip6"})
    old = {"_v": "v1", "0": "10.0.0.1", "1": "10.0.0.1,CgAAAg", "2": "::1"}
    assert codec.decode(old, b"") == {"a": "10.0.0.1", "b": ["10.0.0.1", "10.0.0.2"], "c": "::1"}


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("ip4", "!!"),
        ("uuid", "A" * 21 + "!"),
        ("mac", "AAAA"),
        ("cidr", "Cg"),
        ("money", "*"),
        ("geo:point", "-5"),
        ("bits:3", "9"),
        ("bytes", "a$b"),
        ("datetime", "xx@Not/AZone"),
    ],
)
def test_corrupt_stored_values_raise_validation_error(rule: str, text: str) -> None:
    _, codec = make_codec({"f": rule})
    with pytest.raises(ValidationError) as info:
        codec.decode({"_v": "v1", "0": text}, b"")
    assert info.value.errors[0]["field"] == "f"


def test_overflowed_values_use_readable_body_forms() -> None:
    schema, codec = make_codec(
        {"price": "money", "ip": "ip4", "when": "datetime", "raw": "bytes", "pt": "geo:point"},
        behavior="body-only",
    )
    rec = schema.validate(
        {
            "price": "0.10",
            "ip": "10.0.0.1",
            "when": datetime(2024, 1, 1, tzinfo=UTC),
            "raw": b"\x01",
            "pt": (1.5, -2.25),
        }
    )
    enc = codec.encode(rec)
    body = msgspec.json.decode(enc.body)
    assert body["0"] == "0.10" and body["1"] == "10.0.0.1" and body["4"] == [1.5, -2.25]
    same(rec, codec.decode(enc.metadata, enc.body))


def test_json_schema_of_new_types() -> None:
    s = Schema(
        {
            "u": "uuid",
            "m": "money:JPY",
            "d": "decimal:2|required",
            "b": "bits:3",
            "p": "geo:point",
            "lat": "geo:lat",
            "raw": "bytes",
            "t": "datetime",
            "pw": "password",
            "mac": "mac",
        }
    )
    props = s.to_json_schema()["properties"]
    assert props["u"] == {"type": ["string", "null"], "format": "uuid"}
    assert props["m"]["pattern"] == "^-?[0-9]+$"
    assert props["d"] == {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$"}
    assert props["b"]["minItems"] == props["b"]["maxItems"] == 3
    assert len(props["p"]["prefixItems"]) == 2
    assert props["lat"]["maximum"] == 90
    assert props["raw"]["contentEncoding"] == "base64"
    assert props["t"]["format"] == "date-time"
    assert props["pw"]["format"] == "password"
    assert props["mac"]["pattern"].startswith("^[0-9a-f]{2}")


# -- passwords ------------------------------------------------------------------------------


def test_password_is_hashed_once_and_never_rehashed() -> None:
    s = Schema({"pw": "password", "name": "string"})
    out = s.validate({"pw": "correct horse", "name": "a"})
    h = out["pw"]
    assert h.startswith("$argon2id$v=19$") and "correct horse" not in h
    assert hash_algorithm(h) == "argon2id" and is_password_hash(h)
    assert s.validate(out) == out  # written back (update merging the record): kept
    assert s.validate({"pw": "correct horse"})["pw"] != h  # a fresh salt each time
    assert verify_password(h, "correct horse") and not verify_password(h, "wrong")
    assert not verify_password(None, "x") and not verify_password("plain", "plain")
    with pytest.raises(TypeError):
        verify_password(h, b"correct horse")  # type: ignore[arg-type]


def test_password_encoding_is_compact_and_exact() -> None:
    h = hash_password("x")
    enc = enc_password(h)
    assert enc.startswith("a") and len(enc) == len(h) - 30 == 67
    assert dec_password(enc) == h
    cheap = HASHES[0]  # other parameters: spelled out in base62
    assert enc_password(cheap).startswith("A8.1.1.") and dec_password(enc_password(cheap)) == cheap
    for other in HASHES:
        e = enc_password(other)
        assert dec_password(e) == other and encode_metadata_value(e) == e
        assert len(e) <= len(other)


def test_cleartexts_that_merely_look_like_hashes_are_hashed() -> None:
    for clear in ("$argon2id$", "$2b$12$short", "$argon2id$v=19$m=1,t=1,p=1$salt$hash"):
        assert not is_password_hash(clear)
        h = one("password", clear)
        assert h != clear and verify_password(h, clear)


def test_password_errors_never_contain_the_cleartext() -> None:
    s = Schema({"pw": "password:bcrypt|min:4"})
    for clear in ("abc", "ü" * 40, "nul\0byte"):
        with pytest.raises(ValidationError) as info:
            s.validate({"pw": clear})
        text = repr(info.value) + str(info.value) + repr(info.value.errors)
        assert clear not in text


def test_bcrypt_passwords() -> None:
    s = Schema({"pw": "password:bcrypt"})
    h = s.validate({"pw": "hunter2"})["pw"]
    assert h.startswith("$2b$12$") and hash_algorithm(h) == "bcrypt"
    assert verify_password(h, "hunter2") and not verify_password(h, "hunter3")
    assert not verify_password(h, "x" * 100)
    assert s.validate({"pw": h}) == {"pw": h}
    assert errors_of(s, {"pw": "x" * 73}) == {"pw": "password"}
    _, codec = make_codec({"pw": "password:bcrypt"})
    enc = codec.encode({"pw": h})
    assert len(enc.metadata["0"]) == 56 and codec.decode(enc.metadata, b"") == {"pw": h}


def test_bcrypt_without_the_package_raises_missing_dependency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = deps_module.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "bcrypt" else real(name, *args)

    monkeypatch.setattr(deps_module.importlib.util, "find_spec", find_spec)
    monkeypatch.delenv(deps_module.SKIP_ENV, raising=False)
    with pytest.raises(MissingDependencyError) as info:
        Schema({"pw": "password:bcrypt"})
    assert "pip install 's3db-async[bcrypt]'" in str(info.value)
    Schema({"pw": "password"})  # argon2id is a core dependency


async def test_resource_verify_password(db: Database) -> None:
    users = await db.create_resource(
        "users",
        attributes={"name": "string", "pw": "password|min:6", "auth": {"pin": "password"}},
    )
    rec = await users.insert({"name": "Ann", "pw": "s3cret!", "auth": {"pin": "1234"}})
    h = rec["pw"]
    assert h.startswith("$argon2id$") and "s3cret!" not in repr(rec)
    got = await users.get(rec["id"])
    assert got["pw"] == h and got["auth"]["pin"] == rec["auth"]["pin"]
    db.store.stats.reset()
    assert await users.verify_password(rec["id"], "pw", "s3cret!") is True
    assert db.store.stats.snapshot() == {"get": 1}
    assert await users.verify_password(rec["id"], "pw", "s3cret?") is False
    assert await users.verify_password(rec["id"], "auth.pin", "1234") is True
    # an update that merges the current record keeps the hash as is
    await users.update(rec["id"], {"name": "Anne"})
    assert (await users.get(rec["id"]))["pw"] == h
    await users.update(rec["id"], {"pw": "n3w-secret"})
    assert await users.verify_password(rec["id"], "pw", "n3w-secret") is True
    assert await users.verify_password(rec["id"], "pw", "s3cret!") is False
    await users.update(rec["id"], {"pw": None})
    assert await users.verify_password(rec["id"], "pw", "") is False
    with pytest.raises(NotFoundError):
        await users.verify_password("missing", "pw", "x")
    db.store.stats.reset()
    with pytest.raises(SchemaError) as info:
        await users.verify_password(rec["id"], "name", "x")
    assert info.value.suggestion == "password fields: pw, auth.pin"
    assert db.store.stats.snapshot() == {}
    with pytest.raises(ValidationError):
        await users.insert({"pw": "short"})


async def test_every_new_type_through_a_resource(db: Database, store_url: str) -> None:
    attrs = {
        "ip": "ip4", "ip6": "ip6", "mac": "mac", "net": "cidr", "ver": "semver",
        "uid": "uuid", "bits": "bits:8", "price": "money:EUR", "dec": "decimal:3",
        "wei": "crypto:18", "spot": "geo:point", "when": "datetime", "raw": "bytes",
    }  # fmt: skip
    res = await db.create_resource("things", attributes=attrs)
    data = {
        "ip": ipaddress.IPv4Address("10.1.2.3"),
        "ip6": "2001:db8::1",
        "mac": "AA-BB-CC-DD-EE-FF",
        "net": "10.0.0.0/8",
        "ver": "2.0.0-rc.1",
        "uid": U,
        "bits": 0b1010_0101,
        "price": "19.99",
        "dec": Decimal("-0.125"),
        "wei": 10**18,
        "spot": (48.8566, 2.3522),
        "when": datetime(2024, 5, 1, 8, 30, tzinfo=PARIS),
        "raw": b"\x00\x01\xfe\xff",
    }
    rec = await res.insert(data)
    clean = res.schema.validate(data)
    got = dict(await res.get(rec["id"]))
    got.pop("id")
    same(clean, got)
    assert got["price"] == Decimal("19.99") and got["uid"] == str(U)
    # the reloaded schema (from s3db.json) reads the same values
    again = Database(store_url, passphrase="test-passphrase")
    await again.connect()
    try:
        reread = dict(await again.get_resource("things").get(rec["id"]))
        reread.pop("id")
        same(clean, reread)
    finally:
        await again.disconnect()


@settings(max_examples=50, deadline=None)
@given(st.lists(points, min_size=1, max_size=3))
def test_array_of_points_round_trips(values: list[Any]) -> None:
    schema, codec = make_codec({"p": "array|items:geo:point"})
    rec = schema.validate({"p": values})
    enc = codec.encode(rec)
    same(rec, codec.decode(enc.metadata, enc.body))


def test_registry_survives_new_types() -> None:
    """New types get ordinary ids that survive a reload, and their values round-trip."""
    schema = Schema({"a": "money", "b": "password"})
    reg = AttributeRegistry()
    assert reg.assign(schema.fields)
    assert reg.ids == {"a": "0", "b": "1"} and reg.plugin_ids == {}
    reloaded = AttributeRegistry.from_dict(msgspec.json.decode(msgspec.json.encode(reg.to_dict())))
    assert reloaded == reg and not reloaded.assign(schema.fields)
    codec = RecordCodec(schema, reloaded, version="v1")
    rec = schema.validate({"a": "12.50", "b": HASHES[0]})
    enc = codec.encode(rec)
    check_wire(enc)
    assert {"0", "1"} <= set(enc.metadata)
    same(codec.decode(enc.metadata, enc.body), rec)
