"""Partitions: secondary key layouts that make filtered listing one LIST away.

A partition ``by_region`` with fields ``{"region": "string"}`` writes, for every record,
an empty reference object::

    resource={name}/partition=by_region/region=eu/id={id}

Fields are laid out in sorted order. Values are turned into strings (``true``/``false``,
ISO dates, numbers and decimals as written, bytes as base64url), truncated by an optional
``maxlength:N`` rule and percent-encoded so no value can add or escape a key segment.
A record whose value for a partition field is missing gets no reference in that partition.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

import msgspec

from ._fields import sensitive_field
from .errors import SchemaError

__all__ = ["Partition", "encode_partition_value", "get_path", "parse_partitions"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SAFE = "-_.~:@+,!*'()"
_MISSING = object()
_log = logging.getLogger("s3db_async.partitions")


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted ``path`` of a nested dict, or a private sentinel when absent."""
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def is_missing(value: Any) -> bool:
    """True for the sentinel :func:`get_path` returns for absent paths."""
    return value is _MISSING


def encode_partition_value(value: Any, maxlength: int | None = None) -> str:
    """The key-safe string form of a partition value."""
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
