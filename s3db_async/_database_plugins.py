"""The plugin side of :class:`~s3db_async.Database`: ``use_plugin``, ``uninstall_plugin``,
the ``plugins`` registry, and installing/stopping plugins with the connection.

Plugins given as ``Database(plugins=[...])`` or passed to ``use_plugin`` before ``connect()``
are installed (all of them, in order) and then started at the end of ``connect()``; a plugin
passed to ``use_plugin`` on a connected database is installed and started at once.
``disconnect()`` stops every plugin first (their background tasks are cancelled and awaited);
the next ``connect()`` starts them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .errors import NotFoundError, PluginError
from .plugin import Plugin, coerce_plugin

if TYPE_CHECKING:
    from ._events import HookRegistry

__all__ = ["PluginHostMixin", "PluginRegistry"]

_log = logging.getLogger("s3db_async.database")
P = TypeVar("P", bound=Plugin)
T = TypeVar("T")
_REQUIRED: Any = object()


class PluginRegistry(Mapping[str, Plugin]):
    """Installed plugins by alias; a plugin's ``name`` or ``slug`` also finds it when only one
    plugin has it. Attribute access works too (``db.plugins.cache``), and
    ``db.plugins.get(CachePlugin)`` looks one up by class, typed as that class."""

    def __init__(self) -> None:
        self._by_alias: dict[str, Plugin] = {}

    def __getitem__(self, key: str) -> Plugin:
        found = self._by_alias.get(key)
        if found is not None:
            return found
        matches = [p for p in self._by_alias.values() if key in (p.name, p.slug)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFoundError(
                f"plugin {key!r} is ambiguous",
                suggestion=f"use an alias: {', '.join(p.alias for p in matches)}",
                metadata={"plugin": key},
            )
        raise NotFoundError(
            f"no plugin {key!r}",
            suggestion=f"installed: {', '.join(self._by_alias) or '(none)'}",
            metadata={"plugin": key},
        )

    @overload
    def get(self, key: type[P], /) -> P: ...
    @overload
    def get(self, key: type[P], default: T, /) -> P | T: ...
    @overload
    def get(self, key: str, /) -> Plugin | None: ...
    @overload
    def get(self, key: str, default: Plugin | T, /) -> Plugin | T: ...
    def get(self, key: str | type[Plugin], default: Any = _REQUIRED, /) -> Any:
        """The plugin by alias (or name/slug), ``default`` (``None``) when absent, as any
        mapping; or by class, typed as that class: ``db.plugins.get(CachePlugin)``.

        :raises NotFoundError: no installed plugin of that class (and no ``default``).
        :raises PluginError: several plugins of that class: look them up by alias.
        """
        if isinstance(key, str):
            return super().get(key, None if default is _REQUIRED else default)
        found = [p for p in self._by_alias.values() if isinstance(p, key)]
        if len(found) == 1:
            return found[0]
        if found:
            raise PluginError(
                f"{len(found)} plugins are {key.__name__} instances: the lookup is ambiguous",
                suggestion=f"use an alias: {', '.join(p.alias for p in found)}",
                metadata={"plugin": key.__name__},
            )
        if default is not _REQUIRED:
            return default
        raise NotFoundError(
            f"no {key.__name__} plugin is installed",
            suggestion=f"await db.use_plugin({key.__name__}()) first",
            metadata={"plugin": key.__name__},
        )

    def __getattr__(self, name: str) -> Plugin:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no plugin {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_alias))

    def __len__(self) -> int:
        return len(self._by_alias)

    def __repr__(self) -> str:
        return f"<PluginRegistry {list(self._by_alias)}>"

    def _add(self, plugin: Plugin) -> None:
        current = self._by_alias.get(plugin.alias)
        if current is plugin:
            return
        if current is not None:
            raise PluginError(
                f"a plugin with alias {plugin.alias!r} is already registered ({current!r})",
                suggestion="give the second instance a namespace= or alias=",
                metadata={"alias": plugin.alias, "plugin": plugin.name},
            )
        self._by_alias[plugin.alias] = plugin

    def _remove(self, plugin: Plugin) -> None:
        if self._by_alias.get(plugin.alias) is plugin:
            del self._by_alias[plugin.alias]


class PluginHostMixin:
    """Mixed into :class:`~s3db_async.Database`."""

    if TYPE_CHECKING:
        _pending_plugins: list[Any]
        _hooks: HookRegistry

        @property
        def is_connected(self) -> bool: ...

    @property
    def _plugin_registry(self) -> PluginRegistry:
        registry: PluginRegistry | None = self.__dict__.get("_plugin_registry_")
        if registry is None:
            registry = self.__dict__["_plugin_registry_"] = PluginRegistry()
            self.__dict__["_plugin_queue_"] = []
        return registry

    @property
    def _plugin_queue(self) -> list[Plugin]:
        self._plugin_registry  # noqa: B018 - creates the queue with the registry
        queue: list[Plugin] = self.__dict__["_plugin_queue_"]
        return queue

    def _register_pending(self) -> None:
        pending = getattr(self, "_pending_plugins", None)
        if not pending:
            return
        raw = list(pending)
        pending.clear()
        for item in raw:
            plugin = coerce_plugin(item)
            self._plugin_registry._add(plugin)
            self._plugin_queue.append(plugin)

    @property
    def plugins(self) -> PluginRegistry:
        """The plugins of this database, by alias (and by name or slug when unambiguous)."""
        self._register_pending()
        return self._plugin_registry

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
        p = coerce_plugin(plugin)
        if alias is not None:
            p.alias = p._check_alias(alias)
        self._register_pending()
        if p.installed:
            if p._database is self:
                return p
            raise PluginError(
                f"plugin {p.alias!r} is installed on another database",
                suggestion="create a new instance for each database",
                metadata={"plugin": p.name},
            )
        self._plugin_registry._add(p)
        if not self.is_connected:
            if p not in self._plugin_queue:
                self._plugin_queue.append(p)
            return p
        try:
            await p.install(self)  # type: ignore[arg-type]
        except BaseException:
            self._plugin_registry._remove(p)
            raise
        await p.start()
        return p

    async def uninstall_plugin(self, plugin: Plugin | str, *, purge_data: bool = False) -> None:
        """Uninstall a plugin (by instance or alias); ``purge_data`` deletes its storage.

        :raises NotFoundError: no such plugin (a ``KeyError``).
        """
        p = self.plugins[plugin] if isinstance(plugin, str) else plugin
        if p.installed:
            await p.uninstall(purge_data=purge_data)
        self._forget_plugin(p)

    def _forget_plugin(self, plugin: Plugin) -> None:
        self._plugin_registry._remove(plugin)
        if plugin in self._plugin_queue:
            self._plugin_queue.remove(plugin)

    def remove_hook(self, name: str, fn: Callable[..., Any]) -> bool:
        """Unregister a database hook; returns whether it was registered."""
        return self._hooks.remove(name, fn)

    async def _install_pending_plugins(self) -> None:
        """Install queued plugins (in order), then start every installed plugin not running."""
        self._register_pending()
        queue = self._plugin_queue
        while queue:
            p = queue.pop(0)
            if p.installed:
                continue
            try:
                await p.install(self)  # type: ignore[arg-type]
            except BaseException:
                self._plugin_registry._remove(p)
                raise
        for p in list(self._plugin_registry.values()):
            if p.installed and not p.started:
                await p.start()

    async def _stop_plugins(self) -> None:
        """Stop every running plugin, last installed first; failures are logged."""
        for p in reversed(list(self._plugin_registry.values())):
            if not p.started:
                continue
            try:
                await p.stop()
            except Exception as exc:
                _log.error(
                    "plugin %s failed to stop: %s",
                    p.alias,
                    exc,
                    exc_info=exc,
                    extra={"op": "disconnect", "plugin": p.name},
                )
