"""The exported surface: what `from s3db_async import *` gives, and what importing costs."""

from __future__ import annotations

import subprocess
import sys

import s3db_async
from s3db_async import errors

EXPECTED = {
    "BatchResult", "Change", "ConnectionConfig", "Database", "FileStore", "ItemResult", "Lock",
    "MemoryStore", "ObjectStore", "Page", "Plugin", "PluginStorage", "Record", "RecordRevision",
    "Resource", "S3Store", "Schema", "__version__", "actor", "current_actor", "errors",
    "open_store", "parse_connection_string", "set_actor",
} | set(errors.__all__)  # fmt: skip


def test_exported_surface() -> None:
    assert set(s3db_async.__all__) == EXPECTED
    missing = [n for n in s3db_async.__all__ if n not in vars(s3db_async)]
    assert missing == [], "every name in __all__ is defined"
    public = [n for n in EXPECTED if n[0].isupper()]
    assert all(getattr(s3db_async, n).__doc__ for n in public), "every public class documented"


def test_every_error_class_is_exported_at_the_top_level() -> None:
    classes = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, Exception)
        if obj.__module__ == errors.__name__
    }
    assert classes == set(errors.__all__)
    for name in classes:
        assert getattr(s3db_async, name) is getattr(errors, name), name


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
