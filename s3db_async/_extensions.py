"""Extension points of a resource: hooks, middlewares, plugin methods and plugin attributes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from ._events import HookRegistry, Middleware, compose_middlewares
from ._tracing import active_tracer
from .errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from ._codec import AttributeRegistry
    from ._database import Database
    from ._resource import Resource
    from ._schema import Schema

CallArgs = ParamSpec("CallArgs")
CallResult = TypeVar("CallResult")


__all__ = ["MIDDLEWARE_METHODS", "ExtensionMixin"]

MIDDLEWARE_METHODS = frozenset(
    {
        "insert",
        "insert_many",
        "get",
        "get_many",
        "get_or_none",
        "exists",
        "update",
        "patch",
        "replace",
        "upsert",
        "delete",
        "delete_many",
        "list",
        "list_ids",
        "count",
        "page",
        "query",
        "set_content",
        "get_content",
    }
)


class ExtensionMixin:
    """``add_hook``, ``use_middleware``, ``add_method``, ``add_plugin_attribute`` and friends."""

    if TYPE_CHECKING:
        name: str
        db: Database
        schema: Schema
        registry: AttributeRegistry
        definition: dict[str, Any]
        version: str
        _versions: dict[str, dict[str, Any]]
        _hooks: HookRegistry
        _middlewares: dict[str, list[Middleware]]
        _chains: dict[str, Callable[..., Awaitable[Any]]]
        _methods: dict[str, str | None]
        _plugin_attributes: dict[str, tuple[Any, str]]

        def _build_schema(self, definition: Mapping[str, Any]) -> Schema: ...
        def _apply(
            self,
            definition: Mapping[str, Any],
            version: str,
            versions: Mapping[str, Mapping[str, Any]],
        ) -> None: ...

    def add_hook(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a hook: ``before_``/``after_`` + ``insert|update|delete|get|list``."""
        self._hooks.add(name, fn)

    def remove_hook(self, name: str, fn: Callable[..., Any]) -> bool:
        """Unregister a hook; returns whether it was registered."""
        return self._hooks.remove(name, fn)

    def use_middleware(self, method: str, fn: Middleware) -> None:
        """Wrap ``method``: ``async def fn(next, *args, **kwargs)``."""
        if method not in MIDDLEWARE_METHODS:
            raise ConfigError(
                f"cannot add middleware to {method!r} on resource {self.name!r}",
                suggestion=f"use one of: {', '.join(sorted(MIDDLEWARE_METHODS))}",
                metadata={"resource": self.name, "method": method},
            )
        self._middlewares.setdefault(method, []).append(fn)
        self._chains.pop(method, None)

    def remove_middleware(self, method: str, fn: Middleware) -> bool:
        """Remove a middleware; returns whether it was registered."""
        mws = self._middlewares.get(method, [])
        if fn in mws:
            mws.remove(fn)
            self._chains.pop(method, None)
            return True
        return False

    async def _call(
        self,
        method: str,
        impl: Callable[CallArgs, Awaitable[CallResult]],
        /,
        *a: CallArgs.args,
        **kw: CallArgs.kwargs,
    ) -> CallResult:
        """Run ``impl(*a, **kw)`` as public method ``method``: connection check, middlewares,
        tracing span; typed like ``impl`` (middlewares must return what it returns)."""
        self.db._require_connection()  # one error for every operation after disconnect
        call: Callable[..., Awaitable[Any]] = impl
        if self._middlewares.get(method):
            chain = self._chains.get(method)
            if chain is None:
                chain = self._chains[method] = compose_middlewares(self._middlewares[method], impl)
            call = chain
        tracer = active_tracer()
        result: CallResult
        if tracer is None:
            result = await call(*a, **kw)
            return result
        attributes = {
            "db.system.name": "s3db",
            "db.collection.name": self.name,
            "db.operation.name": method,
        }
        with tracer.start_as_current_span(f"{method} {self.name}", attributes=attributes):
            result = await call(*a, **kw)
        return result

    def add_method(self, name: str, fn: Callable[..., Any], *, owner: str | None = None) -> None:
        """Attach a method (plugins); an existing attribute of that name raises."""
        if hasattr(self, name):
            raise ConfigError(
                f"resource {self.name!r} already has an attribute {name!r}",
                suggestion="choose another method name (prefix it with your plugin's name)",
                metadata={"resource": self.name, "method": name, "owner": owner},
            )
        setattr(self, name, fn)
        self._methods[name] = owner

    def remove_method(self, name: str) -> bool:
        """Detach a method added with :meth:`add_method`."""
        if name not in self._methods:
            return False
        del self._methods[name]
        delattr(self, name)
        return True

    # -- plugin attributes ----------------------------------------------------
    async def add_plugin_attribute(self, name: str, definition: Any, plugin_name: str) -> None:
        """Add a field owned by a plugin (ids from the ``p0, p1, ...`` space).

        :raises SchemaError: the name is a user field or another plugin's field.
        """
        if name in self.schema.fields and name not in self._plugin_attributes:
            raise SchemaError(
                f"plugin {plugin_name!r} cannot add {name!r} to {self.name!r}: a user field",
                suggestion=f"prefix plugin fields, e.g. '_{plugin_name}_{name}'",
                metadata={"resource": self.name, "field": name, "plugin": plugin_name},
            )
        owner = self._plugin_attributes.get(name, (None, plugin_name))[1]
        if owner != plugin_name:
            raise SchemaError(
                f"{name!r} on {self.name!r} belongs to plugin {owner!r}, not {plugin_name!r}",
                suggestion="plugins must not share attribute names",
                metadata={"resource": self.name, "field": name, "plugin": plugin_name},
            )
        self._plugin_attributes[name] = (definition, plugin_name)
        await self._refresh_plugin_schema()

    async def remove_plugin_attribute(self, name: str, plugin_name: str | None = None) -> bool:
        """Remove a plugin field (its id is kept reserved, never reused).

        :returns: ``False`` when no plugin field has that name.
        :raises SchemaError: the field belongs to another plugin.
        """
        entry = self._plugin_attributes.get(name)
        if entry is None:
            return False
        if plugin_name is not None and entry[1] != plugin_name:
            raise SchemaError(
                f"{name!r} on {self.name!r} belongs to plugin {entry[1]!r}, not {plugin_name!r}",
                suggestion="only the plugin that added an attribute can remove it",
                metadata={"resource": self.name, "field": name, "plugin": plugin_name},
            )
        del self._plugin_attributes[name]
        await self._refresh_plugin_schema()
        return True

    async def _refresh_plugin_schema(self) -> None:
        schema = self._build_schema(self.definition)
        new = [f for f in schema.plugin_fields if f not in self.registry.plugin_ids]
        if new:
            await self.db._assign_ids(cast("Resource", self), new, plugin=True)
        self._apply(self.definition, self.version, self._versions)
