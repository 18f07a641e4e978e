"""Partitions: secondary key layouts that make filtered listing one LIST away.

A partition ``by_region`` with fields ``{"region": "string"}`` writes, for every record,
an empty reference object::

    resource={name}/partition=by_region/region=eu/id={id}

Fields are laid out in sorted order. Values are turned into strings (``true``/``false``,
ISO dates, numbers and decimals as written, bytes as base64url), truncated by an optional
``maxlength:N`` rule and percent-encoded so no value can add or escape a key segment.
A record whose value for a partition field is missing gets no reference in that partition.

References under races and crashes (DESIGN §2, docs/reliability.md): a reference is never
deleted on the write path, because without a conditional DELETE a blind delete can destroy
the reference another writer has just put for its pending commit. Instead:

- a *live* reference holds a short random token (its etag is the token's MD5, known
  without reading); a *dead* one holds :data:`DEAD_REF` (1 byte, recognised from a LIST
  entry's size alone). Legacy references (empty body) are live with the empty token.
- the record keeps the token of each of its references (metadata ``_pt``).
- a writer puts the references it needs *before* the record (:func:`put_ref`: create, or
  revive a dead one, or take a live one over by compare-and-swap: never a blind
  overwrite, so every ref body names the last writer that needed it), and kills one only
  by compare-and-swap from the token it knows (:func:`kill_ref`): when someone else has
  put the key since, their token is there and the kill fails harmlessly.

So after any interleaving or crash a record's references are live (missing references are
impossible); at worst a stale live reference is left (a crash between the writes), which
partition reads re-check and :meth:`rebuild_partitions` kills.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import msgspec

from .._cas import Backoff, body_etag, conditional_put
from .._concurrency import bounded_gather
from .._schema.encoding import b64_token
from .._schema.fields import sensitive_field
from ..errors import (
    NotFoundError,
    PreconditionFailed,
    SchemaError,
    StoreError,
    WriteOutcomeUnknownError,
)

if TYPE_CHECKING:
    from ..stores import ObjectStore

_randbits = random.getrandbits

__all__ = [
    "DEAD_REF",
    "TOKENS_KEY",
    "Partition",
    "decode_tokens",
    "encode_partition_value",
    "encode_tokens",
    "get_path",
    "is_dead",
    "kill_ref",
    "kill_refs",
    "new_token",
    "parse_partitions",
    "put_ref",
    "put_refs",
    "reconcile_refs",
    "tokens_size",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SAFE = "-_.~:@+,!*'()"
_MISSING = object()
_log = logging.getLogger("s3db_async.partitions")


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted ``path`` of a nested dict, or a private sentinel when absent."""
    if "." not in path:
        if type(record) is dict:
            return record.get(path, _MISSING)
        if not isinstance(record, Mapping):
            return _MISSING
        return record[path] if path in record else _MISSING
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def is_missing(value: Any) -> bool:
    """True for the sentinel :func:`get_path` returns for absent paths."""
    return value is _MISSING


_log = logging.getLogger("s3db_async.partitions")
DEAD_REF = b"-"
"""The body of a killed reference (1 byte: live ones hold a token of ``TOKEN_LEN``)."""
DEAD_ETAG = body_etag(DEAD_REF)
TOKENS_KEY = "_pt"
"""Record metadata key holding ``partition:token`` pairs of its references."""
TOKEN_LEN = 12
_TAKEOVERS = 20
_TAKEOVER_BACKOFF = Backoff()


def new_token() -> str:
    """A fresh reference token (12 url-safe characters, 72 random bits).

    Unique, not secret: ``random`` (reseeded in every forked child) is enough, and cheaper
    than a system call per write.
    """
    return b64_token(_randbits(72)).decode("ascii")


def encode_tokens(tokens: Mapping[str, str]) -> str:
    """``_pt`` metadata value: ``name:token`` pairs joined by commas."""
    if len(tokens) == 1:
        ((name, token),) = tokens.items()
        return f"{name}:{token}"
    return ",".join(f"{name}:{token}" for name, token in sorted(tokens.items()))


def decode_tokens(metadata: Mapping[str, str]) -> dict[str, str]:
    """Tokens of a record's references by partition (missing: legacy empty token)."""
    raw = metadata.get(TOKENS_KEY)
    if not raw:
        return {}
    out = {}
    for pair in raw.split(","):
        name, _, token = pair.partition(":")
        out[name] = token
    return out


def tokens_size(names: list[str]) -> int:
    """Metadata bytes ``_pt`` can take for partitions ``names`` (reserved by the codec)."""
    if not names:
        return 0
    return len(TOKENS_KEY) + sum(len(n) + 2 + TOKEN_LEN for n in names)


def is_dead(size: int) -> bool:
    """True for a killed reference, from its listed size alone."""
    return size == len(DEAD_REF)


async def put_ref(store: ObjectStore, key: str, token: str, rounds: int = _TAKEOVERS) -> bool:
    """Make reference ``key`` live with ``token``, never overwriting blindly; True if done.

    Create it (1 PUT), else revive it if dead (1 more), else take it over by
    compare-and-swap from whatever token it holds (HEAD + PUT per round, with backoff).
    False when other writers kept changing it for ``rounds`` rounds.
    """
    body = token.encode()
    expected: str | None = None  # None: create
    for n in range(rounds + 2):
        try:
            await conditional_put(
                store, key, body, if_none_match=expected is None, if_match=expected
            )
            return True
        except PreconditionFailed:
            pass
        if n == 0:
            expected = DEAD_ETAG
            continue
        if n > 1:
            await asyncio.sleep(_TAKEOVER_BACKOFF.delay(n))
        try:
            expected = (await store.head(key)).etag
        except NotFoundError:
            expected = None
    return False


async def kill_ref(store: ObjectStore, key: str, token: str) -> bool:
    """Mark reference ``key`` dead if it still holds ``token``; True if it did.

    Cleanup after the record write that made it stale: a failure only leaves a stale
    reference (reads re-check, ``rebuild_partitions`` kills it), so it never fails the
    write that already happened.
    """
    try:
        await conditional_put(store, key, DEAD_REF, if_match=body_etag(token.encode()))
    except PreconditionFailed:
        return False  # taken over by another writer (or gone): theirs now
    except StoreError as exc:
        _log.warning("stale partition reference %s left behind: %s", key, exc)
        return False
    return True


async def put_refs(
    store: ObjectStore, refs: Mapping[str, str], parallelism: int, rounds: int = _TAKEOVERS
) -> dict[str, str]:
    """:func:`put_ref` for ``{key: token}``, ``parallelism`` at a time; the ones put."""
    if len(refs) == 1:  # the usual case (one partition): no gather
        ((key, token),) = refs.items()
        return {key: token} if await put_ref(store, key, token, rounds) else {}
    items = list(refs.items())
    done = await bounded_gather(lambda kt: put_ref(store, *kt, rounds), items, parallelism)
    return {k: t for (k, t), ok in zip(items, done, strict=True) if ok}


async def kill_refs(store: ObjectStore, refs: Mapping[str, str], parallelism: int) -> None:
    """:func:`kill_ref` for ``{key: token}``, ``parallelism`` at a time."""
    if len(refs) == 1:
        ((key, token),) = refs.items()
        await kill_ref(store, key, token)
    elif refs:
        await bounded_gather(lambda kt: kill_ref(store, *kt), list(refs.items()), parallelism)


async def reconcile_refs(
    store: ObjectStore,
    mine: Mapping[str, str],
    needed: Callable[[], Awaitable[Mapping[str, str]]],
) -> None:
    """References ``{key: token}`` put for a record write that lost its race: give each
    back to the token the current record needs (``needed()`` reads it), or kill it.

    Safe because every reference write is a compare-and-swap: if someone put the key
    after us, our token is gone and our swap fails (the key is theirs). A record that no
    longer needs a (key, token) never will again (tokens are never reused and new
    references are always put with a new token), so killing it removes nothing needed.
    A reference handed back is checked once more against a fresh read (the record may
    have moved away meanwhile and its kill have failed on our token).
    """
    pending = dict(mine)
    for _ in range(3):
        want_by_key = await needed()
        handed: dict[str, str] = {}
        for key, token in pending.items():
            want = want_by_key.get(key)
            if want is None:
                await kill_ref(store, key, token)
            elif want != token:
                try:
                    await conditional_put(
                        store, key, want.encode(), if_match=body_etag(token.encode())
                    )
                except (PreconditionFailed, WriteOutcomeUnknownError):
                    continue  # taken over: its new writer is responsible for it
                handed[key] = want
        if not handed:
            return
        pending = handed


def encode_partition_value(value: Any, maxlength: int | None = None) -> str:
    """The key-safe string form of a partition value."""
    if type(value) is str and value.isascii() and value.isalnum():  # quote() keeps it as is
        return value if maxlength is None else value[:maxlength]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, _dt.datetime | _dt.date):
        text = value.isoformat()
    elif isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, bytes | bytearray):
        text = base64.urlsafe_b64encode(bytes(value)).decode("ascii").rstrip("=")
    else:
        text = msgspec.json.encode(value).decode()
    if maxlength is not None:
        text = text[:maxlength]
    return quote(text, safe=_SAFE)


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition definition."""

    name: str
    fields: tuple[tuple[str, int | None], ...]  # (path, maxlength) sorted by path

    @property
    def field_names(self) -> list[str]:
        """The partition's field paths, in key order."""
        return [f for f, _ in self.fields]

    def definition(self) -> dict[str, Any]:
        """The canonical form stored in ``s3db.json``."""
        return {
            "fields": {
                f: "string" + (f"|maxlength:{m}" if m is not None else "") for f, m in self.fields
            }
        }

    def base(self, resource: str) -> str:
        """``resource={name}/partition={partition}/``."""
        return f"resource={resource}/partition={self.name}/"

    def ref_key(self, resource: str, record: Mapping[str, Any], record_id: str) -> str | None:
        """The reference key of ``record``, or ``None`` when a field is missing."""
        if len(self.fields) == 1:  # the usual partition: one field, in one f-string
            ((path, maxlength),) = self.fields
            value = get_path(record, path)
            if value is _MISSING or value is None:
                return None
            text = encode_partition_value(value, maxlength)
            return f"{self.base(resource)}{path}={text}/id={record_id}"
        segments = []
        for path, maxlength in self.fields:
            value = get_path(record, path)
            if value is _MISSING or value is None:
                return None
            segments.append(f"{path}={encode_partition_value(value, maxlength)}")
        return self.base(resource) + "/".join(segments) + f"/id={record_id}"

    def prefix(self, resource: str, values: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        """The longest key prefix pinned by ``values`` and the remaining filters.

        Returns ``(prefix, rest)`` where ``rest`` maps field paths (not covered by the
        prefix) to their encoded values, to be matched against listed keys.
        """
        unknown = set(values) - set(self.field_names)
        if unknown:
            raise SchemaError(
                f"partition {self.name!r} has no field(s) {sorted(unknown)}",
                suggestion=f"filter on {', '.join(self.field_names)}",
                metadata={"partition": self.name},
            )
        prefix = self.base(resource)
        rest: dict[str, str] = {}
        leading = True
        for path, maxlength in self.fields:
            if path in values and values[path] is not None:
                enc = encode_partition_value(values[path], maxlength)
                if leading:
                    prefix += f"{path}={enc}/"
                else:
                    rest[path] = enc
            else:
                leading = False
        return prefix, rest

    def parse_ref(self, key: str) -> tuple[dict[str, str], str] | None:
        """``(encoded values by field, id)`` of a reference key, or ``None`` if malformed."""
        parts = key.split("/")
        if len(parts) < 2 + len(self.fields) + 1 or not parts[-1].startswith("id="):
            return None
        values: dict[str, str] = {}
        for seg, (path, _) in zip(parts[2:-1], self.fields, strict=False):
            name, sep, enc = seg.partition("=")
            if not sep or name != path:
                return None
            values[path] = enc
        return values, parts[-1][3:]

    def decoded_values(self, encoded: Mapping[str, str]) -> dict[str, str]:
        """Human-readable values of a parsed reference."""
        return {k: unquote(v) for k, v in encoded.items()}


def parse_partitions(
    partitions: Mapping[str, Any] | None,
    *,
    known_fields: set[str],
    resource: str,
    strict: bool = True,
    sensitive: Mapping[str, str] | None = None,
    drop_sensitive: bool = False,
) -> dict[str, Partition]:
    """Validate partition definitions.

    A partition would write its values in clear into object keys, so none may use a
    ``secret`` or ``password`` field (``sensitive``: path → kind, nested and array fields
    included), nor an object holding one, whatever ``strict`` says.

    :param drop_sensitive: leave such partitions out with a warning instead of raising
        (for definitions stored before they were refused).
    :raises SchemaError: bad partition name, no fields, unknown field (when ``strict``),
        a secret or password field, or bad ``maxlength``.
    """
    sensitive = sensitive or {}
    candidates = sorted(f for f in known_fields if sensitive_field(f, sensitive) is None)
    out: dict[str, Partition] = {}
    for name, spec in (partitions or {}).items():
        where = {"resource": resource, "partition": name}
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise SchemaError(
                f"invalid partition name {name!r} on {resource!r}",
                suggestion="use 1-64 letters, digits, '_' or '-'",
                metadata=where,
            )
        fields = spec.get("fields") if isinstance(spec, Mapping) else None
        if not isinstance(fields, Mapping) or not fields:
            raise SchemaError(
                f"partition {name!r} of {resource!r} needs a non-empty 'fields' mapping",
                suggestion="write partitions={'by_region': {'fields': {'region': 'string'}}}",
                metadata=where,
            )
        hit = next((h for p in fields if (h := sensitive_field(str(p), sensitive))), None)
        if hit is not None:
            error = _sensitive_error(name, resource, *hit)
            if not drop_sensitive:
                raise error
            _log.warning(
                "%s; the partition is ignored (%s)",
                error.message,
                error.suggestion,
                extra={"op": "load", **error.metadata},
            )
            continue
        parsed: list[tuple[str, int | None]] = []
        for path, rule in fields.items():
            if strict and path not in known_fields:
                raise SchemaError(
                    f"partition {name!r} of {resource!r} uses unknown field {path!r}",
                    errors=[{"field": path, "rule": "partition", "message": "unknown field"}],
                    suggestion=f"partition on one of: {', '.join(candidates) or '(none)'}",
                    metadata={**where, "field": path},
                )
            maxlength = None
            for token in str(rule or "").split("|"):
                key, _, arg = token.partition(":")
                if key == "maxlength":
                    if not arg.isdigit() or int(arg) < 1:
                        raise SchemaError(
                            f"partition {name!r} field {path!r}: bad rule {token!r}",
                            suggestion="use maxlength:N with N >= 1",
                            metadata={**where, "field": path},
                        )
                    maxlength = int(arg)
            parsed.append((path, maxlength))
        out[name] = Partition(name, tuple(sorted(parsed)))
    return out


def _sensitive_error(name: str, resource: str, field: str, kind: str) -> SchemaError:
    message = f"{kind} fields cannot be partitioned: keys would hold their values in clear"
    return SchemaError(
        f"partition {name!r} of {resource!r} uses {kind} field {field!r}: {message}",
        errors=[{"field": field, "rule": "partition", "message": message}],
        suggestion=f"remove {field!r} from the partition (a query on it reads the records; "
        "rebuild_partitions() deletes the references of a removed partition)",
        metadata={"resource": resource, "partition": name, "field": field},
    )
