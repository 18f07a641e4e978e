"""A separate OS process driving a store, for the multi-process tests.

Run as ``python _file_store_worker.py MODE ROOT [ARGS]`` (ROOT is a FileStore directory
or any connection string); it talks over stdin/stdout so
the test can release every worker at the same moment:

- ``race ROOT``: for each key read from stdin, ``put(key, if_none_match=True)`` and
  answer ``win`` or ``lose``; an empty line ends it.
- ``cas ROOT KEY N``: wait for a line, then add 1 to the integer at KEY ``N`` times with
  compare-and-swap (retrying on PreconditionFailed); answer the number of retries.
- ``write ROOT KEY SIZE``: overwrite KEY forever with bodies of SIZE bytes, each filled
  with one byte value; answer ``ready`` after the first write (the test kills it).
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import anyio.to_thread

from s3db_async.errors import PreconditionFailed
from s3db_async.stores import ObjectStore, open_store
from s3db_async.stores._file import FileStore


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _race(store: ObjectStore) -> None:
    me = str(os.getpid()).encode()
    while True:
        key = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        if not key:
            return
        try:
            await store.put(key, me, if_none_match=True)
        except PreconditionFailed:
            _say("lose")
        else:
            _say("win")


async def _cas(store: ObjectStore, key: str, n: int) -> None:
    await anyio.to_thread.run_sync(sys.stdin.readline)
    retries = 0
    for _ in range(n):
        while True:
            obj = await store.get(key)
            try:
                await store.put(key, str(int(obj.body) + 1).encode(), if_match=obj.etag)
            except PreconditionFailed:
                retries += 1
                continue
            break
    _say(str(retries))


async def _write(store: ObjectStore, key: str, size: int) -> None:
    i = 0
    while True:
        await store.put(key, bytes([i % 256]) * size, {"version": str(i)})
        if i == 0:
            _say("ready")
        i += 1


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start this worker as a separate OS process with line-buffered pipes."""
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def finish(procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    """Close the workers' stdin, wait for them and check they exited cleanly."""
    for p in procs:
        if p.stdin and not p.stdin.closed:
            p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        assert p.stdout is not None
        p.stdout.close()
        assert p.returncode == 0


async def main(argv: list[str]) -> None:
    mode, root = argv[0], argv[1]
    store: ObjectStore = open_store(root) if "://" in root else FileStore(f"file://{root}")
    await store.connect()
    if mode == "race":
        await _race(store)
    elif mode == "cas":
        await _cas(store, argv[2], int(argv[3]))
    elif mode == "write":
        await _write(store, argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    await store.close()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
