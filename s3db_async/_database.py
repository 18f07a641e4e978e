"""Database: a connection string, its resources, and the ``s3db.json`` registry.

``s3db.json`` holds every resource's versions (definition + hash), its attribute-id
registry, and the database's secret salt. Every write to it is a compare-and-swap on
its etag, so processes that create resources at the same time never lose a definition.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, TypeVar, overload

import msgspec

from ._cas import RETRY, Backoff, _Retry, cas_loop, conditional_put
from ._codec.codec import AttributeRegistry
from ._codec.crypto import NO_PASSPHRASE_HINT, SecretBox
from ._codec.metadata import METADATA_KEY, corrupt_metadata, parse_metadata, save_history
from ._events import PLUGIN_EVENTS, EventEmitter, HookRegistry, TaskSupervisor
from ._plugin.base import Plugin
from ._plugin.host import PluginHost, PluginRegistry
from ._plugin.storage import PluginStorage
from ._resource.ids import IdGenerator, make_id_generator, parse_incremental
from ._resource.migrations import declare_steps, normalize_migrations
from ._resource.partitions import parse_partitions
from ._resource.resource import Resource
from ._resource.timestamps import TIMESTAMP_FIELDS, TIMESTAMP_RULE
from ._schema.schema import Schema
from .errors import (
    ConfigError,
    CorruptMetadataError,
    CorruptObjectError,
    DecryptionError,
    EncryptionError,
    NotConnectedError,
    NotFoundError,
    PreconditionFailed,
    ResourceNotFoundError,
    SchemaError,
)
from .stores import ObjectStore, open_store
from .stores._url import parse_connection_string

__all__ = ["DATABASE_HOOKS", "Database"]

_META_BACKOFF = Backoff(base=0.01)
FORMAT_VERSION = 1
DATABASE_HOOKS = (
    "before_create_resource",
    "after_create_resource",
    "before_connect",
    "after_connect",
    "before_disconnect",
    "after_disconnect",
)
BEHAVIORS = ("body-overflow", "body-only", "enforce-limits", "truncate-data", "user-managed")
P = TypeVar("P", bound=Plugin)
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def _canonical_hash(definition: Mapping[str, Any]) -> str:
    raw = msgspec.json.encode(definition, order="sorted")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class Database(EventEmitter):
    """A document database on an object store.

    ::

        async with Database("file://./data/myapp") as db:
            users = await db.create_resource("users", attributes={"name": "string|required"})
            await users.insert({"name": "Ann"})

    :param url: connection string (``memory://``, ``file://``, ``s3://``, ``http(s)://``);
        defaults to the ``S3DB_URL`` environment variable.
    :param passphrase: key for ``secret`` fields (or ``S3DB_PASSPHRASE``); there is no default.
        Without one, ``create_resource`` refuses secret fields; a database reopened without
        one connects, and only encrypting or decrypting a secret value raises.
    :param parallelism: concurrent requests for batch reads and writes (default 100).
    :param versioning: keep every definition as a new schema version (default ``True``);
        with ``False`` a changed definition replaces the current version.
    :param strict_validation: check partition fields against the schema (default ``True``).
    :param store: an already built :class:`ObjectStore` (overrides ``url``).
    :param create: ``None`` (default): a missing database is created, and on ``file://``
        only in a missing or empty directory (a directory holding other files is refused);
        ``True``: also in such a directory (what ``s3db init`` does); ``False``: the
        database must exist (``s3db.json``), else :class:`NotFoundError` and nothing is
        written (what the CLI's read commands do).
    """

    event_names = (
        frozenset({"connected", "disconnected", "resource.created", "resource.dropped", "error"})
        | PLUGIN_EVENTS
    )
    renamed_events: ClassVar[Mapping[str, str]] = {"resource_created": "resource.created"}

    def __init__(
        self,
        url: str | None = None,
        *,
        plugins: list[Any] | tuple[Any, ...] = (),
        passphrase: str | None = None,
        parallelism: int | None = None,
        versioning: bool = True,
        strict_validation: bool = True,
        store: ObjectStore | None = None,
        create: bool | None = None,
        **store_options: Any,
    ) -> None:
        super().__init__(logger=logging.getLogger("s3db_async.database"))
        url = url or os.environ.get("S3DB_URL")
        if store is None and not url:
            raise ConfigError(
                "no connection string",
                suggestion="pass Database('file://./data') or set S3DB_URL",
            )
        self.config = parse_connection_string(url) if url else None
        if parallelism is None:
            configured = self.config.options.get("parallelism") if self.config else None
            parallelism = configured if isinstance(configured, int) else 100
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ConfigError(
                f"parallelism must be a positive integer, got {parallelism!r}",
                metadata={"option": "parallelism"},
            )
        self.parallelism = parallelism
        self.versioning = versioning
        self.strict_validation = strict_validation
        self._passphrase = passphrase or os.environ.get("S3DB_PASSPHRASE") or None
        self._store = store
        self._create = create
        self._store_options = store_options
        self._resources: dict[str, Resource] = {}
        self._meta: dict[str, Any] = {}
        self._meta_etag: str | None = None
        self._secret_box: SecretBox | None = None
        self._hooks = HookRegistry(DATABASE_HOOKS, owner="database")
        self._supervisor: TaskSupervisor = TaskSupervisor("database")
        self._connected = False
        self._opening = False
        self._plugin_host = PluginHost(self, plugins)
        self.log = logging.getLogger("s3db_async.database")

    # -- lifecycle ---------------------------------------------------------------
    @property
    def store(self) -> ObjectStore:
        """The open object store: every request of the database and its resources goes
        through here, so this is where a database that is not connected refuses them.

        :raises NotConnectedError: before :meth:`connect` or after :meth:`disconnect`.
        """
        store = self._store
        if store is None or not (self._connected or self._opening):
            raise self._not_connected()
        return store

    def _require_connection(self) -> None:
        """Raise :class:`NotConnectedError` unless connected (or connecting)."""
        if self._store is None or not (self._connected or self._opening):
            raise self._not_connected()

    def _not_connected(self) -> NotConnectedError:
        return NotConnectedError(
            "database is not connected",
            suggestion="await db.connect() first (or use 'async with Database(...) as db')",
            metadata={"url": self.url},
        )

    @property
    def is_connected(self) -> bool:
        """True between :meth:`connect` and :meth:`disconnect`."""
        return self._connected

    @property
    def url(self) -> str:
        """The connection string with credentials masked."""
        return self.config.masked if self.config else getattr(self._store, "url", "")

    async def connect(self) -> Database:
        """Open the store, load ``s3db.json`` and every resource. Idempotent."""
        if self._connected:
            return self
        await self._hooks.run("before_connect", self)
        if self._store is None:
            assert self.config is not None
            options = dict(self._store_options)
            if self.config.scheme not in ("memory", "file"):
                options.setdefault("parallelism", self.parallelism)
            if self.config.scheme == "file":
                options.setdefault("create", self._create)
            self._store = open_store(self.config, **options)
        self._opening = True
        try:
            await self._store.connect()
            await self._store.capabilities()
            self._supervisor.reopen()
            await self._load()
        finally:
            self._opening = False
        self._connected = True
        await self._hooks.run("after_connect", self)
        self.emit("connected", self)
        await self._plugin_host.start()
        return self

    async def disconnect(self) -> None:
        """Stop background work and close the store; no task outlives the database."""
        if not self._connected:
            return
        await self._plugin_host.stop()
        await self._hooks.run("before_disconnect", self)
        await self._supervisor.aclose()
        if self._store is not None:
            await self._store.close()
        self._connected = False
        await self._hooks.run("after_disconnect", self)
        self.emit("disconnected", self)

    async def __aenter__(self) -> Database:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def __enter__(self) -> Database:
        raise ConfigError(
            "Database needs 'async with', not 'with': it connects and disconnects asynchronously",
            suggestion="write 'async with Database(...) as db:' inside an async function, "
            "or 'await db.connect()'",
        )

    def __exit__(self, *exc_info: object) -> None:
        """Never reached: :meth:`__enter__` always raises."""

    async def drain_events(self) -> None:
        """Wait for every async event handler started so far (and those they start).

        Async ``on(...)`` handlers run as background tasks; tests call this before
        asserting on what a handler did. Handler failures are logged and emitted as
        ``error`` as usual, never raised here.
        """
        await self._supervisor.drain_events()

    def add_hook(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a database hook (``before_/after_`` + ``connect``, ``disconnect``,
        ``create_resource``)."""
        self._hooks.add(name, fn)

    def remove_hook(self, name: str, fn: Callable[..., Any]) -> bool:
        """Unregister a database hook; returns whether it was registered."""
        return self._hooks.remove(name, fn)

    # -- plugins -------------------------------------------------------------------
    @property
    def plugins(self) -> PluginRegistry:
        """The plugins of this database, by alias (and by name or slug when unambiguous)."""
        return self._plugin_host.register_pending()

    @overload
    async def use_plugin(self, plugin: P, *, alias: str | None = None) -> P: ...
    @overload
    async def use_plugin(self, plugin: type[P], *, alias: str | None = None) -> P: ...
    @overload
    async def use_plugin(self, plugin: object, *, alias: str | None = None) -> Plugin: ...
    async def use_plugin(self, plugin: Any, *, alias: str | None = None) -> Plugin:
        """Add a plugin: installed and started now when connected, else on ``connect()``.

        ::

            cache = await db.use_plugin(CachePlugin(namespace="hot"), alias="cache_hot")

        :param plugin: a :class:`Plugin`, a ``Plugin`` subclass, or a static plugin (an object,
            class or module with ``install(db)``/``setup(db)``).
        :param alias: the key in :attr:`plugins` (default: the plugin's own alias).
        :raises PluginError: the alias is taken, or the plugin is installed elsewhere.
        :raises MissingDependencyError: the plugin's packages are missing.
        """
        return await self._plugin_host.use(plugin, alias)

    async def uninstall_plugin(self, plugin: Plugin | str, *, purge_data: bool = False) -> None:
        """Uninstall a plugin (by instance or alias); ``purge_data`` deletes its storage.

        :raises KeyError: no such plugin.
        """
        await self._plugin_host.uninstall(plugin, purge_data=purge_data)

    def _forget_plugin(self, plugin: Plugin) -> None:
        """Called by :meth:`Plugin.uninstall`: drop the plugin from the registry."""
        self._plugin_host.forget(plugin)

    def spawn(self, coro: Any, *, name: str | None = None) -> asyncio.Task[Any]:
        """Run a coroutine in the background, cancelled and awaited on disconnect."""
        return self._supervisor.spawn(coro, name=name)

    # -- s3db.json -----------------------------------------------------------------
    async def _read_meta(self) -> tuple[dict[str, Any], str | None]:
        try:
            obj = await self.store.get(METADATA_KEY)
        except NotFoundError:
            return {}, None
        except CorruptObjectError as exc:
            raise corrupt_metadata(METADATA_KEY, "", exc.message) from exc
        return parse_metadata(obj.body), obj.etag

    async def _update_meta(self, mutate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Apply ``mutate`` to ``s3db.json`` by compare-and-swap; re-reads on conflicts."""
        cached = self._meta, self._meta_etag

        async def attempt(n: int) -> dict[str, Any] | _Retry:
            doc, etag = cached if n == 0 and cached[0] else await self._read_meta()
            doc = msgspec.json.decode(msgspec.json.encode(doc)) if doc else self._new_meta()
            if not mutate(doc):
                self._meta, self._meta_etag = doc, etag
                return doc
            doc["updated_at"] = datetime.now(UTC).isoformat()
            doc["revision"] = int(doc.get("revision") or 0) + 1
            body = msgspec.json.encode(doc)
            try:
                new_etag = await conditional_put(
                    self.store,
                    METADATA_KEY,
                    body,
                    content_type="application/json",
                    if_none_match=etag is None,
                    if_match=etag,
                )
            except PreconditionFailed:
                return RETRY
            self._meta, self._meta_etag = doc, new_etag
            await save_history(self.store, doc, body)
            return doc

        return await cas_loop(
            attempt,
            what=METADATA_KEY,
            backoff=_META_BACKOFF,
            suggestion="too many processes change resource definitions at once; retry",
            metadata={"key": METADATA_KEY},
        )

    @staticmethod
    def _new_meta() -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "secrets": {"salt": base64.b64encode(SecretBox.new_salt()).decode("ascii")},
            "resources": {},
        }

    async def _load(self) -> None:
        doc, etag = await self._read_meta()
        if not doc and self._create is False:
            raise NotFoundError(
                f"no s3db database at {self.url}",
                suggestion=f"check the connection string; create one with `s3db --url "
                f"{self.url} init` or Database(url)",
                metadata={"key": METADATA_KEY, "url": self.url, "reason": "no database"},
            )
        if not doc:
            doc = await self._update_meta(lambda d: True)
        else:
            self._meta, self._meta_etag = doc, etag
        self._setup_secrets()
        self._materialize_all(self._meta)

    def _materialize_all(self, doc: Mapping[str, Any]) -> None:
        """Build every resource of ``s3db.json``; a definition that does not load is corrupt."""
        for name, entry in doc.get("resources", {}).items():
            try:
                self._materialize(name, entry)
            except CorruptMetadataError:
                raise
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                raise corrupt_metadata(METADATA_KEY, f"resources.{name}", reason) from exc

    def _setup_secrets(self) -> None:
        if not self._passphrase:
            self._secret_box = None
            return
        secrets = self._meta.get("secrets", {})
        box = SecretBox(self._passphrase, base64.b64decode(secrets["salt"]))
        if box.matches_check(secrets.get("check")):
            self._secret_box = box
            return
        rotation = secrets.get("rotation")
        if rotation:
            new_box = SecretBox(self._passphrase, base64.b64decode(rotation["salt"]))
            if new_box.matches_check(rotation.get("check")):
                self.log.warning(
                    "a passphrase rotation is unfinished: records not yet re-encrypted "
                    "cannot be read with the new passphrase alone; finish it with "
                    "rotate_passphrase(old, new)",
                    extra={"op": "connect"},
                )
                self._secret_box = new_box
                return
        raise DecryptionError(
            "the passphrase does not match the one this database was written with",
            suggestion="pass the original passphrase, or rotate it with the old one",
        )

    def _check_secrets(self, resource: str, schema: Schema) -> None:
        """Refuse secret defaults (``s3db.json`` would hold them in clear) and secret fields
        when no passphrase was given."""
        for path, spec in schema.fields.items():
            if spec.secret and spec.has_default:
                raise SchemaError(
                    f"secret field {path!r} of {resource!r} has a default: s3db.json would "
                    "hold it in clear",
                    errors=[{"field": path, "rule": "default", "message": "secret default"}],
                    suggestion="drop the default and set the value when inserting",
                    metadata={"resource": resource, "field": path},
                )
        if self._secret_box is not None or not schema.has_secrets:
            return
        secrets = [p for p, k in schema.sensitive_fields.items() if k == "secret"]
        field = (secrets or list(schema.sensitive_fields) or ["?"])[0]
        raise EncryptionError(
            f"resource {resource!r} has secret field {field!r} and the database was "
            "opened without a passphrase",
            suggestion=NO_PASSPHRASE_HINT,
            metadata={"resource": resource, "field": field},
        )

    def _use_secret_box(self, box: SecretBox | None) -> None:
        self._secret_box = box
        for resource in self._resources.values():
            resource._reset_codecs()

    async def rotate_passphrase(
        self,
        old: str,
        new: str,
        *,
        on_progress: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, int]:
        """Re-encrypt every ``secret`` field from passphrase ``old`` to ``new``.

        Resumable: call it again with the same passphrases after an interruption.
        Returns ``{"records": n, "rewritten": m}``.

        :raises DecryptionError: ``old`` is not this database's passphrase.
        """
        from ._resource.rotation import rotate_passphrase

        return await rotate_passphrase(self, old, new, on_progress=on_progress)

    async def _ensure_passphrase_check(self) -> None:
        if self._secret_box is None or self._meta.get("secrets", {}).get("check"):
            return
        token = self._secret_box.make_check()

        def mutate(doc: dict[str, Any]) -> bool:
            if doc.setdefault("secrets", {}).get("check"):
                return False
            doc["secrets"]["check"] = token
            return True

        await self._update_meta(mutate)

    def _materialize(
        self, name: str, entry: Mapping[str, Any], id_generator: IdGenerator | None = None
    ) -> Resource:
        version = entry["current_version"]
        versions = entry["versions"]
        registry = AttributeRegistry.from_dict(entry.get("registry") or {})
        existing = self._resources.get(name)
        if existing is not None:
            existing.registry = registry
            if id_generator is not None:
                existing._custom_id_generator = id_generator
            existing._apply(versions[version]["definition"], version, versions)
            existing._writer.watch(entry.get("feed"))
            return existing
        resource = Resource(
            self,
            name,
            definition=versions[version]["definition"],
            version=version,
            versions=versions,
            registry=registry,
            id_generator=id_generator,
        )
        resource._writer.watch(entry.get("feed"))  # durable consumers: write intents
        self._resources[name] = resource
        return resource

    def _sequence_ids(self, resource: str, start: int) -> IdGenerator:
        """Ids 1, 2, 3 ... from the sequence at ``resource={name}/plugin=s3db/sequence=id``."""
        storage = PluginStorage(self, "s3db")

        async def next_id() -> str:
            return str(await storage.next_sequence("id", resource=resource, start=start))

        return next_id

    async def _assign_ids(self, resource: Resource, paths: list[str], *, plugin: bool) -> None:
        """Give stable ids to new field paths of ``resource`` (persisted by compare-and-swap)."""
        result: list[AttributeRegistry] = []

        def mutate(doc: dict[str, Any]) -> bool:
            entry = doc.get("resources", {}).get(resource.name)
            if entry is None:
                registry = resource.registry
                registry.assign(paths, plugin=plugin)
                result.append(registry)
                return False
            registry = AttributeRegistry.from_dict(entry.get("registry") or {})
            changed = registry.assign(paths, plugin=plugin)
            entry["registry"] = registry.to_dict()
            result.append(registry)
            return changed

        await self._update_meta(mutate)
        resource.registry = result[-1]

    # -- resources -----------------------------------------------------------------
    async def create_resource(
        self,
        name: str,
        *,
        attributes: Mapping[str, Any],
        partitions: Mapping[str, Any] | None = None,
        behavior: str = "body-overflow",
        timestamps: bool = False,
        id_generator: str | IdGenerator | None = None,
        id_size: int | None = None,
        allow_extra: bool = False,
        conflict_retries: int = 5,
        hooks: Mapping[str, Any] | None = None,
        description: str | None = None,
        history: bool = False,
        migrations: Mapping[int, Callable[..., Any] | None] | None = None,
    ) -> Resource:
        """Create a resource, or update its definition (a changed definition is a new version;
        an identical one is a no-op).

        :param history: keep every earlier version of each record (``resource.history(id)``,
            ``get_revision``, ``restore``; see ``docs/history-and-migrations.md``).
        :param migrations: ``{2: fn, 3: fn}`` upgrading records of the previous version to
            the keyed one (sync or async; ``None`` = no change). Kept in memory, so pass them
            in every process; ``s3db.json`` records which steps exist.
        :raises SchemaError: unknown rule, bad partition field, bad behavior or name, bad
            migrations.
        """
        self._require_connection()
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise SchemaError(
                f"invalid resource name {name!r}",
                suggestion="use up to 100 letters, digits, '_', '-' or '.'",
                metadata={"resource": name},
            )
        config: dict[str, Any] = {
            "name": name,
            "attributes": dict(attributes),
            "partitions": dict(partitions or {}),
            "behavior": behavior,
            "timestamps": timestamps,
            "id_generator": id_generator,
            "id_size": id_size,
            "allow_extra": allow_extra,
            "conflict_retries": conflict_retries,
            "hooks": dict(hooks or {}),
            "description": description,
            "history": history,
            "migrations": migrations,
        }
        config = dict(await self._hooks.run("before_create_resource", config))
        if config["behavior"] not in BEHAVIORS:
            raise SchemaError(
                f"unknown behavior {config['behavior']!r} for resource {name!r}",
                suggestion=f"use one of: {', '.join(BEHAVIORS)}",
                metadata={"resource": name, "option": "behavior"},
            )
        gen = config["id_generator"]
        custom_gen = gen if callable(gen) else None
        attrs = {k: v for k, v in config["attributes"].items() if k != "id"}
        definition = {
            "attributes": attrs,
            "partitions": {},
            "behavior": config["behavior"],
            "timestamps": bool(config["timestamps"]),
            "id_generator": "custom" if custom_gen else (gen or "nanoid"),
            "id_size": config["id_size"],
            "allow_extra": bool(config["allow_extra"]),
            "conflict_retries": int(config["conflict_retries"]),
            "description": config["description"],
        }
        if config.get("history"):
            definition["history"] = True
        migration_fns = normalize_migrations(config.get("migrations"), resource=name)
        steps = sorted(migration_fns) if migration_fns is not None else None
        schema = Schema(Resource.attributes_of(definition), allow_extra=definition["allow_extra"])
        parsed = parse_partitions(
            config["partitions"],
            known_fields=set(schema.fields),
            resource=name,
            strict=self.strict_validation,
            sensitive=schema.sensitive_fields,
        )
        self._check_secrets(name, schema)
        definition["attributes"] = schema.definition()
        for f in TIMESTAMP_FIELDS if definition["timestamps"] else ():
            if f not in attrs:
                definition["attributes"].pop(f, None)
            elif schema.fields.get(f) is None or schema.fields[f].type != "datetime":
                raise SchemaError(
                    f"field {f!r} of resource {name!r} must be a datetime with timestamps=True",
                    suggestion=f"declare it as {TIMESTAMP_RULE!r}, or leave it out",
                    errors=[{"field": f, "rule": "type", "message": f"{f} must be a datetime"}],
                    metadata={"resource": name, "field": f},
                )
        definition["partitions"] = {n: p.definition() for n, p in parsed.items()}
        if not custom_gen and gen is not None and parse_incremental(gen) is None:
            make_id_generator(gen, size=config["id_size"])  # validate now
        digest = _canonical_hash(definition)
        paths = list(schema.fields)
        now = datetime.now(UTC).isoformat()

        def mutate(doc: dict[str, Any]) -> bool:
            resources = doc.setdefault("resources", {})
            entry = resources.get(name)
            if entry is None:
                registry = AttributeRegistry()
                registry.assign(paths)
                resources[name] = {
                    "current_version": "v1",
                    "versions": {
                        "v1": {"hash": digest, "definition": definition, "created_at": now}
                    },
                    "registry": registry.to_dict(),
                }
                return True
            current = entry["versions"][entry["current_version"]]
            registry = AttributeRegistry.from_dict(entry.get("registry") or {})
            changed_ids = registry.assign(paths)
            entry["registry"] = registry.to_dict()
            if current["hash"] == digest:
                return changed_ids
            if self.versioning:
                number = max(int(v[1:]) for v in entry["versions"]) + 1
                version = f"v{number}"
            else:
                version = entry["current_version"]
            entry["versions"][version] = {
                "hash": digest,
                "definition": definition,
                "created_at": now,
            }
            entry["current_version"] = version
            return True

        def mutate_and_declare(doc: dict[str, Any]) -> bool:
            before = doc.get("resources", {}).get(name, {}).get("current_version")
            changed = mutate(doc)
            return declare_steps(
                changed, doc, name, steps, before=before, versioning=self.versioning
            )

        doc = await self._update_meta(mutate_and_declare)
        resource = self._materialize(name, doc["resources"][name], custom_gen)
        if migration_fns is not None:
            resource.set_migrations(migration_fns)
        for hook_name, fns in config["hooks"].items():
            for fn in fns if isinstance(fns, list | tuple) else [fns]:
                if fn not in resource._hooks.get(hook_name):
                    resource.add_hook(hook_name, fn)
        if schema.secret_fields:
            await self._ensure_passphrase_check()
        await self._hooks.run("after_create_resource", resource)
        self.emit("resource.created", resource)
        return resource

    async def records_replaced(self, resources: Iterable[str]) -> None:
        """Tell every plugin that records of ``resources`` were rewritten outside the write
        path (a backup restore, objects copied into the bucket): caches drop their entries,
        indexes are rebuilt (:meth:`Plugin.on_records_replaced`)."""
        names = list(dict.fromkeys(resources))
        if not names:
            return
        for alias in list(self.plugins):
            plugin = self.plugins.get(alias)
            if plugin is not None:
                await plugin.on_records_replaced(names)

    async def drop_resource(self, name: str, *, confirm: bool = False) -> int:
        """Delete a resource for good: every object under ``resource={name}/`` (records,
        partition references, history, content, resource-scoped plugin data) and its
        definition in ``s3db.json``. Returns how many objects were deleted.

        Idempotent, and safe to repeat after a crash: the objects go first, then the
        definition (compare-and-swap), then a second sweep for writes that raced the first,
        so an interrupted drop leaves a definition without records, never records without a
        definition. A name with neither is a no-op returning 0.

        :raises ConfigError: ``confirm`` is not ``True``, or ``name`` is not a resource name.
        """
        self._require_connection()
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"invalid resource name {name!r}",
                suggestion="pass the name of a resource, e.g. db.drop_resource('users', ...)",
                metadata={"resource": name, "field": "name", "reason": "invalid name"},
            )
        if confirm is not True:
            raise ConfigError(
                f"drop_resource({name!r}) deletes every record and the definition",
                suggestion=f"call drop_resource({name!r}, confirm=True) if you mean it",
                metadata={"resource": name, "field": "confirm", "reason": "not confirmed"},
            )
        deleted = await self._delete_prefix(f"resource={name}/")

        def mutate(doc: dict[str, Any]) -> bool:
            return doc.get("resources", {}).pop(name, None) is not None

        await self._update_meta(mutate)
        deleted += await self._delete_prefix(f"resource={name}/")
        dropped = self._resources.pop(name, None)
        if dropped is not None:
            self.emit("resource.dropped", dropped)
        return deleted

    async def _delete_prefix(self, prefix: str) -> int:
        count, batch = 0, []
        async for entry in self.store.list(prefix):
            key = getattr(entry, "key", None)
            if key is None:
                continue
            batch.append(key)
            if len(batch) == 1000:
                count += await self.store.delete_many(batch)
                batch = []
        if batch:
            count += await self.store.delete_many(batch)
        return count

    def get_resource(self, name: str) -> Resource:
        """The resource called ``name``.

        :raises ResourceNotFoundError: no such resource.
        """
        try:
            return self._resources[name]
        except KeyError:
            raise ResourceNotFoundError(
                f"resource {name!r} does not exist",
                suggestion="create it first; existing: "
                + (", ".join(sorted(self._resources)) or "none"),
                metadata={"resource": name},
            ) from None

    def resource_exists(self, name: str) -> bool:
        """True when a resource called ``name`` exists."""
        return name in self._resources

    def list_resources(self) -> list[str]:
        """Names of every resource, sorted."""
        return sorted(self._resources)

    @property
    def resources(self) -> Mapping[str, Resource]:
        """Read-only mapping of resource name to :class:`Resource`."""
        return MappingProxyType(self._resources)

    def __iter__(self) -> Iterator[Resource]:
        return iter(list(self._resources.values()))

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The last known content of ``s3db.json``."""
        return MappingProxyType(self._meta)

    async def reload(self) -> None:
        """Re-read ``s3db.json`` (pick up resources other processes created or dropped)."""
        doc, etag = await self._read_meta()
        self._meta, self._meta_etag = doc, etag
        for gone in set(self._resources) - set(doc.get("resources", {})):
            del self._resources[gone]  # dropped by another process
        self._materialize_all(doc)

    async def adopt_resource_definitions(
        self,
        definitions: Mapping[str, Mapping[str, Any]],
        *,
        secrets: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Add resource definitions taken from another ``s3db.json`` (a backup) that this
        database lacks, by compare-and-swap; existing resources are left as they are.

        ``secrets`` (the other database's salt and passphrase check) is adopted only while
        this database has no resource yet, so that restored secret fields decrypt.
        Returns the names added.
        """
        self._require_connection()
        added: list[str] = []

        def mutate(doc: dict[str, Any]) -> bool:
            added.clear()
            resources = doc.setdefault("resources", {})
            if secrets is not None and not resources and doc.get("secrets") != dict(secrets):
                doc["secrets"] = msgspec.json.decode(msgspec.json.encode(dict(secrets)))
                added.append("")
            for name, entry in definitions.items():
                if name not in resources:
                    resources[name] = msgspec.json.decode(msgspec.json.encode(dict(entry)))
                    added.append(name)
            return bool(added)

        await self._update_meta(mutate)
        self._setup_secrets()
        self._materialize_all(self._meta)
        return [name for name in added if name]

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"<Database {self.url} {state} resources={len(self._resources)}>"
