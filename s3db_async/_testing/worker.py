"""The worker process of :mod:`s3db_async._testing.processes` (``python -m`` this module).

Reads its spec from stdin, imports the function, says ``ready``, waits for ``go``, runs
``await fn(ctx)`` and answers ``result`` or ``error``. The protocol goes over a duplicate of
the original stdout; fd 1 is pointed at stderr so what the function prints cannot garble it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import pickle
import sys
import traceback
from typing import Any, BinaryIO

from .processes import WorkerContext, decode, encode


def _import(spec: dict[str, Any]) -> Any:
    for entry in reversed([spec["root"], *spec["sys_path"]]):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    module_name = spec["module"]
    try:
        if module_name == "__main__":
            raise ImportError(module_name)
        module = importlib.import_module(module_name)
    except ImportError:
        if not spec["file"]:
            raise
        name = module_name if module_name != "__main__" else "__s3db_worker_main__"
        loader_spec = importlib.util.spec_from_file_location(name, spec["file"])
        if loader_spec is None or loader_spec.loader is None:
            raise
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
    target: Any = module
    for part in spec["qualname"].split("."):
        target = getattr(target, part)
    return target


def _portable(exc: BaseException) -> BaseException | None:
    """``exc`` when it survives pickling, else ``None`` (the parent gets type and traceback)."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return copy if isinstance(copy, BaseException) else None


async def _run(proto: BinaryIO, spec: dict[str, Any], fn: Any) -> None:
    def send(line: bytes) -> None:
        proto.write(line)
        proto.flush()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    messages: asyncio.Queue[Any] = asyncio.Queue()
    released: dict[str, asyncio.Event] = {}
    go = asyncio.Event()

    async def pump() -> None:
        while line := await reader.readline():
            kind, payload = decode(line)
            if kind == "go":
                go.set()
            elif kind == "release":
                released.setdefault(payload, asyncio.Event()).set()
            elif kind == "message":
                messages.put_nowait(payload)
        go.set()  # the parent went away: run (and fail on the store) rather than hang

    pumping = loop.create_task(pump())
    ctx = WorkerContext(
        url=spec["url"],
        index=spec["index"],
        count=spec["count"],
        args=tuple(spec["args"]),
        _send=send,
        _messages=messages,
        _released=released,
    )
    send(encode("ready"))
    await go.wait()
    try:
        value = await fn(ctx)
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        send(encode("error", (type(exc).__qualname__, text, _portable(exc))))
        if not isinstance(exc, Exception):
            raise
    else:
        try:
            send(encode("result", value))
        except Exception as exc:  # the value does not pickle
            text = "".join(traceback.format_exception(exc))
            send(encode("error", (type(exc).__qualname__, text, None)))
    finally:
        pumping.cancel()


def main() -> None:
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # the function's prints go to stderr, not into the protocol
    spec_line = sys.stdin.buffer.readline()
    kind, spec = decode(spec_line)
    if kind != "spec":
        raise SystemExit(f"s3db worker: expected a spec, got {kind!r}")
    try:
        fn = _import(spec)
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        proto.write(encode("error", (type(exc).__qualname__, text, None)))
        raise SystemExit(3) from None
    asyncio.run(_run(proto, spec, fn))


if __name__ == "__main__":
    main()
