"""The exported surface: what `from s3db_async import *` gives, and what importing costs."""

from __future__ import annotations

import subprocess
import sys

import s3db_async

EXPECTED = {
    "AlreadyExistsError", "BatchResult", "ConfigError", "ConflictError", "ConnectionConfig",
    "Database", "DecryptionError", "EncryptionError", "FileStore", "ItemResult", "Lock",
    "LockError", "MemoryStore", "MetadataLimitError", "MissingDependencyError", "NotFoundError",
    "ObjectStore", "Page", "Plugin", "PluginError", "PluginStorage", "PreconditionFailed",
    "Record", "RecordRevision", "Resource", "ResourceNotFoundError", "S3Store", "S3dbError",
    "Schema", "SchemaError", "StoreError", "UnsupportedCapabilityError", "ValidationError",
    "__version__", "errors", "open_store", "parse_connection_string",
}  # fmt: skip


def test_exported_surface() -> None:
    assert set(s3db_async.__all__) == EXPECTED
    for name in s3db_async.__all__:
        assert getattr(s3db_async, name) is not None, name
    public = [n for n in EXPECTED if n[0].isupper()]
    assert all(getattr(s3db_async, n).__doc__ for n in public), "every public class documented"


def test_errors_subclass_builtins() -> None:
    assert issubclass(s3db_async.NotFoundError, KeyError)
    assert issubclass(s3db_async.ValidationError, ValueError)
    assert issubclass(s3db_async.MissingDependencyError, ImportError)
    assert all(issubclass(e, s3db_async.S3dbError) for e in (
        s3db_async.ConflictError, s3db_async.PreconditionFailed, s3db_async.StoreError,
    ))  # fmt: skip


def test_import_is_light() -> None:
    """`import s3db_async` and `s3db_async.plugins` pull in no optional heavy dependency."""
    code = (
        "import sys, s3db_async, s3db_async.plugins\n"
        "heavy = {'numpy', 'asyncpg', 'playwright', 'mcp', 'hypothesis', 'aioboto3', 'boto3',"
        " 'moto', 'typer', 'redis', 'aio_pika', 'tantivy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
