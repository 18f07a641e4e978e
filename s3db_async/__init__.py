"""s3db-async: an async document database on any S3-compatible object store."""

from __future__ import annotations

from . import errors
from ._url import ConnectionConfig, parse_connection_string
from .errors import (
    AlreadyExistsError,
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    PluginError,
    PreconditionFailed,
    S3dbError,
    ValidationError,
)
from .stores import FileStore, MemoryStore, ObjectStore, S3Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "ConnectionConfig",
    "FileStore",
    "MemoryStore",
    "MissingDependencyError",
    "NotFoundError",
    "ObjectStore",
    "PluginError",
    "PreconditionFailed",
    "S3Store",
    "S3dbError",
    "ValidationError",
    "__version__",
    "errors",
    "open_store",
    "parse_connection_string",
]
