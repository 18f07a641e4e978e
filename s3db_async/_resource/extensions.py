"""Extension points of a resource: hooks, middlewares, plugin methods and plugin attributes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .._events import Middleware, compose_middlewares
from .._tracing import active_tracer
from ..errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from .resource import Resource

CallArgs = ParamSpec("CallArgs")
CallResult = TypeVar("CallResult")

__all__ = ["MIDDLEWARE_METHODS", "Extensions"]

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


class Extensions:
    """``add_hook``, ``use_middleware``, ``add_method``, ``add_plugin_attribute`` and friends."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.middlewares: dict[str, list[Middleware]] = {}
        self.chains: dict[str, Callable[..., Awaitable[Any]]] = {}  # composed, per method
        self.methods: dict[str, str | None] = {}  # added method -> owning plugin
        self.plugin_attributes: dict[str, tuple[Any, str]] = {}  # field -> (definition, plugin)

    def add_hook(self, name: str, fn: Callable[..., Any]) -> None:
        self.resource._hooks.add(name, fn)

    def remove_hook(self, name: str, fn: Callable[..., Any]) -> bool:
        return self.resource._hooks.remove(name, fn)

    def use_middleware(self, method: str, fn: Middleware) -> None:
        if method not in MIDDLEWARE_METHODS:
            raise ConfigError(
                f"cannot add middleware to {method!r} on resource {self.resource.name!r}",
                suggestion=f"use one of: {', '.join(sorted(MIDDLEWARE_METHODS))}",
                metadata={"resource": self.resource.name, "method": method},
            )
        self.middlewares.setdefault(method, []).append(fn)
        self.chains.pop(method, None)

    def remove_middleware(self, method: str, fn: Middleware) -> bool:
        mws = self.middlewares.get(method, [])
        if fn in mws:
            mws.remove(fn)
            self.chains.pop(method, None)
            return True
        return False

    def call(
        self,
        method: str,
        impl: Callable[CallArgs, Awaitable[CallResult]],
        /,
        *a: CallArgs.args,
        **kw: CallArgs.kwargs,
    ) -> Awaitable[CallResult]:
        """``impl(*a, **kw)`` as public method ``method``: connection check, middlewares,
        tracing span; typed like ``impl`` (middlewares must return what it returns).

        Not a coroutine itself: with no middleware and no tracer it hands back ``impl``'s
        own awaitable, so the usual call adds no coroutine layer (each layer costs on every
        resumption of the operation).
        """
        self.resource.db._require_connection()  # one error for every operation after disconnect
        call: Callable[..., Awaitable[Any]] = impl
        if self.middlewares.get(method):
            chain = self.chains.get(method)
            if chain is None:
                chain = self.chains[method] = compose_middlewares(self.middlewares[method], impl)
            call = chain
        tracer = active_tracer()
        if tracer is None:
            return call(*a, **kw)
        return self._traced(tracer, method, call(*a, **kw))

    async def _traced(self, tracer: Any, method: str, work: Awaitable[CallResult]) -> CallResult:
        attributes = {
            "db.system.name": "s3db",
            "db.collection.name": self.resource.name,
            "db.operation.name": method,
        }
        with tracer.start_as_current_span(f"{method} {self.resource.name}", attributes=attributes):
            return await work

    def add_method(self, name: str, fn: Callable[..., Any], *, owner: str | None = None) -> None:
        if hasattr(self.resource, name):
            raise ConfigError(
                f"resource {self.resource.name!r} already has an attribute {name!r}",
                suggestion="choose another method name (prefix it with your plugin's name)",
                metadata={"resource": self.resource.name, "method": name, "owner": owner},
            )
        setattr(self.resource, name, fn)
        self.methods[name] = owner

    def remove_method(self, name: str) -> bool:
        if name not in self.methods:
            return False
        del self.methods[name]
        delattr(self.resource, name)
        return True

    # -- plugin attributes ----------------------------------------------------
    async def add_plugin_attribute(self, name: str, definition: Any, plugin_name: str) -> None:
        if name in self.resource.schema.fields and name not in self.plugin_attributes:
            raise SchemaError(
                f"plugin {plugin_name!r} cannot add {name!r} to {self.resource.name!r}: "
                "a user field",
                suggestion=f"prefix plugin fields, e.g. '_{plugin_name}_{name}'",
                metadata={"resource": self.resource.name, "field": name, "plugin": plugin_name},
            )
        owner = self.plugin_attributes.get(name, (None, plugin_name))[1]
        if owner != plugin_name:
            raise SchemaError(
                f"{name!r} on {self.resource.name!r} belongs to plugin {owner!r}, "
                f"not {plugin_name!r}",
                suggestion="plugins must not share attribute names",
                metadata={"resource": self.resource.name, "field": name, "plugin": plugin_name},
            )
        self.plugin_attributes[name] = (definition, plugin_name)
        await self.refresh_plugin_schema()

    async def remove_plugin_attribute(self, name: str, plugin_name: str | None = None) -> bool:
        entry = self.plugin_attributes.get(name)
        if entry is None:
            return False
        if plugin_name is not None and entry[1] != plugin_name:
            raise SchemaError(
                f"{name!r} on {self.resource.name!r} belongs to plugin {entry[1]!r}, "
                f"not {plugin_name!r}",
                suggestion="only the plugin that added an attribute can remove it",
                metadata={"resource": self.resource.name, "field": name, "plugin": plugin_name},
            )
        del self.plugin_attributes[name]
        await self.refresh_plugin_schema()
        return True

    async def refresh_plugin_schema(self) -> None:
        schema = self.resource._build_schema(self.resource.definition)
        new = [f for f in schema.plugin_fields if f not in self.resource.registry.plugin_ids]
        if new:
            await self.resource.db._assign_ids(self.resource, new, plugin=True)
        self.resource._apply(
            self.resource.definition, self.resource.version, self.resource._versions
        )
