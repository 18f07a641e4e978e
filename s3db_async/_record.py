"""Record and batch result types returned by Resource methods."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CorruptRecordError, S3dbError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = ["MASK", "BatchResult", "ItemResult", "Page", "Record", "RecordList", "mask"]


class Record(dict[str, Any]):
    """A record: a plain ``dict`` of its fields (``id`` first) that also knows its etag.

    ``record.etag`` is the object's etag after the read or write that produced it; pass it
    to ``update(..., if_match=record.etag)`` to manage optimistic concurrency yourself.
    ``record.version`` is the schema version the record was stored under.
    ``record.masked`` names the ``secret`` and ``password`` fields (dotted paths), shown as
    ``'***'`` by ``repr()`` and ``str()`` so a log line or a traceback never holds them;
    ``dict(record)``, ``record[...]`` and JSON encoding give the real values.
    """

    __slots__ = ("etag", "masked", "version")

    def __init__(
        self,
        data: Any = (),
        *,
        etag: str | None = None,
        version: str | None = None,
        masked: tuple[str, ...] | None = None,
    ):
        super().__init__(data)
        self.etag = etag
        self.version = version
        self.masked: tuple[str, ...] = masked if masked is not None else getattr(data, "masked", ())

    @property
    def id(self) -> str:
        """The record id."""
        return str(self["id"])

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Let pydantic (and FastAPI) validate and serialise a ``Record`` as a JSON object.

        A ``Record`` passes through unchanged (its etag kept); any other mapping becomes one.
        pydantic is imported only when a model or ``TypeAdapter`` asks for this schema.
        """
        from pydantic_core import core_schema

        def to_record(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Record:
            return value if isinstance(value, cls) else cls(validate(value))

        as_dict = core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
        return core_schema.no_info_wrap_validator_function(to_record, as_dict)

    def __repr__(self) -> str:
        return f"Record({dict.__repr__(mask(self, self.masked) if self.masked else self)})"

    __str__ = __repr__


_new_dict = dict.__new__


def new_record(
    rid: str,
    fields: Mapping[str, Any],
    *,
    etag: str | None,
    version: str | None,
    masked: tuple[str, ...],
) -> Record:
    """``Record({"id": rid, **fields}, ...)`` without running ``__init__`` in Python: the
    record paths build one per operation."""
    rec: Record = _new_dict(Record)
    rec["id"] = rid
    rec.update(fields)
    rec.etag = etag
    rec.version = version
    rec.masked = masked
    return rec


MASK = "***"
"""What ``repr()`` shows instead of a secret or password value."""


def mask(data: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with the value at each dotted path (when present and not ``None``)
    replaced by :data:`MASK`; only the nested dicts on those paths are copied."""
    out = dict(data)
    for path in paths:
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, Mapping):
                break
            node[part] = node = dict(child)
        else:
            if node.get(leaf) is not None:
                node[leaf] = MASK
    return out


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one item of a batch operation."""

    id: str | None
    ok: bool
    data: Record | None = None
    error: S3dbError | None = None


class BatchResult(list[ItemResult]):
    """Per-item results of ``insert_many``/``get_many``/``update_many``/``delete_many``."""

    @property
    def ok(self) -> list[Record]:
        """The records (or ids, for deletes) of the items that succeeded."""
        return [r.data for r in self if r.ok and r.data is not None]

    @property
    def errors(self) -> list[ItemResult]:
        """The items that failed."""
        return [r for r in self if not r.ok]

    @property
    def all_ok(self) -> bool:
        """True when no item failed."""
        return all(r.ok for r in self)

    @property
    def skipped(self) -> list[CorruptRecordError]:
        """The errors of the items whose stored record is corrupt."""
        return [r.error for r in self if isinstance(r.error, CorruptRecordError)]

    def raise_first(self) -> None:
        """Raise the first item's error, if any."""
        for r in self:
            if r.error is not None:
                raise r.error


class RecordList(list[Record]):
    """The records of ``list``/``query``: a plain ``list`` that also says what it skipped.

    ``skipped`` holds a :class:`~s3db_async.errors.CorruptRecordError` for each listed
    record that could not be decoded (empty when every record was read).
    """

    __slots__ = ("skipped",)

    def __init__(self, records: Iterable[Record] = (), skipped: Iterable[Any] = ()) -> None:
        super().__init__(records)
        self.skipped: list[CorruptRecordError] = list(skipped)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records; ``next_cursor`` is ``None`` on the last page.

    ``skipped`` holds the errors of the page's corrupt records (not in ``items``).
    """

    items: list[Record]
    next_cursor: str | None
    size: int
    skipped: list[CorruptRecordError] = field(default_factory=list)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
