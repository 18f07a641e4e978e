"""Attribute types: rule tokenizer, typed rule arguments and compiled value checks.

This module knows, for every attribute type, which rules apply, how a rule
argument written in a rule string is typed (``min:2`` → ``2``,
``default:true`` → ``True``) and how a value is checked and coerced. It
builds *converters*: one closure per field, compiled once, that returns the
(possibly coerced) value or raises :class:`Invalid` listing what failed.

Coercions (the only ones; everything else must already have the right type):

- ``integer``: a float with an integral value (``3.0``) becomes ``3``;
- ``date``: an ISO 8601 string becomes a :class:`datetime.date` (``"2024-01-15"``)
  or a :class:`datetime.datetime` (anything with a time part);
- ``datetime``: an ISO 8601 string becomes a :class:`datetime.datetime` (a bare date is
  midnight, naive), and so does a :class:`datetime.date`;
- ``ip4``, ``ip6``, ``mac``, ``cidr``, ``uuid``: a str or an :mod:`ipaddress` /
  :class:`uuid.UUID` object becomes the canonical str (:mod:`s3db_async._schema.types_net`);
- ``decimal:N``, ``crypto:N``, ``money``: an int, Decimal or decimal string becomes a
  Decimal with exactly N places (floats are refused); ``geo:*`` values are quantized to
  1e-7 degree; ``bits:N`` takes an int too (:mod:`s3db_async._schema.types_num`);
- ``bytes``: a bytearray or memoryview becomes ``bytes``;
- ``password``: a cleartext becomes its hash (:mod:`s3db_async._schema.passwords`);
- ``array`` and ``embedding``: a tuple becomes a list; embedding items become floats;
- ``object``, ``json``, ``any``: tuples become lists and mappings become dicts
  (a deep copy: the validated value never aliases the caller's containers).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from . import passwords as _passwords
from . import types_num as _types_num
from .encoding import is_utf8, unb64u
from .invalid import Invalid, fail
from .types_net import cidr, ip4, ip6, mac, semver, uuid_text

__all__ = [
    "DICT_KEYS",
    "FLAG_RULES",
    "Invalid",
    "RULES_BY_TYPE",
    "TYPES",
    "PARAM_TYPES",
    "Converter",
    "check_json",
    "closest",
    "json_converter",
    "parse_enum_values",
    "parse_number",
    "parse_type_param",
    "tokenize",
]

Converter = Callable[[Any], Any]
"""A compiled check: returns the (coerced) value or raises :class:`Invalid`."""

TYPES = (
    "string",
    "number",
    "integer",
    "boolean",
    "date",
    "array",
    "object",
    "json",
    "secret",
    "embedding",
    "email",
    "url",
    "ip4",
    "ip6",
    "enum",
    "any",
    "datetime",
    "bytes",
    "mac",
    "cidr",
    "uuid",
    "semver",
    "bits",
    "decimal",
    "crypto",
    "money",
    "geo",
    "password",
)
"""Type names accepted as the type token of a rule string."""

FLAG_RULES = ("required", "optional", "nullable")
_COMMON = frozenset({*FLAG_RULES, "default", "description"})
_STRINGISH = _COMMON | {"min", "max"}
RULES_BY_TYPE: dict[str, frozenset[str]] = {
    "string": _STRINGISH | {"pattern", "enum"},
    "email": _STRINGISH,
    "url": _STRINGISH,
    "secret": _STRINGISH,
    "number": _COMMON | {"min", "max", "enum"},
    "integer": _COMMON | {"min", "max", "enum"},
    "array": _COMMON | {"min", "max", "items"},
    "embedding": _COMMON | {"dimensions"},
    "boolean": _COMMON,
    "date": _COMMON,
    "ip4": _COMMON,
    "ip6": _COMMON,
    "object": _COMMON | {"props"},
    "json": _COMMON,
    "any": _COMMON,
    "datetime": _COMMON,
    "bytes": _COMMON | {"min", "max"},
    "mac": _COMMON,
    "cidr": _COMMON,
    "uuid": _COMMON,
    "semver": _COMMON,
    "bits": _COMMON,
    "decimal": _COMMON | {"min", "max"},
    "crypto": _COMMON | {"min", "max"},
    "money": _COMMON | {"min", "max"},
    "geo": _COMMON,
    "password": frozenset({*FLAG_RULES, "description", "min", "max"}),
}
"""Which rules each type accepts (``enum`` as a type is a string enum)."""

DICT_KEYS = frozenset({"type", "plugin"}.union(*RULES_BY_TYPE.values()))
"""Keys allowed in the dict form of a rule (``{"type": "string", "min": 2}``)."""

_ALL_NAMES = sorted(set(TYPES) | set(DICT_KEYS) - {"type", "plugin", "props"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_INT = re.compile(r"^[+-]?\d+$")

FIXED_POINT = frozenset({"decimal", "crypto", "money"})
"""Exact fixed-point types (Decimal values; ``min``/``max`` are Decimals too)."""


def join_path(prefix: str, rel: str) -> str:
    """``profile`` + ``age`` → ``profile.age``; ``tags`` + ``[1]`` → ``tags[1]``."""
    if not rel:
        return prefix
    if not prefix:
        return rel
    return prefix + rel if rel[0] == "[" else f"{prefix}.{rel}"


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest valid name to ``word`` (difflib), or None."""
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


TYPE_ALIASES = {
    "int": "integer",
    "bool": "boolean",
    "str": "string",
    "text": "string",
    "float": "number",
    "double": "number",
    "dict": "object",
    "map": "object",
    "list": "array",
    "tuple": "array",
    "timestamp": "datetime",
}
"""Type names of other languages and libraries, and the type to use instead."""


def rule_suggestion(word: str) -> str | None:
    """'did you mean ...' text for an unknown rule or type name."""
    best = TYPE_ALIASES.get(word) or closest(word, _ALL_NAMES)
    return f"did you mean {best!r}?" if best else None


# -- tokenizer ----------------------------------------------------------------


def tokenize(rule: str) -> list[tuple[str, str | None]]:
    """Split a rule string into ``(name, argument)`` pairs.

    ``"string|min:2|enum:a,b"`` → ``[("string", None), ("min", "2"), ("enum", "a,b")]``.
    Tokens are split on ``|``; a token's name ends at its first ``:``. Blank tokens
    are ignored; names are case-insensitive.
    """
    out: list[tuple[str, str | None]] = []
    for raw in rule.split("|"):
        token = raw.strip()
        if not token:
            continue
        name, sep, arg = token.partition(":")
        out.append((name.strip().lower(), arg if sep else None))
    return out


def parse_number(text: str, *, integer: bool = False) -> int | float:
    """Type a numeric rule argument: ``"2"`` → ``2``, ``"2.5"`` → ``2.5``."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    if integer:
        raise ValueError(f"{text!r} is not an integer")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_bool(text: str) -> bool:
    """``true/false/1/0/yes/no/on/off`` → bool."""
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


def parse_enum_values(base: str, text: str) -> list[Any]:
    """``enum:a,b`` arguments typed by the field type (``number|enum:1,2`` → ints)."""
    parts = [p.strip() for p in text.split(",")]
    if base in ("number", "integer"):
        return [parse_number(p, integer=base == "integer") for p in parts]
    return parts


def parse_default(type_name: str, text: str) -> Any:
    """Type a ``default:x`` argument by the field's type."""
    if type_name in ("number", "integer"):
        return parse_number(text, integer=type_name == "integer")
    if type_name == "boolean":
        return parse_bool(text)
    if type_name in ("array", "object", "json", "any", "embedding", "bits", "geo"):
        return msgspec.json.decode(text.encode("utf-8"))
    if type_name == "bytes":
        return unb64u(text.strip())  # base64url, as the canonical definition writes it
    return text  # strings, dates, decimals (parsed by the converter), ips, urls


# -- parameterized types ----------------------------------------------------------------


def _int_param(name: str, arg: str | None, lo: int, hi: int, example: str) -> int:
    if arg is None:
        what = "size" if name == "bits" else "number of places"
        raise ValueError(f"{name} needs its {what}: '{example}'")
    text = arg.strip()
    if not _INT.match(text) or not lo <= int(text) <= hi:
        raise ValueError(f"{name}:{arg} needs an integer between {lo} and {hi} ('{example}')")
    return int(text)


def _geo_param(arg: str | None) -> str:
    kind = (arg or "").strip().lower()
    if kind not in _types_num.GEO_KINDS:
        raise ValueError("geo needs its kind: 'geo:lat', 'geo:lon' or 'geo:point'")
    return kind


PARAM_TYPES: dict[str, Callable[[str | None], Any]] = {
    "bits": lambda a: _int_param("bits", a, 1, _types_num.MAX_BITS, "bits:8"),
    "decimal": lambda a: _int_param("decimal", a, 0, _types_num.MAX_PLACES, "decimal:2"),
    "crypto": lambda a: (
        8 if a is None else _int_param("crypto", a, 0, _types_num.MAX_PLACES, "crypto:18")
    ),
    "money": lambda a: None if a is None else _types_num.parse_currency(a),
    "geo": _geo_param,
    "password": _passwords.parse_algorithm,
}
"""Types whose rule token takes an argument (``decimal:2``): arg text (or None) → the
typed parameter kept in ``FieldSpec.param``. Raises ``ValueError`` with a usage hint."""


def parse_type_param(type_name: str, arg: str | None) -> Any:
    """The typed parameter of a parameterized type (see :data:`PARAM_TYPES`)."""
    return PARAM_TYPES[type_name](arg)


def fixed_places(type_name: str, param: Any) -> int:
    """Decimal places of a fixed-point field."""
    return _types_num.currency_places(param) if type_name == "money" else int(param)


_FACTORIES: dict[str, Callable[[Any, Mapping[str, Any]], Converter]] = {
    "bits": lambda p, r: _types_num.bits_converter(p),
    "decimal": lambda p, r: _types_num.fixed_converter("decimal", p),
    "crypto": lambda p, r: _types_num.fixed_converter("crypto", p),
    "money": lambda p, r: _types_num.fixed_converter("money", _types_num.currency_places(p)),
    "geo": lambda p, r: _types_num.geo_converter(p),
    "password": _passwords.password_converter,
}


# -- JSON values ----------------------------------------------------------------

MAX_JSON_DEPTH = 256
"""Deepest nesting of a free-form value (deeper would exhaust the interpreter's stack)."""


def check_json(value: Any, depth: int = 0) -> Any:
    """Deep-copy ``value`` if it is plain JSON (str, int, finite float, bool, None,
    lists/tuples, mappings with str keys) nested at most :data:`MAX_JSON_DEPTH` levels;
    else raise :class:`Invalid`."""
    t = type(value)
    if t is str:
        return value if is_utf8(value) else _surrogate("json", value)
    if t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        fail("json", "non-finite floats (nan, inf) are not JSON", value)
    if depth >= MAX_JSON_DEPTH and (isinstance(value, Mapping) or t is list or t is tuple):
        fail("json", f"is nested more than {MAX_JSON_DEPTH} levels deep", value)
    if t is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                fail("json", f"object keys must be strings, got {type(k).__name__}", value)
            if not is_utf8(k):
                _surrogate("json", k)
            out[k] = check_json(v, depth + 1)
        return out
    if t is list or t is tuple:
        return [check_json(v, depth + 1) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return check_json(str(value))
    if isinstance(value, float):
        return check_json(float(value))
    fail("json", f"{t.__name__} is not a JSON value", value)


def json_converter(value: Any) -> Any:
    """Converter of the ``json`` and ``any`` types."""
    return check_json(value)


def object_converter(value: Any) -> Any:
    """Converter of the free-form ``object`` type."""
    if not isinstance(value, Mapping):
        fail("object", "must be an object (a dict)", value)
    return check_json(value)


# -- scalar converters -------------------------------------------------------------


def _string(value: Any) -> Any:
    if type(value) is str:
        return value if value.isascii() or is_utf8(value) else _surrogate("string", value)
    if isinstance(value, str):
        return _string(str(value))
    fail("string", "must be a string", value)


def _surrogate(rule: str, value: str) -> Any:
    fail(rule, "must be valid unicode (it holds a lone surrogate)", value)


def _number(value: Any) -> Any:
    t = type(value)
    if t is int or t is float:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail("number", "must be a number", value)
    return int(value) if isinstance(value, int) else float(value)


def _integer(value: Any) -> Any:
    t = type(value)
    if t is int:
        return value
    if t is float and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    fail("integer", "must be an integer", value)


def _boolean(value: Any) -> Any:
    if value is True or value is False:
        return value
    fail("boolean", "must be a boolean", value)


def _datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    fail("datetime", "must be a datetime, a date or an ISO 8601 string", value)


def _bytes(value: Any) -> Any:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    fail("bytes", "must be bytes (or a bytearray / memoryview)", value)


def _date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if "T" in value or " " in value or len(value) > 10:
                return datetime.fromisoformat(value)
            return date.fromisoformat(value)
        except ValueError:
            pass
    fail("date", "must be a date, a datetime or an ISO 8601 string", value)


def _email(value: Any) -> Any:
    value = _string(value)
    if _EMAIL.match(value):
        return value
    fail("email", "must be an email address", value)


def _url(value: Any) -> Any:
    value = _string(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.netloc and " " not in value:
        return value
    fail("url", "must be an absolute URL (scheme://host/...)", value)


BASE_CONVERTERS: dict[str, Converter] = {
    "string": _string,
    "secret": _string,
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "date": _date,
    "email": _email,
    "url": _url,
    "ip4": ip4,
    "ip6": ip6,
    "mac": mac,
    "cidr": cidr,
    "uuid": uuid_text,
    "semver": semver,
    "datetime": _datetime,
    "bytes": _bytes,
    "object": object_converter,
    "json": json_converter,
    "any": json_converter,
}


def _length_checks(rules: Mapping[str, Any], unit: str) -> list[Converter]:
    checks: list[Converter] = []
    lo, hi = rules.get("min"), rules.get("max")
    if lo is not None:

        def check_min(v: Any, lo: int = lo) -> Any:
            if len(v) < lo:
                fail("min", f"must have at least {lo} {unit}", v)
            return v

        checks.append(check_min)
    if hi is not None:

        def check_max(v: Any, hi: int = hi) -> Any:
            if len(v) > hi:
                fail("max", f"must have at most {hi} {unit}", v)
            return v

        checks.append(check_max)
    return checks


def _value_checks(rules: Mapping[str, Any]) -> list[Converter]:
    checks: list[Converter] = []
    lo, hi = rules.get("min"), rules.get("max")
    if lo is not None:

        def check_min(v: Any, lo: float = lo) -> Any:
            if not v >= lo:
                fail("min", f"must be >= {lo}", v)
            return v

        checks.append(check_min)
    if hi is not None:

        def check_max(v: Any, hi: float = hi) -> Any:
            if not v <= hi:
                fail("max", f"must be <= {hi}", v)
            return v

        checks.append(check_max)
    return checks


def _chain(base: Converter, checks: list[Converter]) -> Converter:
    if not checks:
        return base
    if len(checks) == 1:
        (only,) = checks

        def one(v: Any) -> Any:
            return only(base(v))

        return one

    def chained(v: Any) -> Any:
        v = base(v)
        for check in checks:
            v = check(v)
        return v

    return chained


def scalar_converter(
    type_name: str,
    rules: Mapping[str, Any],
    enum: tuple[Any, ...] | None,
    param: Any = None,
) -> Converter:
    """The converter of a non-container type with its rules (and typed parameter)."""
    factory = _FACTORIES.get(type_name)
    base = BASE_CONVERTERS[type_name] if factory is None else factory(param, rules)
    checks: list[Converter] = []
    if type_name in ("string", "email", "url", "secret"):
        checks += _length_checks(rules, "characters")
        pattern = rules.get("pattern")
        if pattern is not None:
            regex = re.compile(pattern)

            def check_pattern(v: Any) -> Any:
                if regex.search(v) is None:
                    fail("pattern", f"must match {pattern!r}", v)
                return v

            checks.append(check_pattern)
    elif type_name == "bytes":
        checks += _length_checks(rules, "bytes")
    elif type_name in ("number", "integer") or type_name in FIXED_POINT:
        checks += _value_checks(rules)
    if enum is not None:
        allowed = frozenset(enum)
        shown = ", ".join(map(str, enum))

        def check_enum(v: Any) -> Any:
            if v not in allowed:
                fail("enum", f"must be one of: {shown}", v)
            return v

        checks.append(check_enum)
    return _chain(base, checks)


def array_converter(rules: Mapping[str, Any], item: Converter | None) -> Converter:
    """The converter of ``array``: list or tuple, length rules, every item checked.

    :param item: the items' converter (None: items are any JSON value).
    """
    conv: Converter = item if item is not None else json_converter
    length = _length_checks(rules, "items")

    def check_array(value: Any) -> Any:
        if type(value) is not list and not isinstance(value, (list, tuple)):
            fail("array", "must be an array (a list)", value)
        for check in length:
            check(value)
        out: list[Any] = []
        errors: list[tuple[str, str, str, str]] | None = None
        for i, x in enumerate(value):
            try:
                out.append(conv(x))
            except Invalid as exc:
                if errors is None:
                    errors = []
                errors.extend((join_path(f"[{i}]", p), r, m, t) for p, r, m, t in exc.errors)
        if errors:
            raise Invalid(errors)
        return out

    return check_array


def nullable_items(conv: Converter, item_type: str) -> Converter:
    """Wrap an item converter so that None items are allowed."""

    def check(v: Any) -> Any:
        return None if v is None else conv(v)

    return check


def required_items(conv: Converter, item_type: str) -> Converter:
    """Wrap an item converter so that None items fail with a clear message."""

    def check(v: Any) -> Any:
        if v is None:
            fail(item_type, f"array items must be {item_type}, not null", v)
        return conv(v)

    return check


def embedding_converter(dimensions: int) -> Converter:
    """The converter of ``embedding:N``: exactly N numbers, returned as floats."""

    def check_embedding(value: Any) -> Any:
        if type(value) is not list and not isinstance(value, (list, tuple)):
            fail("embedding", f"must be a list of {dimensions} numbers", value)
        if len(value) != dimensions:
            fail("dimensions", f"must have exactly {dimensions} numbers, got {len(value)}", value)
        out: list[float] = []
        for x in value:
            t = type(x)
            if t is float:
                out.append(x)
            elif (t is int or isinstance(x, (int, float))) and not isinstance(x, bool):
                out.append(float(x))
            else:
                fail("embedding", f"must contain only numbers, got {t.__name__}", value)
        return out

    return check_embedding
