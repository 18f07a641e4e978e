"""Fixtures of the BackupPlugin tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3db_async.testing import store_url_for


@pytest.fixture
def second_url(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second, empty database on the same kind of store (the target of a restore)."""
    server = None
    if store_kind in ("moto", "seaweedfs"):
        server = request.getfixturevalue(f"{store_kind}_server")
    return store_url_for(store_kind, folder=tmp_path / "db2", server=server)
