"""Plugins: the :class:`Plugin` base class and what plugin authors need.

::

    from s3db_async.plugin import Plugin

    class StampPlugin(Plugin):
        async def on_install(self) -> None:
            await self.when_resource("orders", self.setup)

        async def setup(self, orders):
            self.add_resource_hook(orders, "before_insert", self.stamp)

        async def stamp(self, data):
            return {**data, "stamped": True}

    await db.use_plugin(StampPlugin())

Lifecycle: ``install(db)`` → :meth:`Plugin.on_install`, ``start()`` → :meth:`Plugin.on_start`,
``stop()`` → :meth:`Plugin.on_stop`, ``uninstall(*, purge_data=False)`` →
:meth:`Plugin.on_uninstall`. Everything a plugin adds through the recording helpers
(:meth:`~Plugin.add_resource_hook`, :meth:`~Plugin.add_resource_method`,
:meth:`~Plugin.add_middleware`, :meth:`~Plugin.add_operation_option`,
:meth:`~Plugin.add_plugin_attribute`, :meth:`~Plugin.listen`, :meth:`~Plugin.add_database_hook`)
is removed again by ``uninstall()``; background work started
with :meth:`~Plugin.spawn` is cancelled and awaited by ``stop()``. Resources the plugin owns come
from :meth:`~Plugin.create_plugin_resource` (``plg_[{namespace}_]{plugin}_{name}``, idempotent);
``uninstall(purge_data=True)`` drops them, records and definition.

Events, emitted on the plugin and on the database, each with a dict payload (``plugin``,
``alias``, ``namespace``, ``at``): ``plugin.installed``, ``plugin.started``,
``plugin.stopped``, ``plugin.before_uninstall``, ``plugin.data_purged`` (plus ``deleted`` and
its alias ``count``: the number of objects removed) and ``plugin.after_uninstall``.

Runtime (docs/plugins/building-plugins.md, "Runtime: leases and jobs"): leader leases with
fencing epochs (:meth:`Plugin.leader`, :meth:`Plugin.run_as_leader`, :class:`Lease`,
:class:`Fence`; events ``leader.elected`` and ``leader.lost``) and jobs (:meth:`Plugin.every`,
:meth:`Plugin.cron`, :class:`Job`, :class:`JobRun`; events ``job.succeeded``, ``job.failed``,
``job.skipped``).

Time: plugins read the wall clock with :func:`clock_time` and wait with :func:`clock_sleep`
(and :func:`clock_monotonic`), the clock that leases and jobs read, so a test that swaps in a
:class:`ManualClock` with :func:`use_clock` drives a plugin's expiry and retry logic too::

    with use_clock(ManualClock()) as clock:
        clock.advance(60)  # every clock_time()/clock_sleep() of the plugins moves on
"""

from __future__ import annotations

from ._clock import Clock, ManualClock, use_clock
from ._clock import monotonic as clock_monotonic
from ._clock import sleep as clock_sleep
from ._clock import time as clock_time
from ._deps import (
    SKIP_ENV,
    Dependency,
    DependencyStatus,
    get_plugin_dependency_report,
    require_dependencies,
    require_dependency,
)
from ._plugin.base import Plugin
from ._plugin.feed import Change, ChangeHandler, FeedStats, Subscription
from ._plugin.jobs import Job, JobRun
from ._plugin.leases import Fence, Lease
from ._plugin.namespace import (
    detect_and_warn_namespaces,
    get_namespaced_resource_name,
    get_validated_namespace,
    list_plugin_namespaces,
    validate_namespace,
    warn_namespace_usage,
)
from ._plugin.storage import Lock, PluginStorage, StorageResult
from ._resource.extensions import OPTION_METHODS, OperationOption, OptionHandler
from .errors import (
    LeaseLostError,
    LockError,
    MissingDependencyError,
    PluginError,
    StaleFenceError,
)

__all__ = [
    "OPTION_METHODS",
    "SKIP_ENV",
    "Change",
    "ChangeHandler",
    "Clock",
    "Dependency",
    "DependencyStatus",
    "FeedStats",
    "Fence",
    "Job",
    "JobRun",
    "Lease",
    "LeaseLostError",
    "Lock",
    "LockError",
    "ManualClock",
    "MissingDependencyError",
    "OperationOption",
    "OptionHandler",
    "Plugin",
    "PluginError",
    "PluginStorage",
    "StaleFenceError",
    "StorageResult",
    "Subscription",
    "clock_monotonic",
    "clock_sleep",
    "clock_time",
    "detect_and_warn_namespaces",
    "get_namespaced_resource_name",
    "get_plugin_dependency_report",
    "get_validated_namespace",
    "list_plugin_namespaces",
    "require_dependencies",
    "require_dependency",
    "use_clock",
    "validate_namespace",
    "warn_namespace_usage",
]
