"""Passphrase rotation: re-encrypt every ``secret`` field under a new key, resumably.

The rotation is recorded in ``s3db.json`` (``secrets.rotation``: the new salt and a check
token) before any record changes, so an interrupted rotation resumes when
``rotate_passphrase(old, new)`` is called again with the same passphrases. While it runs
the database reads secrets under either key and writes them under the new one; a record
already under the new key is not written again (the sweep is idempotent).

Stop other writers (or reopen them with the new passphrase) before rotating: a process
still holding only the old passphrase could write a record under the old key after the
sweep passed it.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._cas import RETRY, Backoff, _Retry, cas_loop
from .._codec.codec import record_version
from .._codec.crypto import SecretBox
from .._concurrency import bounded_gather
from ..errors import ConfigError, DecryptionError, NotFoundError, PreconditionFailed
from ..stores import ListEntry
from .feed import CHANGE_KEY, rotate_intents
from .history import REVISION_KEY
from .partitions import TOKENS_KEY

if TYPE_CHECKING:
    from .._database import Database
    from .resource import Resource

KEPT_METADATA = (REVISION_KEY, TOKENS_KEY, CHANGE_KEY)
"""Reserved record metadata a rewrite keeps (history revision, reference tokens)."""

__all__ = ["RotatingSecretBox", "rotate_passphrase"]


class RotatingSecretBox(SecretBox):
    """Encrypts with the new key; decrypts with the new key, then the old one."""

    __slots__ = ("_new", "_old")

    def __init__(self, new: SecretBox, old: SecretBox) -> None:  # no super(): keys live inside
        self._new = new
        self._old = old

    def encrypt(self, plaintext: str) -> str:
        return self._new.encrypt(plaintext)

    def decrypt(self, token: str) -> str:
        try:
            return self._new.decrypt(token)
        except DecryptionError:
            return self._old.decrypt(token)


async def rotate_passphrase(
    db: Database,
    old: str,
    new: str,
    *,
    on_progress: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, int]:
    """Re-encrypt every secret of ``db`` from ``old`` to ``new``; returns counts.

    :raises DecryptionError: ``old`` is not the database's passphrase.
    :raises ConfigError: ``new`` is empty or equal to ``old``, or another rotation to a
        different passphrase is unfinished.
    """
    if not new or new == old:
        raise ConfigError(
            "the new passphrase must be non-empty and differ from the old one",
            suggestion="pick a new passphrase",
        )
    secrets = dict(db.metadata.get("secrets") or {})
    old_box = SecretBox(old, base64.b64decode(secrets["salt"]))
    if not old_box.matches_check(secrets.get("check")):
        raise DecryptionError(
            "the old passphrase does not match this database",
            suggestion="pass the passphrase the database was written with",
        )
    rotation = secrets.get("rotation")
    if rotation:
        new_box = SecretBox(new, base64.b64decode(rotation["salt"]))
        if not new_box.matches_check(rotation["check"]):
            raise ConfigError(
                "an unfinished rotation to another passphrase is recorded in s3db.json",
                suggestion="finish it by calling rotate_passphrase with that new passphrase",
            )
    else:
        salt = SecretBox.new_salt()
        new_box = SecretBox(new, salt)
        planned = {
            "salt": base64.b64encode(salt).decode("ascii"),
            "check": new_box.make_check(),
        }

        def start(doc: dict[str, Any]) -> bool:
            current = doc.setdefault("secrets", {})
            if current.get("rotation"):
                raise ConfigError(
                    "another process started a rotation meanwhile",
                    suggestion="retry once it has finished",
                )
            current["rotation"] = planned
            return True

        doc = await db._update_meta(start)
        rotation = doc["secrets"]["rotation"]

    db._use_secret_box(RotatingSecretBox(new_box, old_box))
    totals = {"records": 0, "rewritten": 0}
    for resource in db:
        if not any(resource.make_codec(v, None).schema.has_secrets for v in resource.versions):
            continue
        counts = await _sweep(db, resource, new_box, on_progress)
        counts["rewritten"] += await resource._history.rotate_history(new_box)  # kept revisions too
        counts["rewritten"] += await rotate_intents(resource, new_box)  # change feed intents
        totals["records"] += counts["records"]
        totals["rewritten"] += counts["rewritten"]

    def finish(doc: dict[str, Any]) -> bool:
        current = doc.setdefault("secrets", {})
        current["salt"] = rotation["salt"]
        current["check"] = rotation["check"]
        current.pop("rotation", None)
        return True

    await db._update_meta(finish)
    db._passphrase = new
    db._use_secret_box(new_box)
    return totals


async def _sweep(
    db: Database,
    resource: Resource,
    new_box: SecretBox,
    on_progress: Callable[[dict[str, Any]], Any] | None,
) -> dict[str, int]:
    keys = [e.key async for e in db.store.list(resource.data_prefix) if isinstance(e, ListEntry)]
    done = {"records": 0, "rewritten": 0}

    async def rewrite(key: str, _: int) -> _Retry | None:
        try:
            obj = await db.store.get(key)
        except NotFoundError:
            return None
        version = record_version(obj.metadata) or resource.version
        try:
            resource.make_codec(version, new_box).decode(obj.metadata, obj.body)
            return None  # already under the new key (or no secret set)
        except DecryptionError:
            pass
        codec = resource._codec_for(version)
        encoded = codec.encode(codec.decode(obj.metadata, obj.body))
        for reserved in KEPT_METADATA:  # revision number, partition reference tokens
            if reserved in obj.metadata:
                encoded.metadata[reserved] = obj.metadata[reserved]
        try:
            await resource._records.put_encoded(key, encoded, if_match=obj.etag)
        except PreconditionFailed:
            return RETRY  # changed meanwhile: look again
        done["rewritten"] += 1
        return None

    async def one(key: str) -> None:
        await cas_loop(
            functools.partial(rewrite, key),
            what=f"{key!r} (passphrase rotation)",
            backoff=Backoff(attempts=20),
            metadata={"key": key},
        )
        done["records"] += 1
        if on_progress is not None:
            on_progress({"resource": resource.name, "done": done["records"], "total": len(keys)})

    await bounded_gather(one, keys, db.parallelism)
    return done
