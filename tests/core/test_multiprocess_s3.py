"""Conditional writes across OS processes on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import uuid

import pytest

from tests._servers import S3Server

from .test_file_store import cas_counter, race_rounds


def _url(request: pytest.FixtureRequest) -> str:
    server: S3Server = request.getfixturevalue("seaweedfs_server")
    return server.url(f"mp-{uuid.uuid4().hex[:8]}")


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
async def test_multi_process_create_race_on_seaweedfs(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    await race_rounds(_url(request), 4, 5)


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
async def test_multi_process_compare_and_swap_on_seaweedfs(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    await cas_counter(_url(request), 4, 10)
