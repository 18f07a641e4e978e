"""``password`` fields: one-way hashes, argon2id by default, ``password:bcrypt`` optional.

Validation turns a cleartext password into its hash (argon2id through
``argon2-cffi`` with its default RFC 9106 profile; bcrypt with 12 rounds through
the optional ``bcrypt`` package, ``pip install 's3db-async[bcrypt]'``). The
record then holds the hash: ``insert`` returns it, reads return it, the cleartext
is never stored nor kept.

A value that already **is** a hash (the full PHC string of argon2id/argon2i/
argon2d, or a ``$2a$``/``$2b$``/``$2x$``/``$2y$`` bcrypt hash) is kept as is, so writing a
record back (``update`` merging the current record, an export re-imported) never
hashes a hash. The formats are strict (parameters, salt and digest must all be
there), so a human-chosen password is not mistaken for one. Length rules
(``min``/``max``) apply to cleartexts only.

Verification (:func:`verify_password`, ``await resource.verify_password(id, field,
candidate)``) uses the hash library's constant-time check and dispatches on the
stored hash's format, so hashes of either algorithm keep working after a field
changes algorithm.

Hashing is CPU-bound (tens of milliseconds by design) and happens inside
``Schema.validate``.

Metadata encoding: argon2id v19 hashes are packed as ``a`` + salt ``.`` digest with
the default parameters (``m=65536,t=3,p=4``: 67 chars instead of 97), else ``A`` +
base62 ``m.t.p`` + ``.`` salt ``.`` digest; ``$2b$`` bcrypt hashes as ``B`` + cost +
salt/digest (56 instead of 60); any other hash as its text. The JSON body holds the
hash text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .._deps import require_dependency
from .encoding import b62, esc_text, unb62, unesc_text
from .invalid import fail

__all__ = [
    "ALGORITHMS",
    "CODECS",
    "hash_algorithm",
    "hash_password",
    "is_password_hash",
    "parse_algorithm",
    "password_converter",
    "verify_password",
]

Fn = Callable[[Any], Any]

ALGORITHMS = ("argon2id", "bcrypt")
"""Algorithms of ``password:ALGO`` (``argon2id`` is the default; ``argon2`` is an alias)."""

_ARGON2 = re.compile(
    r"\$(argon2(?:id|i|d))\$v=[0-9]{1,3}\$m=[0-9]{1,10},t=[0-9]{1,10},p=[0-9]{1,3}"
    r"\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}"
)
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=([1-9][0-9]*),t=([1-9][0-9]*),p=([1-9][0-9]*)"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)"
)
_BCRYPT = re.compile(r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
_BCRYPT_MAX = 72
_PROFILE = ("65536", "3", "4")
"""argon2id parameters packed as just ``a`` (RFC 9106's low-memory profile, argon2-cffi's
default): the encoding names the parameters, whatever a future default is."""
_hasher = PasswordHasher()


def require_bcrypt() -> None:
    """:raises MissingDependencyError: the optional ``bcrypt`` package is not installed."""
    require_dependency(
        "bcrypt",
        extra="bcrypt",
        min_version="4.1",
        description="bcrypt hashes for 'password:bcrypt' fields",
    )


def parse_algorithm(arg: str | None) -> str:
    """``password`` / ``password:argon2id`` → ``argon2id``; ``password:bcrypt`` → ``bcrypt``.

    :raises ValueError: unknown algorithm.
    :raises MissingDependencyError: ``bcrypt`` without the ``bcrypt`` package.
    """
    if arg is None:
        return "argon2id"
    algo = arg.strip().lower()
    if algo in ("argon2id", "argon2"):
        return "argon2id"
    if algo == "bcrypt":
        require_bcrypt()
        return "bcrypt"
    raise ValueError(f"unknown password algorithm {arg!r} (use argon2id or bcrypt)")


def hash_algorithm(value: str) -> str | None:
    """``argon2id``/``argon2i``/``argon2d``/``bcrypt`` if ``value`` is a full hash, else None."""
    if value[:1] != "$":
        return None
    m = _ARGON2.fullmatch(value)
    if m is not None:
        return m.group(1)
    return "bcrypt" if _BCRYPT.fullmatch(value) else None


def is_password_hash(value: Any) -> bool:
    """True if ``value`` is a hash a ``password`` field keeps as is."""
    return isinstance(value, str) and hash_algorithm(value) is not None


def hash_password(cleartext: str, algorithm: str = "argon2id") -> str:
    """Hash a cleartext (a fresh random salt each time)."""
    if algorithm == "bcrypt":
        require_bcrypt()
        import bcrypt

        return bcrypt.hashpw(cleartext.encode("utf-8"), bcrypt.gensalt()).decode("ascii")
    return _hasher.hash(cleartext)


def verify_password(stored: str | None, candidate: str) -> bool:
    """Constant-time check of ``candidate`` against a stored hash (False if no hash).

    :raises TypeError: ``candidate`` is not a str.
    :raises MissingDependencyError: a bcrypt hash and no ``bcrypt`` package.
    """
    if not isinstance(candidate, str):
        raise TypeError(f"the candidate password must be a str, not {type(candidate).__name__}")
    if not isinstance(stored, str):
        return False
    algo = hash_algorithm(stored)
    if algo is None:
        return False
    if algo == "bcrypt":
        require_bcrypt()
        import bcrypt

        raw = candidate.encode("utf-8")
        if len(raw) > _BCRYPT_MAX or b"\0" in raw:
            return False
        try:
            return bool(bcrypt.checkpw(raw, stored.encode("ascii")))
        except ValueError:
            return False
    try:
        return _hasher.verify(stored, candidate)
    except (VerificationError, InvalidHashError):
        return False


def password_converter(algorithm: str, rules: Mapping[str, Any]) -> Fn:
    """Converter of ``password``: keep a hash, hash a cleartext (after its length rules)."""
    lo, hi = rules.get("min"), rules.get("max")

    def check_password(value: Any) -> Any:
        if not isinstance(value, str):
            fail("password", "must be a string (the cleartext, or a hash to keep)", value)
        value = str(value)
        if hash_algorithm(value) is not None:
            return value
        if not value:
            fail("password", "must not be empty", value)
        if lo is not None and len(value) < lo:
            fail("min", f"must have at least {lo} characters", value)
        if hi is not None and len(value) > hi:
            fail("max", f"must have at most {hi} characters", value)
        if algorithm == "bcrypt":
            if len(value.encode("utf-8")) > _BCRYPT_MAX:
                fail("password", f"bcrypt takes at most {_BCRYPT_MAX} bytes (UTF-8)", value)
            if "\0" in value:
                fail("password", "bcrypt passwords cannot contain NUL characters", value)
        return hash_password(value, algorithm)

    return check_password


# -- encoding -------------------------------------------------------------------------------


def enc_password(v: str) -> str:
    """Pack argon2id v19 and ``$2b$`` bcrypt hashes; any other hash as its text."""
    m = _ARGON2ID.fullmatch(v)
    if m is not None:
        mem, t, p, salt, digest = m.groups()
        if (mem, t, p) == _PROFILE:
            return f"a{salt}.{digest}"
        return f"A{b62(int(mem))}.{b62(int(t))}.{b62(int(p))}.{salt}.{digest}"
    if v[:4] == "$2b$" and _BCRYPT.fullmatch(v):
        return "B" + v[4:6] + v[7:]
    return esc_text(v)


def dec_password(s: str) -> str:
    """Inverse of :func:`enc_password`."""
    head = s[:1]
    if head == "a":
        salt, digest = s[1:].split(".")
        mem, t, p = _PROFILE
        return f"$argon2id$v=19$m={mem},t={t},p={p}${salt}${digest}"
    if head == "A":
        mem, t, p, salt, digest = s[1:].split(".")
        return f"$argon2id$v=19$m={unb62(mem)},t={unb62(t)},p={unb62(p)}${salt}${digest}"
    if head == "B":
        return f"$2b${s[1:3]}${s[3:]}"
    return unesc_text(s)


def _ident(v: Any) -> Any:
    return v


def _password_codec(param: Any) -> tuple[Fn, Fn, Fn, Fn]:
    return enc_password, dec_password, _ident, _ident


CODECS: dict[str, Callable[[Any], tuple[Fn, Fn, Fn, Fn]]] = {"password": _password_codec}
"""type → (param → (enc, dec, to_json, from_json))."""
