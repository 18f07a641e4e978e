"""The store matrix of :mod:`s3db_async.testing`: which stores a test runs on, and where.

``S3DB_TEST_STORES=memory,file`` (comma-separated; default: all four) selects the stores;
``moto`` and ``seaweedfs`` start a real S3 server once per test session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from .servers import S3Server

__all__ = ["STORES_ENV", "STORE_KINDS", "selected_stores", "store_url_for"]

STORE_KINDS = ("memory", "file", "moto", "seaweedfs")
"""Every store kind of the matrix: in memory, the file store, moto over HTTP, SeaweedFS."""

STORES_ENV = "S3DB_TEST_STORES"
"""Environment variable selecting store kinds, e.g. ``memory,file`` (default: all)."""


def selected_stores(environ: Mapping[str, str] | None = None) -> list[str]:
    """The store kinds ``$S3DB_TEST_STORES`` selects (all of :data:`STORE_KINDS` if unset).

    :raises ConfigError: an unknown kind.
    """
    raw = (os.environ if environ is None else environ).get(STORES_ENV, "")
    names = [s.strip() for s in raw.split(",") if s.strip()] or list(STORE_KINDS)
    unknown = sorted(set(names) - set(STORE_KINDS))
    if unknown:
        raise ConfigError(
            f"{STORES_ENV}: unknown store kind(s) {unknown}",
            suggestion=f"use a comma-separated subset of {', '.join(STORE_KINDS)}",
            metadata={"field": STORES_ENV, "reason": "unknown store kind", "value": raw},
        )
    return list(dict.fromkeys(names))


def store_url_for(
    kind: str, *, folder: str | Path | None = None, server: S3Server | None = None
) -> str:
    """A connection string to a fresh, empty place on a store of ``kind``.

    :param folder: the directory for ``file`` (required there).
    :param server: the running server for ``moto`` and ``seaweedfs`` (required there).
    :raises ConfigError: an unknown kind, or the folder or server it needs is missing.
    """
    unique = uuid.uuid4().hex[:12]
    if kind == "memory":
        return f"memory://mem{unique}/data"
    if kind == "file":
        if folder is None:
            raise ConfigError(
                "the file store needs a folder",
                suggestion="pass folder=tmp_path / 'db'",
                metadata={"field": "folder", "reason": "missing"},
            )
        return f"file://{Path(folder).resolve()}"
    if kind in ("moto", "seaweedfs"):
        if server is None:
            raise ConfigError(
                f"the {kind} store needs its running server",
                suggestion=f"pass server=start_{kind}(...) (or use the s3db_{kind}_server fixture)",
                metadata={"field": "server", "reason": "missing"},
            )
        return server.url(f"t{unique}")
    raise ConfigError(
        f"unknown store kind {kind!r}",
        suggestion=f"use one of {', '.join(STORE_KINDS)}",
        metadata={"field": "kind", "reason": "unknown store kind", "value": kind},
    )
