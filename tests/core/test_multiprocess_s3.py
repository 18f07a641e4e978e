"""Conditional writes across OS processes on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest

from s3db_async.stores import open_store
from tests._servers import S3Server

WORKER = Path(__file__).with_name("_file_store_worker.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.stdin and not p.stdin.closed:
            p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        assert p.stdout is not None
        p.stdout.close()
        assert p.returncode == 0


def _url(request: pytest.FixtureRequest) -> str:
    server: S3Server = request.getfixturevalue("seaweedfs_server")
    return server.url(f"mp-{uuid.uuid4().hex[:8]}")


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
def test_multi_process_create_race_on_seaweedfs(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    url = _url(request)
    procs = [_spawn("race", url) for _ in range(4)]
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
        _finish(procs)


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
    procs = [_spawn("cas", url, "counter", "10") for _ in range(4)]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None
            int(p.stdout.readline().strip())
    finally:
        _finish(procs)

    async def check() -> None:
        async with open_store(url) as store:
            assert int((await store.get("counter")).body) == 40

    anyio.run(check)
