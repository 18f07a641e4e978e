"""Records ⇄ S3 objects: short stable attribute ids, compact values, behaviors.

Usage::

    registry = AttributeRegistry()
    registry.assign(schema.fields)                      # persisted in s3db.json
    codec = RecordCodec(schema, registry, version="v1")
    enc = codec.encode(schema.validate(data))           # -> metadata, body, ...
    assert codec.decode(enc.metadata, enc.body) == schema.validate(data)

Metadata layout: each leaf field is stored under its registry id (``"0"``,
``"a"``, ``"p0"`` for plugin fields), its value encoded by type (see
:mod:`s3db_async._schema.encoding`). Reserved keys start with ``_``: ``_v`` the
schema version (always), ``_b`` = ``1`` when the body holds fields (a
msgspec-JSON object ``{id: value}``), ``_t`` the ids cut or dropped by
``truncate-data``, ``_x`` a JSON blob for what has no id: extra fields
(``allow_extra``) and nested objects that are empty or None.

Reading: ids the current schema does not know (a field removed later) are
ignored (decode an old record with the codec of its own version, see
:func:`record_version`, to see them). A top-level ``"id"`` key is never stored
(the id lives in the object key) unless the schema defines an ``id`` field.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .._schema import passwords as _passwords
from .._schema import types_net as _types_net
from .._schema import types_num as _types_num
from .._schema.encoding import (
    EMPTY_LIST,
    NULL,
    b62,
    b64_token,
    bool_text,
    dec_bytes,
    dec_date,
    dec_embedding,
    dec_number,
    enc_bytes,
    enc_date,
    enc_embedding,
    enc_number,
    esc_text,
    json_text,
    list_text_item,
    number_from_json,
    number_to_json,
    text_bool,
    truncate_text,
    unb62,
    unesc_text,
    unjson_text,
)
from .._schema.fields import FieldSpec, ObjectSpec
from .._schema.schema import Schema
from ..errors import DecryptionError, EncryptionError, SchemaError, ValidationError
from ..stores._base import METADATA_LIMIT, metadata_size
from .behaviors import BEHAVIORS, Slot, fit, limit_error, truncate
from .crypto import NO_PASSPHRASE_HINT, SecretBox

__all__ = [
    "BEHAVIORS",
    "AttributeRegistry",
    "EncodedRecord",
    "RecordCodec",
    "record_version",
]

Fn = Callable[[Any], Any]

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TEXT_TYPES = frozenset({"string", "email", "url"})
_JOINABLE = _TEXT_TYPES | {"secret", "number", "integer", "boolean", "date", "datetime", "bytes"}
_JOINABLE |= {"ip4", "ip6", "mac", "cidr", "uuid", "semver", "decimal", "crypto", "money"}
_JOINABLE |= {"geo", "bits"}
"""Item types of arrays stored ``,``-joined (their encodings never contain ``,``)."""
_TYPE_CODECS: dict[str, Callable[[Any], tuple[Fn, Fn, Fn, Fn]]] = {
    **_types_net.CODECS,
    **_types_num.CODECS,
    **_passwords.CODECS,
}
_CONTENT_TYPE = "application/json"


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


def record_version(metadata: Mapping[str, str]) -> str | None:
    """The schema version a record was written under (its ``_v`` metadata)."""
    v = metadata.get("_v")
    if v is None:
        v = next((val for k, val in metadata.items() if k.lower() == "_v"), None)
    return v


# -- attribute ids -------------------------------------------------------------------


class AttributeRegistry:
    """Stable short ids per field path (stored in ``s3db.json`` per resource).

    User ids count in base36 (``0``..``9``, ``a``..``z``, ``10``, ...), skipping ids
    of two or more characters that start with ``p``, which belong to the plugin
    space (``p0``, ``p1``, ...). An id is never reused or shifted, even for a field
    that was removed. Ids are lowercase, so S3's lowercasing of keys is harmless.
    """

    __slots__ = ("_paths", "ids", "next_id", "next_plugin_id", "plugin_ids")

    def __init__(
        self,
        ids: Mapping[str, str] | None = None,
        plugin_ids: Mapping[str, str] | None = None,
        next_id: int = 0,
        next_plugin_id: int = 0,
    ) -> None:
        self.ids: dict[str, str] = dict(ids or {})
        self.plugin_ids: dict[str, str] = dict(plugin_ids or {})
        used = [int(i, 36) for i in self.ids.values() if i.isalnum()]
        self.next_id = max([next_id, *(u + 1 for u in used)])
        used_p = [int(i[1:], 36) for i in self.plugin_ids.values() if i[1:].isalnum()]
        self.next_plugin_id = max([next_plugin_id, *(u + 1 for u in used_p)])
        self._paths: dict[str, str] = {v: k for k, v in self.ids.items()}
        self._paths.update({v: k for k, v in self.plugin_ids.items()})

    def __repr__(self) -> str:
        return f"AttributeRegistry({len(self.ids)} ids, {len(self.plugin_ids)} plugin ids)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttributeRegistry):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def _new_user_id(self) -> str:
        while True:
            candidate = _b36(self.next_id)
            self.next_id += 1
            if len(candidate) < 2 or candidate[0] != "p":
                return candidate

    def assign(self, paths: Iterable[str], *, plugin: bool = False) -> bool:
        """Give ids to paths that have none; return True if anything changed."""
        changed = False
        table = self.plugin_ids if plugin else self.ids
        for path in paths:
            if path in table:
                continue
            if plugin:
                new = "p" + _b36(self.next_plugin_id)
                self.next_plugin_id += 1
            else:
                new = self._new_user_id()
            table[path] = new
            self._paths[new] = path
            changed = True
        return changed

    def id_of(self, path: str, *, plugin: bool | None = None) -> str:
        """The id of ``path`` (user space first unless ``plugin`` says which).

        :raises KeyError: the path has no id yet (call :meth:`assign`).
        """
        if plugin is not True and path in self.ids:
            return self.ids[path]
        if plugin is not False and path in self.plugin_ids:
            return self.plugin_ids[path]
        raise KeyError(path)

    def path_of(self, id: str) -> str | None:
        """The path an id was given to (also for removed fields), or None."""
        return self._paths.get(id.lower())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for ``s3db.json``."""
        return {
            "ids": dict(self.ids),
            "plugin_ids": dict(self.plugin_ids),
            "next_id": self.next_id,
            "next_plugin_id": self.next_plugin_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AttributeRegistry:
        """Inverse of :meth:`to_dict` (tolerates missing keys)."""
        return cls(
            d.get("ids"),
            d.get("plugin_ids"),
            int(d.get("next_id", 0)),
            int(d.get("next_plugin_id", 0)),
        )


# -- per-field codecs ---------------------------------------------------------------------


def _ident(v: Any) -> Any:
    return v


class _Leaf:
    """Encoders of one leaf field, keyed by its id."""

    __slots__ = (
        "cost_key",
        "cut",
        "dec",
        "enc",
        "from_json",
        "id",
        "name",
        "parts",
        "path",
        "to_json",
    )

    def __init__(self, id: str, path: str, funcs: tuple[Fn, Fn, Fn, Fn], cut: bool) -> None:
        self.id = id
        self.path = path
        self.parts = tuple(path.split("."))
        self.name = self.parts[-1]
        self.cost_key = len(id)
        self.enc, self.dec, self.to_json, self.from_json = funcs
        self.cut = cut


class _Node:
    __slots__ = ("children",)

    def __init__(self, children: dict[str, _Leaf | _Node]) -> None:
        self.children = children


class _NoPassphrase:
    """The secret box of a database opened without a passphrase: encrypting or decrypting
    a value raises, naming the resource, the field and the two ways to give one."""

    __slots__ = ("resource",)

    def __init__(self, resource: str | None) -> None:
        self.resource = resource

    def funcs(self, path: str) -> tuple[Fn, Fn]:
        field = path.replace("[]", "")
        of = f" of resource {self.resource!r}" if self.resource else ""
        why = f"secret field {field!r}{of}: the database was opened without a passphrase"
        meta = {"resource": self.resource, "field": field}

        def no_encrypt(v: Any) -> Any:
            raise EncryptionError(
                f"cannot encrypt {why}", suggestion=NO_PASSPHRASE_HINT, metadata=meta
            )

        def no_decrypt(v: Any) -> Any:
            raise DecryptionError(
                f"cannot decrypt {why}",
                suggestion=NO_PASSPHRASE_HINT + ", with the passphrase the data was written with",
                metadata=meta,
            )

        return no_encrypt, no_decrypt


_Box = SecretBox | _NoPassphrase


def _secret_funcs(box: _Box, path: str) -> tuple[Fn, Fn]:
    if isinstance(box, _NoPassphrase):
        return box.funcs(path)
    return box.encrypt, box.decrypt


def _field_funcs(
    spec: FieldSpec | ObjectSpec, box: _Box, *, in_list: bool = False
) -> tuple[Fn, Fn, Fn, Fn]:
    """(enc, dec, to_json, from_json) of one value (never None) of ``spec``."""
    if isinstance(spec, ObjectSpec):
        to_json, from_json = _node_json(spec, box)
        return (
            (lambda v: json_text(to_json(v))),
            (lambda s: from_json(unjson_text(s))),
            to_json,
            from_json,
        )
    t = spec.type
    if t in _TEXT_TYPES:
        return (list_text_item if in_list else esc_text), unesc_text, _ident, _ident
    if t == "secret":
        encrypt, decrypt = _secret_funcs(box, spec.path)
        return encrypt, decrypt, encrypt, decrypt
    if t == "number":
        return enc_number, dec_number, number_to_json, number_from_json
    if t == "integer":
        return b62, unb62, _ident, _ident
    if t == "boolean":
        return bool_text, text_bool, _ident, _ident
    if t == "date" or t == "datetime":
        return enc_date, dec_date, enc_date, dec_date
    if t == "bytes":
        return enc_bytes, dec_bytes, enc_bytes, dec_bytes
    codec = _TYPE_CODECS.get(t)
    if codec is not None:
        return codec(spec.param)
    if t == "embedding":
        return enc_embedding, dec_embedding, enc_embedding, dec_embedding
    if t == "array":
        return _array_funcs(spec, box)
    return json_text, unjson_text, _ident, _ident  # object, json, any


def _array_funcs(spec: FieldSpec, box: _Box) -> tuple[Fn, Fn, Fn, Fn]:
    items = spec.items
    if isinstance(items, FieldSpec) and items.type in _JOINABLE and not items.explicit_nullable:
        ienc, idec, itj, ifj = _field_funcs(items, box, in_list=True)

        def enc(v: list[Any]) -> str:
            return ",".join(map(ienc, v)) if v else EMPTY_LIST

        def dec(s: str) -> list[Any]:
            return [] if s == EMPTY_LIST else list(map(idec, s.split(",")))

        if itj is _ident:
            return enc, dec, list, list
        return enc, dec, (lambda v: list(map(itj, v))), (lambda j: list(map(ifj, j)))
    if items is None:
        return json_text, unjson_text, _ident, _ident
    _, _, itj, ifj = _field_funcs(items, box)

    def to_json(v: list[Any]) -> list[Any]:
        return [None if x is None else itj(x) for x in v]

    def from_json(j: list[Any]) -> list[Any]:
        return [None if x is None else ifj(x) for x in j]

    return (
        (lambda v: json_text(to_json(v))),
        (lambda s: from_json(unjson_text(s))),
        to_json,
        from_json,
    )


def _node_json(node: ObjectSpec, box: _Box) -> tuple[Fn, Fn]:
    """Body forms of a nested object inside an array (keys are field names)."""
    funcs = {name: _field_funcs(child, box)[2:] for name, child in node.children.items()}

    def to_json(d: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            f = funcs.get(k)
            out[k] = v if v is None or f is None else f[0](v)
        return out

    def from_json(j: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in j.items():
            f = funcs.get(k)
            out[k] = v if v is None or f is None else f[1](v)
        return out

    return to_json, from_json


# -- records --------------------------------------------------------------------------------


@dataclass(slots=True)
class EncodedRecord:
    """What to PUT for a record."""

    metadata: dict[str, str]
    body: bytes
    content_type: str
    overflowed: Sequence[str] = ()
    """Paths stored in the body because metadata was full (body-overflow, user-managed)."""
    truncated: Sequence[str] = ()
    """Paths whose string value was cut to fit (truncate-data)."""
    dropped: Sequence[str] = ()
    """Paths left out because they did not fit and could not be cut (truncate-data)."""


_EXTRA = _Leaf("_x", "_x", (json_text, unjson_text, _ident, _ident), False)


class RecordCodec:
    """Encodes validated records to metadata + body, and back.

    :param schema: the schema the records were validated with.
    :param registry: ids for every field of ``schema`` (:meth:`AttributeRegistry.assign`).
    :param version: the schema version, stored as ``_v`` in every record.
    :param behavior: one of :data:`BEHAVIORS`.
    :param secret_box: encrypts ``secret`` fields; without one, a secret value to encrypt
        or decrypt raises, naming the field and ``resource``.
    :param reserved_metadata: bytes of metadata the caller adds itself.
    :raises SchemaError: unknown behavior, or a field without a registry id.
    """

    def __init__(
        self,
        schema: Schema,
        registry: AttributeRegistry,
        *,
        version: str,
        behavior: str = "body-overflow",
        secret_box: SecretBox | None = None,
        reserved_metadata: int = 0,
        resource: str | None = None,
    ) -> None:
        if behavior not in BEHAVIORS:
            raise SchemaError(
                f"unknown behavior {behavior!r}",
                suggestion=f"use one of: {', '.join(BEHAVIORS)}",
                metadata={"behavior": behavior},
            )
        self.schema = schema
        self.registry = registry
        self.version = version
        self.behavior = behavior
        self.secret_box = secret_box
        self.reserved_metadata = reserved_metadata
        self._box: _Box = secret_box or _NoPassphrase(resource)
        self._base = metadata_size({"_v": version}) + reserved_metadata
        self._by_id: dict[str, _Leaf] = {}
        self._by_path: dict[str, _Leaf] = {}
        self._root = self._build(schema.root)
        self._flat: dict[str, tuple[str, Fn]] | None = (
            {name: (ent.id, ent.enc) for name, ent in self._root.items() if type(ent) is _Leaf}
            if all(type(ent) is _Leaf for ent in self._root.values())
            else None
        )
        """``{field: (id, encoder)}`` when every field is a top-level leaf."""

    def __repr__(self) -> str:
        return f"RecordCodec(version={self.version!r}, behavior={self.behavior!r})"

    def _build(self, node: ObjectSpec) -> dict[str, _Leaf | _Node]:
        out: dict[str, _Leaf | _Node] = {}
        for name, child in node.children.items():
            if isinstance(child, ObjectSpec):
                out[name] = _Node(self._build(child))
                continue
            try:
                fid = self.registry.id_of(child.path, plugin=child.plugin)
            except KeyError:
                raise SchemaError(
                    f"field {child.path!r} has no attribute id",
                    suggestion="assign ids with AttributeRegistry.assign(schema.fields) "
                    "(plugin=True for plugin fields) before building the codec",
                    metadata={"field": child.path},
                ) from None
            cut = child.type == "string" and child.enum is None
            leaf = _Leaf(fid, child.path, _field_funcs(child, self._box), cut)
            self._by_id[fid] = leaf
            self._by_path[child.path] = leaf
            out[name] = leaf
        return out

    # -- encode ------------------------------------------------------------------------
    def _walk(
        self,
        nodes: dict[str, _Leaf | _Node],
        data: Mapping[str, Any],
        prefix: tuple[str, ...],
        pairs: list[tuple[_Leaf, Any]],
        extra: list[tuple[tuple[str, ...], Any]],
    ) -> None:
        for key, value in data.items():
            ent = nodes.get(key)
            if ent is None:
                if prefix or key != "id":
                    extra.append(((*prefix, key), value))
            elif type(ent) is not _Node:
                pairs.append((ent, value))  # type: ignore[arg-type]
            elif not value:
                extra.append(((*prefix, key), None if value is None else {}))
            else:
                n, m = len(pairs), len(extra)
                self._walk(ent.children, value, (*prefix, key), pairs, extra)
                if len(pairs) == n and len(extra) == m:
                    extra.append(((*prefix, key), {}))

    def encode(self, record: Mapping[str, Any]) -> EncodedRecord:
        """Encode a validated record (without its ``id``).

        The body always carries a fresh write nonce (``"_n"``): S3's etag is the MD5 of
        the body alone, so without it two versions that differ only in metadata would
        share an etag and ``If-Match`` could not tell them apart (lost updates).

        :raises EncryptionError: a secret value and no secret box.
        :raises MetadataLimitError: ``enforce-limits`` and the metadata is over 2 KB.
        """
        encoded = self._encode(record)
        encoded.body = _stamp(encoded.body)
        return encoded

    def _encode(self, record: Mapping[str, Any]) -> EncodedRecord:
        if self.behavior == "body-only":
            return self._body_only(self._pairs(record))
        md = self._encode_flat(record) if self._flat is not None else None
        pairs = None
        if md is None:
            pairs = self._pairs(record)
            md = {"_v": self.version}
            for ent, value in pairs:
                md[ent.id] = NULL if value is None else ent.enc(value)
        # ids and texts are ASCII: their lengths are the bytes S3 counts
        total = self.reserved_metadata + len("".join([*md, *md.values()]))
        if total <= METADATA_LIMIT:
            return EncodedRecord(md, b"", _CONTENT_TYPE)
        if pairs is None:
            pairs = [(self._root[k], v) for k, v in record.items() if k != "id"]  # type: ignore[misc]
        slots = [
            Slot(
                ent.id,
                ent.path,
                md[ent.id],
                value,
                ent.cost_key + len(md[ent.id]),
                _cutter(value) if ent.cut and value is not None else None,
            )
            for ent, value in pairs
        ]
        if self.behavior == "enforce-limits":
            raise limit_error(slots, total, METADATA_LIMIT, behavior=self.behavior)
        if self.behavior == "truncate-data":
            return self._truncate(slots, total)
        return self._overflow(slots, total)

    def _pairs(self, record: Mapping[str, Any]) -> list[tuple[_Leaf, Any]]:
        """``(leaf, value)`` of every field of ``record``, extra fields as one ``_x`` blob."""
        pairs: list[tuple[_Leaf, Any]] = []
        extra: list[tuple[tuple[str, ...], Any]] = []
        self._walk(self._root, record, (), pairs, extra)
        if extra:
            pairs.append((_EXTRA, _blob(extra)))
        return pairs

    def _encode_flat(self, record: Mapping[str, Any]) -> dict[str, str] | None:
        """The metadata of a record of a schema without nested objects, in one loop;
        ``None`` when it has a field the schema does not know (the general way then)."""
        flat = self._flat
        assert flat is not None
        md = {"_v": self.version}
        for key, value in record.items():
            leaf = flat.get(key)
            if leaf is None:
                if key == "id":
                    continue
                return None
            md[leaf[0]] = NULL if value is None else leaf[1](value)
        return md

    def _overflow(self, slots: list[Slot], total: int) -> EncodedRecord:
        budget = METADATA_LIMIT - self._base - 3  # "_b" + "1"
        if budget < 0:
            raise limit_error([], self._base + 3, METADATA_LIMIT, behavior=self.behavior)
        inside, rest = fit(slots, budget)
        md = {"_v": self.version, "_b": "1"}
        for slot in inside:
            md[slot.key] = slot.text
        by_id = self._by_id
        body = {
            s.key: None if s.value is None else by_id.get(s.key, _EXTRA).to_json(s.value)
            for s in rest
        }
        return EncodedRecord(
            md, msgspec.json.encode(body), _CONTENT_TYPE, overflowed=[s.path for s in rest]
        )

    def _truncate(self, slots: list[Slot], total: int) -> EncodedRecord:
        result = truncate(slots, METADATA_LIMIT - self._base)
        if result is None:
            raise limit_error(slots, total, METADATA_LIMIT, behavior=self.behavior)
        md = {"_v": self.version}
        for slot, text in result.inside:
            md[slot.key] = text
        if result.flag:
            md["_t"] = result.flag
        return EncodedRecord(
            md,
            b"",
            _CONTENT_TYPE,
            truncated=[s.path for s in result.truncated],
            dropped=[s.path for s in result.dropped],
        )

    def _body_only(self, pairs: list[tuple[_Leaf, Any]]) -> EncodedRecord:
        body = {ent.id: None if v is None else ent.to_json(v) for ent, v in pairs}
        md = {"_v": self.version, "_b": "1"}
        if self._base + 3 > METADATA_LIMIT:
            raise limit_error([], self._base + 3, METADATA_LIMIT, behavior=self.behavior)
        return EncodedRecord(md, msgspec.json.encode(body), _CONTENT_TYPE)

    # -- decode ------------------------------------------------------------------------
    def decode_fields(
        self, metadata: Mapping[str, str], paths: Iterable[str]
    ) -> dict[str, Any] | None:
        """The fields at ``paths`` alone (nested like :meth:`decode`; absent ones left
        out), read from the metadata; ``None`` when one may be in the body, or the
        metadata keys are not in their usual lowercase form (then use :meth:`decode`).

        :raises ValidationError: a stored value is corrupt.
        """
        if "_b" in metadata:
            return None
        out: dict[str, Any] = {}
        by_path = self._by_path
        for path in paths:
            ent = by_path.get(path)
            if ent is None:
                continue  # a field this version does not have
            text = metadata.get(ent.id)
            if text is None:
                if any(k != k.lower() for k in metadata):
                    return None
                continue
            value = None if text == NULL else _decode_one(ent, text, False)
            if len(ent.parts) == 1:
                out[ent.name] = value
            else:
                _set_path(out, ent.parts, value)
        return out

    def decode(self, metadata: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Rebuild the nested record from metadata and body.

        :raises DecryptionError: a secret cannot be decrypted (or no secret box).
        :raises ValidationError: a stored value is corrupt.
        """
        out: dict[str, Any] = {}
        by_id = self._by_id
        has_body = False
        extra: Any = None
        for key, text in metadata.items():
            ent = by_id.get(key)
            if ent is None:
                low = key.lower()
                if low == "_b":
                    has_body = True
                elif low == "_x":
                    extra = _decode_one(_EXTRA, text, False)
                else:
                    ent = by_id.get(low)
                if ent is None:
                    continue
            if text == NULL:
                value = None
            else:  # _decode_one inline: no call per field on the read path
                try:
                    value = ent.dec(text)
                except DecryptionError:
                    raise
                except _DECODE_ERRORS as exc:
                    raise _corrupt(ent.path, exc) from None
            parts = ent.parts
            if len(parts) == 1:
                out[parts[0]] = value
            else:
                _set_path(out, parts, value)
        if has_body and body:
            try:
                doc = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise _corrupt("body", exc) from None
            if not isinstance(doc, dict):
                raise _corrupt("body", TypeError("the body is not a JSON object"))
            for key, j in doc.items():
                if key == "_x":
                    extra = j
                    continue
                ent = by_id.get(key)
                if ent is None:
                    continue
                value = None if j is None else _decode_one(ent, j, True)
                if len(ent.parts) == 1:
                    out[ent.name] = value
                else:
                    _set_path(out, ent.parts, value)
        if extra:
            if not isinstance(extra, dict):
                raise _corrupt("_x", TypeError("the extra-fields blob is not a JSON object"))
            _merge(out, extra)
        return out


_randbits = random.getrandbits  # a nonce must be unique, not secret (reseeded after fork)


def _stamp(body: bytes) -> bytes:
    """Add a random write nonce to a JSON-object body (or make one)."""
    nonce = b64_token(_randbits(72))
    if not body or body == b"{}":
        return b'{"_n":"' + nonce + b'"}'
    return body[:-1] + b',"_n":"' + nonce + b'"}'


def _cutter(value: str) -> Callable[[int], str | None]:
    return lambda max_len: truncate_text(value, max_len)


_DECODE_ERRORS = (ValueError, KeyError, IndexError, TypeError, msgspec.DecodeError)
"""What a damaged stored value makes a decoder raise (reported as corrupt)."""


def _decode_one(ent: _Leaf, raw: Any, from_body: bool) -> Any:
    try:
        return ent.from_json(raw) if from_body else ent.dec(raw)
    except DecryptionError:
        raise
    except _DECODE_ERRORS as exc:
        raise _corrupt(ent.path, exc) from None


def _corrupt(path: str, exc: BaseException) -> ValidationError:
    return ValidationError(
        f"stored value of {path!r} cannot be decoded ({type(exc).__name__})",
        errors=[
            {
                "field": path,
                "rule": "decode",
                "message": f"{path} has a corrupt stored value",
                "value_type": "str",
            }
        ],
        suggestion="the object was modified outside s3db-async or is damaged",
    )


def _set_path(out: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    d = out
    for p in parts[:-1]:
        nxt = d.get(p)
        if type(nxt) is not dict:
            nxt = d[p] = {}
        d = nxt
    d[parts[-1]] = value


def _blob(extra: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    blob: dict[str, Any] = {}
    for parts, value in extra:
        d = blob
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return blob


def _merge(out: dict[str, Any], blob: Mapping[str, Any]) -> None:
    for k, v in blob.items():
        cur = out.get(k)
        if type(v) is dict and type(cur) is dict:
            _merge(cur, v)
        else:
            out[k] = v
