"""Conditional writes across OS processes on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import uuid

import anyio
import pytest

from s3db_async.stores import open_store
from tests._servers import S3Server

from ._file_store_worker import finish, spawn


def _url(request: pytest.FixtureRequest) -> str:
    server: S3Server = request.getfixturevalue("seaweedfs_server")
    return server.url(f"mp-{uuid.uuid4().hex[:8]}")


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
def test_multi_process_create_race_on_seaweedfs(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    url = _url(request)
    procs = [spawn("race", url) for _ in range(4)]
    try:
        for rnd in range(5):
            key = f"race/{rnd}"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(key + "\n")
            answers = []
            for p in procs:
                assert p.stdout is not None
                answers.append(p.stdout.readline().strip())
            assert sorted(answers) == ["lose"] * 3 + ["win"], (rnd, answers)
            winner = procs[answers.index("win")].pid

            async def check(key: str = key, winner: int = winner) -> None:
                async with open_store(url) as store:
                    assert (await store.get(key)).body == str(winner).encode()

            anyio.run(check)
    finally:
        finish(procs)


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
def test_multi_process_compare_and_swap_on_seaweedfs(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    url = _url(request)

    async def seed() -> None:
        async with open_store(url) as store:
            await store.put("counter", b"0")

    anyio.run(seed)
    procs = [spawn("cas", url, "counter", "10") for _ in range(4)]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None
            int(p.stdout.readline().strip())
    finally:
        finish(procs)

    async def check() -> None:
        async with open_store(url) as store:
            assert int((await store.get("counter")).body) == 40

    anyio.run(check)
