"""The automatic ``created_at``/``updated_at`` of a resource with ``timestamps=True``.

Both are timezone-aware UTC :class:`~datetime.datetime` values (millisecond precision),
stored like every other ``datetime`` field. Records written when they were ISO strings
still read back as datetimes (see :func:`s3db_async._schema.encoding.dec_date`).

- ``insert`` sets both to now; with ``preserve_timestamps=True`` it keeps the values
  given (a datetime or an ISO 8601 string with a zone), which is what an import needs.
- ``update``/``patch``/``replace``/``upsert`` never change ``created_at`` and set
  ``updated_at`` only when the record changes: a write that changes nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from .._record import Record
from ..errors import ValidationError

__all__ = [
    "TIMESTAMP_FIELDS",
    "TIMESTAMP_RULE",
    "Unchanged",
    "coerce_timestamp",
    "keep_stamps",
    "preserve_kw",
    "stamp_new",
    "touch",
    "unchanged",
    "utc_now",
]

TIMESTAMP_FIELDS = ("created_at", "updated_at")
TIMESTAMP_RULE = "datetime|optional"
"""How the schema sees the timestamp fields."""


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _invalid(field: str, value: Any, message: str) -> ValidationError:
    return ValidationError(
        f"1 field failed validation: {field} (datetime)",
        errors=[
            {
                "field": field,
                "rule": "datetime",
                "message": f"{field} {message}",
                "value_type": type(value).__name__,
            }
        ],
        suggestion="give a timezone-aware datetime, e.g. datetime.now(UTC), or an ISO 8601 "
        "string with a zone ('2024-05-01T12:00:00Z')",
        metadata={"field": field},
    )


def coerce_timestamp(value: Any, field: str) -> datetime:
    """A given timestamp as an aware UTC datetime.

    :raises ValidationError: not a datetime or ISO string, or without a time zone.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid(field, value, "is not an ISO 8601 datetime") from None
    if not isinstance(value, datetime):
        raise _invalid(field, value, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _invalid(field, value, "has no time zone (a naive datetime is ambiguous)")
    return value.astimezone(UTC)


def stamp_new(data: MutableMapping[str, Any], *, preserve: bool) -> None:
    """Set the timestamps of a new record (keep given ones with ``preserve``)."""
    now = utc_now()
    for field in TIMESTAMP_FIELDS:
        given = data.get(field) if preserve else None
        data[field] = now if given is None else coerce_timestamp(given, field)


def keep_stamps(new: MutableMapping[str, Any], current: Mapping[str, Any]) -> None:
    """Carry the stored timestamps over to a rewrite of ``current`` (a given value is ignored:
    ``created_at`` never changes; a record stored before it had one gets now)."""
    created = current.get("created_at") or utc_now()
    new["created_at"] = created
    new["updated_at"] = current.get("updated_at") or created


def touch(new: MutableMapping[str, Any], current: Mapping[str, Any]) -> None:
    """Mark a record that changed: ``updated_at`` is now (never before ``created_at``)."""
    now = utc_now()
    created = new.get("created_at")
    new["updated_at"] = max(now, created) if isinstance(created, datetime) else now


def unchanged(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when ``new`` holds the same fields as the stored ``current``, timestamps aside."""
    skip = ("id", *TIMESTAMP_FIELDS)
    old = {k: v for k, v in current.items() if k not in skip}
    return old == {k: v for k, v in new.items() if k not in skip}


class Unchanged(Exception):
    """Raised inside a read-modify-write whose result equals the stored record."""

    def __init__(self, record: Record) -> None:
        super().__init__(record.get("id"))
        self.record = record


def preserve_kw(flag: bool) -> dict[str, bool]:
    """The ``preserve_timestamps`` keyword, passed on only when set (middlewares written
    before it existed see the calls they always saw)."""
    return {"preserve_timestamps": True} if flag else {}
