"""Field paths named by callers (query filters, ``count(by=)``) checked against a schema.

A typo must not silently match nothing: ``query({"regoin": "eu"})`` raises a
:class:`ValidationError` that names the path and suggests the closest known one.

Valid paths: ``id``; every field and nested object (``profile``, ``profile.age``),
timestamps and plugin attributes included (they are in the schema); fields of the
objects inside an array (``lines.sku`` for ``lines: array|items:{sku: ...}``); anything
below a free-form value (``json``, ``any``, ``object`` without props, an array without
typed items). A schema with ``allow_extra`` accepts any path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from ..errors import ValidationError
from .fields import FieldSpec, ObjectSpec
from .schema import Schema

__all__ = ["check_field_path", "known_paths"]

_FREE_FORM = frozenset({"json", "any", "object"})


def _walk(node: ObjectSpec, prefix: str) -> Iterator[str]:
    for name, child in node.children.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        if isinstance(child, ObjectSpec):
            yield from _walk(child, path)
        elif isinstance(child.items, ObjectSpec):
            yield from _walk(child.items, path)


def known_paths(schema: Schema) -> list[str]:
    """Every path a filter may name (``id`` first)."""
    return ["id", *_walk(schema.root, "")]


def _open_below(spec: FieldSpec) -> bool:
    """True when anything may sit below this leaf (no schema to check against)."""
    if spec.type in _FREE_FORM:
        return True
    if spec.type != "array":
        return False
    items = spec.items
    return items is None or (isinstance(items, FieldSpec) and items.type in _FREE_FORM)


def _is_known(schema: Schema, path: str) -> bool:
    if schema.allow_extra or path == "id":
        return True
    node: ObjectSpec = schema.root
    parts = path.split(".")
    for i, part in enumerate(parts):
        child = node.children.get(part)
        if child is None:
            return False
        last = i == len(parts) - 1
        if isinstance(child, ObjectSpec):
            if last:
                return True
            node = child
        elif last or _open_below(child):
            return True
        elif isinstance(child.items, ObjectSpec):
            node = child.items
        else:
            return False  # a scalar leaf has no sub-fields
    return False  # pragma: no cover - the loop always returns


def check_field_path(
    schema: Schema,
    path: str,
    *,
    where: str,
    resource: str = "",
    older: Iterable[Schema] = (),
) -> None:
    """Raise unless ``path`` names a field of ``schema`` (see the module docstring).

    :param where: what named the path, for the message (``"query filter"``, ``"count(by=)"``).
    :param older: schemas of earlier versions: a field that was dropped is still known
        (records written before keep it).
    :raises ValidationError: unknown path; ``suggestion`` has the closest known path.
    """
    text = str(path)
    if _is_known(schema, text):
        return
    older = list(older)
    if any(_is_known(s, text) for s in older):
        return
    paths = known_paths(schema)
    for s in older:
        paths += [p for p in known_paths(s) if p not in paths]
    close = difflib.get_close_matches(text, paths, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(paths[:30]) + (", ..." if len(paths) > 30 else "")
    owner = f" of resource {resource!r}" if resource else ""
    raise ValidationError(
        f"unknown field {text!r} in {where}{owner}",
        errors=[
            {
                "field": text,
                "rule": "unknown_field",
                "message": f"{text} is not a field{owner}",
                "value_type": "path",
            }
        ],
        suggestion=f"{hint}fields: {shown}",
        metadata={"field": text, "resource": resource},
    )
