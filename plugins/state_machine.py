"""StateMachinePlugin: finite state machines whose transitions are compare-and-swap writes.

::

    sm = StateMachinePlugin(machines={
        "orders": {
            "initial": "pending",
            "states": {
                "pending": {"on": {"CONFIRM": "confirmed", "CANCEL": "cancelled"},
                            "after": {3600: "CANCEL"}},
                "confirmed": {"on": {"SHIP": {"target": "shipped", "guard": "paid"}}},
                "shipped": {"on": {"DELIVER": "delivered"}, "entry": "notify"},
                "delivered": {"type": "final"},
                "cancelled": {"type": "final"},
            },
        },
    }, guards={"paid": lambda ctx, payload, record: ctx.get("paid", False)},
       actions={"notify": send_mail})
    await sm.send("orders", "o1", "CONFIRM")

How it works:

- **One object per entity.** The state of entity ``id`` in machine ``m`` is one PluginStorage
  value ``state/{m}/{id}`` (state, context, version, last transition). An entity never sent
  an event is in the initial state (no write needed).
- **Atomic transitions.** :meth:`StateMachinePlugin.send` reads that object, checks the
  event and the guard against what it read, and writes the next state with ``If-Match`` on
  the etag it read (``If-None-Match`` for the first transition). Of two concurrent events
  from one state only one write succeeds; the loser re-reads and is judged against the new
  state (a :class:`TransitionError` when the event is no longer allowed there).
- **Actions after the commit.** ``exit`` actions of the old state and ``entry`` actions of
  the new one (sync or async) run once the write is committed, in the process that won; a
  failing action is reported (event ``state_machine.action_failed``), it never undoes the
  transition.
- **History.** Each transition is a record of the plugin resource
  ``plg_state_machine_transitions`` with the id ``{machine}:{id}:{version}``, written after
  the state (an upsert: a retry writes the same row).
- **Timeouts and date triggers.** ``after: {seconds: event}`` and ``after: {"field": event}``
  (a context field holding a datetime, ISO string or epoch seconds) put a timer key
  ``timers/{due}/{machine}/{id}/{version}`` when the state is entered. A leader job
  (``every(tick_interval, leader=True)``) lists the due timers and sends their event only if
  the entity is still in the version that set the timer (a CAS on the version), so a timer
  fires at most once and never after the entity moved on.
- **Record field.** With ``resource=`` and ``field=`` each transition also writes the new
  state into that field of the record; ``resource.state`` gives ``send``, ``get``, ``can``,
  ``available_events`` and ``history`` bound to the machine.
"""

from __future__ import annotations

import inspect
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any

from s3db_async import Resource
from s3db_async.errors import ConfigError, NotFoundError, PluginError, ValidationError
from s3db_async.plugin import Plugin, clock_time

from .ttl import to_timestamp  # one parser of expiry/trigger times for both plugins

__all__ = ["Machine", "StateMachinePlugin", "Transition", "TransitionError"]

_MACHINE_KEYS = {"initial", "states", "resource", "field", "context"}
_STATE_KEYS = {"on", "entry", "exit", "type", "after"}
_TRANSITION_KEYS = {"target", "guard", "actions"}
_RECENT = 20  # transitions kept in the state object, to restore history rows a crash lost
_DUE_WIDTH = 14  # digits of the due time (in ms) in timer keys, so they sort by time


class TransitionError(PluginError):
    """An event that is not allowed in the entity's current state, or whose guard refused."""


def _bad(where: str, field_: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"StateMachinePlugin {where}: {field_} {reason}",
        suggestion=suggestion,
        metadata={"field": field_, "reason": reason, "where": where, "value": repr(value)},
    )


@dataclass(frozen=True)
class Transition:
    """One edge: ``event`` from ``source`` to ``target``, allowed when ``guard`` passes."""

    source: str
    event: str
    target: str
    guard: str | Callable[..., Any] | None = None
    actions: tuple[str | Callable[..., Any], ...] = ()


@dataclass(frozen=True)
class State:
    """One state of a machine."""

    name: str
    final: bool = False
    entry: tuple[str | Callable[..., Any], ...] = ()
    exit: tuple[str | Callable[..., Any], ...] = ()
    after: tuple[tuple[float | str, str], ...] = ()
    """(seconds or context field, event) pairs."""
    on: dict[str, Transition] = _field(default_factory=dict)


def _callables(where: str, name: str, value: Any) -> tuple[str | Callable[..., Any], ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if not (callable(item) or (isinstance(item, str) and item)):
            raise _bad(where, name, "must be a callable or an action name", "pass 'notify'", item)
    return tuple(items)


@dataclass(frozen=True)
class Machine:
    """A validated machine definition."""

    name: str
    initial: str
    states: dict[str, State]
    resource: str | None = None
    field: str | None = None
    context: dict[str, Any] = _field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> Machine:
        """Validate one machine (``initialState`` is accepted for ``initial``).

        :raises ConfigError: unknown keys, no states, an unknown initial or target state.
        """
        where = f"machine {name!r}"
        if not isinstance(config, Mapping):
            raise _bad(where, "config", "must be a dict", "pass {'initial': ..., 'states': ...}")
        config = dict(config)
        if "initialState" in config:
            config.setdefault("initial", config.pop("initialState"))
        unknown = sorted(set(config) - _MACHINE_KEYS)
        if unknown:
            raise _bad(where, unknown[0], "is not a machine option", f"use {sorted(_MACHINE_KEYS)}")
        raw_states = config.get("states")
        if not isinstance(raw_states, Mapping) or not raw_states:
            raise _bad(where, "states", "must be a non-empty dict", "pass states={'a': {...}}")
        initial = config.get("initial")
        if initial not in raw_states:
            raise _bad(
                where, "initial", "must name a state", f"use one of {sorted(raw_states)}", initial
            )
        states: dict[str, State] = {}
        for sname, scfg in raw_states.items():
            swhere = f"{where} state {sname!r}"
            scfg = {} if scfg is None else scfg
            if not isinstance(scfg, Mapping):
                raise _bad(swhere, "config", "must be a dict", "pass {'on': {'EVENT': 'target'}}")
            bad = sorted(set(scfg) - _STATE_KEYS)
            if bad:
                raise _bad(swhere, bad[0], "is not a state option", f"use {sorted(_STATE_KEYS)}")
            kind = scfg.get("type")
            if kind not in (None, "final", "normal"):
                raise _bad(swhere, "type", "must be 'final' or absent", "pass type='final'", kind)
            on: dict[str, Transition] = {}
            raw_on = scfg.get("on") or {}
            if not isinstance(raw_on, Mapping):
                raise _bad(swhere, "on", "must be a dict of events", "pass {'GO': 'done'}", raw_on)
            for event, spec in raw_on.items():
                if isinstance(spec, str):
                    spec = {"target": spec}
                if not isinstance(spec, Mapping) or set(spec) - _TRANSITION_KEYS:
                    raise _bad(
                        swhere,
                        f"on.{event}",
                        "must be a target state or {'target', 'guard', 'actions'}",
                        "pass {'target': 'done', 'guard': 'ready'}",
                        spec,
                    )
                target = spec.get("target")
                if target not in raw_states:
                    raise _bad(
                        swhere,
                        f"on.{event}",
                        "targets an unknown state",
                        f"use one of {sorted(raw_states)}",
                        target,
                    )
                guard = spec.get("guard")
                if guard is not None and not (callable(guard) or isinstance(guard, str)):
                    raise _bad(
                        swhere,
                        f"on.{event}.guard",
                        "must be callable or a name",
                        "pass guard='paid' with guards={'paid': fn}",
                        guard,
                    )
                on[str(event)] = Transition(
                    str(sname),
                    str(event),
                    str(target),
                    guard,
                    _callables(swhere, f"on.{event}.actions", spec.get("actions")),
                )
            after: list[tuple[float | str, str]] = []
            for delay, event in (scfg.get("after") or {}).items():
                if isinstance(delay, str):
                    try:
                        delay = float(delay)
                    except ValueError:
                        pass  # a context field name: a date trigger
                if isinstance(delay, bool) or not (
                    (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0)
                    or (isinstance(delay, str) and delay)
                ):
                    raise _bad(
                        swhere,
                        "after",
                        "keys must be seconds or a context field",
                        "use {3600: 'EXPIRE'} or {'due_at': 'EXPIRE'}",
                        delay,
                    )
                if event not in on:
                    raise _bad(
                        swhere,
                        f"after.{delay}",
                        f"fires {event!r}, which this state does not handle",
                        f"add on={{{event!r}: ...}}",
                        event,
                    )
                after.append((delay if isinstance(delay, str) else float(delay), str(event)))
            states[str(sname)] = State(
                name=str(sname),
                final=kind == "final",
                entry=_callables(swhere, "entry", scfg.get("entry")),
                exit=_callables(swhere, "exit", scfg.get("exit")),
                after=tuple(after),
                on=on,
            )
            if states[str(sname)].final and on:
                raise _bad(swhere, "on", "is not allowed on a final state", "remove it")
        resource, fld = config.get("resource"), config.get("field")
        if (resource is None) != (fld is None) and not (resource and fld is None):
            raise _bad(where, "field", "needs resource=", "pass resource='orders'", fld)
        if resource is not None and not (isinstance(resource, str) and resource):
            raise _bad(where, "resource", "must be a resource name", "pass 'orders'", resource)
        if fld is not None and not (isinstance(fld, str) and fld):
            raise _bad(where, "field", "must be a field name", "pass field='status'", fld)
        ctx = config.get("context") or {}
        if not isinstance(ctx, Mapping):
            raise _bad(where, "context", "must be a dict", "pass context={}", ctx)
        return cls(str(name), str(initial), states, resource, fld, dict(ctx))

    def transitions(self) -> list[Transition]:
        """Every edge of the machine, state by state."""
        return [t for s in self.states.values() for t in s.on.values()]


def _check_dates(m: Machine, state: str, context: Mapping[str, Any]) -> None:
    """The context fields of ``state``'s date triggers must be dates (or absent): a value
    that is no date would set no timer, so it is refused before anything is written."""
    for trigger, event in m.states[state].after:
        if isinstance(trigger, str):
            value = context.get(trigger)
            if value is not None and to_timestamp(value) is None:
                raise ValidationError(
                    f"{m.name}: context field {trigger!r} = {value!r} is not a date, so the "
                    f"{event!r} trigger of state {state!r} could never fire",
                    errors=[{"field": trigger, "rule": "date", "message": "not a date"}],
                    suggestion="pass a datetime, an ISO 8601 string or epoch seconds",
                    metadata={"field": trigger, "reason": "not a date", "value": repr(value)},
                )


class _StateHelper:
    """``resource.state``: the plugin's methods bound to one machine."""

    def __init__(self, plugin: StateMachinePlugin, machine: str) -> None:
        self._plugin, self._machine = plugin, machine

    async def __call__(self, id: str) -> str:
        """``await resource.state(id)``: the current state of record ``id``."""
        return await self._plugin.get_state(self._machine, id)

    async def send(
        self,
        id: str,
        event: str,
        context: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> Any:
        """``plugin.send(machine, id, event, context, expected_version=)``."""
        return await self._plugin.send(
            self._machine, id, event, context, expected_version=expected_version
        )

    async def get(self, id: str) -> str:
        """The current state of ``id``."""
        return await self._plugin.get_state(self._machine, id)

    async def get_context(self, id: str) -> dict[str, Any]:
        """The context of ``id``."""
        return await self._plugin.get_context(self._machine, id)

    async def can(self, id: str, event: str, context: Mapping[str, Any] | None = None) -> bool:
        """True when ``event`` would apply now (``context`` as the event payload)."""
        return await self._plugin.can(self._machine, id, event, context)

    async def available_events(self, id: str) -> list[str]:
        return await self._plugin.available_events(self._machine, id)

    async def history(self, id: str) -> list[dict[str, Any]]:
        return await self._plugin.history(self._machine, id)


class StateMachinePlugin(Plugin):
    """Finite state machines: guarded transitions applied by compare-and-swap, entry/exit
    actions, final states, ``after`` timeouts and date triggers, history, DOT/Mermaid."""

    def __init__(
        self,
        *,
        machines: Mapping[str, Mapping[str, Any]] | None = None,
        state_machines: Mapping[str, Mapping[str, Any]] | None = None,
        guards: Mapping[str, Callable[..., Any]] | None = None,
        actions: Mapping[str, Callable[..., Any]] | None = None,
        history: bool = True,
        tick_interval: float | None = 5.0,
        lease_ttl: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        for name, given in (
            ("machines", machines),
            ("state_machines", state_machines),
            ("guards", guards),
            ("actions", actions),
        ):
            if given is not None and not isinstance(given, Mapping):
                raise _bad("options", name, "must be a dict", f"pass {name}={{'name': ...}}", given)
        for name, fns in (("guards", guards or {}), ("actions", actions or {})):
            for key, fn in fns.items():
                if not callable(fn):
                    raise _bad(
                        "options", f"{name}.{key}", "must be callable", "pass a function", fn
                    )
        merged = {**(state_machines or {}), **(machines or {})}
        self.machines = {n: Machine.from_config(n, c) for n, c in merged.items()}
        self.guards = dict(guards or {})
        self.actions = dict(actions or {})
        for m in self.machines.values():
            for t in m.transitions():
                if isinstance(t.guard, str) and t.guard not in self.guards:
                    raise _bad(
                        f"machine {m.name!r}",
                        f"on.{t.event}.guard",
                        f"names unknown guard {t.guard!r}",
                        f"pass guards={{{t.guard!r}: fn}}",
                    )
            for s in m.states.values():
                refs = [*s.entry, *s.exit, *(a for t in s.on.values() for a in t.actions)]
                for ref in refs:
                    if isinstance(ref, str) and ref not in self.actions:
                        raise _bad(
                            f"machine {m.name!r} state {s.name!r}",
                            "actions",
                            f"names unknown action {ref!r}",
                            f"pass actions={{{ref!r}: fn}}",
                        )
        for name, value in (("tick_interval", tick_interval), ("lease_ttl", lease_ttl)):
            if name == "tick_interval" and value is None:
                continue  # no timer job in this process
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise _bad("options", name, "must be a positive number of seconds", f"{name}=5")
        self.keep_history = history
        self.tick_interval = None if tick_interval is None else float(tick_interval)
        self.lease_ttl = float(lease_ttl)
        self._history: Resource | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def on_install(self) -> None:
        if self.keep_history:
            self._history = await self.create_plugin_resource(
                "transitions",
                attributes={
                    "machine": "string",
                    "entity_id": "string",
                    "from_state": "string",
                    "to_state": "string",
                    "event": "string",
                    "version": "integer",
                    "at": "number",
                    "payload": "json|optional",
                },
                partitions={"by_entity": {"fields": {"machine": "string", "entity_id": "string"}}},
            )
        for m in self.machines.values():
            if m.resource:
                await self.when_resource(m.resource, self._bind(m))

    def _bind(self, machine: Machine) -> Callable[[Resource], Any]:
        def bind(resource: Resource) -> None:
            self.add_resource_method(resource, "state", _StateHelper(self, machine.name))

        return bind

    async def on_start(self) -> None:
        timers = any(s.after for m in self.machines.values() for s in m.states.values())
        if timers and self.tick_interval is not None:
            self.timer_job = self.every(
                self.tick_interval,
                self.fire_due_timers,
                name="timers",
                leader=True,
                lease_ttl=self.lease_ttl,
            )

    # -- lookups -----------------------------------------------------------------------
    def _machine(self, name: str) -> Machine:
        try:
            return self.machines[name]
        except KeyError:
            raise NotFoundError(
                f"StateMachinePlugin has no machine {name!r}",
                suggestion=f"use one of {sorted(self.machines)}",
                metadata={"field": "machine", "reason": "unknown", "value": name},
            ) from None

    def _key(self, machine: str, id: str) -> str:
        return self.get_storage().get_plugin_key(None, "state", machine, id)

    async def _current(self, machine: Machine, id: str) -> dict[str, Any]:
        data = await self.get_storage().get(self._key(machine.name, id))
        if data is None:
            return {"state": machine.initial, "context": dict(machine.context), "version": 0}
        return dict(data)

    async def get_state(self, machine: str, id: str) -> str:
        """The current state of ``id`` (the initial state if it never moved; one GET)."""
        return str((await self._current(self._machine(machine), id))["state"])

    async def get_context(self, machine: str, id: str) -> dict[str, Any]:
        """The context of ``id``: machine defaults merged with every event's payload."""
        return dict((await self._current(self._machine(machine), id))["context"])

    async def _guard_ok(
        self, t: Transition, context: Mapping[str, Any], payload: Mapping[str, Any], id: str
    ) -> bool:
        if t.guard is None:
            return True
        fn = self.guards[t.guard] if isinstance(t.guard, str) else t.guard
        result = fn(context, payload, {"id": id, "event": t.event, "from": t.source})
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    async def available_events(self, machine: str, id: str) -> list[str]:
        """The events whose transition (and guard) would apply now, sorted."""
        m = self._machine(machine)
        cur = await self._current(m, id)
        state = m.states[cur["state"]]
        return sorted(
            [e for e, t in state.on.items() if await self._guard_ok(t, cur["context"], {}, id)]
        )

    async def can(
        self, machine: str, id: str, event: str, context: Mapping[str, Any] | None = None
    ) -> bool:
        """True when ``event`` would apply now (``context`` as the event payload)."""
        m = self._machine(machine)
        cur = await self._current(m, id)
        t = m.states[cur["state"]].on.get(event)
        if t is None:
            return False
        return await self._guard_ok(t, {**cur["context"], **(context or {})}, context or {}, id)

    # -- the transition ----------------------------------------------------------------
    async def initialize(
        self, machine: str, id: str, context: Mapping[str, Any] | None = None
    ) -> bool:
        """Create entity ``id`` in the initial state (with ``context``) and start the initial
        state's ``after`` timers; ``False`` when it exists already (then nothing changes).

        Not needed to send events (an unknown entity is in the initial state), only for
        timers of the initial state and an initial context.
        """
        m = self._machine(machine)
        if context is not None and not isinstance(context, Mapping):
            raise _bad(
                f"machine {machine!r}",
                "context",
                "must be a dict",
                "pass {'ends_at': ...}",
                context,
            )
        now = clock_time()
        ctx = {**m.context, **(context or {})}
        _check_dates(m, m.initial, ctx)
        created: list[bool] = []

        def step(current: Any) -> Any:
            created.clear()
            if current is not None:
                return None
            created.append(True)
            return {"state": m.initial, "context": ctx, "version": 0, "entered_at": now}

        await self.get_storage().update(self._key(machine, id), step)
        if created:
            await self._set_timers(m, id, m.initial, 0, now, ctx)
        return bool(created)

    async def send(
        self,
        machine: str,
        id: str,
        event: str,
        context: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Apply ``event`` to entity ``id`` atomically; returns the transition (``from``,
        ``to``, ``event``, ``version``, ``at``, ``context``).

        ``context`` is merged into the entity's context (guards see the merged one).
        ``expected_version`` makes the event apply only to that version of the entity.

        :raises TransitionError: the event is not handled in the current state, the guard
            refused, the state is final, or the version moved on.
        """
        m = self._machine(machine)
        if not isinstance(id, str) or not id:
            raise _bad(f"machine {machine!r}", "id", "must be a non-empty string", "pass 'o1'", id)
        if context is not None and not isinstance(context, Mapping):
            raise _bad(
                f"machine {machine!r}", "context", "must be a dict", "pass {'paid': True}", context
            )
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
        ):
            raise _bad(
                f"machine {machine!r}",
                "expected_version",
                "must be an int",
                "pass the version of a transition or of get_state's entity",
                expected_version,
            )
        payload = dict(context or {})
        found: dict[str, Any] = {}
        token = secrets.token_hex(8)  # recognises our own write after a lost answer

        async def step(current: Any) -> Any:
            cur: dict[str, Any] = (
                dict(current)
                if current is not None
                else {"state": m.initial, "context": dict(m.context), "version": 0}
            )
            if (cur.get("last") or {}).get("tid") == token and found:
                return None  # our own write, applied though its answer was lost: done
            version = int(cur.get("version", 0))
            where = {"machine": machine, "id": id, "event": event, "state": cur["state"]}
            if expected_version is not None and version != expected_version:
                raise TransitionError(
                    f"{machine} {id!r} is at version {version}, not {expected_version}",
                    suggestion="re-read the state and decide again",
                    metadata={**where, "field": "expected_version", "reason": "moved on"},
                )
            state = m.states[cur["state"]]
            t = state.on.get(event)
            if t is None:
                raise TransitionError(
                    f"{machine} {id!r}: event {event!r} is not allowed in state "
                    f"{cur['state']!r}" + (" (a final state)" if state.final else ""),
                    suggestion=f"allowed here: {sorted(state.on) or 'nothing'}",
                    metadata={**where, "field": "event", "reason": "not allowed"},
                )
            merged = {**cur["context"], **payload}
            _check_dates(m, t.target, merged)
            if not await self._guard_ok(t, merged, payload, id):
                raise TransitionError(
                    f"{machine} {id!r}: guard of {cur['state']!r} --{event}--> "
                    f"{t.target!r} refused",
                    suggestion="check the guard's inputs in the context",
                    metadata={**where, "field": "guard", "reason": "refused"},
                )
            now = clock_time()
            record = {
                "from": cur["state"],
                "to": t.target,
                "event": event,
                "version": version + 1,
                "at": now,
                "payload": payload,
                "tid": token,
            }
            found.clear()
            found.update(record, context=merged)
            return {
                "state": t.target,
                "context": merged,
                "version": version + 1,
                "entered_at": now,
                "last": record,
                "recent": [*list(cur.get("recent") or [])[-(_RECENT - 1) :], record],
            }

        await self.get_storage().update(self._key(machine, id), step)
        await self._after_commit(m, id, found)
        return dict(found)

    async def _after_commit(self, m: Machine, id: str, t: dict[str, Any]) -> None:
        version = int(t["version"])
        if self._history is not None:
            await self._history.upsert(self._row(m.name, id, t))
        target = m.states[t["to"]]
        await self._set_timers(m, id, t["to"], version, float(t["at"]), t["context"])
        if m.resource and m.field:
            resource = self.db.get_resource(m.resource)
            try:
                await resource.update(id, {m.field: t["to"]})
            except NotFoundError:
                pass  # a machine entity need not be a record
        source = m.states[t["from"]]
        tr = source.on[t["event"]]
        for ref in (*source.exit, *tr.actions, *target.entry):
            fn = self.actions[ref] if isinstance(ref, str) else ref
            try:
                result = fn(t["context"], {**t, "machine": m.name, "id": id}, self)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # an action never undoes the committed transition
                self.emit(
                    "state_machine.action_failed",
                    self._payload(machine=m.name, id=id, action=repr(ref), error=exc),
                )
        self.emit(
            "state_machine.transition",
            self._payload(
                machine=m.name,
                id=id,
                event=t["event"],
                from_state=t["from"],
                to_state=t["to"],
                version=version,
            ),
        )
        if target.final:
            self.emit("state_machine.final", self._payload(machine=m.name, id=id, state=t["to"]))

    # -- timers ------------------------------------------------------------------------
    async def _set_timers(
        self,
        m: Machine,
        id: str,
        state: str,
        version: int,
        entered_at: float,
        context: Mapping[str, Any],
    ) -> None:
        for delay, event in m.states[state].after:
            due = (
                entered_at + delay if isinstance(delay, float) else to_timestamp(context.get(delay))
            )
            if due is None:
                continue  # a date trigger whose field is missing: nothing to fire
            ms = max(0, int(due * 1000))
            key = self.get_storage().get_plugin_key(
                None, "timers", f"{ms:0{_DUE_WIDTH}d}", m.name, id, str(version), event
            )
            await self.get_storage().set(key, {"machine": m.name, "id": id, "version": version})

    async def fire_due_timers(self) -> int:
        """Send the event of every due timer whose entity is still in the version that set
        it; returns how many fired. Run by the leader job; callable directly."""
        storage = self.get_storage()
        prefix = storage.get_plugin_key(None, "timers") + "/"
        now_ms = int(clock_time() * 1000)
        fired = 0
        for key in await storage.list(prefix):
            rest = key[len(prefix) :] if key.startswith(prefix) else key.rsplit("timers/", 1)[-1]
            parts = rest.split("/")
            if len(parts) < 5:
                continue
            if int(parts[0]) > now_ms:
                break  # keys sort by due time
            machine, id, version, event = parts[1], "/".join(parts[2:-2]), parts[-2], parts[-1]
            if machine in self.machines:
                try:
                    await self.send(machine, id, event, expected_version=int(version))
                    fired += 1
                except (TransitionError, ValidationError):
                    pass  # moved on, the guard refused, or the target's date trigger field
                    # holds no date: the timer is void (one bad entity never stops the job)
            await storage.delete(key)  # last: a crash before it retries, CAS makes it a no-op
        return fired

    # -- history and pictures ----------------------------------------------------------
    @staticmethod
    def _row(machine: str, id: str, t: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{machine}:{id}:{int(t['version'])}",
            "machine": machine,
            "entity_id": id,
            "from_state": t["from"],
            "to_state": t["to"],
            "event": t["event"],
            "version": int(t["version"]),
            "at": t["at"],
            "payload": t["payload"],
        }

    async def history(self, machine: str, id: str) -> list[dict[str, Any]]:
        """The transitions of ``id``, oldest first (one GET of the state, one partition list).

        Rows that a process killed between its commit and its history write left out are
        restored from the last 20 transitions kept in the state object (and written).
        """
        self._machine(machine)
        if self._history is None:
            return []
        rows = await self._history.list(
            partition="by_entity", partition_values={"machine": machine, "entity_id": id}
        )
        found = {int(r["version"]): dict(r) for r in rows}
        state = await self.get_storage().get(self._key(machine, id)) or {}
        for t in state.get("recent") or []:
            if int(t["version"]) not in found:
                row = self._row(machine, id, t)
                await self._history.upsert(row)
                found[int(t["version"])] = dict(await self._history.get(row["id"]))
        return [found[v] for v in sorted(found)]

    def visualize(self, machine: str, format: str = "dot") -> str:
        """The machine as Graphviz DOT (``format="dot"``) or a Mermaid state diagram."""
        m = self._machine(machine)
        if format == "dot":
            lines = [f'digraph "{m.name}" {{', "  rankdir=LR;", "  __start [shape=point];"]
            for s in m.states.values():
                shape = "doublecircle" if s.final else "circle"
                lines.append(f'  "{s.name}" [shape={shape}];')
            lines.append(f'  __start -> "{m.initial}";')
            for t in m.transitions():
                label = t.event + (
                    f" [{t.guard if isinstance(t.guard, str) else 'guard'}]" if t.guard else ""
                )
                lines.append(f'  "{t.source}" -> "{t.target}" [label="{label}"];')
            lines.append("}")
            return "\n".join(lines) + "\n"
        if format == "mermaid":
            lines = ["stateDiagram-v2", f"    [*] --> {m.initial}"]
            for t in m.transitions():
                lines.append(f"    {t.source} --> {t.target}: {t.event}")
            for s in m.states.values():
                if s.final:
                    lines.append(f"    {s.name} --> [*]")
            return "\n".join(lines) + "\n"
        raise _bad("visualize", "format", "must be 'dot' or 'mermaid'", "pass 'mermaid'", format)
