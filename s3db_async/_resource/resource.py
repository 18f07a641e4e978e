"""Resource: a collection of records stored as S3 objects.

Request budget (asserted in tests): ``insert`` = 1 conditional PUT (+1 PUT per
partition reference, written first; 2 when reviving a dead reference), ``get`` = 1 GET,
``exists`` = 1 HEAD, ``update``/``patch``/``replace`` = 1 GET + 1 conditional PUT (+1 PUT
of the new reference before and 1 PUT killing the old one after, per partition whose value
moves; only the GET when the result equals the stored record), ``delete`` = 1 batched
DELETE, plus 1 GET first when the delete is observed (partitions, delete hooks or
``deleted`` listeners) and 1 PUT killing each reference.
Writes whose answer is lost are resolved by :mod:`s3db_async._cas` (see
docs/reliability.md); partition references follow :mod:`s3db_async._resource.partitions`.
"""

from __future__ import annotations

import builtins
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, overload

import anyio.to_thread

from .._codec.codec import AttributeRegistry, RecordCodec
from .._codec.crypto import SecretBox
from .._events import EventEmitter, HookRegistry, Middleware
from .._record import BatchResult, Page, Record, RecordList
from .._schema.field_paths import check_field_path
from .._schema.schema import Schema
from ..errors import NotFoundError, SchemaError
from .content import Content
from .corrupt import Corruption
from .extensions import (
    MIDDLEWARE_METHODS,
    OPTION_METHODS,
    Extensions,
    OperationOption,
    OptionHandler,
)
from .feed import CHANGE_ID_BYTES
from .history import REVISION_METADATA_BYTES, History, RecordRevision
from .ids import IdGenerator, make_id_generator, parse_incremental, validate_id
from .listing import Listing
from .migrations import MigrationFn, Migrations
from .partitions import (
    Partition,
    parse_partitions,
    tokens_size,
)
from .records import Records
from .timestamps import TIMESTAMP_FIELDS, TIMESTAMP_RULE, preserve_kw
from .writes import RecordWriter

if TYPE_CHECKING:
    from .._database import Database

__all__ = ["HOOK_NAMES", "MIDDLEWARE_METHODS", "OPTION_METHODS", "Resource"]

HOOK_NAMES = tuple(
    f"{when}_{op}"
    for op in ("insert", "update", "delete", "get", "list")
    for when in ("before", "after")
)


class Resource(
    EventEmitter,
):
    """A named collection of records with a schema, partitions, hooks and events.

    Get one from :meth:`Database.create_resource` or ``db.resources[name]``::

        users = await db.create_resource("users", attributes={"email": "string|required|email"})
        user = await users.insert({"email": "a@b.co"})
        await users.update(user["id"], {"email": "c@d.co"})
    """

    event_names = frozenset(
        {"inserted", "updated", "deleted", "deleted_all", "limits_exceeded", "truncated", "error"}
    )
    renamed_events: ClassVar[Mapping[str, str]] = {"exceeds_limits": "limits_exceeded"}

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        definition: Mapping[str, Any],
        version: str,
        versions: Mapping[str, Mapping[str, Any]],
        registry: AttributeRegistry,
        id_generator: IdGenerator | None = None,
    ) -> None:
        EventEmitter.__init__(self, logger=logging.getLogger(f"s3db_async.resource.{name}"))
        self.db = db
        self.name = name
        self.log = logging.getLogger(f"s3db_async.resource.{name}")
        self._supervisor = db._supervisor
        self._hooks = HookRegistry(HOOK_NAMES, owner=f"resource {name!r}")
        self._extensions = Extensions(self)
        self._call = self._extensions.call
        self._call_with = self._extensions.call_with_options
        self.registry = registry
        self._custom_id_generator = id_generator
        self._writer = RecordWriter(self)
        self._content = Content(self)
        self._records = Records(self)
        self._listing = Listing(self)
        self._migrations = Migrations(self)
        self._history = History(self)
        self._corrupt = Corruption(self)
        self._apply(definition, version, versions)

    # -- definition -----------------------------------------------------------
    def _apply(
        self,
        definition: Mapping[str, Any],
        version: str,
        versions: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """(Re)build schema, codecs and partitions from a stored definition."""
        self.definition: dict[str, Any] = dict(definition)
        self.version = version
        self._versions = {v: dict(d) for v, d in versions.items()}
        self.behavior: str = definition.get("behavior", "body-overflow")
        self.timestamps: bool = bool(definition.get("timestamps", False))
        self.conflict_retries: int = int(definition.get("conflict_retries", 5))
        self.keeps_history: bool = bool(definition.get("history", False))
        gen = definition.get("id_generator") or "nanoid"
        start = parse_incremental(gen)
        self._ids_checked = False  # True: generated ids are valid by construction
        if start is not None:
            self._id_generator = self.db._sequence_ids(self.name, start)
        elif gen == "custom" and self._custom_id_generator:
            self._id_generator = self._custom_id_generator
        else:
            self._id_generator = make_id_generator(
                "nanoid" if gen == "custom" else gen, size=definition.get("id_size")
            )
            self._ids_checked = isinstance(gen, str)  # a built-in generator
        self.schema = self._build_schema(definition)
        self.partitions: dict[str, Partition] = parse_partitions(
            definition.get("partitions"),
            known_fields=set(self.schema.fields),
            resource=self.name,
            strict=self.db.strict_validation,
            sensitive=self.schema.sensitive_fields,
            drop_sensitive=True,
        )
        self._masked = tuple(self.schema.sensitive_fields)
        self._codecs: dict[str, RecordCodec] = {}
        self.codec = self._codec_for(version)

    @staticmethod
    def attributes_of(definition: Mapping[str, Any]) -> dict[str, Any]:
        """User attributes plus timestamps, as the schema sees them."""
        attributes = dict(definition.get("attributes") or {})
        if definition.get("timestamps"):
            for f in TIMESTAMP_FIELDS:
                attributes.setdefault(f, TIMESTAMP_RULE)
        return attributes

    def _build_schema(self, definition: Mapping[str, Any]) -> Schema:
        return Schema(
            self.attributes_of(definition),
            plugin_attributes={n: d for n, (d, _) in self._extensions.plugin_attributes.items()}
            or None,
            allow_extra=bool(definition.get("allow_extra", False)),
        )

    def _codec_for(self, version: str) -> RecordCodec:
        codec = self._codecs.get(version)
        if codec is None:
            codec = self._codecs[version] = self.make_codec(version, self.db._secret_box)
        return codec

    def make_codec(self, version: str, secret_box: SecretBox | None) -> RecordCodec:
        """A codec for records stored under schema ``version`` with a given secret box."""
        definition = self._versions.get(version, {}).get("definition")
        schema = (
            self.schema
            if version == self.version or definition is None
            else self._build_schema(definition)
        )
        return RecordCodec(
            schema,
            self.registry,
            version=version,
            behavior=(definition or self.definition).get("behavior", self.behavior),
            secret_box=secret_box,
            reserved_metadata=(REVISION_METADATA_BYTES if self.keeps_history else 0)
            + tokens_size(list(self.partitions))
            + (CHANGE_ID_BYTES if self._writer.feed is not None else 0),
            resource=self.name,
        )

    def _reset_codecs(self) -> None:
        """Forget cached codecs (after the database's secret box changed)."""
        self._codecs.clear()
        self.codec = self._codec_for(self.version)

    @property
    def versions(self) -> dict[str, dict[str, Any]]:
        """Every schema version of this resource (``{"v1": {"definition": ..., "hash": ...}}``)."""
        return self._versions

    # -- keys ------------------------------------------------------------------
    @property
    def data_prefix(self) -> str:
        """Key prefix of the records: ``resource={name}/data/``."""
        return f"resource={self.name}/data/"

    def key_for(self, record_id: str) -> str:
        """Object key of a record."""
        return f"resource={self.name}/data/id={record_id}"

    def _id(self, value: object) -> str:
        return validate_id(value, resource=self.name)

    def _check_path(self, path: str, *, where: str = "query filter") -> None:
        """Refuse a field path (filter, ``count(by=)``) that no schema version knows."""
        older = (self._codec_for(v).schema for v in self._versions if v != self.version)
        check_field_path(self.schema, path, where=where, resource=self.name, older=older)

    def _ref_keys(self, record: Mapping[str, Any], record_id: str) -> dict[str, str]:
        record = getattr(record, "stored", record)  # an upgraded record's refs: as stored
        refs = {}
        for name, p in self.partitions.items():
            key = p.ref_key(self.name, record, record_id)
            if key is not None:
                refs[name] = key
        return refs

    # -- reads -------------------------------------------------------------------
    async def get(self, record_id: str, **options: Any) -> Record:
        """Read a record (one request).

        :param options: operation options of installed plugins (``include=`` of
            RelationPlugin); see :meth:`add_operation_option`.
        :raises NotFoundError: no such record.
        :raises CorruptRecordError: the stored object cannot be decoded.
        :raises UnknownOptionError: an option no installed plugin handles here.
        """
        if options:
            return await self._call_with("get", options, self._records.get_impl, record_id)
        return await self._call("get", self._records.get_impl, record_id)

    async def get_or_none(self, record_id: str, **options: Any) -> Record | None:
        """Like :meth:`get`, but ``None`` for a missing record."""
        if options:
            return await self._call_with("get_or_none", options, self._get_or_none, record_id)
        return await self._call("get_or_none", self._get_or_none, record_id)

    async def _get_or_none(self, record_id: str) -> Record | None:
        try:
            return await self.get(record_id)
        except NotFoundError:
            return None

    async def verify_password(self, record_id: str, field: str, candidate: str) -> bool:
        """True if ``candidate`` matches the hash in the ``password`` field ``field``
        (a dotted path for nested fields) of a record; False when it does not, or when the
        record has no password there. One GET; the hash library's constant-time check runs
        in a worker thread.

        :raises SchemaError: ``field`` is not a ``password`` field of this resource.
        :raises NotFoundError: no record with that id.
        """
        from .._schema.passwords import verify_password

        spec = self.schema.fields.get(field)
        if spec is None or spec.type != "password":
            raise SchemaError(
                f"{field!r} is not a password field of resource {self.name!r}",
                suggestion="password fields: " + (", ".join(self.schema.password_fields) or "none"),
                metadata={"resource": self.name, "field": field},
            )
        value: Any = await self.get(record_id)
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return await anyio.to_thread.run_sync(verify_password, value, candidate)

    async def get_with_etag(self, record_id: str) -> tuple[Record, str]:
        """The record and its etag, for ``update(..., if_match=etag)``."""
        record = await self.get(record_id)
        return record, str(record.etag)

    async def get_many(
        self, ids: Iterable[str], *, strict: bool = False, **options: Any
    ) -> BatchResult:
        """Read many records concurrently (``parallelism`` at a time); per-item results.

        A corrupt record is a failed item (its error also in ``skipped`` and emitted as
        ``error``); ``strict=True`` raises :class:`CorruptRecordError` instead.
        """
        if options:
            return await self._call_with(
                "get_many", options, self._records.get_many_impl, builtins.list(ids), strict=strict
            )
        return await self._call(
            "get_many", self._records.get_many_impl, builtins.list(ids), strict=strict
        )

    async def exists(self, record_id: str, **options: Any) -> bool:
        """True when the record exists (one HEAD)."""
        if options:
            return await self._call_with("exists", options, self._records.exists_impl, record_id)
        return await self._call("exists", self._records.exists_impl, record_id)

    # -- misc ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<Resource {self.name!r} {self.version} partitions={list(self.partitions)}>"

    async def stream_raw(self, prefix: str | None = None) -> AsyncIterator[str]:
        """Keys under this resource (or ``prefix`` inside it), for maintenance tools."""
        async for entry in self.db.store.list(f"resource={self.name}/" + (prefix or "")):
            key = getattr(entry, "key", None)
            if key is not None:
                yield key

    # -- content (Content) --------------------------------------------------------
    def content_key_for(self, record_id: str) -> str:
        """Object key of a record's binary content."""
        return self._content.content_key_for(record_id)

    async def set_content(
        self,
        record_id: str,
        content: bytes | str,
        content_type: str | None = None,
        **options: Any,
    ) -> str:
        """Attach binary content to an existing record; returns the content's etag.

        :raises NotFoundError: no such record.
        """
        impl = self._content.set_content_impl
        if options:
            return await self._call_with(
                "set_content", options, impl, record_id, content, content_type
            )
        return await self._call("set_content", impl, record_id, content, content_type)

    async def get_content(self, record_id: str, **options: Any) -> tuple[bytes, str | None]:
        """``(bytes, content_type)`` of a record's content.

        :raises NotFoundError: the record has no content.
        """
        if options:
            return await self._call_with(
                "get_content", options, self._content.get_content_impl, record_id
            )
        return await self._call("get_content", self._content.get_content_impl, record_id)

    async def has_content(self, record_id: str) -> bool:
        """True when the record has content (one HEAD)."""
        return await self._content.has_content(record_id)

    async def delete_content(self, record_id: str) -> None:
        """Remove a record's content (the record stays)."""
        await self._content.delete_content(record_id)

    # -- extensions (Extensions) ------------------------------------------------
    def add_hook(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a hook: ``before_``/``after_`` + ``insert|update|delete|get|list``."""
        self._extensions.add_hook(name, fn)

    def remove_hook(self, name: str, fn: Callable[..., Any]) -> bool:
        """Unregister a hook; returns whether it was registered."""
        return self._extensions.remove_hook(name, fn)

    def use_middleware(self, method: str, fn: Middleware) -> None:
        """Wrap ``method``: ``async def fn(next, *args, **kwargs)``."""
        self._extensions.use_middleware(method, fn)

    def remove_middleware(self, method: str, fn: Middleware) -> bool:
        """Remove a middleware; returns whether it was registered."""
        return self._extensions.remove_middleware(method, fn)

    def add_operation_option(
        self,
        name: str,
        handler: OptionHandler,
        *,
        methods: Iterable[str],
        owner: str | None = None,
        description: str = "",
    ) -> OperationOption:
        """Accept the keyword option ``name`` on ``methods``, run by ``handler``.

        ``handler(next, value, *args, **kwargs)`` wraps the whole operation when a caller
        passes the option (``posts.get(pid, include=["author"])``) and calls
        ``await next(*args, **kwargs)``: middlewares and the operation never see the option.
        Plugins use :meth:`Plugin.add_operation_option`, which undoes it on uninstall.

        :raises ConfigError: a method that takes no options, a name that is a parameter of
            one of the methods, or an option already registered on this resource.
        """
        return self._extensions.add_option(
            name, handler, methods=methods, owner=owner, description=description
        )

    def remove_operation_option(self, name: str) -> bool:
        """Stop accepting the option ``name``; returns whether it was registered."""
        return self._extensions.remove_option(name)

    @property
    def operation_options(self) -> Mapping[str, OperationOption]:
        """The operation options registered on this resource, by name."""
        return MappingProxyType(self._extensions.options)

    def add_method(self, name: str, fn: Callable[..., Any], *, owner: str | None = None) -> None:
        """Attach a method (plugins); an existing attribute of that name raises."""
        self._extensions.add_method(name, fn, owner=owner)

    def remove_method(self, name: str) -> bool:
        """Detach a method added with :meth:`add_method`."""
        return self._extensions.remove_method(name)

    async def add_plugin_attribute(self, name: str, definition: Any, plugin_name: str) -> None:
        """Add a field owned by a plugin (ids from the ``p0, p1, ...`` space).

        :raises SchemaError: the name is a user field or another plugin's field.
        """
        await self._extensions.add_plugin_attribute(name, definition, plugin_name)

    async def remove_plugin_attribute(self, name: str, plugin_name: str | None = None) -> bool:
        """Remove a plugin field (its id is kept reserved, never reused).

        :returns: ``False`` when no plugin field has that name.
        :raises SchemaError: the field belongs to another plugin.
        """
        return await self._extensions.remove_plugin_attribute(name, plugin_name)

    # -- history (History) ----------------------------------------------------------------
    def history_prefix(self, record_id: str) -> str:
        """Key prefix of a record's history: ``resource={name}/history/id={id}/``."""
        return self._history.history_prefix(record_id)

    def history_key(self, record_id: str, revision: int) -> str:
        """Object key of revision ``revision`` of a record."""
        return self._history.history_key(record_id, revision)

    async def history(self, record_id: str) -> builtins.list[RecordRevision]:
        """Every earlier version of a record, oldest first (the current one is not included).

        Works for deleted records too (their history is kept). Costs 1 LIST, 1 HEAD and
        1 GET per revision. Old revisions are upgraded like :meth:`get` upgrades records
        (see :meth:`migrate`)::

            for rev in await users.history(uid):
                print(rev.revision, rev.superseded_at, rev["name"])

        :raises SchemaError: an old revision needs a migration that is not registered.
        """
        return await self._history.history(record_id)

    async def get_revision(self, record_id: str, revision: int) -> RecordRevision:
        """Revision ``revision`` of a record (1 GET; the current one costs 1 GET more).

        :raises NotFoundError: no such revision.
        """
        return await self._history.get_revision(record_id, revision)

    async def get_version(self, record_id: str, revision: int) -> RecordRevision:
        """Deprecated alias of :meth:`get_revision` (a *version* is a schema version)."""
        warnings.warn(
            "Resource.get_version(id, n) is deprecated; use get_revision(id, n)",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self._history.get_revision(record_id, revision)

    async def restore(self, record_id: str, revision: int, *, retries: int | None = None) -> Record:
        """Make revision ``revision`` the current version again (a new revision itself;
        the version it replaces goes to the history). A deleted record is re-created.

        The restored data is validated against the current schema.

        :raises NotFoundError: no such revision.
        :raises ValidationError: the old data does not satisfy the current schema.
        """
        return await self._history.restore(record_id, revision, retries=retries)

    async def purge_history(self, record_id: str) -> int:
        """Delete every stored revision of a record; returns how many were deleted."""
        return await self._history.purge_history(record_id)

    # -- migrations (Migrations) ----------------------------------------------------------
    def set_migrations(self, migrations: Mapping[Any, MigrationFn | None] | None) -> None:
        """Register migration functions in this process (nothing is stored).

        ``create_resource(..., migrations=...)`` calls it; use it directly in processes
        that open the database without creating the resource (the ``s3db migrate
        --module`` command does).

        :raises SchemaError: a bad key or value, or a step beyond the current version.
        """
        self._migrations.set_migrations(migrations)

    @property
    def migrations(self) -> Mapping[int, MigrationFn | None]:
        """The migration functions registered in this process, by target version."""
        return self._migrations.migrations

    async def migrate(
        self,
        *,
        on_progress: Callable[[dict[str, Any]], Any] | None = None,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Rewrite every record below the current schema version through the migrations.

        Each record costs 1 GET, plus 1 conditional PUT (+1 PUT with history, + the
        partition references that move) when it is upgraded. Resumable (cancel it or let
        it crash, then call it again) and idempotent (records at the current version are
        skipped). Hooks do not run; ``updated`` events are emitted per upgraded record::

            result = await users.migrate(on_progress=lambda p: print(p["done"], p["total"]))

        :param on_progress: called (sync or async) after each record with ``resource``,
            ``version``, ``total``, ``done``, ``migrated`` and ``skipped``; counting the
            total costs a LIST pass first, so it is only done when a callback is given.
        :param concurrency: records in flight (default: the database's ``parallelism``).
        :returns: the same counters after the run.
        :raises SchemaError: a needed migration is missing or failed (the run stops; the
            records migrated so far stay migrated).
        """
        return await self._migrations.migrate(on_progress=on_progress, concurrency=concurrency)

    # -- listing (Listing) ----------------------------------------------------------------
    async def list_ids(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
        **options: Any,
    ) -> builtins.list[str]:
        """Ids of the records (LIST only), optionally inside a partition."""
        impl = self._listing.list_ids_impl
        if options:
            return await self._call_with(
                "list_ids", options, impl, partition, partition_values, limit
            )
        return await self._call("list_ids", impl, partition, partition_values, limit)

    @overload
    async def count(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        by: None = None,
        strict: bool = False,
        **options: Any,
    ) -> int: ...
    @overload
    async def count(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        by: str,
        strict: bool = False,
        **options: Any,
    ) -> dict[Any, int]: ...
    async def count(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        by: str | None = None,
        strict: bool = False,
        **options: Any,
    ) -> int | dict[Any, int]:
        """How many records (LIST only). With ``by``, a ``{value: count}`` mapping.

        ``by`` uses a partition on that single field when one exists (LIST only);
        otherwise it reads the records, and a corrupt one is left out of the counts (an
        ``error`` event) or, with ``strict``, raises :class:`CorruptRecordError`.
        """
        impl = self._listing.count_impl
        if options:
            return await self._call_with(
                "count", options, impl, partition, partition_values, by, strict=strict
            )
        return await self._call("count", impl, partition, partition_values, by, strict=strict)

    def stream(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
        start_after_id: str | None = None,
        concurrency: int | None = None,
        strict: bool = False,
    ) -> AsyncIterator[Record]:
        """Yield records in id order, fetching ``concurrency`` (default ``parallelism``) at a time.

        Memory stays bounded whatever the number of records. A corrupt record is skipped
        with an ``error`` event, or raises :class:`CorruptRecordError` with ``strict``.
        """
        return self._listing.records(
            partition,
            partition_values,
            op="stream",
            strict=strict,
            limit=limit,
            start_after_id=start_after_id,
            concurrency=concurrency,
        )

    async def list(
        self,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        limit: int | None = None,
        strict: bool = False,
        **options: Any,
    ) -> RecordList:
        """Every record (or the first ``limit``), optionally inside a partition.

        A corrupt record is left out and its :class:`CorruptRecordError` is in the
        result's ``skipped`` (and emitted as ``error``); ``strict=True`` raises it instead.
        ``options`` are operation options of installed plugins, as in :meth:`get`.
        """
        impl = self._listing.list_impl
        if options:
            return await self._call_with(
                "list", options, impl, partition, partition_values, limit, strict=strict
            )
        return await self._call("list", impl, partition, partition_values, limit, strict=strict)

    async def page(
        self,
        *,
        size: int = 100,
        cursor: str | None = None,
        page: int | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        strict: bool = False,
        **options: Any,
    ) -> Page:
        """One page of records. Pass the previous ``next_cursor`` (opaque) for the next one,
        or ``page=N`` (0-based) to skip ``N * size`` ids (LIST only for the skipped ones).

        A corrupt record is left out of ``items`` (the page may hold fewer than ``size``)
        and reported in ``skipped``; ``strict=True`` raises :class:`CorruptRecordError`.
        """
        impl = self._listing.page_impl
        if options:
            return await self._call_with(
                "page",
                options,
                impl,
                size,
                cursor,
                page,
                partition,
                partition_values,
                strict=strict,
            )
        return await self._call(
            "page", impl, size, cursor, page, partition, partition_values, strict=strict
        )

    async def query(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        strict: bool = False,
        **options: Any,
    ) -> RecordList:
        """Records matching ``filter`` (see :mod:`s3db_async._resource.query`); all of them
        unless ``limit``.

        When the filter pins every field of a partition, only that partition is read.
        Corrupt records are skipped and reported as in :meth:`list`.
        """
        impl = self._listing.query_impl
        if options:
            return await self._call_with(
                "query", options, impl, filter, limit, partition, partition_values, strict=strict
            )
        return await self._call(
            "query", impl, filter, limit, partition, partition_values, strict=strict
        )

    def explain(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Which partition a query would use (no request)."""
        return self._listing.explain(filter)

    async def estimate_query_cost(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`explain` plus the requests :meth:`query` would send: runs its LIST only.

        ``list_requests`` (pages of 1000 keys over the partition or the data prefix, counted
        from the keys listed), ``candidate_records`` (one GET each: ``get_requests``) and
        ``total_requests``; a ``limit`` can only make the query cheaper.
        """
        return await self._listing.estimate_query_cost(filter)

    async def rebuild_partitions(self) -> dict[str, int]:
        """Make partition references match the records: add missing, kill stale ones.

        Repairs what a crash between a record write and its reference writes left (stale
        live references, which partition counts include until then). Every write is a
        compare-and-swap on the etag listed, so a reference put after the listing is never
        overwritten or killed. Run it while the resource's writers are quiet: a write in
        flight whose new reference was listed before its record changed can see that
        reference killed (run it again then). Returns ``{"added": n, "removed": m}``.
        """
        return await self._listing.rebuild_partitions()

    # -- records (Records) ------------------------------------------------------------
    async def insert(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        preserve_timestamps: bool = False,
        **fields: Any,
    ) -> Record:
        """Validate and store a new record; returns it with its ``id``.

        :param preserve_timestamps: keep the ``created_at``/``updated_at`` given (aware
            datetimes or ISO strings with a zone) instead of now (imports, restores).
        :raises ValidationError: the data does not satisfy the schema (nothing is written).
        :raises AlreadyExistsError: a record with this id exists (it is not overwritten).
        """
        record = {**data, **fields} if data else fields  # a new dict either way
        if preserve_timestamps:
            return await self._call(
                "insert", self._records.insert_impl, record, preserve_timestamps=True
            )
        return await self._call("insert", self._records.insert_impl, record)

    async def insert_many(
        self, items: Iterable[Mapping[str, Any]], *, preserve_timestamps: bool = False
    ) -> BatchResult:
        """Insert many records concurrently; per-item results, the batch never fails as a whole.

        :param preserve_timestamps: as in :meth:`insert`.
        """
        return await self._call(
            "insert_many",
            self._records.insert_many_impl,
            builtins.list(items),
            **preserve_kw(preserve_timestamps),
        )

    async def update(
        self,
        record_id: str,
        changes: Mapping[str, Any] | Callable[[Record], Mapping[str, Any]] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Merge ``changes`` into a record (nested objects merge too) and validate the result.

        ``changes`` may be a function of the current record returning the changes; it is
        re-applied to the fresh record after a lost race, so increments never get lost::

            await counters.update(cid, lambda r: {"hits": r["hits"] + 1})

        One GET and one conditional PUT; a lost race re-reads and re-applies the change,
        with backoff for up to 30 s (or ``retries`` more attempts when given). With
        ``if_match`` the write happens only if the record still has that etag. A change
        that leaves the record as it is writes nothing and returns the stored record (no
        ``updated`` event); ``created_at`` never changes, ``updated_at`` only with the record.

        :raises NotFoundError: no such record.
        :raises ConflictError: the record kept changing.
        :raises PreconditionFailed: ``if_match`` did not match.
        """
        return await self._call(
            "update",
            self._records.update_impl,
            record_id,
            self._records.changes(changes, fields),
            if_match=if_match,
            retries=retries,
            full=True,
        )

    async def patch(
        self,
        record_id: str,
        changes: Mapping[str, Any] | Callable[[Record], Mapping[str, Any]] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Like :meth:`update`, but validates only the changed fields.

        Use it to touch records written under an older, laxer schema.
        """
        return await self._call(
            "patch",
            self._records.update_impl,
            record_id,
            self._records.changes(changes, fields),
            if_match=if_match,
            retries=retries,
            full=False,
        )

    async def replace(
        self,
        record_id: str,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        if_match: str | None = None,
        retries: int | None = None,
        **fields: Any,
    ) -> Record:
        """Replace a whole record (fields not given are dropped); no lost updates.

        :raises NotFoundError: no such record (use :meth:`upsert` to create).
        """
        return await self._call(
            "replace",
            self._records.replace_impl,
            record_id,
            {**(data or {}), **fields},
            if_match=if_match,
            retries=retries,
        )

    async def upsert(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        preserve_timestamps: bool = False,
        **fields: Any,
    ) -> Record:
        """Insert the record, or update (merge) it if its ``id`` exists.

        An update never changes ``created_at``; ``preserve_timestamps`` applies to an insert.
        """
        return await self._call(
            "upsert",
            self._records.upsert_impl,
            {**(data or {}), **fields},
            **preserve_kw(preserve_timestamps),
        )

    async def update_many(self, changes: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Apply many updates (each mapping carries its ``id``); per-item results."""
        return await self._records.update_many(changes)

    async def delete(self, record_id: str, *, must_exist: bool = False, **options: Any) -> bool:
        """Delete a record, its partition references and its content.

        Deletes are idempotent like S3's: a missing id is not an error unless
        ``must_exist``. ``before_delete``/``after_delete`` hooks and ``deleted`` events
        run only for a record that existed, after the store confirmed the delete.

        :returns: ``True`` if the record existed (or was not checked), ``False`` if not.
        :raises NotFoundError: ``must_exist`` and no such record.
        """
        impl = self._records.delete_impl
        if options:
            return await self._call_with("delete", options, impl, record_id, must_exist=must_exist)
        return await self._call("delete", impl, record_id, must_exist=must_exist)

    async def delete_many(self, ids: Iterable[str], **options: Any) -> BatchResult:
        """Delete many records with batched requests (1 per 1000 keys); per-item results."""
        impl = self._records.delete_many_impl
        if options:
            return await self._call_with("delete_many", options, impl, builtins.list(ids))
        return await self._call("delete_many", impl, builtins.list(ids))

    async def delete_all(self, *, confirm: bool = False) -> int:
        """Delete every record, reference and content of this resource; returns keys deleted.

        :raises ConfigError: unless ``confirm=True`` (no accidental wipe).
        """
        return await self._records.delete_all(confirm=confirm)
