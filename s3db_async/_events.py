"""Events, hooks, middlewares and the task supervisor shared by Database and Resource.

- **Hooks** are awaited in order inside an operation. A ``before_*`` hook gets the data
  and returns it (changed or not; ``None`` keeps it); raising aborts the operation.
- **Events** are notifications: sync handlers run inline, async handlers run as tasks
  owned by the database. A failing handler is logged and re-emitted as ``error``; it
  never breaks the operation that emitted.
- **Event names** are checked when a listener subscribes: ``on("insertd", ...)`` raises
  instead of waiting forever. Each emitter class lists its names in ``event_names`` (a plugin
  class that emits its own plain names extends it); a name with a dot
  is a namespaced custom event (a plugin emits ``"cache.hit"``, ``"myplugin.flushed"``) and
  is always accepted, except in the reserved ``plugin.`` namespace of the plugin lifecycle.
- **One naming style**: an event says what happened, in the past tense and snake_case. An
  emitter's own events are plain (``inserted`` on a resource, ``connected`` on a database);
  an event about another object takes that object's kind as a dotted prefix
  (``resource.created`` on a database, ``plugin.installed`` on a database and on the plugin),
  and a plugin's own events take its slug (``cache.hit``). The table is in ``docs/guide.md``.
- **Middlewares** wrap a method: ``async def mw(next, *args, **kwargs)`` calls
  ``await next(*args, **kwargs)`` (or not) and returns the result.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import inspect
import logging
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, ClassVar

from .errors import ConfigError

__all__ = [
    "PLUGIN_EVENTS",
    "EventEmitter",
    "Handler",
    "HookRegistry",
    "Middleware",
    "TaskSupervisor",
]

Handler = Callable[..., Any]
Middleware = Callable[..., Awaitable[Any]]

_log = logging.getLogger("s3db_async.events")

PLUGIN_EVENTS = frozenset(
    {
        "plugin.installed",
        "plugin.started",
        "plugin.stopped",
        "plugin.before_uninstall",
        "plugin.data_purged",
        "plugin.after_uninstall",
    }
)
"""Plugin lifecycle events, emitted on the plugin and on its database."""


class TaskSupervisor:
    """Owns background tasks so none outlives the database.

    Tasks are tracked; :meth:`aclose` cancels the ones still running and awaits them.
    """

    def __init__(self, name: str = "s3db") -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._event_tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None, event: bool = False
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; exceptions are logged, never lost.

        ``event=True`` marks an event-handler task, awaited by :meth:`drain_events`.
        """
        if self._closed:
            coro.close()
            raise ConfigError(
                f"cannot start task {name or coro!r}: {self.name} is closed",
                suggestion="connect the database before starting background work",
            )
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if event:
            self._event_tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._event_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error(
                "background task %s failed",
                task.get_name(),
                exc_info=task.exception(),
                extra={"op": "task", "task": task.get_name()},
            )

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """Tasks still running."""
        return frozenset(self._tasks)

    async def drain_events(self) -> None:
        """Wait until no event-handler task is running, including ones started meanwhile."""
        current = asyncio.current_task()
        while pending := [t for t in self._event_tasks if t is not current]:
            await asyncio.gather(*pending, return_exceptions=True)

    def reopen(self) -> None:
        """Allow spawning again after :meth:`aclose` (reconnect)."""
        self._closed = False

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended."""
        self._closed = True
        current = asyncio.current_task()
        while True:
            pending = [t for t in self._tasks if t is not current]
            if not pending:
                return
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class EventEmitter:
    """``on``/``once``/``off``/``emit`` with the semantics in the module docstring."""

    _supervisor: TaskSupervisor | None
    event_names: ClassVar[frozenset[str] | None] = None
    """The event names this emitter emits (``None``: any name); see the module docstring."""
    renamed_events: ClassVar[Mapping[str, str]] = {}
    """Deprecated event names and their current ones: subscribing by an old name warns."""

    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._supervisor = None
        self._event_log = logger or _log

    def _current_name(self, event: str) -> str:
        new = self.renamed_events.get(event)
        if new is None:
            return event
        warnings.warn(f"event {event!r} is now called {new!r}", DeprecationWarning, stacklevel=3)
        return new

    def _check_event(self, event: str) -> None:
        known = self.event_names
        if known is None or event in known:
            return
        if isinstance(event, str) and "." in event and not event.startswith("plugin."):
            return  # a namespaced custom event
        names = sorted(known)
        close = difflib.get_close_matches(str(event), names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown event {event!r} on {type(self).__name__}",
            suggestion=f"{hint}events: {', '.join(names)}; custom events take a dotted "
            "name such as 'myplugin.done'",
            metadata={"event": event},
        )

    def on(self, event: str, handler: Handler) -> Handler:
        """Call ``handler(*args)`` on every ``event``; returns the handler (usable as decorator).

        :raises ConfigError: ``event`` is not one this emitter emits (see ``event_names``).
        """
        event = self._current_name(event)
        self._check_event(event)
        if not callable(handler):
            raise ConfigError(f"handler for {event!r} is not callable", metadata={"event": event})
        self._handlers[event].append(handler)
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        """Like :meth:`on`, but only for the next ``event``."""

        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return handler(*args)

        wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
        return self.on(event, wrapper)

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler, or all handlers of ``event``."""
        event = self.renamed_events.get(event, event)
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event, [])
        for i, h in enumerate(handlers):
            if h is handler or getattr(h, "__wrapped__", None) is handler:
                del handlers[i]
                return

    def listeners(self, event: str) -> list[Handler]:
        """The handlers of ``event``."""
        return list(self._handlers.get(event, ()))

    def has_listeners(self, event: str) -> bool:
        """True when something listens to ``event``."""
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Notify the handlers of ``event`` (never raises)."""
        handlers = self._handlers.get(event)
        if not handlers:
            return
        for handler in list(handlers):
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    self._spawn_handler(event, result)
            except Exception as exc:
                self._handler_failed(event, handler, exc)

    def _spawn_handler(self, event: str, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception as exc:
                self._handler_failed(event, awaitable, exc)

        if self._supervisor is not None:
            try:
                self._supervisor.spawn(run(), name=f"event:{event}", event=True)
                return
            except ConfigError:
                pass
        # not attached to a running database: still run it, on the current loop
        task = asyncio.get_running_loop().create_task(run(), name=f"event:{event}")
        _orphans.add(task)
        task.add_done_callback(_orphans.discard)

    def _handler_failed(self, event: str, handler: object, exc: Exception) -> None:
        self._event_log.error(
            "handler for %r failed: %s",
            event,
            exc,
            exc_info=exc,
            extra={"op": "event", "event": event},
        )
        if event != "error" and self.has_listeners("error"):
            self.emit("error", exc, {"event": event, "handler": handler})


_orphans: set[asyncio.Task[Any]] = set()


class HookRegistry:
    """Ordered hooks per name, validated against the allowed names."""

    def __init__(self, allowed: Iterable[str], *, owner: str) -> None:
        self._allowed = frozenset(allowed)
        self._owner = owner
        self._hooks: dict[str, list[Handler]] = defaultdict(list)

    def add(self, name: str, fn: Handler) -> None:
        """Register ``fn`` for hook ``name``."""
        if name not in self._allowed:
            raise ConfigError(
                f"unknown hook {name!r} on {self._owner}",
                suggestion=f"use one of: {', '.join(sorted(self._allowed))}",
                metadata={"hook": name},
            )
        if not callable(fn):
            raise ConfigError(f"hook {name!r} is not callable", metadata={"hook": name})
        self._hooks[name].append(fn)

    def remove(self, name: str, fn: Handler) -> bool:
        """Unregister ``fn``; returns whether it was registered."""
        hooks = self._hooks.get(name, [])
        if fn in hooks:
            hooks.remove(fn)
            return True
        return False

    def has(self, name: str) -> bool:
        """True when ``name`` has hooks."""
        return bool(self._hooks.get(name))

    def get(self, name: str) -> list[Handler]:
        """The hooks registered for ``name``."""
        return list(self._hooks.get(name, ()))

    async def run(self, name: str, value: Any, *extra: Any) -> Any:
        """Pass ``value`` through every hook of ``name`` in order; ``None`` keeps the value."""
        for fn in self._hooks.get(name, ()):
            result = fn(value, *extra)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                value = result
        return value


def compose_middlewares(
    middlewares: list[Middleware], final: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """Wrap ``final`` so the first-registered middleware runs outermost.

    Each link is ``functools.partial(mw, next)``: calling it hands back the middleware's
    own awaitable, so the chain adds no coroutine layer of its own (a layer costs on every
    resumption of the operation; MetricsPlugin's overhead budget is 10% of a memory get).
    """
    call = final
    for mw in reversed(middlewares):
        call = functools.partial(mw, call)
    return call
