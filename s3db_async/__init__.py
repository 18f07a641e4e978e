"""s3db-async: an async document database on any S3-compatible object store.

::

    from s3db_async import Database

    async with Database("file://./data/myapp") as db:
        users = await db.create_resource("users", attributes={"email": "string|required|email"})
        await users.insert({"email": "ann@example.com"})
"""

from __future__ import annotations

from . import errors
from ._database import Database
from ._plugin.base import Plugin
from ._plugin.feed import Change
from ._plugin.storage import Lock, PluginStorage
from ._record import BatchResult, ItemResult, Page, Record
from ._resource.feed import actor, current_actor, set_actor
from ._resource.history import RecordRevision
from ._resource.resource import Resource
from ._schema.schema import Schema
from ._version import __version__
from .errors import (
    AlreadyExistsError,
    AuthenticationError,
    BucketNotFoundError,
    ConfigError,
    ConflictError,
    ConnectionStringError,
    CorruptMetadataError,
    CorruptObjectError,
    CorruptRecordError,
    DecryptionError,
    EncryptionError,
    EndpointUnreachableError,
    InvalidKeyError,
    LeaseLostError,
    LockError,
    MetadataLimitError,
    MissingDependencyError,
    NotConnectedError,
    NotFoundError,
    PluginError,
    PreconditionFailed,
    ResourceNotFoundError,
    S3dbError,
    SchemaError,
    StaleFenceError,
    StoreError,
    UnknownOptionError,
    UnsupportedCapabilityError,
    ValidationError,
    WriteOutcomeUnknownError,
)
from .stores import FileStore, MemoryStore, ObjectStore, S3Store, open_store
from .stores._url import ConnectionConfig, parse_connection_string

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "BatchResult",
    "BucketNotFoundError",
    "Change",
    "ConfigError",
    "ConflictError",
    "ConnectionConfig",
    "ConnectionStringError",
    "CorruptMetadataError",
    "CorruptObjectError",
    "CorruptRecordError",
    "Database",
    "DecryptionError",
    "EncryptionError",
    "EndpointUnreachableError",
    "FileStore",
    "InvalidKeyError",
    "ItemResult",
    "LeaseLostError",
    "Lock",
    "LockError",
    "MemoryStore",
    "MetadataLimitError",
    "MissingDependencyError",
    "NotConnectedError",
    "NotFoundError",
    "ObjectStore",
    "Page",
    "Plugin",
    "PluginError",
    "PluginStorage",
    "PreconditionFailed",
    "Record",
    "RecordRevision",
    "Resource",
    "ResourceNotFoundError",
    "S3Store",
    "S3dbError",
    "Schema",
    "SchemaError",
    "StaleFenceError",
    "StoreError",
    "UnknownOptionError",
    "UnsupportedCapabilityError",
    "ValidationError",
    "WriteOutcomeUnknownError",
    "__version__",
    "errors",
    "open_store",
    "parse_connection_string",
    "actor",
    "current_actor",
    "set_actor",
]
