"""How a change feed consumer decides the intents of one record (see docs/reliability.md).

Pure functions of what the consumer listed and read: the intents of the record after its
cursor (their keys say change id, operation, ``prev`` and record id) and the change id the
record carries now. No request is made here.

- **committed**: the record carries the change id, or an intent names it as ``prev``, or a
  committed change does, transitively (a writer only reads what landed);
- an insert or update not proven so is **failed** once overdue (its writer's deadline has
  passed), **held** until then: nothing of the record at or after it is decided;
- a **delete** is done when the record was gone after it (absent now, or re-created by a
  committed insert later); it is delivered at the end of the life it ended, once for
  several deletes of one life; without that evidence it fails once overdue;
- an overdue update that a delete may have removed unseen (S3 deletes carry no condition)
  is delivered as committed, before that delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .._resource.feed import IntentKey, change_time

__all__ = ["ABSENT", "NO_ID", "Decision", "Emit", "decide"]

ABSENT = "\x00absent"
"""The record state of a record that does not exist."""
NO_ID = "\x00none"
"""The record state of a record that carries no change id (written before the watch)."""


@dataclass(slots=True)
class Emit:
    """A change to deliver: its intent, its place in the delivery order and, for a delete,
    the intent whose ``after`` is the last form of the record it deleted."""

    pos: tuple[str, int]
    key: IntentKey
    before_of: IntentKey | None = None


@dataclass(slots=True)
class Decision:
    """What :func:`decide` concluded for one record."""

    emit: list[Emit] = field(default_factory=list)
    decided: set[str] = field(default_factory=set)
    failed: int = 0
    held: bool = False


def decide(
    keys: Sequence[IntentKey],
    all_keys: Sequence[IntentKey],
    state: str,
    *,
    window: Mapping[str, IntentKey],
    old: float,
    timeout: float,
) -> Decision:
    """Decide the undecided intents ``keys`` of one record (``all_keys``: every intent
    of it listed after the cursor; ``state``: the change id it carries now, or
    :data:`ABSENT` / :data:`NO_ID`; ``window``: every listed intent by change id;
    intents written before the time ``old`` are past their writers' deadline of
    ``timeout`` seconds)."""
    out = Decision()
    committed: set[str] = set()
    stack = [state] if state not in (ABSENT, NO_ID) else []
    stack += [k.prev for k in all_keys if k.prev]
    while stack:
        cid = stack.pop()
        if cid in committed:
            continue
        committed.add(cid)
        known = window.get(cid)
        if known is not None and known.prev:
            stack.append(known.prev)
    inserts_after = sorted(c for c in committed if c in window and window[c].op == "insert")
    absent = state == ABSENT
    life_before: IntentKey | None = None  # the last committed form of the current life
    pending: list[IntentKey] = []  # deletes that ended the current life
    deletes = [k for k in all_keys if k.op == "delete"]

    def overdue(k: IntentKey) -> bool:
        return change_time(k.cid).timestamp() <= old

    def flush(pos: tuple[str, int]) -> None:
        if pending:
            last = pending[-1]
            out.emit.append(Emit(pos, last, before_of=life_before))
            out.decided.update(k.cid for k in pending)
            pending.clear()

    for k in keys:
        if k.op == "delete":
            evidence = absent or any(n > k.cid for n in inserts_after)
            if evidence:
                pending.append(k)
                continue
            if overdue(k):
                out.decided.add(k.cid)
                out.failed += 1
                continue
            out.held = True
            break
        if k.cid in committed:
            if k.op == "insert":
                flush((k.cid, 0))
            out.emit.append(Emit((k.cid, 1), k))
            out.decided.add(k.cid)
            life_before = k
            continue
        if not overdue(k):
            out.held = True
            break
        if k.op == "update" and _deleted_unseen(k, deletes, absent, inserts_after, window, timeout):
            out.emit.append(Emit((k.cid, 1), k))
            out.decided.add(k.cid)
            life_before = k
            continue
        out.decided.add(k.cid)
        out.failed += 1
    if out.held:
        # a held change may still turn out to precede the pending deletes: hold them too
        out.decided.difference_update(k.cid for k in pending)
        pending.clear()
    else:
        flush((keys[-1].cid, 2))
    return out


def _deleted_unseen(
    k: IntentKey,
    deletes: Iterable[IntentKey],
    absent: bool,
    inserts: Sequence[str],
    window: Mapping[str, IntentKey],
    timeout: float,
) -> bool:
    """An update of the record life that a delete removed, written before that delete's
    deadline: it may have landed and been deleted unseen (S3 deletes are
    unconditional), so it cannot be told from a write that never landed."""
    life: set[str] = set()
    cid = k.prev
    while cid and cid not in life:  # the states this update's life went through
        life.add(cid)
        known = window.get(cid)
        cid = known.prev if known is not None and known.op != "insert" else None
    written = change_time(k.cid).timestamp()
    for d in deletes:
        if not d.prev or d.prev not in life:
            continue
        if written > change_time(d.cid).timestamp() + timeout:
            continue  # written after that delete had run or been given up
        if absent or any(n > d.cid for n in inserts):
            return True
    return False
