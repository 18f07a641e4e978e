"""Extension points of a resource: hooks, middlewares, operation options, plugin methods
and plugin attributes.

**Operation options** are the extra keyword arguments of resource operations
(``posts.get(pid, include=["author"])``). The core defines none of them: a plugin registers
one with :meth:`Resource.add_operation_option` (``Plugin.add_operation_option``), naming
the methods that accept it and an *option handler*::

    async def handler(next, value, *args, **kwargs):
        result = await next(*args, **kwargs)  # the operation, without the option
        ...  # use value
        return result

A call that passes options runs their handlers around the whole operation (outside every
middleware and hook, in the order the options were passed), each with its option's value;
middlewares and the operation itself never see the option, so they keep their signatures.
A call without options costs what it did before options existed (one ``if``). An option
that nothing registered, or that its plugin did not register for that method, raises
:class:`~s3db_async.errors.UnknownOptionError` before any request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .._events import Middleware, compose_middlewares
from .._tracing import active_tracer
from ..errors import ConfigError, SchemaError, UnknownOptionError

if TYPE_CHECKING:
    from .resource import Resource

CallArgs = ParamSpec("CallArgs")
CallResult = TypeVar("CallResult")

__all__ = [
    "MIDDLEWARE_METHODS",
    "OPTION_METHODS",
    "Extensions",
    "OperationOption",
    "OptionHandler",
]

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


OPTION_METHODS = MIDDLEWARE_METHODS - {
    "insert",
    "insert_many",
    "update",
    "patch",
    "replace",
    "upsert",
}
"""Methods that accept operation options. The writes (``insert``, ``insert_many``,
``update``, ``patch``, ``replace``, ``upsert``) do not: their extra keywords are record
fields."""

OptionHandler = Callable[..., Awaitable[Any]]
"""``async def handler(next, value, *args, **kwargs)``: runs the operation through
``await next(*args, **kwargs)`` (or not) and returns its result."""

OPTION_HINTS: Mapping[str, str] = {
    "include": "install RelationPlugin (s3db_async.plugins.RelationPlugin) and declare the "
    "relations of this resource in relations=; its include= loads them",
}
"""Where the options of the bundled plugins come from, for the error of a missing one."""


@dataclass(frozen=True, slots=True)
class OperationOption:
    """An extra keyword option of resource operations, handled by ``handler``.

    :param name: the keyword (``include``).
    :param handler: ``async def handler(next, value, *args, **kwargs)``.
    :param methods: the resource methods that accept it (a subset of ``OPTION_METHODS``).
    :param owner: the plugin that registered it (its alias), if any.
    :param description: one line, shown in errors and ``resource.operation_options``.
    """

    name: str
    handler: OptionHandler
    methods: frozenset[str]
    owner: str | None = None
    description: str = ""


class Extensions:
    """``add_hook``, ``use_middleware``, ``add_method``, ``add_plugin_attribute`` and friends."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.middlewares: dict[str, list[Middleware]] = {}
        self.chains: dict[str, Callable[..., Awaitable[Any]]] = {}  # composed, per method
        self.methods: dict[str, str | None] = {}  # added method -> owning plugin
        self.plugin_attributes: dict[str, tuple[Any, str]] = {}  # field -> (definition, plugin)
        self.options: dict[str, OperationOption] = {}

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

    def call_with_options(
        self,
        method: str,
        options: Mapping[str, Any],
        impl: Callable[CallArgs, Awaitable[CallResult]],
        /,
        *a: CallArgs.args,
        **kw: CallArgs.kwargs,
    ) -> Awaitable[CallResult]:
        """Like :meth:`call`, with the handlers of ``options`` around the whole operation.

        :raises UnknownOptionError: an option nothing registered for ``method``.
        """
        self.resource.db._require_connection()
        handlers = [(self._option(method, name).handler, value) for name, value in options.items()]
        call: Callable[..., Awaitable[Any]] = impl
        if self.middlewares.get(method):
            chain = self.chains.get(method)
            if chain is None:
                chain = self.chains[method] = compose_middlewares(self.middlewares[method], impl)
            call = chain
        for handler, value in reversed(handlers):
            call = functools.partial(handler, call, value)
        tracer = active_tracer()
        if tracer is None:
            return call(*a, **kw)
        return self._traced(tracer, method, call(*a, **kw))

    def _option(self, method: str, name: str) -> OperationOption:
        option = self.options.get(name)
        if option is not None and method in option.methods:
            return option
        accepted = sorted(n for n, o in self.options.items() if method in o.methods)
        metadata = {
            "field": name,
            "resource": self.resource.name,
            "method": method,
            "options": accepted,
        }
        if option is not None:
            raise UnknownOptionError(
                f"{method}() on resource {self.resource.name!r} does not take {name}= "
                f"(plugin {option.owner!r} gives it to {', '.join(sorted(option.methods))})",
                suggestion=f"pass {name}= to one of: {', '.join(sorted(option.methods))}",
                metadata={**metadata, "reason": f"not an option of {method}"},
            )
        here = f"options of {method} here: {', '.join(accepted) or 'none'}"
        hint = OPTION_HINTS.get(name)
        raise UnknownOptionError(
            f"{method}() on resource {self.resource.name!r} got an unknown option {name}=",
            suggestion=f"{hint} ({here})" if hint else f"check the name ({here})",
            metadata={**metadata, "reason": "no installed plugin handles this option"},
        )

    def add_option(
        self,
        name: str,
        handler: OptionHandler,
        *,
        methods: Iterable[str],
        owner: str | None = None,
        description: str = "",
    ) -> OperationOption:
        wanted = frozenset(methods)
        meta = {"resource": self.resource.name, "field": name, "owner": owner}
        bad = sorted(wanted - OPTION_METHODS)
        if not wanted or bad:
            raise ConfigError(
                f"operation option {name!r} names methods that take no options: {bad}",
                suggestion=f"use some of: {', '.join(sorted(OPTION_METHODS))}",
                metadata={**meta, "reason": "bad methods", "methods": bad},
            )
        if not name.isidentifier() or name.startswith("_"):
            raise ConfigError(
                f"operation option {name!r} is not a keyword name",
                suggestion="use a lowercase identifier such as 'include'",
                metadata={**meta, "reason": "not a keyword"},
            )
        clash = sorted(m for m in wanted if name in _parameters(self.resource, m))
        if clash:
            raise ConfigError(
                f"operation option {name!r} is already a parameter of {clash}",
                suggestion="choose another name (prefix it with your plugin's name)",
                metadata={**meta, "reason": "parameter of the method", "methods": clash},
            )
        current = self.options.get(name)
        if current is not None:
            raise ConfigError(
                f"operation option {name!r} on resource {self.resource.name!r} "
                f"is already registered by {current.owner!r}",
                suggestion="options cannot be shared between plugins; choose another name",
                metadata={**meta, "reason": "already registered", "registered_by": current.owner},
            )
        option = OperationOption(name, handler, wanted, owner, description)
        self.options[name] = option
        return option

    def remove_option(self, name: str) -> bool:
        return self.options.pop(name, None) is not None

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


def _parameters(resource: Resource, method: str) -> frozenset[str]:
    """The named parameters of a resource method (an option must not shadow one)."""
    parameters = inspect.signature(getattr(type(resource), method)).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in named)
