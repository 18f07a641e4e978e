"""The :class:`Plugin` base class; the public face is :mod:`s3db_async.plugin`."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar

from .. import _clock
from .._deps import (
    Dependency,
    register_plugin_dependencies,
    require_dependencies,
)
from .._events import PLUGIN_EVENTS, EventEmitter
from .._resource.extensions import OperationOption, OptionHandler
from .._resource.resource import Resource
from ..errors import ConfigError, PluginError
from . import feed
from .jobs import Job, cron_schedule, default_job_name, every_schedule, stop_jobs
from .leases import Lease, run_as_leader
from .namespace import (
    DEFAULT_NAMESPACE,
    detect_and_warn_namespaces,
    get_namespaced_resource_name,
    validate_namespace,
)
from .resources import create_plugin_resource as _create_plugin_resource
from .resources import drop_plugin_resources as _drop_plugin_resources
from .storage import PluginStorage

if TYPE_CHECKING:
    from .._database import Database
    from .feed import ChangeHandler, Subscription

__all__ = ["Plugin", "coerce_plugin"]

_ALIAS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")
_Undo = Callable[[], Any]
_LEVELS = {"silent": logging.CRITICAL + 10, "warn": logging.WARNING}
_RELEASE_TIMEOUT = 10.0  # seconds a lease release on stop may take


def _slugify(name: str) -> str:
    base = name[:-6] if name.endswith("Plugin") and len(name) > 6 else name
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", base)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-").lower()
    return slug or "plugin"


async def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Plugin(EventEmitter):
    """Base class of every plugin.

    Subclasses override the ``on_*`` hooks and keep their own options as keyword arguments,
    passing the standard ones on::

        class AuditTrail(Plugin):
            def __init__(self, *, resource: str, **options: Any) -> None:
                super().__init__(**options)
                self.resource = resource

    :param namespace: run several instances side by side; isolates storage
        (``plugin={slug}/{namespace}/...``) and resource names (``plg_{namespace}_...``).
    :param log_level: level of this plugin's logger (``"debug"``, ``logging.INFO``,
        ``"silent"``); ``None`` leaves it alone.
    :param resource_names: overrides for the resources the plugin creates
        (logical name → actual name), see :meth:`resource_name`.
    :param alias: the key in ``db.plugins`` (default: the slug, plus the namespace).
    :param options: anything else, kept in :attr:`options` (bundles forward nested blocks).

    Class attributes: ``name`` (default: the class name), ``slug`` (storage and logger name,
    default: kebab-case of the name without ``Plugin``), ``version``, ``dependencies``
    (:class:`Dependency` objects checked on install) and ``event_names`` (what listeners may
    subscribe to: extend it, ``Plugin.event_names | {"flushed"}``, or emit dotted names such
    as ``"audit.flushed"``, which are always accepted).
    """

    name: str = "Plugin"
    slug: str = "plugin"
    event_names: ClassVar[frozenset[str] | None] = PLUGIN_EVENTS | {
        "error",
        "leader.elected",
        "leader.lost",
        "job.succeeded",
        "job.failed",
        "job.skipped",
    }
    version: str = "0.0.0"
    dependencies: ClassVar[tuple[Dependency, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if "slug" not in cls.__dict__:
            cls.slug = _slugify(cls.name)
        if cls.dependencies:
            register_plugin_dependencies(cls.name, cls.dependencies)

    def __init__(
        self,
        *,
        namespace: str | None = None,
        log_level: str | int | None = None,
        resource_names: Mapping[str, str] | None = None,
        alias: str | None = None,
        **options: Any,
    ) -> None:
        if namespace == DEFAULT_NAMESPACE:
            namespace = None
        self.namespace: str | None = (
            validate_namespace(namespace) if namespace is not None else None
        )
        self.options: dict[str, Any] = dict(options)
        self.resource_names: dict[str, str] = dict(resource_names or {})
        self.log_level = log_level
        logger_name = f"s3db_async.plugins.{self.slug}" + (
            f".{self.namespace}" if self.namespace else ""
        )
        self.log = logging.getLogger(logger_name)
        if isinstance(log_level, str):
            level = _LEVELS.get(log_level.lower()) or logging.getLevelName(log_level.upper())
            if not isinstance(level, int):
                raise ConfigError(
                    f"unknown log_level {log_level!r}",
                    suggestion="use debug, info, warning, error or silent",
                    metadata={"plugin": self.name},
                )
            self.log.setLevel(level)
        elif isinstance(log_level, int) and not isinstance(log_level, bool):
            self.log.setLevel(log_level)
        super().__init__(logger=self.log)
        self.alias = self._check_alias(alias) if alias is not None else self._default_alias()
        self._database: Database | None = None
        self._installed = False
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._undo: list[_Undo] = []
        self._deferred: dict[str, list[Callable[[Resource], Any]]] = {}
        self._watching = False
        self._children: list[Plugin] = []
        self._storage: PluginStorage | None = None
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._forget: list[tuple[str, str]] = []
        self._leases: dict[str, Lease] = {}
        self._jobs: dict[str, Job] = {}
        self._leader_runs: set[asyncio.Task[Any]] = set()

    # -- identity --------------------------------------------------------------------
    def _default_alias(self) -> str:
        alias = self.slug.replace("-", "_")
        if self.namespace:
            alias += "_" + self.namespace.replace("-", "_")
        return alias

    @staticmethod
    def _check_alias(alias: str) -> str:
        if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
            raise ConfigError(
                f"invalid plugin alias {alias!r}",
                suggestion="use letters, digits, '_', '-', '.' or ':' (e.g. 'cache_hot')",
                metadata={"alias": alias},
            )
        return alias

    @property
    def attribute_owner(self) -> str:
        """The owner name of this instance's plugin attributes (name, plus namespace)."""
        return f"{self.name}:{self.namespace}" if self.namespace else self.name

    @property
    def installed(self) -> bool:
        """True between :meth:`install` and :meth:`uninstall`."""
        return self._installed

    @property
    def started(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def db(self) -> Database:
        """The database the plugin is installed on (check :attr:`installed` first to ask).

        :raises PluginError: not installed.
        """
        if self._database is None:
            raise PluginError(
                f"plugin {self.name!r} is not installed",
                suggestion="await db.use_plugin(plugin) first",
                metadata={"plugin": self.name},
            )
        return self._database

    @property
    def database(self) -> Database | None:
        """Deprecated alias: use :attr:`db` (and :attr:`installed` to test for ``None``)."""
        warnings.warn(
            "Plugin.database is deprecated; use Plugin.db (and Plugin.installed)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._database

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """Background tasks started with :meth:`spawn` that are still running."""
        return frozenset(t for t in self._tasks if not t.done())

    def resource_name(self, base: str) -> str:
        """The name of a resource this plugin creates: ``plg_[{namespace}_]{plugin}_{base}``,
        unless ``resource_names={base: ...}`` overrides it."""
        if base in self.resource_names:
            return self.resource_names[base]
        prefix = "plg_" + self.slug.replace("-", "_")
        return get_namespaced_resource_name(f"{prefix}_{base}", self.namespace, prefix)

    def get_storage(self) -> PluginStorage:
        """This plugin's :class:`PluginStorage` (namespaced like the plugin).

        :raises PluginError: not installed.
        """
        if self._storage is None:
            db = self.db
            self._storage = PluginStorage(
                db, self.slug, namespace=self.namespace, concurrency=min(db.parallelism, 32)
            )
        return self._storage

    def __repr__(self) -> str:
        state = "started" if self._started else "installed" if self._installed else "new"
        return f"<{type(self).__name__} alias={self.alias!r} {state}>"

    # -- overridable hooks ----------------------------------------------------------
    async def on_install(self) -> None:
        """Set up: create resources, add hooks and methods (``self.db`` is available)."""

    async def on_start(self) -> None:
        """Start background work (see :meth:`spawn`)."""

    async def on_stop(self) -> None:
        """Flush and stop; tasks from :meth:`spawn` are cancelled right after."""

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        """Extra cleanup; recorded hooks, methods, listeners, attributes go automatically,
        and with ``purge_data`` the plugin's storage is emptied afterwards."""

    async def on_records_replaced(self, resources: Sequence[str]) -> None:
        """Records of ``resources`` were rewritten outside the write path (a backup
        restore): drop or rebuild what the plugin derived from them (caches, indexes).
        Called by :meth:`Database.records_replaced`, awaited in plugin order."""

    # -- lifecycle -----------------------------------------------------------------------
    def _payload(self, **extra: Any) -> dict[str, Any]:
        return {
            "plugin": self.name,
            "alias": self.alias,
            "namespace": self.namespace,
            "at": datetime.now(UTC),
            **extra,
        }

    def _announce(self, event: str, **extra: Any) -> None:
        payload = self._payload(**extra)
        self.emit(event, payload)
        if self._database is not None:
            self._database.emit(event, payload)

    async def install(self, database: Database) -> None:
        """Attach to ``database`` and run :meth:`on_install` (``db.use_plugin`` calls this).

        :raises MissingDependencyError: a declared dependency is missing.
        :raises PluginError: already installed.
        """
        if self._installed:
            raise PluginError(
                f"plugin {self.alias!r} is already installed",
                suggestion="create another instance (with its own namespace) instead",
                metadata={"plugin": self.name},
            )
        require_dependencies(type(self).dependencies, plugin=self.name)
        self._database = database
        self._supervisor = database._supervisor
        try:
            if self.namespace is not None:
                storage = self.get_storage()
                await detect_and_warn_namespaces(
                    storage, self.name, self.slug, self.namespace, logger=self.log
                )
                await storage.register_namespace()
            await self.on_install()
        except BaseException:
            await self._undo_all()
            self._database = None
            self._storage = None
            raise
        self._installed = True
        self._announce("plugin.installed")

    async def start(self) -> None:
        """Run :meth:`on_start` (after install); emits ``plugin.started``."""
        if not self._installed:
            raise PluginError(
                f"plugin {self.alias!r} must be installed before it starts",
                suggestion="use await db.use_plugin(plugin)",
                metadata={"plugin": self.name},
            )
        if self._started:
            return
        await self.on_start()
        for sub in self._subscriptions.values():
            sub.start()  # again after a stop()
        self._started = True
        self._announce("plugin.started")

    async def stop(self) -> None:
        """Run :meth:`on_stop`, then cancel and await every task from :meth:`spawn`."""
        if not self._started:
            await self._stop_runtime()
            await self._cancel_tasks()
            return
        self._started = False
        try:
            await self.on_stop()
        finally:
            await self._stop_runtime()
            await self._cancel_tasks()
        self._announce("plugin.stopped")

    async def uninstall(self, *, purge_data: bool = False) -> None:
        """Stop, run :meth:`on_uninstall`, remove everything recorded, uninstall child plugins
        and, with ``purge_data``, delete every object of the plugin's storage."""
        if not self._installed:
            return
        self._announce("plugin.before_uninstall", purge_data=purge_data)
        await self.stop()
        try:
            await self.on_uninstall(purge_data=purge_data)
        finally:
            await self._undo_all()
            for child in reversed(self._children):
                await child.uninstall(purge_data=purge_data)
            self._children.clear()
        await feed.forget(self, purge_data=purge_data)  # durable consumers go with the data
        if purge_data:
            dropped = await _drop_plugin_resources(self)
            deleted = await self.get_storage().delete_all()
            self._announce(
                "plugin.data_purged", deleted=deleted, count=deleted, resources=sorted(dropped)
            )
        db = self._database
        forget = getattr(db, "_forget_plugin", None)
        if forget is not None:
            forget(self)
        self._installed = False
        self._announce("plugin.after_uninstall", purge_data=purge_data)
        self._database = None
        self._storage = None
        self._supervisor = None

    async def _undo_all(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                await _settle(undo())
            except Exception as exc:
                self.log.error(
                    "plugin %s: cleanup step failed: %s",
                    self.alias,
                    exc,
                    exc_info=exc,
                    extra={"plugin": self.name, "op": "uninstall"},
                )
        self._deferred.clear()
        self._watching = False

    # -- background work ----------------------------------------------------------------
    def spawn(
        self,
        work: Callable[[], Awaitable[Any]] | Awaitable[Any],
        *,
        name: str | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``work`` (a coroutine function or a coroutine) on the database's task group.

        The task is cancelled and awaited on :meth:`stop` and on ``db.disconnect()``; an
        exception it raises is logged.
        """
        if self._database is None and inspect.iscoroutine(work):
            work.close()  # never started: do not leave an un-awaited coroutine behind
        db = self.db
        awaitable = work() if callable(work) else work
        if inspect.iscoroutine(awaitable):
            coro: Coroutine[Any, Any, Any] = awaitable
        else:

            async def wrap() -> Any:
                return await awaitable

            coro = wrap()
        task = db.spawn(coro, name=f"plugin:{self.alias}:{name or 'task'}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def leader(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        renew_every: float | None = None,
        margin: float | None = None,
        holder: str | None = None,
        clock: _clock.Clock | None = None,
    ) -> Lease:
        """The leader :class:`~s3db_async.plugin.Lease` ``name`` of this plugin (one per name).

        ::

            async with plugin.leader("compactor", ttl=30) as lease:
                await lease.fenced_set("state", {"done": 1})

        At most one process holds it at a time; each term gets a strictly increasing
        ``epoch``; ``leader.elected`` / ``leader.lost`` are emitted on the plugin. Released
        on stop/uninstall. Options (``renew_every``, ``margin``, ``holder``, ``clock``) as in
        :class:`~s3db_async.plugin.Lease`.

        :raises ConfigError: invalid name or timings, or ``name`` is in use with other ones.
        """
        lease = self._leases.get(name)
        if lease is None:
            lease = Lease(
                self,
                name,
                ttl=ttl,
                renew_every=renew_every,
                margin=margin,
                holder=holder,
                clock=clock,
            )
            self._leases[name] = lease
        elif lease.ttl != ttl or (renew_every is not None and lease.renew_every != renew_every):
            raise ConfigError(
                f"lease {name!r} is already in use with ttl={lease.ttl:g}",
                suggestion="use the same options for one lease name, or another name",
                metadata={"field": "ttl", "reason": "conflicting options", "lease": name},
            )
        return lease

    def run_as_leader(
        self,
        fn: Callable[[Lease], Awaitable[Any]],
        *,
        name: str,
        ttl: float = 30.0,
        renew_every: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``fn(lease)`` whenever this process leads ``name``; cancel it when the term is
        lost and campaign again. When ``fn`` returns while leading, the lease is released and
        the returned task ends with its result (or its exception). Stopped with the plugin.
        """
        lease = self.leader(name, ttl=ttl, renew_every=renew_every)
        task = self.spawn(run_as_leader(lease, fn, self.log), name=f"leader:{name}")
        self._leader_runs.add(task)
        task.add_done_callback(self._leader_runs.discard)
        return task

    def every(
        self,
        seconds: float,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        leader: bool = False,
        timeout: float | None = None,
        lease_ttl: float = 30.0,
    ) -> Job:
        """Run ``fn()`` (or ``fn(run)``, a :class:`~s3db_async.plugin.JobRun`) every
        ``seconds``; returns its :class:`~s3db_async.plugin.Job`.

        ``leader=True`` runs each tick once across processes (ticks at multiples of
        ``seconds`` since the epoch); ``timeout`` cancels a run that takes longer. A tick
        that finds the previous run going is skipped. Events: ``job.succeeded``,
        ``job.failed``, ``job.skipped``. Stopped with the plugin.

        :raises ConfigError: bad ``seconds``/``timeout``/``name``, or a job of that name exists.
        """
        anchor = 0.0 if leader else _clock.time()
        return self._add_job(
            name or default_job_name(fn),
            every_schedule(seconds, anchor=anchor),
            fn,
            leader=leader,
            timeout=timeout,
            lease_ttl=lease_ttl,
        )

    def cron(
        self,
        expression: str,
        fn: Callable[..., Any],
        *,
        tz: str | tzinfo = "UTC",
        name: str | None = None,
        leader: bool = False,
        timeout: float | None = None,
        lease_ttl: float = 30.0,
    ) -> Job:
        """Run ``fn`` at the times of a cron ``expression`` (``"*/5 * * * *"``) in ``tz``;
        otherwise as :meth:`every`.

        :raises ConfigError: invalid expression or time zone, or as :meth:`every`.
        """
        return self._add_job(
            name or default_job_name(fn),
            cron_schedule(expression, tz),
            fn,
            leader=leader,
            timeout=timeout,
            lease_ttl=lease_ttl,
        )

    @property
    def jobs(self) -> dict[str, Job]:
        """The jobs of this plugin, by name."""
        return dict(self._jobs)

    def _add_job(self, name: str, schedule: Any, fn: Any, **options: Any) -> Job:
        if name in self._jobs:
            raise ConfigError(
                f"plugin {self.alias!r} already has a job named {name!r}",
                suggestion="pass name= to tell the jobs apart, or cancel the old one first",
                metadata={"field": "name", "reason": "duplicate job", "job": name},
            )
        job = Job(self, name, schedule, fn, **options)
        self._jobs[name] = job
        job.start()
        return job

    async def _stop_runtime(self) -> None:
        """Cancel the jobs and release the leases (on stop); store trouble is only logged."""
        runs = [t for t in self._leader_runs if t is not asyncio.current_task()]
        for task in runs:
            task.cancel()  # first, so that nothing campaigns again while leases are released
        await asyncio.gather(*runs, return_exceptions=True)
        jobs, self._jobs = list(self._jobs.values()), {}
        await stop_jobs(jobs, self.log)
        leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            try:
                await asyncio.wait_for(lease.release(), _RELEASE_TIMEOUT)
            except Exception as exc:
                self.log.warning(
                    "lease %s: release on stop failed: %s",
                    lease.name,
                    exc,
                    extra={"plugin": self.name, "op": "release_lease"},
                )

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- recording helpers --------------------------------------------------------------
    def _resource(self, resource: Resource | str) -> Resource:
        return resource if isinstance(resource, Resource) else self.db.get_resource(resource)

    def add_resource_hook(
        self, resource: Resource | str, hook: str, fn: Callable[..., Any]
    ) -> None:
        """``resource.add_hook(hook, fn)``, undone on uninstall."""
        r = self._resource(resource)
        r.add_hook(hook, fn)
        self._undo.append(lambda: r.remove_hook(hook, fn))

    def add_resource_method(
        self, resource: Resource | str, name: str, fn: Callable[..., Any]
    ) -> None:
        """Attach ``resource.<name>``, removed on uninstall.

        :raises ConfigError: the resource already has an attribute ``name``.
        """
        r = self._resource(resource)
        r.add_method(name, fn, owner=self.alias)
        self._undo.append(lambda: r.remove_method(name))

    def add_middleware(
        self, resource: Resource | str, method: str, fn: Callable[..., Awaitable[Any]]
    ) -> None:
        """``resource.use_middleware(method, fn)``, removed on uninstall."""
        r = self._resource(resource)
        r.use_middleware(method, fn)
        self._undo.append(lambda: r.remove_middleware(method, fn))

    def add_operation_option(
        self,
        resource: Resource | str,
        name: str,
        handler: OptionHandler,
        *,
        methods: Iterable[str],
        description: str = "",
    ) -> OperationOption:
        """Accept the keyword option ``name`` on ``methods`` of ``resource``, removed on
        uninstall.

        ``handler(next, value, *args, **kwargs)`` wraps the whole operation of a call that
        passes the option and runs it with ``await next(*args, **kwargs)``::

            async def handler(next, value, *args, **kwargs):
                result = await next(*args, **kwargs)
                return annotate(result, value)

            self.add_operation_option(resource, "annotate", handler, methods=["get"])

        :raises ConfigError: see :meth:`Resource.add_operation_option`.
        """
        r = self._resource(resource)
        option = r.add_operation_option(
            name, handler, methods=methods, owner=self.alias, description=description
        )
        self._undo.append(lambda: r.remove_operation_option(name))
        return option

    async def add_plugin_attribute(
        self, resource: Resource | str, name: str, definition: Any
    ) -> None:
        """Add a field owned by this plugin (ids ``p0, p1, ...``), removed on uninstall.

        :raises SchemaError: ``name`` is a user field or belongs to another plugin.
        """
        r = self._resource(resource)
        owner = self.attribute_owner
        await r.add_plugin_attribute(name, definition, owner)
        self._undo.append(lambda: r.remove_plugin_attribute(name, owner))

    def listen(self, emitter: EventEmitter, event: str, handler: Callable[..., Any]) -> None:
        """``emitter.on(event, handler)``, removed on uninstall."""
        emitter.on(event, handler)
        self._undo.append(lambda: emitter.off(event, handler))

    async def subscribe(
        self,
        resource: Resource | str,
        handler: ChangeHandler,
        *,
        consumer: str | None = None,
        batch_size: int = 100,
        from_: str | datetime | None = None,
        poll_interval: float | None = 1.0,
        retention: float = 0.0,
        write_timeout: float | None = None,
        leader: bool = True,
        lease_ttl: float = 30.0,
    ) -> Subscription:
        """Receive the committed changes of ``resource``, durably (the change feed).

        Unlike :meth:`listen`, nothing is lost when a process dies: every write of the
        resource, in every process, first records an intent, and ``handler(changes)`` gets
        each committed change at least once, in order per record, in batches of at most
        ``batch_size`` :class:`~s3db_async.plugin.Change` objects::

            async def on_start(self) -> None:
                await self.subscribe("orders", self.index, consumer="search")

        :param consumer: the durable name of this consumer (default: the plugin's alias);
            its cursor is saved, so a restart resumes where it stopped.
        :param from_: ``None`` resumes (a new consumer starts now); ``"latest"``,
            ``"earliest"`` (everything still retained), a ``datetime`` or a change id
            replays from there.
        :param poll_interval: seconds between polls of the background loop when idle;
            ``None`` runs no loop (call :meth:`Subscription.poll` yourself).
        :param retention: keep intents at least this many seconds (for replays by time)
            even when every consumer has passed them.
        :param write_timeout: the writers' deadline for a record write after its intent
            (saved for every writer; default 120 s).
        :param leader: the background loop polls only while this process holds the
            consumer's lease (``feed.{resource}.{consumer}``), so processes that subscribe
            the same consumer name share one delivery stream and fail over to each other;
            ``False`` polls in every process (each delivers every change). ``lease_ttl``:
            seconds a crashed poller keeps the lease before another process takes over.
        :raises ConfigError: a bad option, or this plugin already subscribed ``consumer``.
        :raises NotFoundError: no such resource.
        """
        return await feed.subscribe(
            self,
            self._resource(resource),
            handler,
            consumer=consumer,
            batch_size=batch_size,
            from_=from_,
            poll_interval=poll_interval,
            retention=retention,
            write_timeout=write_timeout,
            leader=leader,
            lease_ttl=lease_ttl,
        )

    async def unsubscribe(self, resource: Resource | str, *, consumer: str | None = None) -> None:
        """Stop a subscription and forget the consumer: its cursor is deleted, and once no
        consumer is left the resource's writes stop recording intents."""
        await feed.unsubscribe(self, self._resource(resource), consumer)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The running :meth:`subscribe` subscriptions of this plugin."""
        return tuple(self._subscriptions.values())

    def add_database_hook(self, event: str, fn: Callable[..., Any]) -> None:
        """``db.add_hook(event, fn)``, removed on uninstall."""
        db = self.db
        db.add_hook(event, fn)
        self._undo.append(lambda: db.remove_hook(event, fn))

    async def when_resource(self, name: str, callback: Callable[[Resource], Any]) -> None:
        """Run ``callback(resource)`` now if ``name`` exists, else as soon as it is created.

        The callback may be sync or async; it runs once.
        """
        db = self.db
        if db.resource_exists(name):
            await _settle(callback(db.get_resource(name)))
            return
        self._deferred.setdefault(name, []).append(callback)
        if not self._watching:
            self._watching = True
            self.add_database_hook("after_create_resource", self._resource_created)

    async def create_plugin_resource(
        self,
        name: str,
        *,
        attributes: Mapping[str, Any],
        partitions: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Resource:
        """Create this plugin's resource ``name``, called :meth:`resource_name` (``name``):
        ``plg_[{namespace}_]{plugin}_{name}`` unless ``resource_names=`` overrides it.

        Idempotent across installs, restarts and processes (a changed definition becomes a
        new schema version, as with ``db.create_resource``, which gets ``options``). Recorded
        in the plugin's storage, so ``uninstall(purge_data=True)`` drops its records and its
        definition; ``uninstall()`` keeps them. ::

            logs = await self.create_plugin_resource(
                "logs", attributes={"op": "string"}, partitions={...}
            )

        :raises ConfigError: a resource of that name exists and is not this plugin's.
        """
        return await _create_plugin_resource(
            self, name, attributes=attributes, partitions=partitions, **options
        )

    async def _resource_created(self, resource: Resource) -> None:
        for callback in self._deferred.pop(resource.name, []):
            await _settle(callback(resource))

    # -- bundles ----------------------------------------------------------------------
    async def install_child(
        self,
        plugin: type[Plugin] | Plugin,
        *,
        config_key: str | None = None,
        **options: Any,
    ) -> Plugin:
        """Install a dependency plugin through ``db.use_plugin`` (bundle plugins).

        A class is instantiated with this plugin's namespace and log level, the nested
        options block named ``config_key`` (default: the child's slug in snake case, e.g.
        ``puppeteer={...}``) and ``options``; its alias is ``{alias}_{config_key}``. Children
        are uninstalled with the bundle.
        """
        db = self.db
        if isinstance(plugin, type):
            key = config_key or plugin.slug.replace("-", "_")
            kwargs: dict[str, Any] = {"namespace": self.namespace, "log_level": self.log_level}
            block = self.options.get(key)
            if isinstance(block, Mapping):
                kwargs.update(block)
            kwargs.update(options)
            kwargs.setdefault("alias", f"{self.alias}_{key}")
            child = plugin(**kwargs)
        else:
            child = plugin
        installed = await db.use_plugin(child)
        self._children.append(installed)
        return installed

    @property
    def children(self) -> tuple[Plugin, ...]:
        """Plugins installed through :meth:`install_child`."""
        return tuple(self._children)


class _StaticPlugin(Plugin):
    """Adapter for a plugin given as a class or module with ``install``/``setup`` functions."""

    def __init__(self, target: Any) -> None:
        raw = getattr(target, "name", None) or getattr(target, "__name__", None)
        name = str(raw or type(target).__name__).rsplit(".", 1)[-1]
        self.name = name
        self.slug = str(getattr(target, "slug", None) or _slugify(name))
        super().__init__(
            namespace=getattr(target, "namespace", None), alias=getattr(target, "alias", None)
        )
        self.target = target

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        fn = getattr(self.target, method, None)
        if fn is None:
            return
        if kwargs:
            params = inspect.signature(fn).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                kwargs = {k: v for k, v in kwargs.items() if k in params}
        await _settle(fn(*args, **kwargs))

    async def on_install(self) -> None:
        method = "install" if callable(getattr(self.target, "install", None)) else "setup"
        await self._call(method, self.db)

    async def on_start(self) -> None:
        await self._call("start")

    async def on_stop(self) -> None:
        await self._call("stop")

    async def on_uninstall(self, *, purge_data: bool = False) -> None:
        await self._call("uninstall", purge_data=purge_data)


def coerce_plugin(plugin: Any) -> Plugin:
    """A :class:`Plugin` for what ``db.use_plugin`` accepts: an instance, a ``Plugin``
    subclass (instantiated with defaults), or a static plugin (a class, module or object
    with an ``install(db)`` or ``setup(db)`` function and optional ``start``, ``stop``,
    ``uninstall``).

    :raises PluginError: none of these.
    """
    if isinstance(plugin, Plugin):
        return plugin
    if isinstance(plugin, type) and issubclass(plugin, Plugin):
        return plugin()
    if callable(getattr(plugin, "install", None)) or callable(getattr(plugin, "setup", None)):
        return _StaticPlugin(plugin)
    raise PluginError(
        f"{plugin!r} is not a plugin",
        suggestion="pass a Plugin instance, a Plugin subclass, or an object with install(db)",
        metadata={"plugin": repr(plugin)},
    )
