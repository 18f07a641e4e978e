"""Hypothesis strategies and codec helpers shared by the test modules (one place, so no test
module imports another): value strategies per schema type, the every-type ``RECORD`` with its
``ALL_TYPES`` schema, ``make_codec``, and the exact-equality ``same``/``check_wire`` checks."""

from __future__ import annotations

import ipaddress
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import argon2
import bcrypt
import msgspec
from hypothesis import strategies as st
from hypothesis.provisional import urls

from s3db_async._codec.codec import AttributeRegistry, EncodedRecord, RecordCodec
from s3db_async._codec.crypto import SecretBox
from s3db_async._schema.schema import Schema
from s3db_async.stores._base import METADATA_LIMIT, encode_metadata_value, metadata_size

PASSPHRASE = "correct horse battery staple"
SALT = bytes(range(16))

ALL_TYPES = {
    "s": "string",
    "email": "email",
    "n": "number",
    "i": "integer",
    "b": "boolean",
    "d": "date",
    "tags": "array|items:string",
    "nums": "array|items:number",
    "ints": "array|items:integer",
    "flags": "array|items:boolean",
    "dates": "array|items:date",
    "pws": "array|items:secret",
    "maybe": {"type": "array", "items": "string|nullable"},
    "lines": {
        "type": "array",
        "items": {"sku": "string", "qty": "integer", "when": "date", "price": "number"},
    },
    "matrix": {"type": "array", "items": {"type": "array", "items": "number"}},
    "anyarr": "array",
    "meta": "json",
    "obj": "object",
    "any": "any",
    "vec": "embedding:4",
    "pw": "secret",
    "ip": "ip4",
    "nested": {"a": {"b": "string", "c": "integer"}, "d": "boolean"},
    # the types of issue 12
    "ip6": "ip6",
    "mac": "mac",
    "net": "cidr",
    "ver": "semver",
    "site": "url",
    "uid": "uuid",
    "bits": "bits:12",
    "price": "money",
    "yen": "money:JPY",
    "dec": "decimal:4",
    "wei": "crypto:18",
    "lat": "geo:lat",
    "lon": "geo:lon",
    "at": "geo:point",
    "when": "datetime",
    "raw": "bytes",
    "pass": "password",
    "bpass": "password:bcrypt",
    "ips": "array|items:ip6",
    "nets": "array|items:cidr",
    "uids": "array|items:uuid",
    "amounts": "array|items:decimal:2",
    "points": "array|items:geo:point",
    "blobs": "array|items:bytes",
    "stamps": "array|items:datetime",
    "masks": "array|items:bits:3",
    "hashes": "array|items:password",
    "rows": {
        "type": "array",
        "items": {"cost": "money", "host": "ip4", "blob": "bytes", "pt": "geo:point"},
    },
}


def _hashes() -> list[str]:
    """Ready-made password hashes (cheap parameters): a hash written back is kept as is."""
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    argon2i = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I)
    return [
        cheap.hash("hunter2"),
        cheap.hash("pässwörd"),
        argon2i.hash("x"),
        argon2.PasswordHasher().hash("default profile"),
        bcrypt.hashpw(b"hunter2", bcrypt.gensalt(4)).decode(),
        bcrypt.hashpw(b"x", bcrypt.gensalt(4, prefix=b"2a")).decode(),
    ]


HASHES = _hashes()


def make_codec(
    attributes: dict[str, Any],
    box: SecretBox | None = None,
    *,
    behavior: str = "body-overflow",
    registry: AttributeRegistry | None = None,
    reserved: int = 0,
    allow_extra: bool = False,
    version: str = "v1",
) -> tuple[Schema, RecordCodec]:
    schema = Schema(attributes, allow_extra=allow_extra)
    registry = registry or AttributeRegistry()
    registry.assign(schema.fields)
    codec = RecordCodec(
        schema,
        registry,
        version=version,
        behavior=behavior,
        secret_box=box,
        reserved_metadata=reserved,
    )
    return schema, codec


def same(a: Any, b: Any, path: str = "") -> None:
    """Exact equality: same types, float sign and NaN, datetime zone and fold, Decimal
    digits and exponent."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__} ({a!r}, {b!r})"
    if isinstance(a, Decimal):
        assert a.as_tuple() == b.as_tuple(), (path, a, b)
    elif isinstance(a, float):
        if math.isnan(a):
            assert math.isnan(b), path
        else:
            assert a == b and math.copysign(1, a) == math.copysign(1, b), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (path, a.keys(), b.keys())
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, datetime):
        assert a.replace(tzinfo=None) == b.replace(tzinfo=None), (path, a, b)
        assert a.tzinfo == b.tzinfo and a.fold == b.fold, (path, a, b)
        assert a.utcoffset() == b.utcoffset(), (path, a, b)
    else:
        assert a == b, (path, a, b)


def check_wire(enc: EncodedRecord, reserved: int = 0) -> None:
    """Metadata as it travels: lowercase keys, header-safe values, within the limit."""
    for k, v in enc.metadata.items():
        assert k == k.lower() and k.isascii()
        assert isinstance(v, str) and encode_metadata_value(v) == v, v
        assert v.isascii() and v.isprintable() and v == v.strip()
    assert enc.metadata["_v"]
    assert metadata_size(enc.metadata) + reserved <= METADATA_LIMIT
    assert enc.body == b"" or isinstance(msgspec.json.decode(enc.body), dict)


# -- strategies -----------------------------------------------------------------------

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
zones = st.none() | st.just(UTC) | st.timezones() | fixed_offsets
datetimes = st.datetimes(timezones=zones, allow_imaginary=False)
dates_or_times = st.dates() | datetimes
numbers = st.integers() | st.integers(min_value=-(2**200), max_value=2**200) | st.floats()
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**100), max_value=2**100) | finite
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
embeddings = st.lists(st.floats(width=32), min_size=4, max_size=4) | st.lists(
    st.floats(), min_size=4, max_size=4
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _mac_forms(raw: bytes) -> st.SearchStrategy[str]:
    h = raw.hex()
    pairs = [h[i : i + 2] for i in range(0, len(h), 2)]
    forms = [":".join(pairs), "-".join(pairs).upper(), h]
    if len(raw) == 6:
        forms.append(".".join(h[i : i + 4] for i in range(0, 12, 4)))
    return st.sampled_from(forms)


def _network(addr: Any, prefix: int) -> Any:
    return ipaddress.ip_network(f"{addr}/{prefix}", strict=False)


ident = st.from_regex(r"(0|[1-9][0-9]{0,3}|[0-9]*[A-Za-z-][0-9A-Za-z-]{0,5})", fullmatch=True)
build_ident = st.from_regex(r"[0-9A-Za-z-]{1,6}", fullmatch=True)
semvers = st.builds(
    lambda a, b, c, pre, build: (
        f"{a}.{b}.{c}"
        + (f"-{'.'.join(pre)}" if pre else "")
        + (f"+{'.'.join(build)}" if build else "")
    ),
    st.integers(0, 10**6),
    st.integers(0, 999),
    st.integers(0, 2**70),
    st.lists(ident, max_size=3),
    st.lists(build_ident, max_size=2),
)
macs = st.binary(min_size=6, max_size=6) | st.binary(min_size=8, max_size=8)
networks = st.builds(
    _network,
    st.ip_addresses(v=4),
    st.integers(0, 32),
) | st.builds(_network, st.ip_addresses(v=6), st.integers(0, 128))
uuids = st.uuids() | st.uuids().map(str) | st.uuids().map(lambda u: u.hex.upper())
big = 10**30


def fixed(places: int, *, limit: int = big) -> st.SearchStrategy[Any]:
    """Inputs of a fixed-point field: Decimals (up to ``places`` places), ints, strings."""
    decimals = st.decimals(
        min_value=-limit, max_value=limit, places=places, allow_nan=False, allow_infinity=False
    )
    fewer = st.decimals(
        min_value=-limit,
        max_value=limit,
        places=max(0, places - 2),
        allow_nan=False,
        allow_infinity=False,
    )
    return decimals | fewer | st.integers(-limit, limit) | decimals.map(str)


coords = {
    "lat": st.floats(-90, 90) | st.integers(-90, 90) | st.decimals(-90, 90, places=9),
    "lon": st.floats(-180, 180) | st.integers(-180, 180),
}
points = (
    st.tuples(coords["lat"], coords["lon"])
    | st.lists(st.floats(-90, 90), min_size=2, max_size=2).map(
        lambda v: [v[0], v[1] * 2]  # a [lat, lon] list
    )
    | st.fixed_dictionaries({"lat": coords["lat"], "lon": coords["lon"]})
)
bitsets = st.lists(st.booleans(), min_size=12, max_size=12) | st.integers(0, 2**12 - 1)
blobs = st.binary() | st.binary(max_size=40).map(bytearray)


RECORD = st.fixed_dictionaries(
    {},
    optional={
        "s": optional(st.text()),
        "email": st.emails(),
        "n": optional(numbers),
        "i": st.integers() | st.integers(min_value=-(2**300), max_value=2**300),
        "b": optional(st.booleans()),
        "d": optional(dates_or_times),
        "tags": st.lists(st.text(), max_size=5),
        "nums": st.lists(numbers, max_size=5),
        "ints": st.lists(st.integers(), max_size=5),
        "flags": st.lists(st.booleans(), max_size=5),
        "dates": st.lists(dates_or_times, max_size=4),
        "pws": st.lists(st.text(max_size=10), max_size=3),
        "maybe": st.lists(optional(st.text()), max_size=4),
        "lines": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "sku": optional(st.text()),
                    "qty": st.integers(),
                    "when": dates_or_times,
                    "price": numbers,
                },
            ),
            max_size=3,
        ),
        "matrix": st.lists(st.lists(numbers, max_size=3), max_size=3),
        "anyarr": st.lists(json_values, max_size=3),
        "meta": json_values,
        "obj": st.dictionaries(st.text(), json_values, max_size=4),
        "any": json_values,
        "vec": optional(embeddings),
        "pw": optional(st.text()),
        "ip": st.ip_addresses(v=4).map(str) | st.ip_addresses(v=4),
        "nested": optional(
            st.fixed_dictionaries(
                {},
                optional={
                    "a": optional(
                        st.fixed_dictionaries({}, optional={"b": st.text(), "c": st.integers()})
                    ),
                    "d": st.booleans(),
                },
            )
        ),
        "ip6": optional(st.ip_addresses(v=6) | st.ip_addresses(v=6).map(str)),
        "mac": macs.flatmap(_mac_forms),
        "net": networks | networks.map(str),
        "ver": semvers,
        "site": urls(),
        "uid": uuids,
        "bits": bitsets,
        "price": optional(fixed(2)),
        "yen": fixed(0),
        "dec": fixed(4),
        "wei": fixed(18, limit=2**256),
        "lat": coords["lat"],
        "lon": coords["lon"],
        "at": optional(points),
        "when": optional(datetimes | st.dates()),
        "raw": optional(blobs),
        "pass": optional(st.sampled_from(HASHES)),
        "bpass": st.sampled_from(HASHES),
        "ips": st.lists(st.ip_addresses(v=6), max_size=4),
        "nets": st.lists(networks, max_size=4),
        "uids": st.lists(uuids, max_size=3),
        "amounts": st.lists(fixed(2), max_size=4),
        "points": st.lists(points, max_size=3),
        "blobs": st.lists(blobs, max_size=3),
        "stamps": st.lists(datetimes, max_size=3),
        "masks": st.lists(st.integers(0, 7), max_size=3),
        "hashes": st.lists(st.sampled_from(HASHES), max_size=2),
        "rows": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "cost": optional(fixed(2)),
                    "host": st.ip_addresses(v=4),
                    "blob": blobs,
                    "pt": points,
                },
            ),
            max_size=2,
        ),
    },
)
