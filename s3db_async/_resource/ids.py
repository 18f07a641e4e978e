"""Record ids: generators and validation.

Generators: ``"nanoid"`` (default; alphanumeric, 22 characters unless ``id_size``),
``"uuid4"``, ``"uuid7"`` (time-ordered, RFC 9562), ``"ulid"`` (time-ordered, Crockford
base32), ``"incremental[:start]"`` (1, 2, 3 ... unique across processes: a sequence
advanced by compare-and-swap) or any callable returning a string (or an awaitable of one).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable

from .._schema.encoding import is_utf8
from ..errors import SchemaError, ValidationError

__all__ = ["IdGenerator", "check_id", "make_id_generator", "validate_id"]

IdGenerator = Callable[[], "str | Awaitable[str]"]

_NANO_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# bytes.translate maps each random byte to a character in C: 248 = 4 x 62, so bytes
# 0..247 map evenly onto the alphabet and 248..255 are dropped (no modulo bias).
_NANO_TABLE = bytes(ord(_NANO_ALPHABET[b % 62]) if b < 248 else 0 for b in range(256))
_NANO_DROP = bytes(range(248, 256))
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_ID_BYTES = 255
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def nanoid(size: int = 22) -> str:
    """A random id of ``size`` alphanumeric characters (no bias; never starts with '-',
    so ids are safe as command-line arguments). 22 characters carry 131 random bits."""
    raw = os.urandom(size + 8).translate(_NANO_TABLE, _NANO_DROP)
    while len(raw) < size:  # 3% of bytes are dropped: rarely short
        raw += os.urandom(size).translate(_NANO_TABLE, _NANO_DROP)
    return raw[:size].decode("ascii")


def uuid7() -> str:
    """A time-ordered UUID version 7 (48-bit millisecond timestamp, 74 random bits)."""
    ms = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def ulid() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 characters."""
    value = ((time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def parse_incremental(spec: object) -> int | None:
    """The start of an ``"incremental"`` / ``"incremental:N"`` spec, else ``None``.

    :raises SchemaError: ``incremental:`` with a start that is not a whole number.
    """
    if not isinstance(spec, str) or not spec.startswith("incremental"):
        return None
    rest = spec[len("incremental") :]
    if rest == "":
        return 1
    if rest.startswith(":") and rest[1:].lstrip("-").isdigit():
        return int(rest[1:])
    raise SchemaError(
        f"bad id_generator {spec!r}",
        suggestion="write 'incremental' or 'incremental:1000' (the first id)",
        metadata={"option": "id_generator"},
    )


def make_id_generator(
    spec: str | IdGenerator | None = None, *, size: int | None = None
) -> IdGenerator:
    """Resolve an ``id_generator`` option into a callable.

    :raises SchemaError: unknown generator name or bad size.
    """
    if callable(spec):
        return spec
    name = spec or "nanoid"
    if parse_incremental(name) is not None:
        raise SchemaError(
            "incremental ids need the database's sequence; the resource builds them",
            metadata={"option": "id_generator"},
        )
    if size is not None and (not isinstance(size, int) or not 8 <= size <= 128):
        raise SchemaError(
            f"id_size must be an integer from 8 to 128, got {size!r}",
            suggestion="use the default (22) unless you need shorter or longer ids",
            metadata={"option": "id_size"},
        )
    if name == "nanoid":
        return functools.partial(nanoid, size or 22)
    if name == "uuid4":
        return lambda: str(uuid.uuid4())
    if name == "uuid7":
        return uuid7
    if name == "ulid":
        return ulid
    raise SchemaError(
        f"unknown id_generator {name!r}",
        suggestion="use 'nanoid', 'uuid4', 'uuid7', 'ulid' or a callable returning a str",
        metadata={"option": "id_generator"},
    )


def validate_id(value: object, *, resource: str) -> str:
    """Return ``value`` as a record id, or raise :class:`ValidationError`.

    Ids become part of object keys, so ``/``, control characters, ``.``/``..`` and
    ids over 255 UTF-8 bytes are rejected (never silently rewritten).
    """
    if (  # the common case, by a few scans in C: printable ASCII without '/', not dotted
        type(value) is str
        and 0 < len(value) <= MAX_ID_BYTES
        and value.isascii()
        and value.isprintable()
        and "/" not in value
        and value != "."
        and value != ".."
    ):
        return value
    return check_id(value, resource=resource)


def check_id(value: object, *, resource: str) -> str:
    """:func:`validate_id` rule by rule (the slow path; same answers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    reason = None
    if not isinstance(value, str):
        reason = f"must be a string, not {type(value).__name__}"
    elif not value:
        reason = "must not be empty"
    elif "/" in value:
        reason = "must not contain '/'"
    elif _ID_CONTROL.search(value):
        reason = "must not contain control characters"
    elif value in (".", ".."):
        reason = "must not be '.' or '..'"
    elif not is_utf8(value):
        reason = "must be valid unicode (it holds a lone surrogate)"
    elif len(value.encode("utf-8")) > MAX_ID_BYTES:
        reason = f"must be at most {MAX_ID_BYTES} bytes"
    if reason:
        raise ValidationError(
            f"invalid id {value!r} for resource {resource!r}: it {reason}",
            errors=[
                {"field": "id", "rule": "id", "message": reason, "value_type": type(value).__name__}
            ],
            suggestion="omit 'id' to have one generated, or use letters, digits, '-' and '_'",
            metadata={"resource": resource, "field": "id"},
        )
    return str(value)
