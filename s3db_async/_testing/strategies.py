"""Hypothesis strategies derived from a resource's schema (see :mod:`s3db_async.testing`).

One factory per attribute type in :data:`STRATEGIES`: ``factory(spec)`` returns a strategy
of values that the type accepts *given the field's rules* (``min``/``max``, ``pattern``,
``dimensions``...). The generic layer adds what every type shares: ``enum`` (sampled from
the allowed values), ``None`` for nullable fields, absent optional fields, nested objects,
array items; and it filters every value through the field's own compiled validator, so a
strategy can only yield values that :meth:`Schema.validate` accepts. A type without a
factory raises :class:`~s3db_async.errors.ConfigError` naming the type and the field;
:func:`register_type_strategy` adds one.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from hypothesis import strategies as st

from .._schema.fields import FieldSpec, ObjectSpec
from .._schema.schema import Schema
from .._schema.types import Invalid
from ..errors import ConfigError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from .._resource.resource import Resource

__all__ = [
    "STRATEGIES",
    "field_strategy",
    "json_values",
    "register_type_strategy",
    "resource_strategy",
    "schema_strategy",
]

StrategyFactory = Callable[[FieldSpec], "SearchStrategy[Any]"]
"""Builds the strategy of one field's values (its rules are in ``spec.rules``)."""

SAFE_INT = 2**53
"""Integers without ``min``/``max`` stay within ±2**53 (exact in JSON everywhere)."""
FIXED_POINT_BOUND = Decimal(10) ** 12
"""``decimal``/``crypto``/``money`` without ``min``/``max`` stay within ±10**12."""
DATE_MIN = date(1900, 1, 1)
DATE_MAX = date(2199, 12, 31)
_TIMESTAMP_FIELDS = ("created_at", "updated_at")
_URL = (
    r"https?://[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){1,2}(:[1-9][0-9]{1,4})?(/[a-z0-9._~-]{0,12}){0,3}"
)
_ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))


# -- shared building blocks -----------------------------------------------------------


def _sizes(spec: FieldSpec, *, spare: int) -> tuple[int, int]:
    """(min, max) lengths from ``min``/``max`` rules; ``max`` defaults to ``min + spare``."""
    lo = int(spec.rules.get("min") or 0)
    hi = spec.rules.get("max")
    return lo, int(hi) if hi is not None else lo + spare


def _bounds(spec: FieldSpec) -> tuple[Any, Any]:
    return spec.rules.get("min"), spec.rules.get("max")


def json_values(*, max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any JSON value (finite floats, ints within ±2**53, nested lists and objects)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-SAFE_INT, SAFE_INT)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _text(spec: FieldSpec) -> SearchStrategy[Any]:
    lo, hi = _sizes(spec, spare=20)
    pattern = spec.rules.get("pattern")
    if pattern is None:
        return st.text(min_size=lo, max_size=hi)
    return st.from_regex(pattern).filter(lambda s: lo <= len(s) <= hi)


def _sized(strategy: SearchStrategy[str], spec: FieldSpec) -> SearchStrategy[str]:
    lo, hi = spec.rules.get("min"), spec.rules.get("max")
    if lo is None and hi is None:
        return strategy
    return strategy.filter(lambda s: (lo is None or len(s) >= lo) and (hi is None or len(s) <= hi))


def _integer(spec: FieldSpec) -> SearchStrategy[Any]:
    lo, hi = _bounds(spec)
    lo = -SAFE_INT if lo is None else math.ceil(lo)
    hi = SAFE_INT if hi is None else math.floor(hi)
    if lo > hi:
        raise ConfigError(
            f"no integer satisfies min/max of field {spec.path!r}",
            metadata={"field": spec.path},
        )
    return st.integers(min_value=lo, max_value=hi)


def _number(spec: FieldSpec) -> SearchStrategy[Any]:
    lo, hi = _bounds(spec)
    floats = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    ints_lo = -SAFE_INT if lo is None else math.ceil(lo)
    ints_hi = SAFE_INT if hi is None else math.floor(hi)
    if ints_lo > ints_hi:
        return floats
    return st.integers(ints_lo, ints_hi) | floats


def _date(spec: FieldSpec) -> SearchStrategy[Any]:
    return st.dates(DATE_MIN, DATE_MAX) | _datetime(spec)


def _datetime(spec: FieldSpec) -> SearchStrategy[Any]:
    return st.datetimes(
        datetime.combine(DATE_MIN, datetime.min.time()),
        datetime.combine(DATE_MAX, datetime.min.time()),
        timezones=st.none() | st.sampled_from(_ZONES),
    )


def _ip(version: Literal[4, 6]) -> StrategyFactory:
    def factory(spec: FieldSpec) -> SearchStrategy[Any]:
        return st.ip_addresses(v=version).map(str)

    return factory


def _embedding(spec: FieldSpec) -> SearchStrategy[Any]:
    n = spec.dimensions or 1
    return st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=n, max_size=n)


def _object(spec: FieldSpec) -> SearchStrategy[Any]:
    return st.dictionaries(st.text(max_size=10), json_values(), max_size=5)


def _json(spec: FieldSpec) -> SearchStrategy[Any]:
    return json_values()


def _cidr(spec: FieldSpec) -> SearchStrategy[Any]:
    def network(address: Any, prefix: int) -> str:
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))

    v4 = st.builds(network, st.ip_addresses(v=4), st.integers(0, 32))
    v6 = st.builds(network, st.ip_addresses(v=6), st.integers(0, 128))
    return v4 | v6


def _mac(spec: FieldSpec) -> SearchStrategy[Any]:
    octets = st.binary(min_size=6, max_size=6) | st.binary(min_size=8, max_size=8)
    return octets.map(lambda b: ":".join(f"{x:02x}" for x in b))


def _semver(spec: FieldSpec) -> SearchStrategy[Any]:
    from .._schema.types_net import _SEMVER

    return st.from_regex(_SEMVER, fullmatch=True)


def _bytes(spec: FieldSpec) -> SearchStrategy[Any]:
    lo, hi = _sizes(spec, spare=32)
    return st.binary(min_size=lo, max_size=hi)


def _bits(spec: FieldSpec) -> SearchStrategy[Any]:
    n = int(spec.param)
    return st.lists(st.booleans(), min_size=n, max_size=n)


def _fixed_point(spec: FieldSpec) -> SearchStrategy[Any]:
    from .._schema.types import fixed_places

    places = fixed_places(spec.type, spec.param)
    lo, hi = _bounds(spec)
    return st.decimals(
        min_value=-FIXED_POINT_BOUND if lo is None else lo,
        max_value=FIXED_POINT_BOUND if hi is None else hi,
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )


def _geo(spec: FieldSpec) -> SearchStrategy[Any]:
    lat = st.floats(-90.0, 90.0)
    lon = st.floats(-180.0, 180.0)
    if spec.param == "lat":
        return lat
    if spec.param == "lon":
        return lon
    return st.tuples(lat, lon).map(list)


STRATEGIES: dict[str, StrategyFactory] = {
    "string": _text,
    "secret": _text,
    "password": _text,
    "email": lambda spec: _sized(st.emails(), spec),
    "url": lambda spec: _sized(st.from_regex(_URL, fullmatch=True), spec),
    "number": _number,
    "integer": _integer,
    "boolean": lambda spec: st.booleans(),
    "date": _date,
    "datetime": _datetime,
    "ip4": _ip(4),
    "ip6": _ip(6),
    "embedding": _embedding,
    "object": _object,
    "json": _json,
    "any": _json,
    "uuid": lambda spec: st.uuids().map(str),
    "mac": _mac,
    "cidr": _cidr,
    "semver": _semver,
    "bytes": _bytes,
    "bits": _bits,
    "decimal": _fixed_point,
    "crypto": _fixed_point,
    "money": _fixed_point,
    "geo": _geo,
}
"""Attribute type → strategy factory; extend with :func:`register_type_strategy`."""


def register_type_strategy(type_name: str, factory: StrategyFactory) -> None:
    """Teach :func:`resource_strategy` a type (or replace how it generates one).

    ::

        register_type_strategy("currency", lambda spec: st.sampled_from(["EUR", "USD"]))
    """
    STRATEGIES[type_name] = factory


# -- fields, objects, schemas ------------------------------------------------------------


def _accepts(convert: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        try:
            convert(value)
        except (Invalid, ValueError, TypeError, OverflowError):
            return False
        return True

    return ok


def field_strategy(spec: FieldSpec | ObjectSpec) -> SearchStrategy[Any]:
    """Values of one field (or nested object) that its definition accepts; ``None`` only
    when the field is nullable.

    :raises ConfigError: the field (or an array's items) has a type without a factory.
    """
    if isinstance(spec, ObjectSpec):
        inner = _object_strategy(spec)
        return st.none() | inner if spec.nullable else inner
    if spec.enum is not None:
        values: SearchStrategy[Any] = st.sampled_from(spec.enum)
    elif spec.type == "array":
        values = _array(spec)
    else:
        factory = STRATEGIES.get(spec.type)
        if factory is None:
            raise ConfigError(
                f"no hypothesis strategy for type {spec.type!r} (field {spec.path!r})",
                suggestion=(
                    f"register one: s3db_async.testing.register_type_strategy({spec.type!r}, "
                    "lambda spec: <strategy>)"
                ),
                metadata={"field": spec.path, "type": spec.type},
            )
        values = factory(spec).filter(_accepts(spec.convert))
    nullable = spec.explicit_nullable or (spec.nullable and not spec.required)
    return st.none() | values if nullable else values


def _array(spec: FieldSpec) -> SearchStrategy[Any]:
    lo, hi = _sizes(spec, spare=4)
    items = json_values(max_leaves=4) if spec.items is None else field_strategy(spec.items)
    if isinstance(spec.items, FieldSpec) and not spec.items.explicit_nullable:
        items = items.filter(lambda v: v is not None)
    return st.lists(items, min_size=lo, max_size=hi)


def _object_strategy(
    node: ObjectSpec, *, skip: Callable[[FieldSpec | ObjectSpec], bool] | None = None
) -> SearchStrategy[dict[str, Any]]:
    required: dict[str, SearchStrategy[Any]] = {}
    optional: dict[str, SearchStrategy[Any]] = {}
    for name, child in node.children.items():
        if skip is not None and skip(child):
            continue
        strategy = field_strategy(child)
        (required if child.required else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def schema_strategy(
    schema: Schema, *, exclude: tuple[str, ...] | frozenset[str] = ()
) -> SearchStrategy[dict[str, Any]]:
    """Records valid for ``schema`` (plugin attributes and ``exclude``\\ d top-level fields
    left out)."""
    excluded = frozenset(exclude)

    def skip(child: FieldSpec | ObjectSpec) -> bool:
        return child.plugin or (child.path in excluded)

    return _object_strategy(schema.root, skip=skip)


def resource_strategy(
    resource: Resource | Schema, *, exclude: tuple[str, ...] | frozenset[str] = ()
) -> SearchStrategy[dict[str, Any]]:
    """A hypothesis strategy of records that ``resource.insert`` accepts.

    Every user field of the schema, with its rules; plugin attributes and the automatic
    ``created_at``/``updated_at`` of a resource with ``timestamps`` are left out (and any
    top-level field in ``exclude``). No ``id``: the resource generates one.

    :raises ConfigError: a field has a type without a factory (see
        :func:`register_type_strategy`).
    """
    if isinstance(resource, Schema):
        return schema_strategy(resource, exclude=exclude)
    extra = _TIMESTAMP_FIELDS if resource.timestamps else ()
    return schema_strategy(resource.schema, exclude=(*exclude, *extra))
