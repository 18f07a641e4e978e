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
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..errors import NotFoundError, PluginError
from .base import Plugin, coerce_plugin

if TYPE_CHECKING:
    from .._database import Database

__all__ = ["PluginHost", "PluginRegistry"]

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


class PluginHost:
    """The plugins of one database: the registry, the install queue, start and stop.

    Plugins given as ``Database(plugins=[...])`` are coerced on first use (``plugins``,
    ``use_plugin`` or ``connect()``), so a bad entry raises there, not in the constructor.
    """

    def __init__(self, db: Database, plugins: Iterable[Any] = ()) -> None:
        self.db = db
        self.registry = PluginRegistry()
        self.queue: list[Plugin] = []  # registered, to install on connect, in order
        self.pending: list[Any] = list(plugins)  # as given to Database(plugins=...)

    def register_pending(self) -> PluginRegistry:
        """Coerce and register the plugins given to the constructor; returns the registry."""
        raw, self.pending = self.pending, []
        for item in raw:
            plugin = coerce_plugin(item)
            self.registry._add(plugin)
            self.queue.append(plugin)
        return self.registry

    async def use(self, plugin: Any, alias: str | None) -> Plugin:
        """:meth:`Database.use_plugin`."""
        p = coerce_plugin(plugin)
        if alias is not None:
            p.alias = p._check_alias(alias)
        self.register_pending()
        if p.installed:
            if p._database is self.db:
                return p
            raise PluginError(
                f"plugin {p.alias!r} is installed on another database",
                suggestion="create a new instance for each database",
                metadata={"plugin": p.name},
            )
        self.registry._add(p)
        if not self.db.is_connected:
            if p not in self.queue:
                self.queue.append(p)
            return p
        await self._install(p)
        await p.start()
        return p

    async def uninstall(self, plugin: Plugin | str, *, purge_data: bool) -> None:
        """:meth:`Database.uninstall_plugin`."""
        p = self.register_pending()[plugin] if isinstance(plugin, str) else plugin
        if p.installed:
            await p.uninstall(purge_data=purge_data)
        self.forget(p)

    def forget(self, plugin: Plugin) -> None:
        """Drop a plugin from the registry and the queue (after its uninstall)."""
        self.registry._remove(plugin)
        if plugin in self.queue:
            self.queue.remove(plugin)

    async def _install(self, plugin: Plugin) -> None:
        try:
            await plugin.install(self.db)
        except BaseException:
            self.registry._remove(plugin)
            raise

    async def start(self) -> None:
        """Install queued plugins (in order), then start every installed plugin not running."""
        self.register_pending()
        while self.queue:
            p = self.queue.pop(0)
            if not p.installed:
                await self._install(p)
        for p in list(self.registry.values()):
            if p.installed and not p.started:
                await p.start()

    async def stop(self) -> None:
        """Stop every running plugin, last installed first; failures are logged."""
        for p in reversed(list(self.registry.values())):
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
