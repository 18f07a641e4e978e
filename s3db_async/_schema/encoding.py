"""Compact, header-safe, exact text encodings of field values.

Every encoder returns printable US-ASCII without leading/trailing blanks that
never starts with ``=?`` (so :func:`~s3db_async.stores._base.encode_metadata_value`
passes it through unchanged and its size is its length). The schema says what
type a field has, so values carry no type tag. Encodings:

========================  ==========================================  ===========================
type                      encoding                                    example
========================  ==========================================  ===========================
any field set to None     ``~``                                       ``~``
string / email / url      as is if printable ASCII; ``~e`` for "";   ``Ann``, ``~ucaf%C3%A9``
                          else ``~u`` + %-escapes or ``~b`` +
                          base64url of UTF-8 (the shorter)
integer                   base62 (``0-9A-Za-z``, ``-`` if negative)   ``1700000000000``: ``Tvcokgi``
number (int)              base62, like integer                         ``30`` → ``U``
number (float)            ``repr`` minus redundant zeros; always has  ``1.5``, ``.5``, ``1.``,
                          ``.``, ``+`` or an inner ``-``; ``inf.``,    ``-.0``, ``1e+308``
                          ``-inf.``, ``nan.`` for non-finite
boolean                   ``1`` / ``0``
date                      ``.`` + base62 days since 1970-01-01        ``.5BM``
datetime (both types)     base62 seconds since 1970 (wall clock),     ``1gq6Pk_``,
                          ``.``+base62 µs if any, then the zone:      ``1gq6Pk@Europe/Paris``
                          none (naive), ``_`` (UTC), ``@key``
                          (ZoneInfo), ``+``/``-`` base62 offset
                          seconds; ``!`` if ``fold=1``
array of scalars          items encoded as above joined by ``,``      ``a,b,~e``, ``~[]``
                          (``,`` in strings escaped); ``~[]`` = []
embedding                 the shorter of ``,``-joined floats and      ``~4AACAPw``
                          ``~4``/``~8`` + base64url of little-endian
                          float32 (when exact) / float64
object, json, other       msgspec JSON, escaped like a string         ``{"a":1}``
arrays
secret                    the SecretBox token (base64url)
bytes                     unpadded base64url; ``~e`` for b""          ``AP8``
========================  ==========================================  ===========================

Network types are packed by :mod:`s3db_async._schema.types_net`, fixed point, coordinates
and bitsets by :mod:`s3db_async._schema.types_num`, password hashes by
:mod:`s3db_async._schema.passwords` (all with the helpers here); ``docs/types.md`` lists them.

NaN round-trips as NaN (its sign and payload are not kept). ``datetime``
zones: ``timezone.utc`` and ZoneInfo zones come back as the same objects;
other tzinfo implementations come back as the fixed offset they had.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
import sys
from array import array
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import msgspec

__all__ = [
    "b64_token",
    "NULL",
    "is_utf8",
    "b62",
    "b64u",
    "dec_bytes",
    "dec_date",
    "dec_embedding",
    "dec_float",
    "dec_number",
    "enc_bytes",
    "enc_date",
    "enc_embedding",
    "enc_float",
    "enc_number",
    "esc_text",
    "json_text",
    "truncate_text",
    "unb62",
    "unb64u",
    "unesc_text",
]

NULL = "~"
"""Encoding of None, for every type."""
EMPTY_LIST = "~[]"

_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_B62_INDEX = {c: i for i, c in enumerate(_B62)}
_PRINTABLE = "".join(chr(i) for i in range(0x20, 0x7F))
_SAFE = _PRINTABLE.replace("%", "")
_SAFE_LIST = _SAFE.replace(",", "")
_EPOCH_ORD = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
_LITTLE = sys.byteorder == "little"

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode


# -- integers ------------------------------------------------------------------


def b62(n: int) -> str:
    """Base62 text of an int (``-`` prefix for negatives)."""
    if 0 <= n < 62:
        return _B62[n]
    neg = n < 0
    if neg:
        n = -n
    out: list[str] = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    if neg:
        out.append("-")
    return "".join(reversed(out))


def unb62(text: str) -> int:
    """Inverse of :func:`b62`."""
    if len(text) == 1:
        return _B62_INDEX[text]
    neg = text[0] == "-"
    n = 0
    index = _B62_INDEX
    for c in text[1:] if neg else text:
        n = n * 62 + index[c]
    return -n if neg else n


# -- bytes ------------------------------------------------------------------------------


def b64u(raw: bytes) -> str:
    """Unpadded base64url text of ``raw`` (``A-Z a-z 0-9 - _``; never ``.``, ``:``, ``,``)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64_token(bits72: int) -> bytes:
    """12 base64url characters of a 72-bit number (write nonces, reference tokens)."""
    return binascii.b2a_base64(bits72.to_bytes(9, "big"), newline=False).translate(_URLSAFE)


def unb64u(text: str) -> bytes:
    """Inverse of :func:`b64u` (strict: any other character raises ``ValueError``)."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def enc_bytes(raw: bytes) -> str:
    """A ``bytes`` value: :func:`b64u`, ``~e`` for ``b""``."""
    return b64u(raw) if raw else "~e"


def dec_bytes(text: str) -> bytes:
    """Inverse of :func:`enc_bytes`."""
    return b"" if text == "~e" else unb64u(text)


# -- floats and numbers -----------------------------------------------------------

_FLOAT_SPECIAL = {"inf.": math.inf, "-inf.": -math.inf, "nan.": math.nan}


def enc_float(f: float) -> str:
    """Shortest exact text of a float that always reads back as a float."""
    r = repr(f)
    if r[-2:] == ".0":
        return r[:-1]  # 1.0 -> "1.", -0.0 -> "-0."
    if r[:2] == "0.":
        return r[1:]  # 0.5 -> ".5"
    if r[:3] == "-0.":
        return "-" + r[2:]  # -0.5 -> "-.5"
    if r[-1] in "fn":
        return r + "."  # inf, -inf, nan
    return r


def dec_float(text: str) -> float:
    """Inverse of :func:`enc_float`."""
    special = _FLOAT_SPECIAL.get(text)
    return special if special is not None else float(text)


def enc_number(v: int | float) -> str:
    """A ``number`` field: ints in base62, floats as :func:`enc_float`."""
    return b62(v) if type(v) is int else enc_float(v)


def dec_number(text: str) -> int | float:
    """Inverse of :func:`enc_number` (float iff the text has ``.``, ``+`` or an inner ``-``)."""
    if "." in text or "+" in text or "-" in text[1:]:
        return dec_float(text)
    return unb62(text)


def number_to_json(v: int | float) -> Any:
    """Body form of a number (non-finite floats as their text)."""
    if type(v) is float and not math.isfinite(v):
        return enc_float(v)
    return v


def number_from_json(j: Any) -> Any:
    """Inverse of :func:`number_to_json`."""
    return dec_float(j) if type(j) is str else j


# -- text ---------------------------------------------------------------------------


def esc_text(s: str, *, in_list: bool = False) -> str:
    """Header-safe text: printable ASCII as is (``~t``-prefixed when it starts like an
    escape), anything else ``~u``/``~b``-escaped.

    :param in_list: also escape ``,`` (the item separator of arrays).
    """
    if not s:
        return "~e"
    if s.isascii() and s.isprintable() and s[0] != " " and s[-1] != " ":
        if in_list and "," in s:
            pass  # quoted below
        elif s[0] != "~" and s[:2] != "=?":
            return s
        else:  # only its start looks like an escape: keep the text literal
            return "~t" + s
    q = quote(s, safe=_SAFE_LIST if in_list else _SAFE)
    if q[-1] == " ":
        q = q[:-1] + "%20"
    if not s.isascii():
        b = base64.urlsafe_b64encode(s.encode("utf-8")).rstrip(b"=").decode("ascii")
        if len(b) < len(q):
            return "~b" + b
    return "~u" + q


def unesc_text(v: str) -> str:
    """Inverse of :func:`esc_text`."""
    if v[:1] != "~":
        return v
    mode = v[1:2]
    if mode == "u":
        return unquote(v[2:], errors="strict")
    if mode == "t":
        return v[2:]
    if mode == "b":
        raw = v[2:]
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    if v == "~e":
        return ""
    raise ValueError(f"not an escaped text value: {v[:20]!r}")


def truncate_text(s: str, max_len: int, *, in_list: bool = False) -> str | None:
    """The longest prefix of ``s`` whose :func:`esc_text` fits ``max_len`` chars
    (returned encoded), or None when not even one character fits."""
    if max_len < 1:
        return None
    lo, hi = 0, min(len(s), max_len)
    while lo < hi:  # largest k with len(esc(s[:k])) <= max_len (nearly monotonic)
        mid = (lo + hi + 1) // 2
        if len(esc_text(s[:mid], in_list=in_list)) <= max_len:
            lo = mid
        else:
            hi = mid - 1
    k = lo
    while k > 0:
        enc = esc_text(s[:k], in_list=in_list)
        if len(enc) <= max_len:
            return enc
        k -= 1
    return None


def json_text(value: Any) -> str:
    """Compact JSON of a value, escaped for a header."""
    return esc_text(_json_encode(value).decode("utf-8"))


def unjson_text(v: str) -> Any:
    """Inverse of :func:`json_text`."""
    return _json_decode(unesc_text(v).encode("utf-8"))


# -- dates ----------------------------------------------------------------------------


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""ISO text: 4 digits, ``-``; enc_date text has at most one sign, never two dashes so."""


def enc_date(d: date) -> str:
    """Compact text of a date or datetime (see the module table)."""
    if type(d) is date or not isinstance(d, datetime):
        return "." + b62(d.toordinal() - _EPOCH_ORD)
    secs = (d.toordinal() - _EPOCH_ORD) * 86400 + d.hour * 3600 + d.minute * 60 + d.second
    out = b62(secs)
    if d.microsecond:
        out += "." + b62(d.microsecond)
    tz = d.tzinfo
    if tz is not None:
        if tz is UTC:
            out += "_"
        elif isinstance(tz, ZoneInfo) and tz.key:
            out += "@" + tz.key
        else:
            offset = d.utcoffset()
            if offset is not None:
                us = offset // timedelta(microseconds=1)
                sign = "-" if us < 0 else "+"
                s, frac = divmod(abs(us), 1_000_000)
                out += sign + b62(s) + ("." + b62(frac) if frac else "")
    if d.fold:
        out += "!"
    return out


def dec_date(v: str) -> date:
    """Inverse of :func:`enc_date`; also reads ISO 8601 text (``2024-05-01T12:00:00Z``),
    which :func:`enc_date` never writes: records whose timestamps were ISO strings."""
    if _ISO_DATE.match(v):
        return datetime.fromisoformat(v) if len(v) > 10 else date.fromisoformat(v)
    if v[0] == ".":
        return date.fromordinal(unb62(v[1:]) + _EPOCH_ORD)
    fold = 0
    if v[-1] == "!":
        fold = 1
        v = v[:-1]
    tz: Any = None
    at = v.find("@")
    if at > 0:
        tz = ZoneInfo(v[at + 1 :])
        v = v[:at]
    elif v[-1] == "_":
        tz = UTC
        v = v[:-1]
    else:
        i = max(v.rfind("+"), v.rfind("-", 1))
        if i > 0:
            s, _, frac = v[i + 1 :].partition(".")
            us = unb62(s) * 1_000_000 + (unb62(frac) if frac else 0)
            tz = timezone(timedelta(microseconds=-us if v[i] == "-" else us))
            v = v[:i]
    s, _, frac = v.partition(".")
    dt = _EPOCH + timedelta(seconds=unb62(s), microseconds=unb62(frac) if frac else 0)
    if tz is not None or fold:
        dt = dt.replace(tzinfo=tz, fold=fold)
    return dt


# -- embeddings ---------------------------------------------------------------------


def _packed(values: list[float], code: str) -> str:
    arr = array(code, values)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        arr.byteswap()
    raw = base64.urlsafe_b64encode(arr.tobytes()).rstrip(b"=").decode("ascii")
    return ("~4" if code == "f" else "~8") + raw


def enc_embedding(values: list[float]) -> str:
    """The shorter of comma-joined floats and packed float32 (if exact) / float64."""
    joined = ",".join(map(enc_float, values))
    as32 = array("f", values)
    packed = _packed(values, "f") if as32.tolist() == values else _packed(values, "d")
    return packed if len(packed) < len(joined) else joined


def dec_embedding(v: str) -> list[float]:
    """Inverse of :func:`enc_embedding`."""
    if v[:2] in ("~4", "~8"):
        raw = v[2:]
        arr = array("f" if v[1] == "4" else "d")
        arr.frombytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not _LITTLE:  # pragma: no cover
            arr.byteswap()
        return arr.tolist()
    return [dec_float(p) for p in v.split(",")]


# -- building blocks for array items ------------------------------------------------------

Encoder = Callable[[Any], str]
Decoder = Callable[[str], Any]


def list_text_item(s: str) -> str:
    """A string item of a ``,``-joined array."""
    return esc_text(s, in_list=True)


def bool_text(v: bool) -> str:
    """``1`` / ``0``."""
    return "1" if v else "0"


def text_bool(v: str) -> bool:
    """Inverse of :func:`bool_text`."""
    return v == "1"


def is_utf8(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (which no UTF-8 encoder accepts)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
