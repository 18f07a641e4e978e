"""A stalled or resetting S3 endpoint fails fast with a typed error (issue 16.8).

A loopback TCP server that accepts connections and never answers (or resets them) stands
in for a broken S3 endpoint. Short timeouts come from URL options; nothing asserts wall
time beyond "it returned".
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from s3db_async.errors import EndpointUnreachableError, StoreError, WriteOutcomeUnknownError
from s3db_async.stores import S3Store


class _Loopback:
    """Accepts TCP connections on 127.0.0.1; ``reset`` answers each request with a RST."""

    def __init__(self, *, reset: bool) -> None:
        self.reset = reset
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.reset:
                self.held.append(conn)  # never answer
                continue
            try:
                conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                conn.close()

    def url(self, options: str) -> str:
        return f"http://key:secret@127.0.0.1:{self.port}/bucket/app?{options}"

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def stalled() -> Iterator[_Loopback]:
    server = _Loopback(reset=False)
    yield server
    server.close()


@pytest.fixture
def resetting() -> Iterator[_Loopback]:
    server = _Loopback(reset=True)
    yield server
    server.close()


def test_defaults_bound_every_operation() -> None:
    store = S3Store("http://key:secret@127.0.0.1:9/bucket/app")
    assert store.connect_timeout == 3.0
    assert store.timeout == 30.0
    assert store.deadline == 60.0
    tuned = S3Store("http://key:secret@127.0.0.1:9/bucket/app?deadline=5&connect_timeout=1")
    assert (tuned.deadline, tuned.connect_timeout) == (5.0, 1.0)
    slow = S3Store("http://key:secret@127.0.0.1:9/bucket/app?timeout=100")
    assert slow.deadline == 200.0  # a longer request timeout is not cut by the default


async def test_connect_to_a_stalled_server_is_unreachable(stalled: _Loopback) -> None:
    store = S3Store(stalled.url("timeout=0.3"))
    with pytest.raises(EndpointUnreachableError) as info:
        await store.connect()
    assert "did not answer" in info.value.message
    assert store.stats["get"] >= 1


async def test_connect_deadline_caps_a_long_request_timeout(stalled: _Loopback) -> None:
    store = S3Store(stalled.url("deadline=0.4"))  # timeout stays 30 s
    with pytest.raises(EndpointUnreachableError) as info:
        await store.connect()
    assert info.value.metadata["deadline"] == 0.4


async def test_paged_list_on_a_stalled_server_stops_at_the_deadline(stalled: _Loopback) -> None:
    store = S3Store(stalled.url("timeout=0.2&deadline=0.7"))  # 4 retries would outlast it
    with pytest.raises(StoreError) as info:
        await store.list_keys("resource=users/data/")
    assert info.value.metadata["reason"] == "deadline"
    assert info.value.retriable
    assert info.value.status_code == 504
    assert store.stats["list"] >= 1


async def test_get_on_a_stalled_server_times_out_typed(stalled: _Loopback) -> None:
    store = S3Store(stalled.url("timeout=0.2&max_retries=0"))
    with pytest.raises(StoreError) as info:
        await store.get("k")
    assert info.value.status_code == 504
    assert store.stats["get"] == 1


async def test_a_conditional_put_past_its_deadline_is_an_unknown_outcome(
    stalled: _Loopback,
) -> None:
    """It may have landed: the read-back in s3db_async._cas must get the chance to decide."""
    store = S3Store(stalled.url("timeout=5&deadline=0.3&max_retries=0"))
    with pytest.raises(WriteOutcomeUnknownError) as info:
        await store.put("k", b"1", if_none_match=True)
    assert info.value.status_code == 504 and info.value.metadata["reason"] == "deadline"
    with pytest.raises(StoreError) as plain:
        await store.put("k", b"1")  # idempotent: a plain timeout
    assert not isinstance(plain.value, WriteOutcomeUnknownError)


@pytest.mark.parametrize("op", ["get", "list", "put", "connect"])
async def test_a_reset_connection_is_endpoint_unreachable(resetting: _Loopback, op: str) -> None:
    store = S3Store(resetting.url("max_retries=0"))
    with pytest.raises(EndpointUnreachableError) as info:
        if op == "get":
            await store.get("k")
        elif op == "list":
            await store.list_keys("a/")
        elif op == "put":
            await store.put("k", b"1")
        else:
            await store.connect()
    assert info.value.retriable


async def test_a_reset_conditional_put_is_an_unknown_outcome(resetting: _Loopback) -> None:
    """A reset may come after the server applied it: never reported as "not sent"."""
    store = S3Store(resetting.url("max_retries=3"))
    with pytest.raises(WriteOutcomeUnknownError) as info:
        await store.put("k", b"1", if_none_match=True)
    assert info.value.retriable and store.stats["put"] == 1  # not resent blindly


async def test_a_cancel_absorbed_into_the_deadline_still_cancels(
    stalled: _Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that lands as the deadline expires can come out of asyncio.timeout (3.11)
    as a TimeoutError: the store raises CancelledError for it, not a 504 StoreError, so a
    cancelled caller stops instead of handling a timeout."""
    store = S3Store(stalled.url("max_retries=0"))
    started = asyncio.Event()

    async def absorbing_send(*args: object, **kwargs: object) -> object:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise TimeoutError from None  # what an absorbed cancel looks like
        return None

    monkeypatch.setattr(store, "_send", absorbing_send)
    task = asyncio.create_task(store.get("k"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
