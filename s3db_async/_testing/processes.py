"""Run an async function in N separate OS processes on one store (public through
:mod:`s3db_async.testing`).

::

    async def bump(ctx: WorkerContext) -> list[int]:       # a module-level function
        async with Database(ctx.url) as db:
            storage = PluginStorage(db, "demo")
            await ctx.barrier()                            # every process connected: go
            return [await storage.increment("hits") for _ in range(ctx.args[0])]

    values = await run_processes(bump, url, n=4, args=(50,))   # one result per process

    async with spawn_processes(hold_lock, url, n=2) as group:
        index, token = await group.wait_for("locked")      # a ctx.report("locked", token)
        group.kill(index)                                  # SIGKILL, mid-work
        outcomes = await group.outcomes()                  # WorkerOutcome per process

Each worker is ``python -m s3db_async._testing.worker``: it imports the function by module and
qualified name (falling back to the module's file, so test modules work too), waits until every
process has started, runs ``await fn(ctx)`` and sends back its result or its exception (pickled,
with the remote traceback). The protocol runs over the child's stdin and a duplicate of its
stdout; what the function prints goes to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import pickle
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "ProcessGroup",
    "WorkerContext",
    "WorkerError",
    "WorkerOutcome",
    "run_processes",
    "spawn_processes",
]

WorkerFn = Callable[["WorkerContext"], Coroutine[Any, Any, Any]]
START_TIMEOUT = 60.0
RESULT_TIMEOUT = 300.0


def encode(kind: str, payload: Any = None) -> bytes:
    """One protocol line: ``kind base64(pickle(payload))``."""
    return kind.encode() + b" " + base64.b64encode(pickle.dumps(payload)) + b"\n"


def decode(line: bytes) -> tuple[str, Any]:
    kind, _, data = line.strip().partition(b" ")
    return kind.decode(), pickle.loads(base64.b64decode(data)) if data else None


class WorkerError(AssertionError):
    """A worker process raised, died, or was killed before it answered.

    ``outcome`` is its :class:`WorkerOutcome`; the message holds the remote traceback.
    """

    def __init__(self, message: str, outcome: WorkerOutcome | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class WorkerContext:
    """What a worker function gets: the store's ``url``, its ``index`` among ``count``
    processes, the ``args`` given to the harness, and a line to the parent."""

    url: str
    index: int
    count: int
    args: tuple[Any, ...]
    _send: Callable[[bytes], None] = field(repr=False)
    _messages: asyncio.Queue[Any] = field(repr=False)
    _released: dict[str, asyncio.Event] = field(repr=False)

    async def report(self, event: str, data: Any = None) -> None:
        """Tell the parent something happened (``group.wait_for(event)`` returns ``data``)."""
        self._send(encode("report", (event, data)))

    async def barrier(self, name: str = "go") -> None:
        """Wait until the parent releases ``name`` (``group.release(name)``), which it does
        once every live worker has reached it: a simultaneous start after a slow setup."""
        self._send(encode("barrier", name))
        await self._released.setdefault(name, asyncio.Event()).wait()

    async def receive(self) -> Any:
        """The next object the parent sent with ``group.send(index, obj)``."""
        return await self._messages.get()


@dataclass
class WorkerOutcome:
    """How one worker process ended."""

    index: int
    pid: int
    returncode: int | None = None
    value: Any = None
    error: BaseException | None = None
    error_type: str | None = None
    traceback: str = ""
    killed: bool = False
    answered: bool = False
    reports: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The function returned (no exception, not killed)."""
        return self.answered and self.error_type is None and not self.killed

    def result(self) -> Any:
        """The function's return value.

        :raises WorkerError: it raised (chained to the original exception when it unpickled),
            was killed, or died without answering.
        """
        if self.ok:
            return self.value
        raise WorkerError(self.describe(), self) from self.error

    def describe(self) -> str:
        who = f"worker {self.index} (pid {self.pid})"
        if self.killed:
            return f"{who} was killed"
        if self.error_type is not None:
            return f"{who} raised {self.error_type}:\n{self.traceback}"
        return f"{who} exited with code {self.returncode} without answering"


def _locate(fn: Callable[..., Any]) -> dict[str, Any]:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not inspect.iscoroutinefunction(fn) or not module or "<locals>" in qualname:
        raise ConfigError(
            f"{fn!r} cannot run in a worker process",
            suggestion="pass an 'async def' function defined at module level (the worker "
            "imports it by module and name)",
            metadata={"field": "fn", "reason": "not an importable coroutine function"},
        )
    file = getattr(sys.modules.get(module), "__file__", None)
    if module == "__main__" and not file:
        raise ConfigError(
            f"{fn!r} is defined in an interactive __main__",
            suggestion="define the worker function in a module file",
            metadata={"field": "fn", "reason": "no module file"},
        )
    root = None
    if file:  # the folder above the module's top package, for `import module` in the child
        path = Path(file).resolve()
        depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
        root = str(path.parents[depth])
    return {"module": module, "qualname": qualname, "file": file, "root": root}


class _Worker:
    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.outcome = WorkerOutcome(index=index, pid=proc.pid)
        self.ready = asyncio.Event()
        self.barriers: set[str] = set()
        self.reader: asyncio.Task[None] | None = None

    def send(self, line: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing() and self.proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(line)


class ProcessGroup:
    """N worker processes running one function (see :func:`spawn_processes`)."""

    def __init__(
        self,
        fn: WorkerFn,
        url: str,
        n: int,
        args: Sequence[Any] = (),
        *,
        env: dict[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
        auto_release: bool = False,
    ) -> None:
        if not isinstance(n, int) or n < 1:
            raise ConfigError(
                f"n must be a positive number of processes, got {n!r}",
                suggestion="pass n=2 or more for a race",
                metadata={"field": "n", "reason": "not a positive integer"},
            )
        self.fn, self.url, self.n, self.args = fn, url, n, tuple(args)
        self._where = _locate(fn)
        self._env = env
        self._start_timeout = start_timeout
        self._workers: list[_Worker] = []
        self._changed = asyncio.Condition()
        self._auto_release = auto_release
        self._released: set[str] = set()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    async def start(self) -> ProcessGroup:
        """Start every process, wait until all imported the function, then release them at
        once. :raises WorkerError: a process failed to start (its error says why)."""
        env = {**os.environ, **(self._env or {})}
        for i in range(self.n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "s3db_async._testing.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                limit=2**26,
            )
            worker = _Worker(i, proc)
            self._workers.append(worker)
            spec = {
                **self._where,
                "sys_path": [p for p in sys.path if p],
                "url": self.url,
                "index": i,
                "count": self.n,
                "args": self.args,
            }
            worker.send(encode("spec", spec))
            worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        try:
            async with asyncio.timeout(self._start_timeout):
                for w in self._workers:
                    ready = asyncio.ensure_future(w.ready.wait())
                    done = asyncio.ensure_future(self._finished(w))
                    await asyncio.wait({ready, done}, return_when=asyncio.FIRST_COMPLETED)
                    ready.cancel()
                    done.cancel()
                    if not w.ready.is_set():
                        raise WorkerError(w.outcome.describe(), w.outcome)
        except TimeoutError:
            slow = [w.outcome.index for w in self._workers if not w.ready.is_set()]
            raise WorkerError(
                f"workers {slow} did not start within {self._start_timeout:.0f}s"
            ) from None
        for w in self._workers:
            w.send(encode("go"))
        return self

    async def _finished(self, w: _Worker) -> None:
        if w.reader is not None:
            await asyncio.shield(w.reader)

    async def _read(self, w: _Worker) -> None:
        stdout = w.proc.stdout
        assert stdout is not None
        while line := await stdout.readline():
            try:
                kind, payload = decode(line)
            except Exception:  # a stray line: not ours
                continue
            if kind == "ready":
                w.ready.set()
            elif kind == "report":
                w.outcome.reports.append(tuple(payload))
            elif kind == "barrier":
                w.barriers.add(payload)
            elif kind == "result":
                w.outcome.value, w.outcome.answered = payload, True
            elif kind == "error":
                w.outcome.answered = True
                w.outcome.error_type, w.outcome.traceback, w.outcome.error = payload
            self._release_reached()
            async with self._changed:
                self._changed.notify_all()
        w.outcome.returncode = await w.proc.wait()
        self._release_reached()
        async with self._changed:
            self._changed.notify_all()

    def _reached(self, name: str) -> bool:
        live = [w for w in self._workers if w.outcome.returncode is None]
        return all(name in w.barriers for w in live)

    def _release_reached(self) -> None:
        """With ``auto_release``: let a barrier go as soon as every live worker reached it."""
        if not self._auto_release:
            return
        for name in {b for w in self._workers for b in w.barriers} - self._released:
            if self._reached(name):
                self._released.add(name)
                for w in self._workers:
                    w.send(encode("release", name))

    async def _until(
        self,
        check: Callable[[], Any],
        timeout: float,  # noqa: ASYNC109 - a deadline that names what is missing
        what: str,
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while not (found := check()):
                        await self._changed.wait()
                    return found
        except TimeoutError:
            raise TimeoutError(f"{what}: nothing after {timeout:.0f}s") from None

    async def wait_for(
        self,
        event: str,
        index: int | None = None,
        *,
        timeout: float = RESULT_TIMEOUT,  # noqa: ASYNC109 - a deadline that names what is missing
    ) -> tuple[int, Any]:
        """The first ``ctx.report(event, data)`` (of worker ``index``, or any): ``(index,
        data)``. :raises TimeoutError: none came; :raises WorkerError: the worker ended."""

        def check() -> tuple[int, Any] | None:
            for w in self._workers:
                if index is not None and w.outcome.index != index:
                    continue
                for name, data in w.outcome.reports:
                    if name == event:
                        return w.outcome.index, data
            ws = [w for w in self._workers if index is None or w.outcome.index == index]
            if all(w.outcome.returncode is not None for w in ws):
                raise WorkerError(f"no {event!r} report: " + ws[0].outcome.describe())
            return None

        found: tuple[int, Any] = await self._until(check, timeout, f"waiting for {event!r}")
        return found

    async def release(
        self,
        name: str = "go",
        *,
        timeout: float = RESULT_TIMEOUT,  # noqa: ASYNC109 - a deadline that names what is missing
    ) -> None:
        """Wait until every live worker reached ``ctx.barrier(name)``, then let all go."""

        await self._until(lambda: self._reached(name), timeout, f"waiting for barrier {name!r}")
        self._released.add(name)
        for w in self._workers:
            w.send(encode("release", name))

    def send(self, index: int, obj: Any) -> None:
        """Send ``obj`` to worker ``index`` (its ``ctx.receive()`` returns it)."""
        self._workers[index].send(encode("message", obj))

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: no cleanup runs) to worker ``index``."""
        w = self._workers[index]
        if w.proc.returncode is None:
            w.outcome.killed = sig == signal.SIGKILL or w.outcome.killed
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(sig)

    async def outcomes(
        self,
        *,
        timeout: float = RESULT_TIMEOUT,  # noqa: ASYNC109 - a deadline that names what is missing
    ) -> list[WorkerOutcome]:
        """Wait for every process to end; one :class:`WorkerOutcome` each, by index.

        :raises TimeoutError: some still run after ``timeout`` (they are killed on exit).
        """
        await self._until(
            lambda: all(w.outcome.returncode is not None for w in self._workers),
            timeout,
            "waiting for the workers to finish",
        )
        return [w.outcome for w in self._workers]

    async def results(
        self,
        *,
        timeout: float = RESULT_TIMEOUT,  # noqa: ASYNC109 - a deadline that names what is missing
    ) -> list[Any]:
        """Every worker's return value, by index.

        :raises WorkerError: one raised, died or was killed (the first such, by index).
        """
        return [o.result() for o in await self.outcomes(timeout=timeout)]

    async def aclose(self) -> None:
        """Kill what still runs and reap every process (idempotent)."""
        for w in self._workers:
            self.kill(w.outcome.index)
        for w in self._workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            if w.reader is not None:
                with contextlib.suppress(Exception):
                    await w.reader
            await w.proc.wait()

    async def __aenter__(self) -> ProcessGroup:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def spawn_processes(
    fn: WorkerFn,
    url: str,
    n: int = 4,
    args: Sequence[Any] = (),
    *,
    env: dict[str, str] | None = None,
    start_timeout: float = START_TIMEOUT,
    auto_release: bool = False,
) -> AsyncIterator[ProcessGroup]:
    """Start ``n`` OS processes each running ``await fn(ctx)`` on ``url``; released together
    once all have started. On exit, what still runs is killed and every process reaped.

    :param fn: a module-level ``async def fn(ctx: WorkerContext)``; its return value (or
        exception) must pickle.
    :param args: given to every worker as ``ctx.args`` (must pickle).
    :param env: extra environment variables for the workers.
    :param auto_release: let each ``ctx.barrier(name)`` go by itself once every live worker
        reached it (else the test calls ``group.release(name)``).
    :raises ConfigError: ``fn`` is not importable by the workers, or ``n < 1``.
    """
    group = ProcessGroup(
        fn, url, n, args, env=env, start_timeout=start_timeout, auto_release=auto_release
    )
    async with group:
        yield group


async def run_processes(
    fn: WorkerFn,
    url: str,
    n: int = 4,
    args: Sequence[Any] = (),
    *,
    env: dict[str, str] | None = None,
    timeout: float = RESULT_TIMEOUT,  # noqa: ASYNC109 - a deadline that names what is missing
) -> list[Any]:
    """Run ``fn`` in ``n`` processes on ``url`` (see :func:`spawn_processes`); return their
    results by index. Barriers (``ctx.barrier``) release by themselves once all reached them.

    :raises WorkerError: a worker raised or died (with its remote traceback).
    """
    async with spawn_processes(fn, url, n, args, env=env, auto_release=True) as group:
        return await group.results(timeout=timeout)
