"""Fixtures of the BackupPlugin tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def second_url(make_store_url: Callable[[str], str]) -> str:
    """A second, empty database on the same kind of store (the target of a restore)."""
    return make_store_url("db2")
