"""``s3db.json``: checking it on read, and the copies of its last versions.

Every write of ``s3db.json`` (a compare-and-swap in :class:`Database`) bumps its
``revision`` and then PUTs the same document to ``s3db.json.history/<revision % 5>``:
one extra PUT per metadata change (never per record write), so the last
:data:`HISTORY_SIZE` versions are always there to restore (``s3db doctor
--restore-metadata``). A document that cannot be decoded or lacks what connect needs
raises :class:`~s3db_async.errors.CorruptMetadataError` naming the key, the path inside
the document and the recovery, never a raw decode or key error.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from ..errors import CorruptMetadataError, S3dbError
from ..stores import ObjectStore

__all__ = [
    "HISTORY_PREFIX",
    "HISTORY_SIZE",
    "METADATA_KEY",
    "corrupt_metadata",
    "history_key",
    "parse_metadata",
    "save_history",
]

log = logging.getLogger("s3db_async.database")

METADATA_KEY = "s3db.json"
HISTORY_PREFIX = "s3db.json.history/"
HISTORY_SIZE = 5
RECOVERY = (
    "restore the last good copy with 's3db doctor --restore-metadata' (copies of the last "
    f"{HISTORY_SIZE} versions are kept under {HISTORY_PREFIX}), or fix the JSON by hand"
)


def history_key(revision: int) -> str:
    """Key of the history copy of ``s3db.json`` revision ``revision`` (a ring of slots)."""
    return f"{HISTORY_PREFIX}{revision % HISTORY_SIZE}"


def corrupt_metadata(key: str, path: str, reason: str) -> CorruptMetadataError:
    """The error for a damaged ``s3db.json`` (or history copy)."""
    where = f" at {path!r}" if path else ""
    return CorruptMetadataError(
        f"{key} is corrupt{where}: {reason}",
        suggestion=RECOVERY,
        metadata={"key": key, "path": path, "reason": reason},
    )


def parse_metadata(body: bytes, *, key: str = METADATA_KEY) -> dict[str, Any]:
    """Decode and check a stored ``s3db.json``.

    :raises CorruptMetadataError: empty, not JSON, or missing/mistyped what connect reads.
    """
    if not body:
        raise corrupt_metadata(key, "", "the object is empty")
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise corrupt_metadata(key, "", f"not valid JSON ({exc})") from None
    check_metadata(doc, key=key)
    return doc  # type: ignore[no-any-return]


def _need(doc: Any, field: str, kind: type, key: str, path: str) -> Any:
    value = doc.get(field) if isinstance(doc, Mapping) else None
    if not isinstance(value, kind):
        what = "missing" if value is None else f"a {type(value).__name__}"
        full = f"{path}.{field}" if path else field
        raise corrupt_metadata(key, full, f"expected a {kind.__name__}, found {what}")
    return value


def _salt(holder: Mapping[str, Any], key: str, path: str) -> None:
    salt = _need(holder, "salt", str, key, path)
    try:
        raw = base64.b64decode(salt, validate=True)
    except (binascii.Error, ValueError):
        raise corrupt_metadata(key, f"{path}.salt", "not base64") from None
    if len(raw) < 16:
        raise corrupt_metadata(key, f"{path}.salt", f"{len(raw)} bytes, at least 16 expected")


def check_metadata(doc: Any, *, key: str = METADATA_KEY) -> None:
    """Check the shape of a decoded ``s3db.json`` (what connect and reload read).

    :raises CorruptMetadataError: naming the first bad path.
    """
    if not isinstance(doc, dict):
        raise corrupt_metadata(key, "", f"expected a JSON object, found {type(doc).__name__}")
    revision = doc.get("revision", 0)
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise corrupt_metadata(key, "revision", "expected a non-negative integer")
    secrets = _need(doc, "secrets", dict, key, "")
    _salt(secrets, key, "secrets")
    if secrets.get("rotation") is not None:
        _salt(_need(secrets, "rotation", dict, key, "secrets"), key, "secrets.rotation")
    for name, entry in _need(doc, "resources", dict, key, "").items():
        path = f"resources.{name}"
        if not isinstance(entry, dict):
            raise corrupt_metadata(key, path, f"expected an object, found {type(entry).__name__}")
        current = _need(entry, "current_version", str, key, path)
        versions = _need(entry, "versions", dict, key, path)
        if current not in versions:
            raise corrupt_metadata(
                key, f"{path}.current_version", f"version {current!r} is not in 'versions'"
            )
        for version in versions:
            _need(_need(versions, version, dict, key, f"{path}.versions"), "definition",
                  dict, key, f"{path}.versions.{version}")  # fmt: skip
        if entry.get("registry") is not None:
            _need(entry, "registry", dict, key, path)


async def save_history(store: ObjectStore, doc: Mapping[str, Any], body: bytes) -> None:
    """Keep a copy of a just-written ``s3db.json`` (one PUT; a failure is only logged)."""
    revision = int(doc.get("revision") or 0)
    try:
        await store.put(history_key(revision), body, content_type="application/json")
    except S3dbError as exc:
        log.warning(
            "could not keep a copy of %s revision %d: %s",
            METADATA_KEY,
            revision,
            exc,
            extra={"op": "metadata_history"},
        )
