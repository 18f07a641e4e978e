"""Servers for tests and benchmarks (now :mod:`s3db_async._testing.servers`, public through
:mod:`s3db_async.testing`), plus :class:`CountingProxy`.

:class:`CountingProxy` sits between a client and a server and counts the HTTP requests that
really went over the wire, so request accounting (``store.stats``) can be checked against it.
"""

from __future__ import annotations

import asyncio
import collections
import threading

from s3db_async._testing.servers import (
    ACCESS_KEY,
    SECRET_KEY,
    S3Server,
    ServerStartError,
    find_weed,
    free_port,
    start_moto,
    start_seaweedfs,
)

__all__ = [
    "ACCESS_KEY",
    "SECRET_KEY",
    "CountingProxy",
    "S3Server",
    "ServerStartError",
    "find_weed",
    "free_port",
    "start_moto",
    "start_seaweedfs",
]


# -- counting proxy ------------------------------------------------------------


class _Sink:
    """A writer that drops what it is given (for bodies of requests the proxy answers)."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


class CountingProxy:
    """A loopback HTTP/1.1 proxy that counts requests by method before forwarding them.

    Runs its own event loop in a thread, so it can front any client::

        with CountingProxy(server.endpoint) as proxy:
            url = server.url("p", endpoint=proxy.endpoint)
            ...
            proxy.counts  # Counter({'PUT': 3, 'GET': 2, ...})

    It understands ``Content-Length`` and chunked bodies, which is all S3 clients send.
    :meth:`inject` makes it answer the next requests itself with an error status (after
    counting them), to exercise a client's retries.
    """

    def __init__(self, upstream: str) -> None:
        host_port = upstream.split("://", 1)[1]
        host, port = host_port.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.counts: collections.Counter[str] = collections.Counter()
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._faults: collections.deque[tuple[str | None, int, str]] = collections.deque()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.lines.clear()
            self._faults.clear()

    def inject(
        self, status: int, *, times: int = 1, method: str | None = None, code: str = ""
    ) -> None:
        """Answer the next ``times`` requests (of ``method``, if given) with ``status``."""
        with self._lock:
            for _ in range(times):
                self._faults.append((method, status, code or f"Injected{status}"))

    def _take_fault(self, method: str) -> tuple[int, str] | None:
        with self._lock:
            if self._faults and self._faults[0][0] in (None, method):
                _, status, code = self._faults.popleft()
                return status, code
        return None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes:
        return await reader.readuntil(b"\r\n\r\n")

    @staticmethod
    def _headers(head: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip().lower()] = v.strip()
        return out

    @staticmethod
    async def _pipe_body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter | _Sink, headers: dict[str, str]
    ) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                writer.write(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                chunk = await reader.readexactly(size + 2)
                writer.write(chunk)
                if size == 0:
                    # trailers end with an empty line (we sent the first CRLF already)
                    break
        else:
            n = int(headers.get("content-length", "0") or 0)
            if n:
                writer.write(await reader.readexactly(n))
        await writer.drain()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*self._upstream)
        except (OSError, asyncio.CancelledError):
            cwriter.close()
            return
        try:
            while True:
                try:
                    head = await self._read_head(creader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                method = request_line.split(" ", 1)[0]
                with self._lock:
                    self.counts[method] += 1
                    self.lines.append(request_line)
                fault = self._take_fault(method)
                if fault is not None:
                    await self._pipe_body(creader, _Sink(), self._headers(head))
                    body = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault[1]}</Code>'
                        f"<Message>injected by CountingProxy</Message></Error>"
                    ).encode()
                    cwriter.write(
                        f"HTTP/1.1 {fault[0]} Injected\r\nContent-Type: application/xml\r\n"
                        f"Content-Length: {0 if method == 'HEAD' else len(body)}\r\n\r\n".encode()
                    )
                    if method != "HEAD":
                        cwriter.write(body)
                    await cwriter.drain()
                    continue
                uwriter.write(head)
                await self._pipe_body(creader, uwriter, self._headers(head))
                rhead = await self._read_head(ureader)
                cwriter.write(rhead)
                status = int(rhead.split(b" ", 2)[1])
                rheaders = self._headers(rhead)
                if method != "HEAD" and status not in (204, 304) and status >= 200:
                    await self._pipe_body(ureader, cwriter, rheaders)
                else:
                    await cwriter.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return  # a cancelled handler ends quietly (the proxy is stopping)
        finally:
            uwriter.close()
            cwriter.close()
