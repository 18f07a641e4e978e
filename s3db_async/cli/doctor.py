"""``s3db doctor``: find corrupt records and orphaned objects, repair references,
restore ``s3db.json`` from a kept copy.

::

    report = await doctor(db, "users")                # read-only
    report = await doctor(db, "users", repair=True)   # + rebuild_partitions()
    copies = await metadata_copies(db.store)          # newest first
    await restore_metadata(db.store, 1)               # works when connect cannot

Requests: one LIST page per 1000 keys of the resource (records, references, content,
history) and one GET per record; ``repair`` adds what :meth:`Resource.rebuild_partitions`
sends. ``restore_metadata`` reads the kept copies (one GET each) and writes ``s3db.json``
with a compare-and-swap, plus its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .._codec.metadata import (
    HISTORY_SIZE,
    METADATA_KEY,
    history_key,
    parse_metadata,
    save_history,
)
from .._resource.partitions import is_dead
from ..errors import (
    CorruptMetadataError,
    CorruptObjectError,
    CorruptRecordError,
    NotFoundError,
)
from ..stores import ListEntry

if TYPE_CHECKING:
    from .._database import Database
    from .._resource.resource import Resource
    from ..stores import ObjectStore

__all__ = ["DoctorReport", "MetadataCopy", "doctor", "metadata_copies", "restore_metadata"]


@dataclass
class DoctorReport:
    """What :func:`doctor` found in one resource (keys are full object keys).

    - ``corrupt``: records that cannot be decoded (``CorruptRecordError`` each).
    - ``orphan_refs``: partition references whose record does not exist.
    - ``stale_refs``: references whose record exists but no longer has those values (or
      whose partition is no longer defined).
    - ``missing_refs``: references a record should have and lacks.
    - ``orphan_content``: content objects without a record.
    - ``orphan_history``: history entries of records that no longer exist (kept on purpose
      by ``delete`` on a resource with history, so ``restore()`` can bring them back).
    - ``repaired``: the result of ``rebuild_partitions()`` when run with ``repair``.
    """

    resource: str
    records: int = 0
    corrupt: list[CorruptRecordError] = field(default_factory=list)
    orphan_refs: list[str] = field(default_factory=list)
    stale_refs: list[str] = field(default_factory=list)
    missing_refs: list[str] = field(default_factory=list)
    orphan_content: list[str] = field(default_factory=list)
    orphan_history: list[str] = field(default_factory=list)
    repaired: dict[str, int] | None = None

    @property
    def healthy(self) -> bool:
        """True when nothing is corrupt, orphaned or missing (history of deleted records
        aside, which is kept on purpose)."""
        return not (
            self.corrupt
            or self.orphan_refs
            or self.stale_refs
            or self.missing_refs
            or self.orphan_content
        )

    @property
    def resolved(self) -> bool:
        """True when healthy, or when the repair fixed every problem found (references)."""
        return self.healthy or (
            self.repaired is not None and not (self.corrupt or self.orphan_content)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (corrupt records as ``{id, key, reason}``)."""
        return {
            "resource": self.resource,
            "records": self.records,
            "healthy": self.healthy,
            "resolved": self.resolved,
            "corrupt": [{"id": e.id, "key": e.key, "reason": e.reason} for e in self.corrupt],
            "orphan_refs": self.orphan_refs,
            "stale_refs": self.stale_refs,
            "missing_refs": self.missing_refs,
            "orphan_content": self.orphan_content,
            "orphan_history": self.orphan_history,
            "repaired": self.repaired,
        }


def _id_after(key: str, prefix: str) -> str | None:
    """The record id in ``{prefix}{id}[/...]``, or ``None`` if ``key`` is not under it."""
    if not key.startswith(prefix):
        return None
    return key[len(prefix) :].split("/", 1)[0]


async def doctor(db: Database, resource: str | Resource, *, repair: bool = False) -> DoctorReport:
    """Check one resource: corrupt records, orphaned and missing partition references,
    content and history without a record. With ``repair``, fix the references with
    :meth:`Resource.rebuild_partitions` (nothing else is changed or deleted).

    :raises ResourceNotFoundError: no such resource.
    """
    res = db.get_resource(resource) if isinstance(resource, str) else resource
    report = DoctorReport(res.name)
    ids = set(await res.list_ids())
    report.records = len(ids)
    expected: set[str] = set()
    async for record in res._listing.records(
        None, None, op="doctor", strict=False, skipped=report.corrupt
    ):
        expected.update(res._ref_keys(record, record.id).values())
    corrupt_ids = {e.id for e in report.corrupt}
    existing: set[str] = set()
    async for entry in db.store.list(f"resource={res.name}/partition="):
        if not isinstance(entry, ListEntry) or is_dead(entry.size):
            continue  # a killed reference (kept as a 1-byte marker) is no finding
        key = entry.key
        existing.add(key)
        rid = next(
            (parsed[1] for p in res.partitions.values() if (parsed := p.parse_ref(key))), None
        )
        if key in expected or rid in corrupt_ids:
            continue  # a corrupt record's values are unknown: its references are left alone
        (report.stale_refs if rid in ids else report.orphan_refs).append(key)
    report.missing_refs = sorted(expected - existing)
    content_prefix = res.content_key_for("")
    async for key in res.stream_raw("content/"):
        if _id_after(key, content_prefix) not in ids:
            report.orphan_content.append(key)
    history_prefix = f"resource={res.name}/history/id="
    async for key in res.stream_raw("history/"):
        if _id_after(key, history_prefix) not in ids:
            report.orphan_history.append(key)
    if repair:
        report.repaired = await res.rebuild_partitions()
    return report


# -- s3db.json copies -------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataCopy:
    """One kept copy of ``s3db.json`` (``error`` set when the copy itself is unreadable)."""

    key: str
    revision: int
    updated_at: str | None
    resources: list[str]
    error: str | None = None


async def metadata_copies(store: ObjectStore) -> list[MetadataCopy]:
    """The kept copies of ``s3db.json``, newest first (one GET per slot)."""
    copies: list[MetadataCopy] = []
    for slot in range(HISTORY_SIZE):
        key = history_key(slot)
        try:
            obj = await store.get(key)
            doc = parse_metadata(obj.body, key=key)
        except NotFoundError:
            continue
        except (CorruptMetadataError, CorruptObjectError) as exc:
            copies.append(MetadataCopy(key, -1, None, [], error=exc.message))
            continue
        copies.append(
            MetadataCopy(
                key,
                int(doc.get("revision") or 0),
                doc.get("updated_at"),
                sorted(doc.get("resources", {})),
            )
        )
    copies.sort(key=lambda c: c.revision, reverse=True)
    return copies


async def _current_etag(store: ObjectStore) -> tuple[str | None, int]:
    """The etag and revision of the current ``s3db.json`` (a damaged one is deleted)."""
    try:
        obj = await store.get(METADATA_KEY)
    except NotFoundError:
        return None, 0
    except CorruptObjectError:
        await store.delete(METADATA_KEY)  # unreadable by the store itself: make room
        return None, 0
    try:
        return obj.etag, int(parse_metadata(obj.body).get("revision") or 0)
    except CorruptMetadataError:
        return obj.etag, 0


async def restore_metadata(store: ObjectStore, n: int = 1) -> MetadataCopy:
    """Replace ``s3db.json`` with the ``n``-th newest readable kept copy (1 = newest).

    Needs no connected :class:`Database` (connect fails on a damaged ``s3db.json``).
    The restored document gets the next revision and is kept as a copy too.

    :raises NotFoundError: fewer than ``n`` readable copies.
    :raises PreconditionFailed: ``s3db.json`` changed meanwhile (run it again).
    """
    readable = [c for c in await metadata_copies(store) if c.error is None]
    if n < 1 or n > len(readable):
        raise NotFoundError(
            f"no copy #{n} of {METADATA_KEY}: {len(readable)} readable copies are kept",
            suggestion=f"pick 1..{len(readable)}" if readable else "no copy to restore from",
            metadata={"key": METADATA_KEY, "copies": len(readable)},
        )
    chosen = readable[n - 1]
    doc = parse_metadata((await store.get(chosen.key)).body, key=chosen.key)
    etag, current = await _current_etag(store)
    doc["revision"] = max([current, *(c.revision for c in readable)]) + 1
    doc["updated_at"] = datetime.now(UTC).isoformat()
    doc["restored_from"] = chosen.revision
    body = msgspec.json.encode(doc)
    if etag is None:
        await store.put(METADATA_KEY, body, content_type="application/json", if_none_match=True)
    else:
        await store.put(METADATA_KEY, body, content_type="application/json", if_match=etag)
    await save_history(store, doc, body)
    return chosen
