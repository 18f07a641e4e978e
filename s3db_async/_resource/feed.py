"""The writer side of the durable change feed: one intent object before each record write.

A resource that a durable consumer watches (``resources.{name}.feed`` in ``s3db.json``) gets
a :class:`FeedWriter` on its :class:`~s3db_async._resource.writes.RecordWriter`. Before each
record write (insert, update, patch, replace, upsert, delete; ``*_many`` once per record) it
PUTs one *intent* under a time-ordered change id (a ULID), then the record write stamps that
id into the record's metadata (``_ch``). The intent's key says everything a consumer needs to
decide its fate without reading it: ``changes/{cid}/{op}{actor}/{prev}/{id}``, where ``prev``
is the change id the record carried when the writer read it (``-`` for none) and ``actor``
the writer's actor (``-`` none, ``.`` and base64url, ``*`` too long for a key), so that a
consumer that proves an insert by reading its record has the whole change. The body holds
the stored form of the record before and after (metadata and body exactly as written, so
secret fields stay encrypted), the actor, the time and the writer's deadline.

The rules a consumer applies (``s3db_async._plugin.feed``, docs/reliability.md): an intent is
committed when the record carries its id or any later intent names it as ``prev``; it failed
when neither holds once its deadline has passed. Resources that nobody watches have no
``FeedWriter``: their writes cost exactly what they did before.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import logging
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .. import _clock
from .._cas import conditional_put
from .._codec.codec import record_version
from .._concurrency import bounded_gather
from ..errors import ConflictError, DecryptionError, NotFoundError, PreconditionFailed
from ..stores import ListEntry

if TYPE_CHECKING:
    from .._codec.crypto import SecretBox
    from .resource import Resource

__all__ = [
    "ACTOR_KEY_MAX",
    "CHANGE_ID_BYTES",
    "CHANGE_KEY",
    "DEFAULT_WRITE_TIMEOUT",
    "FEED_SLUG",
    "INTENT_MARGIN",
    "FeedWriter",
    "Intent",
    "IntentKey",
    "StoredForm",
    "actor",
    "change_id_at",
    "changes_prefix",
    "current_actor",
    "new_change_id",
    "parse_intent_key",
    "rotate_intents",
    "set_actor",
]

log = logging.getLogger("s3db_async.feed")

CHANGE_KEY = "_ch"
"""Record metadata key holding the id of the record's last change."""
CHANGE_ID_LEN = 26
CHANGE_ID_BYTES = len(CHANGE_KEY) + CHANGE_ID_LEN
"""Metadata bytes a watched resource reserves for :data:`CHANGE_KEY`."""
FEED_SLUG = "s3db-feed"
"""Storage slug of the feed: ``resource={name}/plugin=s3db-feed/...``."""
DEFAULT_WRITE_TIMEOUT = 120.0
"""Seconds after its intent by which a record write has landed or never will (the store's
request deadlines, with the read-backs of :mod:`s3db_async._cas`, stay well inside it)."""

INTENT_MARGIN = 10.0
"""An intent PUT that took longer than this (seconds after its change id) is given up: its
record write is not sent. So a consumer that re-lists the last ``2 * INTENT_MARGIN``
seconds of the feed never misses an intent whose write can still happen, although keys
become visible out of order."""

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, in ASCII order
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_OPS = {"insert": "i", "update": "u", "delete": "d"}
_OP_NAMES = {v: k for k, v in _OPS.items()}

_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("s3db_actor", default=None)


def set_actor(name: str | None) -> contextvars.Token[str | None]:
    """Name who makes the following writes in this context (recorded in the change feed).

    Returns a token for ``contextvars``' ``reset``; :func:`actor` is the scoped form.
    """
    return _actor.set(name)


def current_actor() -> str | None:
    """The actor set by :func:`actor` / :func:`set_actor` in this context, or ``None``."""
    return _actor.get()


@contextlib.contextmanager
def actor(name: str | None) -> Iterator[None]:
    """Record ``name`` as the actor of every write inside the ``with`` block::

    with s3db_async.actor("alice"):
        await users.update(uid, {"name": "Ann"})
    """
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)


def _encode(value: int) -> str:
    out = []
    for _ in range(CHANGE_ID_LEN):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _decode(cid: str) -> int:
    value = 0
    for c in cid:
        value = value * 32 + _DECODE[c]
    return value


_last = 0


def new_change_id(after: str | None = None, *, at: float | None = None) -> str:
    """A ULID (48 bits of milliseconds, 80 random bits), greater than ``after`` when given
    (so the changes of one record are ordered even between machines whose clocks differ)
    and than the last id this process made in the same millisecond."""
    global _last
    ms = int((_clock.time() if at is None else at) * 1000)
    value = (ms << 80) | secrets.randbits(80)
    floor = _last if ms == _last >> 80 else 0  # monotonic within this process's millisecond
    if after is not None and len(after) == CHANGE_ID_LEN:
        with contextlib.suppress(KeyError):
            floor = max(floor, _decode(after))
    if value <= floor:
        value = floor + 1 + secrets.randbits(16)
    _last = value
    return _encode(value)


def change_id_at(when: datetime | float) -> str:
    """The smallest change id of an instant (for "replay from this time")."""
    seconds = when.timestamp() if isinstance(when, datetime) else float(when)
    return _encode(int(seconds * 1000) << 80)


def change_time(cid: str) -> datetime:
    """When a change id was made."""
    return datetime.fromtimestamp((_decode(cid) >> 80) / 1000, UTC)


def changes_prefix(resource: str) -> str:
    """Key prefix of a resource's intents."""
    return f"resource={resource}/plugin={FEED_SLUG}/changes/"


@dataclass(frozen=True, slots=True)
class IntentKey:
    """What an intent's key says: change id, operation, previous change id, record id and,
    when ``actor_known``, the writer's actor (so a proven insert needs no read of its intent)."""

    cid: str
    op: str
    prev: str | None
    id: str
    key: str
    actor: str | None = None
    actor_known: bool = False


ACTOR_KEY_MAX = 96
"""Longest actor (UTF-8 bytes) written into an intent's key; a longer one is only in its body."""


def _actor_tag(name: str | None) -> str:
    """The key's actor tag after the operation letter: ``-`` none, ``.{base64url}`` the
    actor, ``*`` an actor too long for a key (read the body)."""
    if name is None:
        return "-"
    raw = name.encode()
    if len(raw) > ACTOR_KEY_MAX:
        return "*"
    return "." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_actor_tag(tag: str) -> tuple[str | None, bool]:
    if tag == "-":
        return None, True
    if tag.startswith("."):
        code = tag[1:]
        try:
            return base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)).decode(), True
        except (ValueError, UnicodeDecodeError):
            return None, False
    return None, False  # "*", or a key written before actors were in keys


def intent_key(
    resource: str, cid: str, op: str, prev: str | None, rid: str, actor: str | None = None
) -> str:
    """``changes/{cid}/{op letter}{actor tag}/{prev or -}/{id}`` under the resource."""
    return f"{changes_prefix(resource)}{cid}/{_OPS[op]}{_actor_tag(actor)}/{prev or '-'}/{rid}"


def parse_intent_key(key: str, prefix: str) -> IntentKey | None:
    """The parts of an intent key under ``prefix`` (``None`` for anything else)."""
    parts = key[len(prefix) :].split("/", 3)
    if len(parts) != 4 or len(parts[0]) != CHANGE_ID_LEN or not parts[1]:
        return None
    op = _OP_NAMES.get(parts[1][0])
    if op is None:
        return None
    name, known = _parse_actor_tag(parts[1][1:])
    prev = None if parts[2] == "-" else parts[2]
    return IntentKey(parts[0], op, prev, parts[3], key, name, known)


class StoredForm(msgspec.Struct, frozen=True):
    """A record as stored: metadata and body (secret fields stay encrypted)."""

    m: dict[str, str]
    b: bytes = b""


class Intent(msgspec.Struct, frozen=True):
    """The body of an intent object."""

    op: str
    id: str
    at: float
    deadline: float
    version: str
    prev: str | None = None
    actor: str | None = None
    before: StoredForm | None = None
    after: StoredForm | None = None


_ENCODER = msgspec.json.Encoder()
INTENT_DECODER = msgspec.json.Decoder(Intent)


def _form(metadata: Mapping[str, str] | None, body: bytes) -> StoredForm | None:
    return None if metadata is None else StoredForm(dict(metadata), body)


class FeedWriter:
    """Writes the intents of one watched resource (see the module docstring)."""

    def __init__(self, resource: Resource, config: Mapping[str, Any]) -> None:
        self.resource = resource
        self.consumers = tuple(sorted(config.get("consumers") or ()))
        self.write_timeout = float(config.get("write_timeout") or DEFAULT_WRITE_TIMEOUT)

    async def intent(
        self,
        op: str,
        rid: str,
        prev: str | None,
        before: tuple[Mapping[str, str], bytes] | None,
        after: tuple[Mapping[str, str], bytes] | None,
    ) -> tuple[str, str, float]:
        """PUT the intent of one write (one request); ``(change id, key, deadline)``."""
        res = self.resource
        now = _clock.time()
        cid = new_change_id(prev, at=now)
        deadline = now + self.write_timeout
        who = _actor.get()
        body = _ENCODER.encode(
            Intent(
                op=op,
                id=rid,
                at=now,
                deadline=deadline,
                version=res.version,
                prev=prev,
                actor=who,
                before=None if before is None else _form(*before),
                after=None if after is None else _form(*after),
            )
        )
        key = intent_key(res.name, cid, op, prev, rid, who)
        await res.db.store.put(key, body, content_type="application/json")
        if _clock.time() - now > INTENT_MARGIN:  # a consumer may have listed past it
            await self.drop(key)
            raise ConflictError(
                f"{res.name}: the change feed intent of this write took over "
                f"{INTENT_MARGIN:g} s to store; the write was not sent",
                suggestion="retry the write; the store is answering very slowly",
                metadata={"resource": res.name, "key": key},
                retriable=True,
            )
        return cid, key, deadline

    def check_deadline(self, key: str, deadline: float) -> None:
        """Refuse to send a record write whose intent's deadline has passed (a consumer may
        already have judged it failed); the caller sees a retriable error."""
        if _clock.time() >= deadline:
            raise ConflictError(
                f"{self.resource.name}: the change feed deadline of this write passed before "
                "its record write was sent",
                suggestion="retry the write; raise the feed's write_timeout if this repeats",
                metadata={"resource": self.resource.name, "key": key},
                retriable=True,
            )

    async def drop(self, key: str) -> None:
        """Delete the intent of a write that definitely did not happen (best effort: a
        consumer judges a leftover intent failed after its deadline anyway)."""
        try:
            await self.resource.db.store.delete(key)
        except Exception as exc:  # the intent stays and is judged failed later
            log.debug("could not drop intent %s: %s", key, exc, extra={"key": key})


async def rotate_intents(resource: Resource, new_box: SecretBox) -> int:
    """Re-encrypt the record forms kept in the resource's intents under ``new_box``
    (passphrase rotation, while the database's box reads both keys). Resumable: a form that
    already decrypts under ``new_box`` is left alone. Returns the intents rewritten."""
    store = resource.db.store
    keys = [
        e.key async for e in store.list(changes_prefix(resource.name)) if isinstance(e, ListEntry)
    ]

    def again(form: StoredForm | None) -> StoredForm | None:
        if form is None:
            return None
        version = record_version(form.m) or resource.version
        try:
            resource.make_codec(version, new_box).decode(form.m, form.b)
            return None  # no secret, or already under the new key
        except DecryptionError:
            pass
        codec = resource._codec_for(version)
        encoded = codec.encode(codec.decode(form.m, form.b))
        kept = {k: v for k, v in form.m.items() if k.startswith("_") and k not in encoded.metadata}
        return StoredForm({**encoded.metadata, **kept}, encoded.body)

    async def one(key: str) -> int:
        try:
            obj = await store.get(key)
        except NotFoundError:
            return 0  # collected meanwhile
        intent = INTENT_DECODER.decode(obj.body)
        before, after = again(intent.before), again(intent.after)
        if before is None and after is None:
            return 0
        rewritten = msgspec.structs.replace(
            intent, before=before or intent.before, after=after or intent.after
        )
        try:
            await conditional_put(
                store, key, _ENCODER.encode(rewritten), content_type="application/json",
                if_match=obj.etag,
            )  # fmt: skip
        except PreconditionFailed:
            return 0  # collected and re-made? intents are never rewritten otherwise
        return 1

    return sum(await bounded_gather(one, keys, resource.db.parallelism))
