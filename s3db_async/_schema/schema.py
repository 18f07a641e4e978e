"""Resource schemas: attribute definitions compiled once into fast validators.

Usage::

    schema = Schema({
        "email": "string|required|email",
        "name": "string|min:2|max:50",
        "profile": {"age": "number|optional", "tags": "array|items:string"},
        "status": "string|enum:active,inactive|default:active",
        "password": "secret",
    })
    clean = schema.validate({"email": "a@b.co", "name": "Ann"})

Definitions
-----------
A field is defined by a **rule string** (``"string|required|min:2"``: the type
token plus rules separated by ``|``, arguments after the first ``:``) or a
**rule dict** (``{"type": "string", "required": True, "min": 2}``; ``type`` may
itself be a rule string). Types: ``string number integer boolean date datetime
array object json secret embedding:N email url ip4 ip6 mac cidr uuid semver bytes
bits:N decimal:N crypto[:N] money[:CUR] geo:lat geo:lon geo:point
password[:bcrypt] enum:a,b any`` (see ``docs/types.md``). Rules:
``required``, ``optional`` (the default), ``nullable``, ``default:x`` (typed by
the field type; JSON for arrays/objects), ``min:``/``max:`` (string length,
array length or number value), ``pattern:`` (regex search, strings),
``enum:a,b`` (values typed by the field type), ``items:T`` (arrays; the dict
form takes any definition, including a nested object), ``dimensions``
(embeddings), ``description``.

A dict is a rule dict when it has a string ``type`` and only rule keys;
any other dict is a **nested object** whose keys are field names. A nested
object takes its own modifiers from the reserved key ``"$$type"``
(``"object|optional"``, ``"object|required"``, ``"object|nullable"``).
``{"type": "object", "props": {...}}`` is the same nested object in rule-dict
form. Use ``"$$type": "object"`` to force the nested reading of a dict whose
fields would otherwise look like rules (e.g. a field named ``type``).

Semantics
---------
- Fields are optional unless ``required``. An optional field (and a
  ``nullable`` required one) accepts ``None``, which is stored and read back
  as ``None``; an absent field stays absent.
- ``default`` applies when the field is absent (not when it is ``None``).
- A nested object is required when ``$$type`` says so or when it holds a
  required field (unless ``$$type`` says ``optional``). An absent nested
  object that is not required stays absent, except that one without an
  explicit ``optional`` whose fields have defaults is created with them.
- Unknown fields fail unless ``allow_extra=True`` (then kept; they must be
  JSON values).
- Coercions are listed in :mod:`s3db_async._schema.types` (integral floats for
  ``integer``, ISO strings for ``date``, tuples to lists, canonical strs for
  network types, exact Decimals for fixed point, hashes for passwords). ``date``
  keeps the Python type it was given: a ``date`` stays a ``date``, a ``datetime``
  stays a ``datetime`` (naive or aware); ``datetime`` always gives a ``datetime``.

Schemas are immutable: :meth:`Schema.with_plugin_attribute` returns a new one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from ..errors import SchemaError, ValidationError
from .fields import FieldSpec, ObjectSpec, sensitive_kind
from .types import (
    DICT_KEYS,
    FIXED_POINT,
    FLAG_RULES,
    PARAM_TYPES,
    RULES_BY_TYPE,
    TYPES,
    Converter,
    Invalid,
    array_converter,
    embedding_converter,
    join_path,
    nullable_items,
    parse_bool,
    parse_default,
    parse_enum_values,
    parse_number,
    parse_type_param,
    required_items,
    rule_suggestion,
    scalar_converter,
    tokenize,
)

__all__ = ["FieldSpec", "ObjectSpec", "Schema"]

_NAME_BAD = re.compile(r"[.\[\]]")
_ARG = "$arg"
"""Key of a type token's argument in a raw rule dict (``decimal:2`` → ``"2"``)."""
_LENGTH_TYPES = frozenset({"string", "email", "url", "secret", "array", "bytes", "password"})
_OBJECT_KEYS = ("$$type", "$$plugin", "$$description")
_REFINES = {
    "string": ("email", "url", "ip4", "ip6", "secret", "mac", "cidr", "uuid", "semver"),
    "number": ("integer",),
}
"""A type token may refine a broader one: ``string|email`` is ``email``."""


class _Text(str):
    """A rule argument still in text form (typed once the field type is known)."""

    __slots__ = ()


# -- parsing ----------------------------------------------------------------------


def _schema_error(path: str, rule: str, message: str, suggestion: str | None = None) -> SchemaError:
    where = f"field {path!r}" if path else "schema"
    return SchemaError(
        f"{where}: {message}",
        suggestion=suggestion,
        errors=[{"field": path, "rule": rule, "message": message, "value_type": "definition"}],
        metadata={"field": path, "rule": rule},
    )


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name:
        raise _schema_error(path, "name", f"field names must be non-empty strings, got {name!r}")
    if _NAME_BAD.search(name) or name.startswith("$$"):
        raise _schema_error(
            join_path(path, name),
            "name",
            f"field name {name!r} may not contain '.', '[' or ']' nor start with '$$'",
            "rename the field (nested objects give dotted paths automatically)",
        )


def _is_rule_dict(d: Mapping[str, Any], path: str) -> bool:
    if not isinstance(d.get("type"), str) or any(str(k).startswith("$$") for k in d):
        return False
    unknown = [k for k in d if k not in DICT_KEYS]
    if not unknown:
        return True
    for k in unknown:  # a nested object that has a field named "type" ...
        if not isinstance(d[k], (str, Mapping)):  # ... or a rule dict with a typo
            hint = rule_suggestion(str(k))
            raise _schema_error(
                join_path(path, str(k)), str(k), f"unknown rule {k!r} in rule dict", hint
            )
    return False


def parse_definition(
    defn: Any, path: str, name: str, *, plugin_name: str | None, plugin: bool, allow_extra: bool
) -> FieldSpec | ObjectSpec:
    """Parse one attribute definition (rule string, rule dict or nested object)."""
    if isinstance(defn, str):
        return _build_leaf(
            _raw_from_string(defn, path), path, name, plugin, plugin_name, allow_extra
        )
    if isinstance(defn, Mapping):
        if _is_rule_dict(defn, path):
            raw = _raw_from_string(defn["type"], path)
            for key, value in defn.items():
                if key != "type":
                    raw[key] = value
            plugin_name = raw.pop("plugin", None) or plugin_name
            return _build_leaf(raw, path, name, plugin, plugin_name, allow_extra)
        return _build_object(defn, path, name, plugin, plugin_name, allow_extra)
    raise _schema_error(
        path,
        "definition",
        f"a definition must be a rule string or a dict, got {type(defn).__name__}",
        "write e.g. 'string|required' or {'type': 'string', 'required': True}",
    )


def _raw_from_string(text: str, path: str) -> dict[str, Any]:
    tokens = tokenize(text)
    if not tokens:
        raise _schema_error(path, "type", "empty rule string", "start with a type, e.g. 'string'")
    raw: dict[str, Any] = {}
    type_token: tuple[str, str | None] | None = None
    enum_tokens = 0
    for tname, arg in tokens:
        if (tname not in TYPES and tname not in DICT_KEYS) or tname in ("type", "plugin", "props"):
            raise _schema_error(
                path, tname, f"unknown rule {tname!r} in {text!r}", rule_suggestion(tname)
            )
        if tname in TYPES and tname != "enum":
            if type_token is not None and type_token[1] is None and arg is None:
                if tname in _REFINES.get(type_token[0], ()):
                    type_token = (tname, None)  # string|email -> email
                    continue
                if type_token[0] in _REFINES.get(tname, ()):
                    continue  # email|string -> email
            if type_token is not None:
                raise _schema_error(
                    path, tname, f"two types ({type_token[0]!r} and {tname!r}) in {text!r}"
                )
            type_token = (tname, arg)
            continue
        if tname == "enum":
            enum_tokens += 1
        if tname in raw:
            raise _schema_error(path, tname, f"rule {tname!r} given twice in {text!r}")
        if tname in FLAG_RULES:
            try:
                raw[tname] = True if arg is None else parse_bool(arg)
            except ValueError as exc:
                raise _schema_error(path, tname, str(exc)) from None
        elif arg is None:
            raise _schema_error(path, tname, f"rule {tname!r} needs an argument ('{tname}:...')")
        else:
            raw[tname] = _Text(arg)
    if type_token is None:
        if enum_tokens:
            type_token = ("string", None)
        else:
            raise _schema_error(
                path, "type", f"no type in {text!r}", f"add a type, e.g. 'string|{text}'"
            )
    tname, targ = type_token
    if tname == "embedding":
        if targ is not None:
            raw["dimensions"] = _Text(targ)
    elif tname == "enum":  # pragma: no cover - handled above (enum is never the type token)
        tname = "string"
    elif tname in PARAM_TYPES:
        raw[_ARG] = targ
    elif targ is not None:
        raise _schema_error(path, tname, f"type {tname!r} takes no argument ({tname}:{targ})")
    raw["type"] = tname
    return raw


def _typed_number(raw: dict[str, Any], key: str, path: str, *, integer: bool) -> Any:
    value = raw[key]
    try:
        if isinstance(value, str):
            value = parse_number(value, integer=integer)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a number")
        if integer and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{value!r} is not a non-negative integer")
    except ValueError as exc:
        raise _schema_error(path, key, f"bad argument for {key!r}: {exc}") from None
    return value


def _typed_decimal(raw: dict[str, Any], key: str, path: str) -> Decimal:
    value = raw[key]
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise ValueError(f"{value!r} is not a number")
        d = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        if not d.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
    except (ValueError, InvalidOperation) as exc:
        raise _schema_error(path, key, f"bad argument for {key!r}: {exc}") from None
    return d


def _build_leaf(
    raw: dict[str, Any],
    path: str,
    name: str,
    plugin: bool,
    plugin_name: str | None,
    allow_extra: bool,
) -> FieldSpec | ObjectSpec:
    tname = raw.pop("type")
    targ = raw.pop(_ARG, None)
    if tname == "enum":
        tname = "string"
    if tname not in RULES_BY_TYPE:
        raise _schema_error(path, tname, f"unknown type {tname!r}", rule_suggestion(tname))
    allowed = RULES_BY_TYPE[tname]
    for key in raw:
        if key not in allowed:
            raise _schema_error(
                path,
                key,
                f"rule {key!r} does not apply to type {tname!r}",
                f"rules for {tname!r}: {', '.join(sorted(allowed))}",
            )
    flags = {k: bool(raw.pop(k)) for k in FLAG_RULES if k in raw}
    if flags.get("required") and flags.get("optional"):
        raise _schema_error(path, "optional", "a field cannot be both required and optional")
    required = flags.get("required", False)
    explicit_nullable = flags.get("nullable", False)
    description = raw.pop("description", None)
    if tname == "object" and "props" in raw:
        props = raw.pop("props")
        if not isinstance(props, Mapping):
            raise _schema_error(path, "props", "'props' must be a dict of field definitions")
        mods = ["object"] + [k for k in FLAG_RULES if flags.get(k)]
        node_def = {**props, "$$type": "|".join(mods)}
        if description:
            node_def["$$description"] = str(description)
        return _build_object(node_def, path, name, plugin, plugin_name, allow_extra)
    spec = FieldSpec(
        path=path,
        name=name,
        type=tname,
        required=required,
        nullable=not required or explicit_nullable,
        explicit_nullable=explicit_nullable,
        description=str(description) if description else None,
        plugin=plugin,
        plugin_name=plugin_name,
    )
    if tname in PARAM_TYPES:
        try:
            spec.param = parse_type_param(tname, targ)
        except ValueError as exc:
            raise _schema_error(path, tname, str(exc)) from None
    length_rules = tname in _LENGTH_TYPES
    for key in ("min", "max"):
        if key in raw:
            if tname in FIXED_POINT:
                spec.rules[key] = _typed_decimal(raw, key, path)
            else:
                spec.rules[key] = _typed_number(raw, key, path, integer=length_rules)
    _check_range(spec.rules, path)
    if "pattern" in raw:
        pattern = str(raw["pattern"])
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _schema_error(path, "pattern", f"invalid regex {pattern!r}: {exc}") from None
        spec.rules["pattern"] = pattern
    if tname == "embedding":
        if "dimensions" not in raw:
            raise _schema_error(
                path, "dimensions", "embedding needs its size: 'embedding:768' (or 'dimensions')"
            )
        dims = _typed_number(raw, "dimensions", path, integer=True)
        if dims < 1:
            raise _schema_error(path, "dimensions", "embedding dimensions must be >= 1")
        spec.dimensions = dims
        spec.convert = embedding_converter(dims)
    elif tname == "array":
        item_conv: Converter | None = None
        if raw.get("items") is not None:
            items = parse_definition(
                raw["items"],
                path + "[]",
                name,
                plugin_name=plugin_name,
                plugin=plugin,
                allow_extra=allow_extra,
            )
            spec.items = items
            item_conv = items.convert
            if isinstance(items, FieldSpec) and items.type not in ("json", "any"):
                wrap = nullable_items if items.explicit_nullable else required_items
                item_conv = wrap(item_conv, items.type)
        spec.convert = array_converter(spec.rules, item_conv)
    else:
        if "enum" in raw:
            values = raw["enum"]
            try:
                if isinstance(values, str):
                    values = parse_enum_values(tname, values)
                if not isinstance(values, (list, tuple)) or not values:
                    raise ValueError("enum needs a non-empty list of values")
                base = scalar_converter(tname, {}, None)
                spec.enum = tuple(base(v) for v in values)
            except (ValueError, Invalid) as exc:
                raise _schema_error(path, "enum", f"bad enum values: {_why(exc)}") from None
            _check_enum_rules(spec, path)
        spec.convert = scalar_converter(tname, spec.rules, spec.enum, spec.param)
    if "default" in raw:
        value = raw["default"]
        try:
            if isinstance(value, _Text) or (tname == "bytes" and isinstance(value, str)):
                value = parse_default(tname, value)
            spec.default = None if value is None and spec.nullable else spec.convert(value)
        except (ValueError, Invalid, msgspec.DecodeError) as exc:
            raise _schema_error(
                path, "default", f"default {raw['default']!r} is invalid: {_why(exc)}"
            ) from None
    return spec


def _check_range(rules: Mapping[str, Any], path: str) -> None:
    """``min`` above ``max`` would reject every value: refuse the definition."""
    lo, hi = rules.get("min"), rules.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise _schema_error(
            path,
            "min",
            f"contradictory rules: min:{lo} is greater than max:{hi}",
            "swap them, or drop one",
        )


def _check_enum_rules(spec: FieldSpec, path: str) -> None:
    """Every enum value must pass the field's other rules (``min``, ``max``, ``pattern``)."""
    if not spec.rules or not spec.enum:
        return
    check = scalar_converter(spec.type, spec.rules, None, spec.param)
    for value in spec.enum:
        try:
            check(value)
        except Invalid as exc:
            raise _schema_error(
                path,
                "enum",
                f"contradictory rules: enum value {value!r} {_why(exc)}",
                "change the enum values or the rule they break",
            ) from None


def _why(exc: Exception) -> str:
    if isinstance(exc, Invalid):
        return "; ".join(m for _, _, m, _ in exc.errors)
    return str(exc)


def _build_object(
    defn: Mapping[str, Any],
    path: str,
    name: str,
    plugin: bool,
    plugin_name: str | None,
    allow_extra: bool,
) -> ObjectSpec:
    mods: dict[str, bool] = {}
    type_text = defn.get("$$type")
    if type_text is not None:
        if not isinstance(type_text, str):
            raise _schema_error(path, "$$type", "'$$type' must be a string like 'object|optional'")
        for tname, arg in tokenize(type_text):
            if tname == "object" and arg is None:
                continue
            if tname not in FLAG_RULES:
                raise _schema_error(
                    path,
                    tname,
                    f"'$$type' of a nested object accepts object|required|optional|nullable, "
                    f"got {tname!r}",
                    rule_suggestion(tname),
                )
            mods[tname] = True if arg is None else parse_bool(arg)
    for key in defn:
        if isinstance(key, str) and key.startswith("$$") and key not in _OBJECT_KEYS:
            raise _schema_error(
                path, key, f"unknown reserved key {key!r}", f"use one of {', '.join(_OBJECT_KEYS)}"
            )
    if mods.get("required") and mods.get("optional"):
        raise _schema_error(path, "optional", "an object cannot be both required and optional")
    plugin_name = defn.get("$$plugin") or plugin_name
    children: dict[str, FieldSpec | ObjectSpec] = {}
    for key, child_def in defn.items():
        if isinstance(key, str) and key in _OBJECT_KEYS:
            continue
        _check_name(key, path)
        children[key] = parse_definition(
            child_def,
            join_path(path, key),
            key,
            plugin_name=plugin_name,
            plugin=plugin,
            allow_extra=allow_extra,
        )
    explicit_required = mods.get("required", False)
    explicit_optional = mods.get("optional", False)
    required = explicit_required or (
        not explicit_optional and any(c.required for c in children.values())
    )
    description = defn.get("$$description")
    node = ObjectSpec(
        path=path,
        name=name,
        children=children,
        required=required,
        nullable=not required or mods.get("nullable", False),
        explicit_required=explicit_required,
        explicit_optional=explicit_optional,
        explicit_nullable=mods.get("nullable", False),
        allow_extra=allow_extra,
        description=str(description) if description else None,
        plugin=plugin,
        plugin_name=plugin_name,
    )
    node.compile()
    return node


# -- Schema -------------------------------------------------------------------------


class Schema:
    """A resource's attributes, compiled once into fast validators.

    :param attributes: field name → definition (see the module docstring).
    :param plugin_attributes: attributes added by plugins (name → definition; a rule
        dict may carry ``"plugin": "PluginName"``, a nested object ``"$$plugin"``).
    :param allow_extra: keep unknown fields (JSON values only) instead of failing.
    :raises SchemaError: a definition is invalid; the message names the field path and the
        offending rule, and ``suggestion`` proposes the closest valid rule.
    """

    def __init__(
        self,
        attributes: Mapping[str, Any],
        *,
        plugin_attributes: Mapping[str, Any] | None = None,
        allow_extra: bool = False,
    ) -> None:
        if not isinstance(attributes, Mapping):
            raise _schema_error("", "attributes", "attributes must be a dict of definitions")
        self.allow_extra = allow_extra
        children: dict[str, FieldSpec | ObjectSpec] = {}
        for name, defn in attributes.items():
            _check_name(name, "")
            children[name] = parse_definition(
                defn, name, name, plugin_name=None, plugin=False, allow_extra=allow_extra
            )
        self.plugin_attributes: dict[str, str | None] = {}
        """Plugin attribute name → the plugin that added it."""
        for name, defn in (plugin_attributes or {}).items():
            _check_name(name, "")
            if name in children:
                raise _schema_error(
                    name,
                    "plugin",
                    f"plugin attribute {name!r} collides with a user attribute",
                    "prefix plugin attributes, e.g. '_myplugin_field'",
                )
            spec = parse_definition(
                defn, name, name, plugin_name=None, plugin=True, allow_extra=allow_extra
            )
            children[name] = spec
            self.plugin_attributes[name] = spec.plugin_name
        self.root = ObjectSpec(path="", name="", children=children, allow_extra=allow_extra)
        self.root.compile()
        self.fields: dict[str, FieldSpec] = {}
        """Every leaf field by dotted path (``"profile.age"``)."""
        self.objects: dict[str, ObjectSpec] = {}
        """Every nested object by dotted path."""
        self._index(self.root)
        self.plugin_fields: set[str] = {p for p, f in self.fields.items() if f.plugin}
        self.secret_fields: list[str] = [p for p, f in self.fields.items() if f.secret]
        self.password_fields: list[str] = [p for p, f in self.fields.items() if f.password]
        """Paths of ``password`` fields (values are one-way hashes)."""
        self.sensitive_fields: dict[str, str] = {
            p: k for p, f in self.fields.items() if (k := sensitive_kind(f)) is not None
        }
        """Field path → ``"secret"``/``"password"`` for every field holding such values
        (arrays of them included): never partitioned, grouped by, shown or logged."""
        self.has_secrets: bool = any(
            f.secret for f in self.fields.values()
        ) or "secret" in self._all_types(self.root)
        """True if any value (including array items) is a secret."""
        self.has_passwords: bool = "password" in self._all_types(self.root)
        """True if any value (including array items) is a password: validating a record
        with a cleartext password hashes it (CPU-bound, tens of milliseconds)."""
        self._hash: str | None = None

    def _index(self, node: ObjectSpec) -> None:
        for child in node.children.values():
            if isinstance(child, FieldSpec):
                self.fields[child.path] = child
            else:
                self.objects[child.path] = child
                self._index(child)

    def _all_types(self, node: ObjectSpec) -> set[str]:
        found: set[str] = set()
        stack: list[FieldSpec | ObjectSpec] = list(node.children.values())
        while stack:
            spec = stack.pop()
            if isinstance(spec, ObjectSpec):
                stack.extend(spec.children.values())
            else:
                found.add(spec.type)
                if spec.items is not None:
                    stack.append(spec.items)
        return found

    def __repr__(self) -> str:
        return f"Schema({len(self.fields)} fields, {self.hash()[:19]})"

    # -- validation --------------------------------------------------------------
    def validate(self, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Check and coerce a record; return a new nested dict.

        :param partial: patch mode: only the given fields (nested objects may be partial);
            no required checks, no defaults.
        :raises ValidationError: ``errors`` lists every failing field.
        """
        try:
            return self.root.validate(data, partial)
        except Invalid as exc:
            raise _validation_error(exc.errors) from None

    # -- canonical forms --------------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """Canonical JSON-able user attributes (``Schema(s.definition())`` is equivalent)."""
        return {k: c.definition() for k, c in self.root.children.items() if not c.plugin}

    def plugin_definition(self) -> dict[str, Any]:
        """Canonical plugin attributes, each tagged with its plugin name."""
        out: dict[str, Any] = {}
        for name, child in self.root.children.items():
            if not child.plugin:
                continue
            d = child.definition()
            if child.plugin_name:
                d["plugin" if isinstance(child, FieldSpec) else "$$plugin"] = child.plugin_name
            out[name] = d
        return out

    def hash(self, *, include_plugins: bool = False) -> str:
        """``sha256:<hex>`` of the canonical user definition (stable across processes).

        Plugin attributes are left out unless ``include_plugins``: they live in their own
        id space and do not change the user's schema version.
        """
        if include_plugins:
            doc = {"attributes": self.definition(), "plugins": self.plugin_definition()}
            return "sha256:" + hashlib.sha256(msgspec.json.encode(doc, order="sorted")).hexdigest()
        if self._hash is None:
            raw = msgspec.json.encode(self.definition(), order="sorted")
            self._hash = "sha256:" + hashlib.sha256(raw).hexdigest()
        return self._hash

    def to_json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the user fields (plugin fields hidden)."""
        out = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
        out.update(self.root.json_schema(hide_plugins=True))
        return out

    # -- plugin attributes --------------------------------------------------------------
    def with_plugin_attribute(self, name: str, definition: Any, plugin_name: str) -> Schema:
        """A new schema with a plugin attribute added (or replaced, same plugin only).

        :raises SchemaError: the name is a user attribute or belongs to another plugin.
        """
        if not plugin_name:
            raise _schema_error(name, "plugin", "a plugin name is required")
        owner = self.plugin_attributes.get(name)
        if name in self.plugin_attributes and owner != plugin_name:
            raise _schema_error(
                name,
                "plugin",
                f"attribute {name!r} belongs to plugin {owner!r}, not {plugin_name!r}",
            )
        if isinstance(definition, str):
            tagged: Any = {"type": definition, "plugin": plugin_name}
        elif isinstance(definition, Mapping):
            key = "plugin" if _is_rule_dict(definition, name) else "$$plugin"
            tagged = {**definition, key: plugin_name}
        else:
            tagged = definition  # parse_definition reports the error
        plugins = self.plugin_definition()
        plugins[name] = tagged
        return Schema(self.definition(), plugin_attributes=plugins, allow_extra=self.allow_extra)

    def without_plugin_attribute(self, name: str, plugin_name: str | None = None) -> Schema:
        """A new schema without a plugin attribute.

        :raises SchemaError: ``name`` is not a plugin attribute, or belongs to another plugin.
        """
        if name not in self.plugin_attributes:
            raise _schema_error(name, "plugin", f"{name!r} is not a plugin attribute")
        owner = self.plugin_attributes[name]
        if plugin_name is not None and owner != plugin_name:
            raise _schema_error(
                name,
                "plugin",
                f"attribute {name!r} belongs to plugin {owner!r}, not {plugin_name!r}",
            )
        plugins = self.plugin_definition()
        del plugins[name]
        return Schema(self.definition(), plugin_attributes=plugins, allow_extra=self.allow_extra)


def _validation_error(raw: list[tuple[str, str, str, str]]) -> ValidationError:
    errors = [
        {"field": path, "rule": rule, "message": f"{path or 'record'} {msg}", "value_type": vt}
        for path, rule, msg, vt in raw
    ]
    shown = ", ".join(f"{e['field']} ({e['rule']})" for e in errors[:5])
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    noun = "field" if len(errors) == 1 else "fields"
    return ValidationError(
        f"{len(errors)} {noun} failed validation: {shown}{more}",
        errors=errors,
        suggestion=errors[0]["message"] if len(errors) == 1 else None,
    )
