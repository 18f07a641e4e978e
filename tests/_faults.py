"""Fault injection for tests: a store wrapper that loses answers, and a reply-dropping proxy.

- :class:`LostReplyStore` wraps any store; for the next ``n`` conditional PUTs matching a
  key predicate it sends the request to the inner store (it is applied) and then raises
  what a client sees when the answer is lost: :class:`WriteOutcomeUnknownError` (what
  S3Store raises now), or a plain ``PreconditionFailed`` (what a store that blindly
  resent the request got back: 412 for its own write).
- :class:`ReplyDroppingProxy` is a TCP proxy on 127.0.0.1 in front of an S3 server: for
  the next ``n`` requests whose first line matches, it forwards the request, lets the
  server answer, and closes the client connection instead of passing the answer on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from s3db_async.errors import PreconditionFailed, WriteOutcomeUnknownError
from s3db_async.stores import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PART_SIZE,
    ByteChunks,
    Capabilities,
    CommonPrefix,
    ListEntry,
    ObjectInfo,
    ObjectStore,
    ObjectStream,
    StoredObject,
)


class LostReplyStore(ObjectStore):
    """Delegates to ``inner``; loses the answer of selected conditional PUTs after applying."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__()
        self.inner = inner
        self.url = getattr(inner, "url", "lost-reply")
        self.stats = inner.stats
        self._left = 0
        self._match: Callable[[str], bool] = lambda key: True
        self._error = "unknown"
        self.lost: list[str] = []

    def lose(
        self, n: int = 1, *, match: Callable[[str], bool] | None = None, error: str = "unknown"
    ) -> None:
        """Lose the answers of the next ``n`` conditional PUTs whose key ``match``es."""
        self._left = n
        self._match = match or (lambda key: True)
        self._error = error

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def put(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        etag = await self.inner.put(
            key,
            body,
            metadata,
            content_type=content_type,
            if_none_match=if_none_match,
            if_match=if_match,
        )
        conditional = if_none_match or if_match is not None
        if conditional and self._left > 0 and self._match(key):
            self._left -= 1
            self.lost.append(key)
            if self._error == "precondition":
                raise PreconditionFailed(f"{key!r}: 412 on the resend of a write that landed")
            raise WriteOutcomeUnknownError(
                f"put {key!r}: connection reset after sending",
                metadata={"key": key, "op": "put"},
            )
        return etag

    async def get(self, key: str) -> StoredObject:
        return await self.inner.get(key)

    async def head(self, key: str) -> ObjectInfo:
        return await self.inner.head(key)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self.inner.delete(key, if_match=if_match)

    async def delete_many(self, keys: Iterable[str]) -> int:
        return await self.inner.delete_many(keys)

    def list(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListEntry | CommonPrefix]:
        return self.inner.list(prefix, start_after=start_after, limit=limit, delimiter=delimiter)

    async def copy(self, src: str, dst: str) -> str:
        return await self.inner.copy(src, dst)

    async def put_stream(
        self,
        key: str,
        chunks: ByteChunks,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        return await self.inner.put_stream(
            key, chunks, metadata, content_type=content_type, part_size=part_size
        )

    async def get_stream(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        return await self.inner.get_stream(key, chunk_size=chunk_size)

    async def _probe_capabilities(self) -> Capabilities:
        return await self.inner.capabilities()

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "faults": "lost replies"}


class ReplyDroppingProxy:
    """A loopback TCP proxy that can swallow the server's answer to chosen requests.

    It runs its own event loop in a thread (test fixtures and tests may run on different
    loops). A dropped answer also aborts that client connection, which is what a reset
    after sending looks like to the client. Bounded: loopback only, stopped by :meth:`close`.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._left = 0
        self._match: Callable[[bytes], bool] = lambda line: False
        self._keep: int | None = None
        self.dropped: list[bytes] = []

    def drop(self, n: int, match: Callable[[bytes], bool]) -> None:
        """Drop the answers to the next ``n`` requests whose head ``match``es."""
        self._left, self._match, self._keep = n, match, None

    def cut(self, n: int, match: Callable[[bytes], bool], *, body_bytes: int) -> None:
        """Pass on only the head and the first ``body_bytes`` of the body of the answers to
        the next ``n`` matching requests, then break the connection (a reply cut mid-body)."""
        self._left, self._match, self._keep = n, match, body_bytes

    def start(self) -> ReplyDroppingProxy:
        loop = self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            loop.run_until_complete(serve())
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="reply-dropping-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                up_writer.write(head + body)
                await up_writer.drain()
                answer = await _read_response(up_reader, head.startswith(b"HEAD "))
                if self._left > 0 and self._match(head):
                    self._left -= 1
                    self.dropped.append(head.split(b"\r\n", 1)[0])
                    if self._keep is not None:
                        end = answer.index(b"\r\n\r\n") + 4 + self._keep
                        writer.write(answer[:end])
                        await writer.drain()
                    writer.transport.abort()  # the server applied it; the client never hears
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            up_writer.close()
            writer.close()


async def _read_response(reader: asyncio.StreamReader, no_body: bool) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    chunked = False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head + body
    if no_body or head.split(b" ", 2)[1:2] in ([b"204"], [b"304"]):
        return head
    return head + (await reader.readexactly(length) if length else b"")
