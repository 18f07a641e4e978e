"""Object stores: the only I/O boundary of s3db-async.

``open_store(url)`` picks the store for a connection string::

    store = open_store("file://./data")
    async with store:
        etag = await store.put("a/b", b"body", {"k": "v"}, if_none_match=True)
"""

from __future__ import annotations

from typing import Any

from ._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    METADATA_LIMIT,
    MIN_PART_SIZE,
    ByteChunks,
    Capabilities,
    CommonPrefix,
    ListEntry,
    ObjectInfo,
    ObjectStore,
    ObjectStream,
    RequestStats,
    StoredObject,
    aiter_chunks,
    decode_metadata_value,
    encode_metadata_value,
    metadata_size,
    validate_key,
)
from ._file import FileStore
from ._memory import MemoryStore
from ._s3 import S3Store
from ._url import ConnectionConfig, parse_connection_string

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PART_SIZE",
    "METADATA_LIMIT",
    "MIN_PART_SIZE",
    "ByteChunks",
    "Capabilities",
    "CommonPrefix",
    "FileStore",
    "ListEntry",
    "MemoryStore",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "RequestStats",
    "S3Store",
    "StoredObject",
    "aiter_chunks",
    "decode_metadata_value",
    "encode_metadata_value",
    "metadata_size",
    "open_store",
    "validate_key",
]


def open_store(url: str | ConnectionConfig, **options: Any) -> ObjectStore:
    """Create (not yet connect) the store for a connection string.

    :param url: ``memory://``, ``file://``, ``s3://`` or ``http(s)://`` connection string.
    :param options: store-specific keyword options (e.g. ``parallelism=64``).
    :raises ConnectionStringError: the string is malformed.
    """
    config = url if isinstance(url, ConnectionConfig) else parse_connection_string(url)
    if config.scheme == "memory":
        return MemoryStore(config, **options)
    if config.scheme == "file":
        return FileStore(config, **options)
    return S3Store(config, **options)
