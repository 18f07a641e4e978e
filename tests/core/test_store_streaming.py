"""Streaming uploads and downloads (``put_stream`` / ``get_stream``) on every store.

A body larger than the part size goes as a multipart upload (S3's etag, request counts
per part) and comes back exactly; a failed upload leaves nothing behind; memory stays
bounded by the part size (checked in the backup benchmark with tracemalloc).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from s3db_async.errors import ConfigError, NotFoundError, PreconditionFailed
from s3db_async.stores import MIN_PART_SIZE, FileStore, ObjectStore, S3Store
from s3db_async.stores._base import body_etag, multipart_etag
from tests._faults import ReplyDroppingProxy
from tests._servers import CountingProxy, S3Server

PART = MIN_PART_SIZE
SIZE = 2 * PART + 123_457  # three parts, the last one short


def _data(size: int = SIZE) -> bytes:
    return random.Random(size).randbytes(size)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _open_files(root: str) -> list[str]:
    """Files under ``root`` this process holds open (Linux /proc)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return []
    out = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(root) and "~s3db" not in target:
                out.append(target)
    return out


def _expected_etag(data: bytes, part: int = PART) -> str:
    return multipart_etag(
        hashlib.md5(data[i : i + part], usedforsecurity=False).digest()
        for i in range(0, len(data), part)
    )


async def test_small_stream_is_one_put(store: ObjectStore) -> None:
    body = b"abc" * 1000
    store.stats.reset()
    etag = await store.put_stream(
        "small", iter([body[:10], b"", body[10:]]), {"K": "v"}, content_type="text/plain"
    )
    assert store.stats.snapshot() == {"put": 1}
    assert etag == body_etag(body)
    obj = await store.get("small")
    assert (obj.body, obj.metadata, obj.content_type, obj.etag) == (
        body,
        {"k": "v"},
        "text/plain",
        etag,
    )


async def test_large_stream_is_multipart_and_round_trips(store: ObjectStore) -> None:
    data = _data()
    store.stats.reset()
    etag = await store.put_stream(
        "big/blob",
        _chunks(data, 1_000_003),  # chunk boundaries never meet part boundaries
        {"name": "blob"},
        content_type="application/x-test",
        part_size=PART,
    )
    assert store.stats.snapshot() == {"multipart_create": 1, "put_part": 3, "multipart_complete": 1}
    assert etag == _expected_etag(data)  # S3's multipart etag, on every store
    info = await store.head("big/blob")
    assert (info.size, info.etag, info.metadata) == (len(data), etag, {"name": "blob"})
    assert [(e.key, e.size) async for e in store.list("big/")] == [("big/blob", len(data))]

    store.stats.reset()
    async with await store.get_stream("big/blob", chunk_size=1 << 20) as stream:
        assert stream.info.size == len(data) and stream.info.etag == etag
        assert stream.info.content_type == "application/x-test"
        pieces = [chunk async for chunk in stream]
    assert store.stats.snapshot() == {"get": 1}
    assert len(pieces) > 1 and b"".join(pieces) == data
    assert (await store.get("big/blob")).body == data


async def test_failed_upload_leaves_the_previous_version(store: ObjectStore) -> None:
    await store.put("doc", b"old")

    def broken() -> Iterator[bytes]:
        yield b"x" * (PART + 1)  # past one part: the upload is multipart
        yield b"y" * 1000
        raise RuntimeError("source failed")

    store.stats.reset()
    with pytest.raises(RuntimeError, match="source failed"):
        await store.put_stream("doc", broken(), part_size=PART)
    assert store.stats["multipart_create"] == 1 and store.stats["multipart_abort"] == 1
    assert "multipart_complete" not in store.stats
    assert (await store.get("doc")).body == b"old"
    with pytest.raises(RuntimeError):
        await store.put_stream("fresh", broken(), part_size=PART)
    assert not await store.exists("fresh")

    async def bad_value() -> AsyncIterator[bytes]:
        yield b"z" * (PART + 1)
        raise ValueError("the caller's own error")

    with pytest.raises(ValueError, match="the caller's own error") as info:
        await store.put_stream("fresh", bad_value(), part_size=PART)
    assert type(info.value) is ValueError  # passed through as raised, not wrapped


async def test_stream_arguments_are_checked(store: ObjectStore) -> None:
    for bad in (1024, MIN_PART_SIZE - 1, True, "8MiB"):
        with pytest.raises(ConfigError) as info:
            await store.put_stream("k", [b"x"], part_size=bad)  # type: ignore[arg-type]
        assert info.value.metadata["field"] == "part_size" and info.value.suggestion
    with pytest.raises(ConfigError) as info:
        await store.put_stream("k", b"one bytes object")
    assert info.value.metadata["field"] == "chunks"
    with pytest.raises(NotFoundError):
        await store.get_stream("missing")
    assert not await store.exists("k")


async def test_get_stream_can_stop_early(store: ObjectStore) -> None:
    data = _data(3_000_000)
    await store.put("mid", data)
    stream = await store.get_stream("mid", chunk_size=1 << 18)
    first = await anext(aiter(stream))
    await stream.aclose()
    assert data.startswith(first)
    assert await (await store.get_stream("mid")).read() == data
    for _ in range(3):  # closed before the first chunk: nothing is left open
        async with await store.get_stream("mid"):
            pass
    if isinstance(store, FileStore):
        assert _open_files(store.root) == []


@pytest.mark.stores("moto", "seaweedfs")
async def test_multipart_requests_on_the_wire(
    request: pytest.FixtureRequest, store_kind: str
) -> None:
    """stats match what the server saw (POST create + PUT per part + POST complete), and
    a part refused once (503) is resent by obstore: the upload still succeeds."""
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    data = _data()
    with CountingProxy(server.endpoint) as proxy:
        store = S3Store(server.url(f"mp{uuid.uuid4().hex[:8]}", endpoint=proxy.endpoint))
        await store.connect()
        try:
            proxy.reset()
            store.stats.reset()
            await store.put_stream("wire", _chunks(data, 1 << 20), part_size=PART)
            assert proxy.snapshot() == {"POST": 2, "PUT": 3}
            assert store.stats.snapshot() == {
                "multipart_create": 1,
                "put_part": 3,
                "multipart_complete": 1,
            }
            proxy.reset()
            proxy.inject(503, times=1, method="PUT")
            etag = await store.put_stream("wire", _chunks(data, 1 << 20), part_size=PART)
            assert proxy.snapshot()["PUT"] == 4  # one part sent twice
            assert etag == _expected_etag(data)
            assert await (await store.get_stream("wire")).read() == data
        finally:
            await store.close()


def _get_of(fragment: bytes):  # type: ignore[no-untyped-def]
    return lambda head: head.startswith(b"GET ") and fragment in head.split(b"\r\n", 1)[0]


@pytest.mark.stores("moto", "seaweedfs")
async def test_download_cut_mid_body_resumes_or_reports_a_change(
    request: pytest.FixtureRequest, store_kind: str
) -> None:
    """A reply cut after 1 MB: the read resumes with a ranged GET bound to the etag (one
    more ``get``), and raises PreconditionFailed when the object changed in between."""
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    proxy = ReplyDroppingProxy("127.0.0.1", server.port).start()
    prefix = f"cut{uuid.uuid4().hex[:8]}"
    store = S3Store(server.url(prefix, endpoint=f"http://127.0.0.1:{proxy.port}"))
    direct = S3Store(server.url(prefix))
    await store.connect()
    await direct.connect()
    try:
        data = _data(3_000_000)
        await direct.put("obj", data)
        proxy.cut(1, _get_of(b"/obj"), body_bytes=1_000_000)
        store.stats.reset()
        assert await (await store.get_stream("obj", chunk_size=1 << 16)).read() == data
        assert proxy.dropped and store.stats["get"] == 2

        proxy.cut(1, _get_of(b"/obj"), body_bytes=1_000_000)
        stream = await store.get_stream("obj", chunk_size=1 << 16)
        first = await anext(aiter(stream))
        await direct.put("obj", b"a new version")
        with pytest.raises(PreconditionFailed):
            async for chunk in stream:
                first += chunk
        assert data.startswith(first) and len(first) < len(data)
    finally:
        await store.close()
        await direct.close()
        proxy.close()


async def test_more_parts_than_s3_allows_is_refused(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3db_async.stores import _base, _s3

    for module in (_base, _s3):  # memory and file share _base.put_stream_assembled
        monkeypatch.setattr(module, "MAX_PARTS", 2)  # S3 allows 10,000; 3 parts here
    with pytest.raises(ConfigError) as info:
        await store.put_stream("many", _chunks(_data(), 1 << 20), part_size=PART)
    assert info.value.metadata["reason"] == "too many parts" and info.value.suggestion
    assert store.stats["multipart_abort"] == 1 and not await store.exists("many")
