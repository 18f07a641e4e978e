"""The s3db-async exception hierarchy.

Every error the library raises derives from :class:`S3dbError` and carries
``status_code``, ``retriable``, ``suggestion``, ``metadata`` and ``description``.
Leaves also subclass the matching builtin so plain ``except KeyError`` or
``except ValueError`` clauses keep working::

    S3dbError
    ├── ConfigError (ValueError)
    │   ├── ConnectionStringError
    │   ├── CorruptMetadataError
    │   ├── NotConnectedError
    │   └── UnknownOptionError (TypeError)
    ├── ValidationError (ValueError)
    │   ├── SchemaError
    │   ├── MetadataLimitError
    │   └── CorruptRecordError
    ├── NotFoundError (KeyError)
    │   ├── ResourceNotFoundError
    │   └── BucketNotFoundError
    ├── AlreadyExistsError
    ├── PreconditionFailed
    │   └── ConflictError
    ├── UnsupportedCapabilityError
    ├── StoreError
    │   ├── AuthenticationError (PermissionError)
    │   ├── EndpointUnreachableError (ConnectionError)
    │   ├── InvalidKeyError (ValueError)
    │   ├── WriteOutcomeUnknownError
    │   └── CorruptObjectError
    ├── EncryptionError
    │   └── DecryptionError
    ├── PluginError
    │   └── MissingDependencyError (ImportError)
    └── LockError
        └── LeaseLostError
            └── StaleFenceError
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "BucketNotFoundError",
    "ConfigError",
    "ConflictError",
    "ConnectionStringError",
    "CorruptMetadataError",
    "CorruptObjectError",
    "CorruptRecordError",
    "DecryptionError",
    "EncryptionError",
    "EndpointUnreachableError",
    "InvalidKeyError",
    "LeaseLostError",
    "LockError",
    "MetadataLimitError",
    "MissingDependencyError",
    "NotConnectedError",
    "NotFoundError",
    "PluginError",
    "PreconditionFailed",
    "ResourceNotFoundError",
    "S3dbError",
    "SchemaError",
    "StaleFenceError",
    "StoreError",
    "UnknownOptionError",
    "UnsupportedCapabilityError",
    "ValidationError",
    "WriteOutcomeUnknownError",
]


class S3dbError(Exception):
    """Base of every error raised by s3db-async.

    :param message: what went wrong, in one sentence.
    :param suggestion: what the caller can do about it.
    :param metadata: structured context (key, resource, field, ...).
    """

    status_code: int = 500
    retriable: bool = False
    description: str = "s3db-async error"

    def __init__(
        self,
        message: str,
        *,
        suggestion: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        retriable: bool | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
        self.metadata: dict[str, Any] = dict(metadata or {})
        if retriable is not None:
            self.retriable = retriable
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        if self.suggestion:
            return f"{self.message} (suggestion: {self.suggestion})"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view of the error (for APIs and logs)."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "status_code": self.status_code,
            "retriable": self.retriable,
            "suggestion": self.suggestion,
            "description": self.description,
            "metadata": self.metadata,
        }


class ConfigError(S3dbError, ValueError):
    """An option or argument is invalid."""

    status_code = 400
    description = "invalid configuration"


class ConnectionStringError(ConfigError):
    """A connection string could not be parsed; ``metadata['part']`` names the bad part."""

    description = "malformed connection string"


class NotConnectedError(ConfigError):
    """The database is not connected (before ``connect()`` or after ``disconnect()``)."""

    status_code = 503
    description = "database not connected"


class UnknownOptionError(ConfigError, TypeError):
    """An operation got a keyword option that nothing installed handles.

    Extra keyword options of resource operations (``posts.get(id, include=[...])``) are
    provided by plugins; ``metadata`` names the ``field`` (the option), the ``reason``, the
    ``resource``, the ``method`` and the ``options`` that method accepts there. It is a
    ``TypeError`` too, like Python's own "unexpected keyword argument".
    """

    description = "unknown operation option"


class ValidationError(S3dbError, ValueError):
    """Data does not satisfy a schema.

    ``errors`` lists every failing field as dicts with ``field``, ``rule``,
    ``message`` and ``value_type``.
    """

    status_code = 422
    description = "validation failed"

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        suggestion: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, suggestion=suggestion, metadata=metadata)
        self.errors: list[dict[str, Any]] = list(errors or [])

    @property
    def fields(self) -> list[str]:
        """The names of the failing fields."""
        return [str(e.get("field")) for e in self.errors]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["errors"] = self.errors
        return out


class CorruptMetadataError(ConfigError):
    """``s3db.json`` cannot be read back (invalid JSON, a missing key, a wrong type).

    ``metadata`` holds ``key`` (the object key), ``path`` (where in the document) and
    ``reason``; the suggestion names the recovery (``s3db doctor --restore-metadata``).
    """

    status_code = 500
    description = "database metadata is corrupt"


class SchemaError(ValidationError):
    """A resource definition (attribute rule, partition, behavior) is invalid."""

    status_code = 400
    description = "invalid schema"


class MetadataLimitError(ValidationError):
    """A record does not fit S3's 2 KB user-metadata limit under ``enforce-limits``."""

    status_code = 413
    description = "metadata over the 2 KB limit"


class CorruptRecordError(ValidationError):
    """A stored record cannot be decoded (damaged metadata or body, unknown schema version).

    ``id``, ``key`` and ``reason`` are attributes and ``metadata`` entries. Listings skip
    such a record (an ``error`` event, ``skipped`` on the result) unless ``strict=True``.
    """

    status_code = 500
    description = "stored record is corrupt"

    def __init__(self, resource: str, record_id: str, key: str, reason: str) -> None:
        super().__init__(
            f"{resource} record {record_id!r} (key {key!r}) is corrupt: {reason}",
            suggestion=f"run 's3db doctor {resource}' to list damaged objects; "
            "delete() removes the record",
            metadata={"resource": resource, "id": record_id, "key": key, "reason": reason},
        )
        self.id = record_id
        self.key = key
        self.reason = reason


class NotFoundError(S3dbError, KeyError):
    """A key, record or resource does not exist."""

    status_code = 404
    description = "not found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return S3dbError.__str__(self)


class ResourceNotFoundError(NotFoundError):
    """A resource name is not defined in the database."""

    description = "resource not found"


class BucketNotFoundError(NotFoundError):
    """The bucket named in the connection string does not exist."""

    description = "bucket not found"


class AlreadyExistsError(S3dbError):
    """A create-only write found the key (or record id) already present."""

    status_code = 409
    description = "already exists"


class PreconditionFailed(S3dbError):
    """A conditional write failed: the object changed (or vanished) since it was read."""

    status_code = 412
    description = "precondition failed"


class ConflictError(PreconditionFailed):
    """A read-modify-write lost its race more times than the caller allowed."""

    status_code = 409
    description = "concurrent modification conflict"


class UnsupportedCapabilityError(S3dbError):
    """The store cannot guarantee a primitive (e.g. conditional writes) that was asked for."""

    status_code = 501
    description = "store capability missing"


class StoreError(S3dbError):
    """The object store failed a request."""

    status_code = 502
    description = "object store error"


class AuthenticationError(StoreError, PermissionError):
    """The store refused the credentials."""

    status_code = 403
    description = "access denied"


class EndpointUnreachableError(StoreError, ConnectionError):
    """The endpoint did not answer."""

    status_code = 503
    retriable = True
    description = "endpoint unreachable"


class InvalidKeyError(StoreError, ValueError):
    """An object key is unsafe (path escape, empty, control characters)."""

    status_code = 400
    description = "invalid object key"


class WriteOutcomeUnknownError(StoreError):
    """A conditional write may or may not have been applied (its answer was lost).

    Raised by a store for a conditional PUT whose reply never came (reset, timeout,
    5xx after sending); :func:`s3db_async._cas.conditional_put` then reads the key back
    and raises it again only when the outcome cannot be proven either way. ``metadata``
    holds ``key`` and ``op``.
    """

    status_code = 504
    retriable = True
    description = "write outcome unknown"


class CorruptObjectError(StoreError):
    """An object exists but the store cannot read it back (a damaged or foreign file).

    ``metadata['key']`` names the object and ``metadata['reason']`` what is wrong.
    """

    status_code = 500
    description = "stored object is unreadable"


class EncryptionError(S3dbError):
    """A secret field could not be encrypted."""

    description = "encryption failed"


class DecryptionError(EncryptionError):
    """A secret field could not be decrypted (wrong passphrase or corrupt value)."""

    description = "decryption failed"


class PluginError(S3dbError):
    """A plugin failed to install, start, stop or act."""

    description = "plugin error"


class MissingDependencyError(PluginError, ImportError):
    """An optional dependency is not installed; the message has the pip command."""

    description = "missing optional dependency"


class LockError(S3dbError):
    """A distributed lock could not be acquired or released."""

    status_code = 423
    retriable = True
    description = "lock error"


class LeaseLostError(LockError):
    """A leader lease is not (or no longer) held by this process: leader-only work stops.

    ``metadata`` has ``lease``, ``epoch`` (this holder's term, if any) and ``reason``.
    """

    description = "leader lease lost"


class StaleFenceError(LeaseLostError):
    """A fenced write carried an epoch older than one the target has already seen: a newer
    leader took over, so the write from the deposed one is refused.

    ``metadata`` has ``key``, ``lease``, ``epoch`` (ours) and ``seen`` (the newer epoch).
    """

    status_code = 409
    retriable = False
    description = "write from a deposed leader refused"
