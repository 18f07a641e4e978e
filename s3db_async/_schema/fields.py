"""Field specifications: the compiled form of attribute definitions.

A :class:`FieldSpec` is one leaf field (or the item definition of an array);
an :class:`ObjectSpec` is a nested object, or the root of a schema. Both are
built by :mod:`s3db_async._schema.schema`; ``ObjectSpec.validate`` runs the compiled
converters of its children and collects every failure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .encoding import b64u
from .types import Converter, Invalid, check_json, closest, fixed_places, join_path

__all__ = [
    "NO_DEFAULT",
    "SENSITIVE_TYPES",
    "FieldSpec",
    "ObjectSpec",
    "jsonable",
    "sensitive_field",
    "sensitive_kind",
]

NO_DEFAULT: Any = object()
"""The default of fields without one."""

SENSITIVE_TYPES = ("secret", "password")
"""Types whose values never go into keys, logs, reprs or assistant answers."""


@dataclass(eq=False, slots=True)
class FieldSpec:
    """One leaf field (or the item definition of an array, path ending in ``[]``)."""

    path: str
    name: str
    type: str
    required: bool = False
    nullable: bool = True
    explicit_nullable: bool = False
    default: Any = NO_DEFAULT
    rules: dict[str, Any] = field(default_factory=dict)
    enum: tuple[Any, ...] | None = None
    dimensions: int | None = None
    param: Any = None
    """The typed argument of a parameterized type: ``decimal:2`` → ``2``, ``bits:8`` → ``8``,
    ``geo:point`` → ``"point"``, ``money:EUR`` → ``"EUR"``, ``password`` → ``"argon2id"``."""
    items: FieldSpec | ObjectSpec | None = None
    description: str | None = None
    plugin: bool = False
    plugin_name: str | None = None
    convert: Converter = field(default=lambda v: v, repr=False)

    @property
    def has_default(self) -> bool:
        """True when a default is defined (the default may be None)."""
        return self.default is not NO_DEFAULT

    @property
    def secret(self) -> bool:
        """True for ``secret`` fields (encrypted at rest)."""
        return self.type == "secret"

    @property
    def password(self) -> bool:
        """True for ``password`` fields (one-way hashed)."""
        return self.type == "password"

    @property
    def type_rule(self) -> str:
        """The type token with its argument: ``"decimal:2"``, ``"geo:point"``, ``"string"``."""
        return self.type if self.param is None else f"{self.type}:{self.param}"

    @property
    def item_type(self) -> str | None:
        """The type of an array's items (``"object"`` for nested objects), else None."""
        if self.type != "array":
            return None
        if self.items is None:
            return "any"
        return "object" if isinstance(self.items, ObjectSpec) else self.items.type

    def make_default(self) -> Any:
        """A fresh copy of the default (mutable defaults are never shared)."""
        d = self.default
        return copy.deepcopy(d) if isinstance(d, (list, dict)) else d

    def definition(self) -> dict[str, Any]:
        """Canonical JSON-able rule dict of this field."""
        out: dict[str, Any] = {"type": self.type_rule}
        if self.required:
            out["required"] = True
        if self.explicit_nullable:
            out["nullable"] = True
        out.update({k: jsonable(v) for k, v in self.rules.items()})
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.dimensions is not None:
            out["dimensions"] = self.dimensions
        if self.items is not None:
            out["items"] = self.items.definition()
        if self.has_default:
            out["default"] = jsonable(self.default)
        if self.description:
            out["description"] = self.description
        return out

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of this field."""
        return _leaf_json_schema(self)


@dataclass(eq=False, slots=True)
class ObjectSpec:
    """A nested object (and the root of a schema, with path ``""``)."""

    path: str
    name: str
    children: dict[str, FieldSpec | ObjectSpec]
    required: bool = False
    nullable: bool = True
    explicit_required: bool = False
    explicit_optional: bool = False
    explicit_nullable: bool = False
    allow_extra: bool = False
    description: str | None = None
    plugin: bool = False
    plugin_name: str | None = None
    has_defaults: bool = False
    _leaves: dict[str, tuple[Converter, bool]] = field(default_factory=dict, repr=False)
    _nodes: dict[str, ObjectSpec] = field(default_factory=dict, repr=False)
    _fill: list[tuple[str, int, Any]] = field(default_factory=list, repr=False)

    def compile(self) -> None:
        """Precompute lookup tables (children are compiled first by the parser)."""
        self._leaves = {}
        self._nodes = {}
        self._fill = []
        has_defaults = False
        for name, child in self.children.items():
            if isinstance(child, FieldSpec):
                self._leaves[name] = (child.convert, child.nullable)
                if child.required:
                    self._fill.append((name, _REQUIRED, child))
                elif child.has_default:
                    self._fill.append((name, _DEFAULT, child))
                    has_defaults = True
            else:
                self._nodes[name] = child
                if child.required:
                    self._fill.append((name, _NODE, child))
                elif child.has_defaults and not child.explicit_optional:
                    self._fill.append((name, _NODE_SOFT, child))
                    has_defaults = True
        self.has_defaults = has_defaults

    def convert(self, value: Any) -> Any:
        """Converter form (full validation), used for array items."""
        return self.validate(value, False)

    def validate(self, data: Any, partial: bool) -> dict[str, Any]:
        """Check ``data`` against this object; raise :class:`Invalid` with every failure."""
        if type(data) is not dict and not isinstance(data, Mapping):
            raise Invalid([("", "object", "must be an object (a dict)", type(data).__name__)])
        out: dict[str, Any] = {}
        errors: list[tuple[str, str, str, str]] = []
        leaves = self._leaves
        for key, value in data.items():
            leaf = leaves.get(key)
            if leaf is not None:
                if value is None:
                    if leaf[1]:
                        out[key] = None
                    else:
                        errors.append((key, "required", "is required (not null)", "NoneType"))
                    continue
                try:
                    out[key] = leaf[0](value)
                except Invalid as exc:
                    errors.extend((join_path(key, p), r, m, t) for p, r, m, t in exc.errors)
                continue
            node = self._nodes.get(key)
            if node is not None:
                if value is None:
                    if node.nullable:
                        out[key] = None
                    else:
                        errors.append((key, "required", "is required (not null)", "NoneType"))
                    continue
                try:
                    out[key] = node.validate(value, partial)
                except Invalid as exc:
                    errors.extend((join_path(key, p), r, m, t) for p, r, m, t in exc.errors)
                continue
            self._extra(key, value, out, errors)
        if not partial and self._fill:
            for name, action, spec in self._fill:
                if name in data:
                    continue
                if action == _REQUIRED:
                    errors.append((name, "required", "is required", "missing"))
                elif action == _DEFAULT:
                    out[name] = spec.make_default()
                else:
                    try:
                        sub = spec.validate({}, False)
                    except Invalid as exc:
                        errors.extend((join_path(name, p), r, m, t) for p, r, m, t in exc.errors)
                        continue
                    if sub or action == _NODE:
                        out[name] = sub
        if errors:
            raise Invalid(errors)
        return out

    def _extra(
        self, key: Any, value: Any, out: dict[str, Any], errors: list[tuple[str, str, str, str]]
    ) -> None:
        if not self.allow_extra:
            hint = closest(str(key), list(self.children))
            msg = "is not in the schema" + (f" (did you mean {hint!r}?)" if hint else "")
            errors.append((str(key), "unknown", msg, type(value).__name__))
            return
        if type(key) is not str:
            errors.append((str(key), "json", "field names must be strings", type(value).__name__))
            return
        try:
            out[key] = check_json(value)
        except Invalid as exc:
            errors.extend((join_path(key, p), r, m, t) for p, r, m, t in exc.errors)

    def definition(self) -> dict[str, Any]:
        """Canonical JSON-able form (a nested dict, modifiers under ``$$type``)."""
        out: dict[str, Any] = {k: c.definition() for k, c in self.children.items()}
        mods = ["object"]
        if self.explicit_required:
            mods.append("required")
        if self.explicit_optional:
            mods.append("optional")
        if self.explicit_nullable:
            mods.append("nullable")
        if len(mods) > 1 or not self.children:
            out["$$type"] = "|".join(mods)
        if self.description:
            out["$$description"] = self.description
        return out

    def json_schema(self, *, hide_plugins: bool = False) -> dict[str, Any]:
        """JSON Schema (2020-12) of this object."""
        props: dict[str, Any] = {}
        required: list[str] = []
        for name, child in self.children.items():
            if hide_plugins and child.plugin:
                continue
            props[name] = child.json_schema()
            if child.required:
                required.append(name)
        out: dict[str, Any] = {
            "type": ["object", "null"] if self.nullable and self.path else "object",
            "properties": props,
            "additionalProperties": self.allow_extra,
        }
        if required:
            out["required"] = required
        if self.description:
            out["description"] = self.description
        return out


_REQUIRED, _DEFAULT, _NODE, _NODE_SOFT = range(4)


def sensitive_kind(spec: FieldSpec | ObjectSpec) -> str | None:
    """``"secret"`` or ``"password"`` when ``spec`` holds such values (array items and
    nested objects included, first found wins), else ``None``."""
    stack: list[FieldSpec | ObjectSpec] = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, ObjectSpec):
            stack.extend(node.children.values())
        elif node.type in SENSITIVE_TYPES:
            return node.type
        elif node.items is not None:
            stack.append(node.items)
    return None


def sensitive_field(path: str, sensitive: Mapping[str, str]) -> tuple[str, str] | None:
    """``(field, kind)`` when ``path`` is a sensitive field, inside one or holds one.

    ``sensitive`` maps field paths to their kind (``Schema.sensitive_fields``); the answer
    names ``path`` itself unless it lies inside a sensitive field.
    """
    kind = sensitive.get(path)
    if kind is not None:
        return path, kind
    for field_path, kind in sensitive.items():
        if field_path.startswith(path + ".") or path.startswith(field_path + "."):
            return (path if len(path) < len(field_path) else field_path), kind
    return None


def jsonable(value: Any) -> Any:
    """A JSON value for a definition (defaults, rule values): dates as ISO text, Decimals as
    their text, bytes as base64url (what the rule parser reads back)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return b64u(value)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


_FORMATS = {
    "email": "email",
    "url": "uri",
    "ip4": "ipv4",
    "ip6": "ipv6",
    "uuid": "uuid",
    "datetime": "date-time",
    "password": "password",
}
_PATTERNS = {
    "mac": r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}((:[0-9a-f]{2}){2})?$",
    "cidr": r"/[0-9]{1,3}$",
    "semver": r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?"
    r"(\+[0-9A-Za-z.-]+)?$",
}
_TEXT_SCHEMA = frozenset(
    {"string", "email", "url", "ip4", "ip6", "secret", "mac", "cidr", "uuid", "semver"}
) | {"datetime", "password"}


def _leaf_json_schema(spec: FieldSpec) -> dict[str, Any]:
    t = spec.type
    out: dict[str, Any]
    if t in _TEXT_SCHEMA:
        out = {"type": "string"}
        if t in _FORMATS:
            out["format"] = _FORMATS[t]
        if t in _PATTERNS:
            out["pattern"] = _PATTERNS[t]
        if t == "secret":
            out["writeOnly"] = True
        if "min" in spec.rules:
            out["minLength"] = spec.rules["min"]
        if "max" in spec.rules:
            out["maxLength"] = spec.rules["max"]
        if "pattern" in spec.rules:
            out["pattern"] = spec.rules["pattern"]
    elif t in ("number", "integer", "boolean"):
        out = {"type": t}
        if "min" in spec.rules:
            out["minimum"] = spec.rules["min"]
        if "max" in spec.rules:
            out["maximum"] = spec.rules["max"]
    elif t == "date":
        out = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
    elif t in ("decimal", "crypto", "money"):
        places = fixed_places(t, spec.param)
        frac = rf"\.[0-9]{{{places}}}" if places else ""
        out = {"type": "string", "pattern": rf"^-?[0-9]+{frac}$"}
        if spec.param is not None and t == "money":
            out["description"] = f"amount in {spec.param}"
        if "min" in spec.rules:
            out["x-minimum"] = jsonable(spec.rules["min"])
        if "max" in spec.rules:
            out["x-maximum"] = jsonable(spec.rules["max"])
    elif t == "bytes":
        out = {"type": "string", "contentEncoding": "base64"}
    elif t == "bits":
        n = spec.param
        out = {"type": "array", "items": {"type": "boolean"}, "minItems": n, "maxItems": n}
    elif t == "geo":
        lat = {"type": "number", "minimum": -90, "maximum": 90}
        lon = {"type": "number", "minimum": -180, "maximum": 180}
        if spec.param == "point":
            out = {"type": "array", "prefixItems": [lat, lon], "minItems": 2, "maxItems": 2}
        else:
            out = lat if spec.param == "lat" else lon
    elif t == "array":
        out = {"type": "array", "items": spec.items.json_schema() if spec.items else {}}
        if "min" in spec.rules:
            out["minItems"] = spec.rules["min"]
        if "max" in spec.rules:
            out["maxItems"] = spec.rules["max"]
    elif t == "embedding":
        n = spec.dimensions
        out = {"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n}
    elif t == "object":
        out = {"type": "object"}
    else:  # json, any
        out = {}
    if spec.enum is not None:
        out["enum"] = list(spec.enum) + ([None] if spec.nullable else [])
    if spec.nullable and "type" in out:
        out["type"] = [out["type"], "null"]
    if spec.has_default:
        out["default"] = jsonable(spec.default)
    if spec.description:
        out["description"] = spec.description
    return out
