"""Query filters compiled to predicates.

A filter is a mapping of field paths to conditions::

    {"status": "active"}                         # equality
    {"profile.age": {"$gte": 18, "$lt": 65}}     # dotted paths, comparison operators
    {"profile": {"country": "PT"}}               # nested mappings = nested paths
    {"region": {"$in": ["eu", "us"]}, "deleted": {"$ne": True}}
    {"$or": [{"a": 1}, {"b": {"$exists": False}}]}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains`` and the
combinators ``$and``, ``$or``, ``$not``. Comparisons between incomparable types
are simply false.

A path through an array of objects (``{"lines.sku": "A1"}``) matches when some item
matches; ``$ne``, ``$nin`` and ``$exists: False`` need every item to match (no item
has the value). With ``check_path`` every field path is checked before anything runs
(the resource passes its schema's check, so a misspelt field raises instead of
matching nothing).
Secrets and passwords: a filter on a ``secret`` field never selects a partition (none
may be defined on one); the records are read and decrypted, and compared in memory.
A ``password`` field holds a one-way hash, so only ``$exists`` applies to it: any
other condition raises (check a candidate with ``resource.verify_password``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._schema.fields import sensitive_field
from ..errors import ValidationError
from .partitions import get_path, is_missing

__all__ = [
    "Predicate",
    "check_group_field",
    "check_password_conditions",
    "compile_filter",
    "equality_pins",
    "sensitive_conditions",
]

Predicate = Callable[[Mapping[str, Any]], bool]

_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains"}


def _bad(
    message: str, path: str, suggestion: str = "see the query operators in docs/guide.md"
) -> ValidationError:
    return ValidationError(
        f"invalid filter: {message}",
        errors=[{"field": path or "$", "rule": "filter", "message": message}],
        suggestion=suggestion,
        metadata={"field": path},
    )


def _cmp(op: str, expected: Any) -> Callable[[Any], bool]:
    def compare(value: Any) -> bool:
        if is_missing(value) or value is None:
            return False
        try:
            if op == "$gt":
                return bool(value > expected)
            if op == "$gte":
                return bool(value >= expected)
            if op == "$lt":
                return bool(value < expected)
            return bool(value <= expected)
        except TypeError:
            return False

    return compare


def _condition(op: str, arg: Any, path: str) -> Callable[[Any], bool]:
    if op == "$eq":
        return lambda v: not is_missing(v) and v == arg
    if op == "$ne":
        return lambda v: is_missing(v) or v != arg
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmp(op, arg)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list | tuple | set | frozenset):
            raise _bad(f"{op} needs a list, got {type(arg).__name__}", path)
        options = list(arg)
        if op == "$in":
            return lambda v: not is_missing(v) and v in options
        return lambda v: is_missing(v) or v not in options
    if op == "$exists":
        want = bool(arg)
        return lambda v: (not is_missing(v) and v is not None) == want
    if op == "$contains":
        return lambda v: isinstance(v, list | str | dict) and arg in v
    raise _bad(f"unknown operator {op!r} (use one of {', '.join(sorted(_OPS))})", path)


def _all_of(subs: list[Predicate]) -> Predicate:
    return lambda r: all(s(r) for s in subs)


def _any_of(subs: list[Predicate]) -> Predicate:
    return lambda r: any(s(r) for s in subs)


def _negate(sub: Predicate) -> Predicate:
    return lambda r: not sub(r)


def _values(record: Mapping[str, Any], path: str) -> list[Any]:
    """The values at ``path``, one per array item when the path crosses arrays of objects."""
    value = get_path(record, path)
    if not is_missing(value) or "." not in path:
        return [value]
    cur: list[Any] = [record]
    for part in path.split("."):
        nxt: list[Any] = []
        for v in cur:
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, Mapping) and part in item:
                    nxt.append(item[part])
        cur = nxt
    return cur or [value]


def _field_checks(path: str, checks: list[tuple[bool, Callable[[Any], bool]]]) -> Predicate:
    def check(r: Mapping[str, Any]) -> bool:
        values = _values(r, path)
        return all((all if every else any)(c(v) for v in values) for every, c in checks)

    return check


def _field_equals(path: str, expected: Any) -> Predicate:
    def check(r: Mapping[str, Any]) -> bool:
        return any(not is_missing(v) and bool(v == expected) for v in _values(r, path))

    return check


def _every_item(op: str, arg: Any) -> bool:
    """True for the conditions an array path must satisfy for every item."""
    return op in ("$ne", "$nin") or (op == "$exists" and not arg)


def _compile(
    flt: Mapping[str, Any], base: str, check_path: Callable[[str], None] | None
) -> list[Predicate]:
    preds: list[Predicate] = []
    for key, cond in flt.items():
        if not isinstance(key, str):
            raise _bad(f"keys must be strings, got {key!r}", base)
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not all(isinstance(c, Mapping) for c in cond):
                raise _bad(f"{key} needs a list of filters", base)
            subs = [compile_filter(c, check_path=check_path, _base=base) for c in cond]
            preds.append(_all_of(subs) if key == "$and" else _any_of(subs))
            continue
        if key == "$not":
            if not isinstance(cond, Mapping):
                raise _bad("$not needs a filter", base)
            preds.append(_negate(compile_filter(cond, check_path=check_path, _base=base)))
            continue
        if key.startswith("$"):
            raise _bad(f"operator {key!r} needs a field", base)
        path = f"{base}.{key}" if base else key
        if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
            if check_path is not None:
                check_path(path)
            checks = [(_every_item(op, arg), _condition(op, arg, path)) for op, arg in cond.items()]
            preds.append(_field_checks(path, checks))
        elif isinstance(cond, Mapping) and cond:
            preds.extend(_compile(cond, path, check_path))
        else:
            if check_path is not None:
                check_path(path)
            preds.append(_field_equals(path, cond))
    return preds


def compile_filter(
    flt: Mapping[str, Any] | None,
    *,
    check_path: Callable[[str], None] | None = None,
    _base: str = "",
) -> Predicate:
    """Compile ``flt`` into ``predicate(record) -> bool``.

    :param check_path: called with every field path (raises on an unknown one).
    :raises ValidationError: malformed filter (unknown operator, wrong argument type).
    """
    if flt is None:
        return lambda r: True
    if not isinstance(flt, Mapping):
        raise _bad(f"a filter must be a mapping, got {type(flt).__name__}", _base)
    preds = _compile(flt, _base, check_path)
    if not preds:
        return lambda r: True
    if len(preds) == 1:
        return preds[0]
    return lambda r: all(p(r) for p in preds)


def equality_pins(flt: Mapping[str, Any] | None, *, _base: str = "") -> dict[str, Any]:
    """Field paths the filter pins to a single value (plain equality or ``$eq``)."""
    pins: dict[str, Any] = {}
    for key, cond in (flt or {}).items():
        if key == "$and" and isinstance(cond, list):
            for sub in cond:
                if isinstance(sub, Mapping):
                    pins.update(equality_pins(sub, _base=_base))
            continue
        if key.startswith("$"):
            continue
        path = f"{_base}.{key}" if _base else key
        if isinstance(cond, Mapping):
            if cond and all(str(k).startswith("$") for k in cond):
                if "$eq" in cond:
                    pins[path] = cond["$eq"]
            else:
                pins.update(equality_pins(cond, _base=path))
        else:
            pins[path] = cond
    return pins


def _conditions(flt: Mapping[str, Any], base: str) -> Iterator[tuple[str, str]]:
    """``(field path, operator)`` of every condition of a filter (malformed parts skipped:
    :func:`compile_filter` reports them)."""
    for key, cond in flt.items():
        if not isinstance(key, str):
            continue
        if key in ("$and", "$or") and isinstance(cond, list):
            for sub in cond:
                if isinstance(sub, Mapping):
                    yield from _conditions(sub, base)
        elif key == "$not" and isinstance(cond, Mapping):
            yield from _conditions(cond, base)
        elif not key.startswith("$"):
            path = f"{base}.{key}" if base else key
            if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
                yield from ((path, str(op)) for op in cond)
            elif isinstance(cond, Mapping) and cond:
                yield from _conditions(cond, path)
            else:
                yield path, "$eq"


def sensitive_conditions(
    flt: Mapping[str, Any] | None, sensitive: Mapping[str, str]
) -> Iterator[tuple[str, str]]:
    """``(field, kind)`` of each condition other than ``$exists`` on a secret or password
    field (``sensitive``: path → kind, see ``Schema.sensitive_fields``)."""
    for path, op in _conditions(flt or {}, ""):
        hit = None if op == "$exists" else sensitive_field(path, sensitive)
        if hit is not None:
            yield hit


def check_password_conditions(flt: Mapping[str, Any] | None, sensitive: Mapping[str, str]) -> None:
    """Refuse conditions (but ``$exists``) on password fields: they hold one-way hashes.

    :raises ValidationError: naming the field.
    """
    for field, kind in sensitive_conditions(flt, sensitive):
        if kind == "password":
            raise _bad(
                f"{field!r} holds one-way password hashes and cannot be compared",
                field,
                "check a candidate with resource.verify_password(id, field, candidate); "
                "only {'$exists': true|false} applies to a password field",
            )


def check_group_field(by: str, sensitive: Mapping[str, str]) -> None:
    """Refuse grouping (``count(by=)``) on a secret or password field.

    :raises ValidationError: naming the field.
    """
    hit = sensitive_field(by, sensitive)
    if hit is not None:
        message = f"cannot group by {hit[1]} field {hit[0]!r}: the groups would show its values"
        raise ValidationError(
            message,
            errors=[{"field": by, "rule": "by", "message": message}],
            suggestion="group by a field that is not a secret or a password",
            metadata={"field": by},
        )
