"""What happens to a record whose metadata would exceed S3's 2 KB.

The codec encodes every field first; when the total fits, every behavior
stores it all in metadata. Otherwise:

- ``body-overflow`` (default) and ``user-managed``: the smallest fields go to
  metadata (ascending size, then id: deterministic, and the most fields fit),
  the rest to the body; ``user-managed`` differs only in that the resource
  tells the caller (``EncodedRecord.overflowed``, an event).
- ``body-only``: every field in the body, whatever the size.
- ``enforce-limits``: :class:`~s3db_async.errors.MetadataLimitError` naming the
  size, the limit and the largest fields.
- ``truncate-data``: the smallest fields fit whole; of the rest, string
  fields are cut to what still fits and other fields are dropped; the
  ``_t`` metadata key lists the ids of both, nothing goes to the body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MetadataLimitError

__all__ = ["BEHAVIORS", "Slot", "fit", "limit_error", "truncate"]

BEHAVIORS = ("body-overflow", "body-only", "enforce-limits", "truncate-data", "user-managed")
"""Every behavior name, the default first."""

BODY_FLAG = ("_b", "1")
"""Metadata marking that the body holds fields."""


@dataclass(slots=True)
class Slot:
    """One encoded field: its metadata key, value text and size in bytes."""

    key: str
    path: str
    text: str
    value: Any
    cost: int
    cut: Callable[[int], str | None] | None = None
    """For truncatable strings: the encoded longest prefix fitting N chars, or None."""


def fit(slots: list[Slot], budget: int) -> tuple[list[Slot], list[Slot]]:
    """Split into (fits in ``budget`` bytes, does not), smallest first."""
    ordered = sorted(slots, key=lambda s: (s.cost, s.key))
    used = 0
    for i, slot in enumerate(ordered):
        if used + slot.cost > budget:
            return ordered[:i], ordered[i:]
        used += slot.cost
    return ordered, []


@dataclass(slots=True)
class Truncation:
    """Result of :func:`truncate`."""

    inside: list[tuple[Slot, str]]
    truncated: list[Slot]
    dropped: list[Slot]
    flag: str


def truncate(slots: list[Slot], budget: int) -> Truncation | None:
    """Fit into ``budget`` bytes by cutting strings and dropping other fields.

    The ``_t`` flag (its cost included) lists the keys of every cut or dropped
    field. Returns None when not even the flag fits.
    """
    inside, rest = fit(slots, budget)
    while True:
        flag = ",".join(s.key for s in rest)
        room = budget - sum(s.cost for s in inside) - (2 + len(flag) if rest else 0)
        if room >= 0:
            break
        if not inside:
            return None
        rest.insert(0, inside.pop())
    result = Truncation([(s, s.text) for s in inside], [], [], flag)
    for slot in rest:
        text = slot.cut(room - len(slot.key)) if slot.cut is not None else None
        if text is None:
            result.dropped.append(slot)
            continue
        result.inside.append((slot, text))
        result.truncated.append(slot)
        room -= len(slot.key) + len(text)
    return result


def limit_error(slots: list[Slot], size: int, limit: int, *, behavior: str) -> MetadataLimitError:
    """The error of ``enforce-limits`` (or of metadata that cannot fit at all)."""
    largest = sorted(slots, key=lambda s: -s.cost)[:3]
    names = ", ".join(f"{s.path} ({s.cost} B)" for s in largest) or "none"
    return MetadataLimitError(
        f"record metadata is {size} bytes, over the {limit}-byte limit "
        f"(behavior {behavior!r}); largest fields: {names}",
        suggestion="use behavior 'body-overflow' (or 'body-only') to store large fields "
        "in the body",
        metadata={
            "size": size,
            "limit": limit,
            "behavior": behavior,
            "largest": [{"field": s.path, "bytes": s.cost} for s in largest],
        },
        errors=[
            {
                "field": s.path,
                "rule": "metadata_limit",
                "message": f"{s.path} takes {s.cost} bytes of metadata",
                "value_type": type(s.value).__name__,
            }
            for s in largest
        ],
    )
