"""Exact and bounded numbers: ``decimal:N``, ``crypto:N``, ``money[:CUR]``, ``geo:*``, ``bits:N``.

Fixed point (``decimal:N``, ``crypto:N``, ``money``)
    A :class:`~decimal.Decimal` with exactly N decimal places (``Decimal("12.30")``
    for ``decimal:2``). Accepted: ``Decimal``, ``int`` and decimal strings
    (``"12.3"``). Floats are refused (they are not exact), as are NaN and
    infinities, and values with more places than N (never rounded). Fewer places
    are padded (``12`` → ``Decimal("12.00")``); ``-0`` becomes ``0``. Stored as the
    scaled integer in base62 (``12.30`` → ``1230`` → ``jQ``); the JSON body holds
    the plain decimal string (``"12.30"``). ``crypto`` defaults to 8 places (a
    satoshi); ``money`` has the ISO 4217 minor unit of its currency (``money:JPY``
    0 places, ``money:KWD`` 3, ``money:EUR`` and plain ``money`` 2).

Coordinates (``geo:lat``, ``geo:lon``, ``geo:point``)
    Floats in degrees, quantized to 1e-7 degree (about 1.1 cm): the validated
    value is ``round(x * 1e7) / 1e7``, and that is what reads back, exactly.
    ``geo:point`` is ``[lat, lon]`` (a list of two floats; ``(lat, lon)`` and
    ``{"lat": .., "lon": ..}`` are accepted too). Stored as base62 integers of
    1e-7 degrees; a point packs both into one integer (at most 11 chars).

Bitsets (``bits:N``)
    A list of exactly N booleans; an ``int`` in ``[0, 2**N)`` is accepted too and
    expanded little-endian (item ``i`` is bit ``i``: ``5`` → ``[True, False, True,
    ...]``). Stored as the base62 integer of the bits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from .encoding import b62, unb62
from .invalid import fail

__all__ = [
    "CODECS",
    "GEO_KINDS",
    "MAX_DIGITS",
    "MAX_PLACES",
    "bits_converter",
    "currency_places",
    "fixed_converter",
    "from_scaled",
    "geo_converter",
    "scaled",
]

Fn = Callable[[Any], Any]

MAX_PLACES = 60
"""Largest N of ``decimal:N`` / ``crypto:N``."""
MAX_DIGITS = 120
"""Largest number of digits of a fixed-point value (scaled integer)."""
MAX_BITS = 65536
"""Largest N of ``bits:N``."""
GEO_KINDS = ("lat", "lon", "point")
GEO_SCALE = 10_000_000
_LAT_MAX = 90 * GEO_SCALE
_LON_MAX = 180 * GEO_SCALE
_LON_SPAN = 2 * _LON_MAX + 1
_CURRENCY = re.compile(r"[A-Z]{3}")

_MINOR_UNITS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
"""ISO 4217 currencies whose minor unit is not 2 decimal places."""


def currency_places(code: str | None) -> int:
    """Decimal places of a currency (ISO 4217 minor unit; 2 when unlisted or None)."""
    return 2 if code is None else _MINOR_UNITS.get(code, 2)


def parse_currency(text: str) -> str:
    """``eur`` → ``EUR``; raises ``ValueError`` unless three ASCII letters."""
    code = text.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"{text!r} is not an ISO 4217 currency code (three letters, e.g. EUR)")
    return code


# -- fixed point ---------------------------------------------------------------------------


def scaled(d: Decimal, places: int) -> int:
    """The integer ``d * 10**places`` exactly.

    :raises ValueError: ``d`` is not finite, has more than ``places`` decimal places,
        or has more than :data:`MAX_DIGITS` digits.
    """
    if not d.is_finite():
        raise ValueError("must be a finite number (not NaN or Infinity)")
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    coeff = int("".join(map(str, digits)))
    if coeff == 0:
        return 0
    if d.adjusted() + places + 1 > MAX_DIGITS:
        raise ValueError(f"has more than {MAX_DIGITS} digits")
    shift = exp + places
    n: int
    if shift >= 0:
        n = coeff * 10**shift
    else:
        if -shift > len(digits):
            raise ValueError(f"has more than {places} decimal places")
        n, rest = divmod(coeff, int(10 ** (-shift)))
        if rest:
            raise ValueError(f"has more than {places} decimal places")
    return -n if sign else n


def from_scaled(n: int, places: int) -> Decimal:
    """``n / 10**places`` as a Decimal with exactly ``places`` places (exact, any size)."""
    return Decimal(f"{n}E-{places}") if places else Decimal(n)


def _to_decimal(value: Any, rule: str, example: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        fail(rule, "must be a decimal number, not a boolean", value)
    if isinstance(value, int):
        return Decimal(int(value))
    if isinstance(value, float):
        fail(
            rule,
            f"floats are not exact; pass a Decimal, an int or a string like {example!r}",
            value,
        )
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            fail(rule, f"must be a decimal number like {example!r}", value)
    fail(rule, f"must be a Decimal, an int or a decimal string like {example!r}", value)


def fixed_converter(rule: str, places: int) -> Fn:
    """Converter of ``decimal:N`` / ``crypto:N`` / ``money``: an exact N-place Decimal."""
    example = "12" if places == 0 else "12." + "3" * places

    def check_fixed(value: Any) -> Any:
        d = _to_decimal(value, rule, example)
        try:
            n = scaled(d, places)
        except ValueError as exc:
            fail(rule, str(exc), value)
        return from_scaled(n, places)

    return check_fixed


def fixed_codec(places: int) -> tuple[Fn, Fn, Fn, Fn]:
    """(enc, dec, to_json, from_json) of an N-place Decimal."""

    def enc(v: Decimal) -> str:
        return b62(scaled(v, places))

    def dec(s: str) -> Decimal:
        return from_scaled(unb62(s), places)

    def to_json(v: Decimal) -> str:
        return format(v, "f")

    def from_json(j: Any) -> Decimal:
        if not isinstance(j, str):
            raise TypeError("a fixed-point value is stored as a string")
        try:
            d = Decimal(j)
        except InvalidOperation:
            raise ValueError("not a decimal string") from None
        return from_scaled(scaled(d, places), places)

    return enc, dec, to_json, from_json


# -- coordinates ---------------------------------------------------------------------------


def _units(value: Any, limit: int, what: str, rule: str) -> int:
    """Degrees → integer 1e-7 degrees, range-checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        fail(rule, f"{what} must be a number of degrees", value)
    bound = limit // GEO_SCALE
    if isinstance(value, Decimal):
        if not value.is_finite() or not -bound <= value <= bound:
            fail(rule, f"{what} must be between -{bound} and {bound}", value)
        n = int((value * GEO_SCALE).to_integral_value(ROUND_HALF_EVEN))
    elif isinstance(value, int):
        if not -bound <= value <= bound:
            fail(rule, f"{what} must be between -{bound} and {bound}", value)
        n = int(value) * GEO_SCALE
    else:
        if not -bound <= value <= bound:  # also refuses NaN
            fail(rule, f"{what} must be between -{bound} and {bound}", value)
        n = round(value * GEO_SCALE)
    return max(-limit, min(limit, n))


def _lat(value: Any) -> float:
    return _units(value, _LAT_MAX, "latitude", "geo") / GEO_SCALE


def _lon(value: Any) -> float:
    return _units(value, _LON_MAX, "longitude", "geo") / GEO_SCALE


def _point(value: Any) -> list[float]:
    if isinstance(value, Mapping):
        lon = value.get("lon", value.get("lng"))
        if "lat" not in value or lon is None:
            fail("geo", "a point mapping needs 'lat' and 'lon' keys", value)
        pair = (value["lat"], lon)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        fail("geo", "must be a [lat, lon] pair (or {'lat': .., 'lon': ..})", value)
    return [_lat(pair[0]), _lon(pair[1])]


def geo_converter(kind: str) -> Fn:
    """Converter of ``geo:lat``, ``geo:lon`` or ``geo:point``."""
    return {"lat": _lat, "lon": _lon, "point": _point}[kind]


def _enc_coord(v: float) -> str:
    return b62(round(v * GEO_SCALE))


def _dec_coord(s: str) -> float:
    return unb62(s) / GEO_SCALE


def _enc_point(v: list[float]) -> str:
    lat = round(v[0] * GEO_SCALE) + _LAT_MAX
    lon = round(v[1] * GEO_SCALE) + _LON_MAX
    return b62(lat * _LON_SPAN + lon)


def _dec_point(s: str) -> list[float]:
    n = unb62(s)
    if n < 0:
        raise ValueError("not an encoded point")
    lat, lon = divmod(n, _LON_SPAN)
    return [(lat - _LAT_MAX) / GEO_SCALE, (lon - _LON_MAX) / GEO_SCALE]


def _float_json(j: Any) -> float:
    if isinstance(j, bool) or not isinstance(j, (int, float)):
        raise TypeError("a coordinate is stored as a number")
    return float(j)


def _point_json(j: Any) -> list[float]:
    return [_float_json(j[0]), _float_json(j[1])]


def _point_to_json(v: list[float]) -> list[float]:
    return list(v)


def geo_codec(kind: str) -> tuple[Fn, Fn, Fn, Fn]:
    """(enc, dec, to_json, from_json) of a coordinate or a point."""
    if kind == "point":
        return _enc_point, _dec_point, _point_to_json, _point_json
    return _enc_coord, _dec_coord, float, _float_json


# -- bitsets --------------------------------------------------------------------------------


def bits_converter(size: int) -> Fn:
    """Converter of ``bits:N``: a list of N booleans (from N booleans or an int < 2**N)."""
    top = 1 << size

    def check_bits(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < top:
                return [bool(value >> i & 1) for i in range(size)]
            fail("bits", f"an int must be between 0 and 2**{size} - 1", value)
        if isinstance(value, (list, tuple)):
            if len(value) != size:
                fail("bits", f"must have exactly {size} bits, got {len(value)}", value)
            for x in value:
                if x is not True and x is not False:
                    fail("bits", f"must contain only booleans, got {type(x).__name__}", value)
            return list(value)
        fail("bits", f"must be a list of {size} booleans or an int below 2**{size}", value)

    return check_bits


def bits_to_int(v: list[bool]) -> int:
    """Bit ``i`` of the result is item ``i``."""
    return int("".join("1" if b else "0" for b in reversed(v)) or "0", 2)


def bits_codec(size: int) -> tuple[Fn, Fn, Fn, Fn]:
    """(enc, dec, to_json, from_json) of ``bits:N`` (base62 of the int, also in the body)."""

    def enc(v: list[bool]) -> str:
        return b62(bits_to_int(v))

    def dec(s: str) -> list[bool]:
        n = unb62(s)
        if not 0 <= n < 1 << size:
            raise ValueError(f"not a {size}-bit value")
        return [bool(n >> i & 1) for i in range(size)]

    return enc, dec, enc, dec


CODECS: dict[str, Callable[[Any], tuple[Fn, Fn, Fn, Fn]]] = {
    "decimal": fixed_codec,
    "crypto": fixed_codec,
    "money": lambda currency: fixed_codec(currency_places(currency)),
    "geo": geo_codec,
    "bits": bits_codec,
}
"""type → (param → (enc, dec, to_json, from_json))."""
