"""Embedded object store on a local directory (``file:///abs/dir``, ``file://./relative``).

Same contract and error behaviour as S3 (and :class:`MemoryStore`), safe for several
OS processes sharing one directory.

Layout
------
A key is split on ``/``; every segment but the last names a directory, the last names
a file with the suffix ``~o``. So ``a`` and ``a/b`` coexist as ``a~o`` and ``a/b~o``::

    root/
      resource=users/data/id=1~o       <- object "resource=users/data/id=1"
      a~o  a/b~o                       <- objects "a" and "a/b"
      ~s3db/tmp/                       <- temp files of writers (atomic rename source)
      ~s3db/locks/000 ... 0ff          <- lock stripes (``fcntl.flock``)

Segments are escaped so that ``%``, ``~`` and ``\\`` never appear raw (``%25``, ``%7E``,
``%5C``): every name containing ``~`` is therefore internal, and no key can name an
internal file. A segment whose escaped name is over 240 bytes is stored under a
shortened name ``<head>~h<sha256>``; such a directory holds a ``~seg`` file with the
real segment and such an object's header holds its key, so listings stay exact.

Objects
-------
One file per object: ``S3DB`` magic and version, a 4-byte header length, a msgpack
header (key, etag, size, last-modified, content type, metadata), then the body. It is
written to ``~s3db/tmp``, fsynced, and moved into place with ``os.replace``: readers
see the old or the new object, never a torn one. Temp files of crashed writers are
never listed and are removed at the next :meth:`FileStore.connect` once stale.

Conditional writes
------------------
Every mutation of a key runs its check and its rename in one critical section: a
process-local lock plus ``fcntl.flock`` on one of 256 lock-stripe files chosen by a
CRC of the key, so it is atomic across coroutines, threads and OS processes. Blocking
I/O runs in worker threads (one hop per operation) bounded by a capacity limiter.

Safety
------
Every directory below the root is opened with ``O_NOFOLLOW`` relative to its parent, so
a symbolic link planted under the root makes reads and writes through it fail with a
``StoreError`` (``metadata["reason"] == "symlink"``) instead of escaping; listings skip
links. The store only takes a missing or empty directory, or one that is already a
FileStore, unless ``create=True`` (see :class:`FileStore`).

Needs POSIX ``fcntl.flock`` and a case-sensitive file system (a case-insensitive one,
such as macOS's default, is detected at connect and logged as a warning).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
import zlib
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import msgspec

from ..errors import (
    ConfigError,
    CorruptObjectError,
    InvalidKeyError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
)
from ._base import (
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
    body_etag,
    checked_metadata,
    put_stream_assembled,
    validate_key,
)
from ._file_safety import LinkInPath, check_root, link_error, open_dir
from ._url import ConnectionConfig, parse_connection_string

__all__ = ["FileStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_SIZE: Final = 1000
"""Keys per ``list`` request (and per ``delete_many`` request), as on S3."""

_OBJ: Final = "~o"  # suffix of object files
_INTERNAL: Final = "~s3db"  # internal directory at the root
_SEG_FILE: Final = "~seg"  # real segment of a long-named directory
_LONG: Final = "~h"  # marker of a shortened (hashed) name
_MAX_NAME: Final = 240  # longest escaped segment stored verbatim (NAME_MAX is 255)
_LONG_HEAD: Final = 96  # bytes of the escaped segment kept in a shortened name
_STRIPES: Final = 256
_PATH_MAX: Final = 4096
_STALE_TEMP_SECONDS: Final = 15 * 60
_DEFAULT_THREADS: Final = 32
_MAGIC: Final = b"S3DB\x01"
_PREFIX_LEN: Final = len(_MAGIC) + 4
_FIRST_READ: Final = 4096

_ESCAPES: Final = {ord("%"): "%25", ord("~"): "%7E", ord("\\"): "%5C"}
_UNESCAPE_RE: Final = re.compile(r"%(25|7E|5C)")
_LONG_RE: Final = re.compile(r"~h[0-9a-f]{40}\Z")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)


class _Header(msgspec.Struct, array_like=True, frozen=True):
    key: str
    etag: str
    size: int
    modified_us: int
    content_type: str
    metadata: dict[str, str]


class _Corrupt(Exception):
    """A file under the root is not a readable object."""


# -- names -----------------------------------------------------------------------------


def _name(segment: str) -> str:
    """The file-system name of one key segment (without the object suffix)."""
    escaped = segment.translate(_ESCAPES)
    raw = escaped.encode("utf-8")
    if len(raw) <= _MAX_NAME:
        return escaped
    head = raw[:_LONG_HEAD].decode("utf-8", "ignore")
    digest = hashlib.sha256(segment.encode("utf-8")).hexdigest()[:40]
    return head + _LONG + digest


def _decode(name: str) -> str | None:
    """The segment a verbatim (not shortened) name stands for, or None if it is foreign."""
    if "~" in name:
        return None
    try:
        size = len(name.encode("utf-8"))  # undecodable bytes arrive as lone surrogates
    except UnicodeEncodeError:
        return None
    if size > _MAX_NAME:
        return None
    if "%" not in name and "\\" not in name:
        return name
    segment = _UNESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), name)
    return segment if segment.translate(_ESCAPES) == name else None


def _is_long(name: str) -> bool:
    cut = name.find("~")
    return cut >= 0 and _LONG_RE.match(name, cut) is not None


def _when(modified_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=modified_us)


_etag = body_etag


# -- process-wide lock table -------------------------------------------------------------

_thread_locks: dict[tuple[str, int], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(root: str, stripe: int) -> threading.Lock:
    lock = _thread_locks.get((root, stripe))
    if lock is None:
        with _thread_locks_guard:
            lock = _thread_locks.setdefault((root, stripe), threading.Lock())
    return lock


def _reset_locks_after_fork() -> None:
    global _thread_locks_guard
    _thread_locks.clear()
    _thread_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


# -- file helpers --------------------------------------------------------------------


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written == total:
        return
    rest = memoryview(b"".join(parts))[written:]
    while rest:
        rest = rest[os.write(fd, rest) :]


def _parse_prefix(buf: bytes) -> int:
    """The end offset of the header (= start of the body)."""
    if len(buf) < _PREFIX_LEN or buf[: len(_MAGIC)] != _MAGIC:
        raise _Corrupt("bad magic")
    return _PREFIX_LEN + int.from_bytes(buf[len(_MAGIC) : _PREFIX_LEN], "little")


def _decode_header(buf: bytes | memoryview) -> _Header:
    try:
        return msgspec.msgpack.decode(buf, type=_Header)
    except msgspec.DecodeError as exc:
        raise _Corrupt(str(exc)) from None


def _read_header(path: str, dir_fd: int | None = None) -> _Header:
    """Read just the header of an object file (raises OSError, _Corrupt)."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    try:
        buf = os.read(fd, _FIRST_READ)
        end = _parse_prefix(buf)
        while len(buf) < end:
            more = os.read(fd, end - len(buf))
            if not more:
                raise _Corrupt("truncated header")
            buf += more
    finally:
        os.close(fd)
    return _decode_header(memoryview(buf)[_PREFIX_LEN:end])


def _open_body(path: str, dir_fd: int) -> tuple[int, _Header, int]:
    """Open an object file for streaming: its descriptor, header and body offset (the
    caller closes the descriptor; raises OSError, _Corrupt)."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    try:
        buf = os.pread(fd, _FIRST_READ, 0)
        end = _parse_prefix(buf)
        while len(buf) < end:
            more = os.pread(fd, end - len(buf), len(buf))
            if not more:
                raise _Corrupt("truncated header")
            buf += more
        header = _decode_header(memoryview(buf)[_PREFIX_LEN:end])
        if os.fstat(fd).st_size != end + header.size:
            raise _Corrupt(f"body is not the {header.size} bytes its header says")
    except BaseException:
        os.close(fd)
        raise
    return fd, header, end


def _md5_digest(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _read_object(path: str, dir_fd: int | None = None) -> tuple[_Header, bytes]:
    """Read header and body of an object file (raises OSError, _Corrupt)."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    try:
        size = os.fstat(fd).st_size
        chunks = []
        got = 0
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    end = _parse_prefix(data)
    if end > len(data):
        raise _Corrupt("truncated header")
    header = _decode_header(memoryview(data)[_PREFIX_LEN:end])
    body = data[end:]
    if len(body) != header.size:
        raise _Corrupt(f"body is {len(body)} bytes, header says {header.size}")
    return header, body


def _encode_object(header: _Header) -> bytes:
    raw = msgspec.msgpack.encode(header)
    return _MAGIC + len(raw).to_bytes(4, "little") + raw


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_COPY_BLOCK: Final = 1 << 20


class _Upload:
    """The parts of a :meth:`FileStore.put_stream` so far, in a temp file."""

    __slots__ = ("completed", "ctype", "fd", "loc", "metadata", "path", "size", "store")

    def __init__(self, path: str, fd: int) -> None:
        self.path, self.fd, self.size, self.completed = path, fd, 0, False
        self.store: FileStore | None = None
        self.loc: _Location | None = None
        self.metadata: dict[str, str] = {}
        self.ctype = "application/octet-stream"

    def target(
        self, store: FileStore, loc: _Location, metadata: dict[str, str], ctype: str
    ) -> None:
        """Say where the object goes once the upload completes."""
        self.store, self.loc, self.metadata, self.ctype = store, loc, metadata, ctype

    def write_sync(self, part: bytes) -> bytes:
        """Append one part; return its binary MD5."""
        _write_all(self.fd, [part])
        self.size += len(part)
        return _md5_digest(part)

    async def write(self, part: bytes) -> bytes:
        assert self.store is not None
        digest: bytes = await self.store._run(self.write_sync, part)
        return digest

    async def complete(self, etag: str) -> str:
        assert self.store is not None and self.loc is not None
        store, loc = self.store, self.loc
        done: str = await store._run(
            store._complete_upload_sync, self, loc, etag, self.metadata, self.ctype
        )
        return done

    def discard(self) -> None:
        """Close and remove the temp file (idempotent)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Descriptor:
    """A file descriptor closed once, by whichever comes first (end of the read, aclose)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class _Location:
    """Where one key lives on disk."""

    __slots__ = ("dir", "file", "key", "names", "path", "segments", "stripe")

    def __init__(self, root: str, key: str) -> None:
        segments = key.split("/")
        names = [_name(s) for s in segments]
        self.key = key
        self.segments = segments
        self.names = names
        self.dir = os.path.join(root, *names[:-1]) if len(names) > 1 else root
        self.file = names[-1] + _OBJ
        self.path = os.path.join(self.dir, self.file)
        self.stripe = zlib.crc32(key.encode("utf-8")) % _STRIPES


# -- the store -------------------------------------------------------------------------


class FileStore(ObjectStore):
    """Objects as files under a directory, with S3 semantics across OS processes.

    :param config: ``file:///abs/dir`` or ``file://./relative/dir`` (relative paths are
        resolved against the working directory when the store is created), or a parsed
        :class:`ConnectionConfig`.
    :param enforce_limits: reject metadata over 2 KB like S3 does.
    :param fsync: flush every write (and its directory) to disk before acknowledging it
        (default ``True``; ``file://./dir?fsync=false`` turns it off: faster, but a power
        loss may lose acknowledged writes — never tears an object either way).
        Turn off for throwaway data; atomicity does not depend on it, durability does.
    :param parallelism: worker threads for file I/O (default: the ``parallelism``
        option of the connection string, else 32).
    :param create: which directory the store may take: ``None`` (default) a missing or
        empty one, or one that already is a FileStore (it has ``~s3db/``); ``True`` also a
        directory holding other files; ``False`` only an existing FileStore. Anything
        else raises at the first :meth:`connect` or write (reads never create it).
    """

    always_answers = True  # in-process: a write applies or fails, never an unknown outcome

    def __init__(
        self,
        config: ConnectionConfig | str,
        *,
        enforce_limits: bool = True,
        fsync: bool | None = None,
        parallelism: int | None = None,
        create: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, ConnectionConfig):
            config = parse_connection_string(config)
        if config.scheme != "file" or not config.path:
            raise ConfigError(
                f"FileStore needs a file:// connection string, got {config.masked!r}",
                suggestion="use file:///abs/dir or file://./relative/dir",
                metadata={"scheme": config.scheme},
            )
        self.config = config
        self.root = os.path.abspath(os.path.expanduser(config.path))
        self.url = f"file://{self.root}"
        self.enforce_limits = enforce_limits
        configured = config.options.get("fsync")
        self.fsync = fsync if fsync is not None else configured is not False
        option = config.options.get("parallelism")
        threads = parallelism or (option if isinstance(option, int) else _DEFAULT_THREADS)
        self.parallelism = max(1, threads)
        self._base = os.path.join(self.root, "")  # with a trailing separator
        self._internal = os.path.join(self.root, _INTERNAL)
        self._tmp_dir = os.path.join(self._internal, "tmp")
        self._lock_dir = os.path.join(self._internal, "locks")
        self.create = create
        self._ready = False
        self._root_checked = False
        self._limiter: anyio.CapacityLimiter | None = None

    # -- plumbing --------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.parallelism)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _locate(self, key: str) -> _Location:
        try:
            validate_key(key)
        except UnicodeEncodeError:
            raise InvalidKeyError(
                f"unsafe object key {key!r}: it is not valid unicode",
                suggestion="encode user-supplied parts of keys before use",
                metadata={"key": key, "reason": "not valid unicode"},
            ) from None
        loc = _Location(self.root, key)
        inside = os.path.normpath(loc.path)
        if not inside.startswith(self._base) or any(n in (".", "..", "") for n in loc.names[:-1]):
            raise InvalidKeyError(  # unreachable after validate_key; kept as a last guard
                f"unsafe object key {key!r}: it escapes the store's directory",
                metadata={"key": key, "reason": "escapes the root"},
            )
        if len(os.fsencode(loc.path)) >= _PATH_MAX:
            raise InvalidKeyError(
                f"object key {key!r} is too long for a path under {self.root!r}",
                suggestion="use a shorter key or a FileStore directory with a shorter path",
                metadata={"key": key, "reason": "path too long"},
            )
        return loc

    def _prepare(self) -> None:
        """Create the root and the internal directories (idempotent, in a worker thread)."""
        if self._ready:
            return
        if not self._root_checked:
            check_root(self.root, self._internal, self.create, self.url)
            self._root_checked = True
        try:
            for path in (self._internal, self._tmp_dir, self._lock_dir):
                if os.path.islink(path):
                    raise link_error(_INTERNAL, path)
                os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot use {self.root!r} as a FileStore directory: {exc}",
                suggestion="point file:// at a writable directory (it is created when missing)",
                metadata={"path": self.root},
            ) from exc
        self._ready = True

    @contextlib.contextmanager
    def _locked(self, loc: _Location) -> Iterator[None]:
        """The critical section of one key: across threads of this process and processes."""
        with _thread_lock(self.root, loc.stripe):
            path = os.path.join(self._lock_dir, f"{loc.stripe:03x}")
            fd = self._open_internal(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _dir(self, loc: _Location, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the key's directory, reached without following any link."""
        make = self._make_component(loc) if create else None
        try:
            fd = open_dir(self.root, loc.names[:-1], make)
        except LinkInPath as exc:
            raise link_error(loc.key, exc.path) from None
        try:
            yield fd
        finally:
            os.close(fd)

    def _exists(self, loc: _Location) -> bool:
        try:
            with self._dir(loc) as fd:
                os.lstat(loc.file, dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def _current_etag(self, loc: _Location) -> str | None:
        try:
            with self._dir(loc) as fd:
                return _read_header(loc.file, fd).etag
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, _Corrupt) as exc:
            raise self._corrupt(loc.key, exc) from exc

    def _corrupt(self, key: str, exc: BaseException) -> CorruptObjectError:
        return CorruptObjectError(
            f"object {key!r} under {self.root!r} is unreadable: {exc}",
            suggestion="delete or rewrite the key; files under the root are managed by s3db",
            metadata={"key": key, "reason": str(exc) or type(exc).__name__},
        )

    @staticmethod
    def _check(
        loc: _Location, current: str | None, if_none_match: bool, if_match: str | None
    ) -> None:
        key = loc.key
        if if_none_match and current is not None:
            raise PreconditionFailed(
                f"{key!r} already exists", metadata={"key": key, "condition": "If-None-Match"}
            )
        if if_match is not None and current != if_match:
            raise PreconditionFailed(
                f"{key!r} changed since it was read"
                if current is not None
                else f"{key!r} does not exist (If-Match)",
                metadata={"key": key, "condition": "If-Match", "expected": if_match},
            )

    def _precheck(self, loc: _Location, if_none_match: bool, if_match: str | None) -> None:
        """Fail early without the lock (sound: it observes a real state at one instant)."""
        if if_match is not None:
            self._check(loc, self._current_etag(loc), if_none_match, if_match)
        elif if_none_match and self._exists(loc):
            self._check(loc, "", True, None)

    def _open_internal(self, path: str, flags: int) -> int:
        """Open a file of the internal area, recreating it if it was removed under us."""
        try:
            return os.open(path, flags, 0o644)
        except FileNotFoundError:
            self._ready = False
            self._prepare()
            return os.open(path, flags, 0o644)

    def _write_temp(self, parts: list[bytes], *, sync: bool = True) -> str:
        """Write ``parts`` to a new temp file (fsynced unless ``sync`` is False: more is to
        be appended)."""
        tmp = os.path.join(self._tmp_dir, f"{os.getpid()}-{secrets.token_hex(8)}")
        fd = self._open_internal(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC)
        try:
            _write_all(fd, parts)
            if self.fsync and sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _make_component(self, loc: _Location) -> Callable[[int, int], None]:
        """Creates directory ``i`` of a key in its parent (for :func:`open_dir`)."""

        def make(parent: int, i: int) -> None:
            name = loc.names[i]
            if _LONG in name:
                self._make_long_dir(parent, name, loc.segments[i])
                return
            try:
                os.mkdir(name, dir_fd=parent)
            except FileExistsError:
                return
            if self.fsync:
                os.fsync(parent)

        return make

    def _make_long_dir(self, parent: int, name: str, segment: str) -> None:
        """Create a shortened-name directory together with its ``~seg`` file, atomically."""
        tmp = os.path.join(self._tmp_dir, f"d{os.getpid()}-{secrets.token_hex(8)}")
        os.mkdir(tmp)
        try:
            with open(os.path.join(tmp, _SEG_FILE), "wb") as f:
                f.write(segment.encode("utf-8"))
                if self.fsync:
                    os.fsync(f.fileno())
            os.rename(tmp, name, dst_dir_fd=parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            return
        if self.fsync:
            os.fsync(parent)

    def _install(self, tmp: str, loc: _Location) -> None:
        """Move a written temp file into place, creating directories as needed."""
        for _ in range(20):  # directories may vanish under us (pruned by a delete)
            try:
                with self._dir(loc, create=True) as fd:
                    os.replace(tmp, loc.file, dst_dir_fd=fd)
                return
            except FileNotFoundError:
                if not os.path.exists(tmp):
                    raise StoreError(
                        f"temp file of {loc.key!r} vanished before it was renamed",
                        metadata={"key": loc.key},
                        retriable=True,
                    ) from None
            except (NotADirectoryError, IsADirectoryError) as exc:
                raise StoreError(
                    f"cannot store {loc.key!r}: a foreign file is in the way ({exc})",
                    metadata={"key": loc.key},
                ) from exc
        raise StoreError(
            f"cannot create the directories of {loc.key!r}",
            metadata={"key": loc.key},
            retriable=True,
        )

    def _prune(self, directory: str) -> None:
        """Remove now-empty directories above a deleted object (best effort)."""
        while len(directory) > len(self.root) and _LONG not in os.path.basename(directory):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    # -- sync operations (run in worker threads) ----------------------------------------
    def _put_sync(
        self,
        loc: _Location,
        body: bytes,
        metadata: dict[str, str],
        content_type: str,
        if_none_match: bool,
        if_match: str | None,
    ) -> str:
        self._prepare()
        if if_none_match or if_match is not None:
            self._precheck(loc, if_none_match, if_match)
        etag = _etag(body)
        header = _Header(loc.key, etag, len(body), time.time_ns() // 1000, content_type, metadata)
        tmp = self._write_temp([_encode_object(header), body])
        try:
            with self._locked(loc):
                if if_none_match or if_match is not None:
                    self._check(loc, self._current_etag(loc), if_none_match, if_match)
                self._install(tmp, loc)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_dir(loc.dir)
        return etag

    def _get_sync(self, loc: _Location) -> tuple[_Header, bytes]:
        try:
            with self._dir(loc) as fd:
                return _read_object(loc.file, fd)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object at {loc.key!r}", metadata={"key": loc.key}) from None
        except (OSError, _Corrupt) as exc:
            raise self._corrupt(loc.key, exc) from exc

    def _head_sync(self, loc: _Location) -> _Header:
        try:
            with self._dir(loc) as fd:
                return _read_header(loc.file, fd)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object at {loc.key!r}", metadata={"key": loc.key}) from None
        except (OSError, _Corrupt) as exc:
            raise self._corrupt(loc.key, exc) from exc

    def _delete_sync(self, loc: _Location, if_match: str | None) -> None:
        if not self._exists(loc):
            if if_match is not None:
                self._delete_mismatch(loc, if_match)
            return
        self._prepare()
        with self._locked(loc):
            if if_match is not None and self._current_etag(loc) != if_match:
                self._delete_mismatch(loc, if_match)
            try:
                with self._dir(loc) as fd:
                    os.unlink(loc.file, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                return
        if self.fsync:
            _fsync_dir(loc.dir)
        self._prune(loc.dir)

    @staticmethod
    def _delete_mismatch(loc: _Location, if_match: str) -> None:
        raise PreconditionFailed(
            f"{loc.key!r} changed or vanished since it was read",
            metadata={"key": loc.key, "condition": "If-Match", "expected": if_match},
        )

    def _delete_batch_sync(self, locs: list[_Location]) -> None:
        for loc in locs:
            self._delete_sync(loc, None)

    def _copy_sync(self, src: _Location, dst: _Location) -> str:
        header, body = self._get_sync(src)
        self._prepare()
        new = _Header(
            dst.key,
            header.etag,
            header.size,
            time.time_ns() // 1000,
            header.content_type,
            header.metadata,
        )
        tmp = self._write_temp([_encode_object(new), body])
        try:
            with self._locked(dst):
                self._install(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_dir(dst.dir)
        return header.etag

    def _open_stream_sync(self, loc: _Location) -> tuple[int, _Header, int]:
        try:
            with self._dir(loc) as fd:
                return _open_body(loc.file, fd)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no object at {loc.key!r}", metadata={"key": loc.key}) from None
        except (OSError, _Corrupt) as exc:
            raise self._corrupt(loc.key, exc) from exc

    def _start_upload_sync(self) -> _Upload:
        self._prepare()
        tmp = os.path.join(self._tmp_dir, f"{os.getpid()}-{secrets.token_hex(8)}.parts")
        fd = self._open_internal(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC)
        return _Upload(tmp, fd)

    def _complete_upload_sync(
        self, upload: _Upload, loc: _Location, etag: str, metadata: dict[str, str], ctype: str
    ) -> str:
        """Write header + the parts' body to a temp file and move it into place."""
        header = _Header(loc.key, etag, upload.size, time.time_ns() // 1000, ctype, metadata)
        tmp = self._write_temp([_encode_object(header)], sync=False)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | _O_CLOEXEC)
            try:
                offset = 0
                while offset < upload.size:
                    block = os.pread(upload.fd, min(_COPY_BLOCK, upload.size - offset), offset)
                    if not block:
                        raise StoreError(f"the parts of {loc.key!r} were cut short")
                    _write_all(fd, [block])
                    offset += len(block)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            with self._locked(loc):
                self._install(tmp, loc)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        upload.completed = True
        if self.fsync:
            _fsync_dir(loc.dir)
        return etag

    def _connect_sync(self) -> None:
        self._ready = False
        self._prepare()
        self._warn_if_case_insensitive()
        cutoff = time.time() - _STALE_TEMP_SECONDS
        try:
            with os.scandir(self._tmp_dir) as it:
                entries = list(it)
        except OSError:
            return
        for entry in entries:  # temp files (and long-name dirs) of crashed writers
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)

    def _warn_if_case_insensitive(self) -> None:
        probe = os.path.join(self._tmp_dir, f"case-{os.getpid()}-{secrets.token_hex(4)}-Ab")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | _O_CLOEXEC, 0o644))
            folded = os.path.exists(probe[:-2] + "aB")
            os.unlink(probe)
        except OSError:
            return
        if folded:
            logger.warning(
                "%s is on a case-insensitive file system: keys that differ only in case "
                "(or in unicode normalization) will overwrite each other",
                self.root,
            )

    def _probe_sync(self) -> Capabilities:
        self._prepare()
        path = os.path.join(self._tmp_dir, f"probe-{os.getpid()}-{secrets.token_hex(8)}")
        first = os.open(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
        second = os.open(path, os.O_RDWR | _O_CLOEXEC)
        try:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                detail = "flock lock stripes + atomic rename"
            else:
                detail = "flock with per-process semantics (network file system?) + thread locks"
        except OSError as exc:
            return Capabilities(
                conditional_create=False,
                conditional_update=False,
                conditional_delete=False,
                detail=f"flock unavailable on {self.root!r}: {exc}",
            )
        finally:
            os.close(first)
            os.close(second)
            with contextlib.suppress(OSError):
                os.unlink(path)
        return Capabilities(detail=detail)

    # -- the contract ------------------------------------------------------------------
    async def connect(self) -> None:
        """Check and create the directory (see ``create``) and drop stale temp files.

        :raises ConfigError: the directory holds other files (and ``create`` is not True).
        :raises NotFoundError: no store there and ``create`` is False.
        :raises StoreError: the path cannot be used (a file, no permission, a link inside).
        """
        await self._run(self._connect_sync)

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
        loc = self._locate(key)
        md = checked_metadata(key, metadata, self.enforce_limits)
        self.stats["put"] += 1
        return await self._run(
            self._put_sync,
            loc,
            bytes(body),
            md,
            content_type or "application/octet-stream",
            if_none_match,
            if_match,
        )

    async def get(self, key: str) -> StoredObject:
        self.stats["get"] += 1
        loc = self._locate(key)
        h, body = await self._run(self._get_sync, loc)
        return StoredObject(
            key, body, h.metadata, h.etag, _when(h.modified_us), h.size, h.content_type
        )

    async def head(self, key: str) -> ObjectInfo:
        self.stats["head"] += 1
        loc = self._locate(key)
        h = await self._run(self._head_sync, loc)
        return ObjectInfo(key, h.metadata, h.etag, _when(h.modified_us), h.size, h.content_type)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        loc = self._locate(key)
        self.stats["delete"] += 1
        await self._run(self._delete_sync, loc, if_match)

    async def delete_many(self, keys: Iterable[str]) -> int:
        locs = [self._locate(k) for k in keys]
        for i in range(0, len(locs), PAGE_SIZE):
            self.stats["delete_many"] += 1
            await self._run(self._delete_batch_sync, locs[i : i + PAGE_SIZE])
        return len(locs)

    async def list(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
        delimiter: str | None = None,
    ) -> AsyncIterator[ListEntry | CommonPrefix]:
        if limit is not None and limit <= 0:
            return
        walker = _Walker(self.root, prefix, start_after, delimiter or None)
        emitted = 0
        while True:
            want = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - emitted)
            self.stats["list"] += 1
            page, more = await self._run(walker.page, want)
            for entry in page:
                yield entry
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
            if not more or not page:
                return

    async def copy(self, src: str, dst: str) -> str:
        dst_loc = self._locate(dst)
        self.stats["copy"] += 1
        src_loc = self._locate(src)
        return await self._run(self._copy_sync, src_loc, dst_loc)

    async def put_stream(
        self,
        key: str,
        chunks: ByteChunks,
        metadata: Mapping[str, str] | None = None,
        *,
        content_type: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> str:
        loc = self._locate(key)

        async def begin(md: dict[str, str], ctype: str) -> _Upload:
            upload: _Upload = await self._run(self._start_upload_sync)
            upload.target(self, loc, md, ctype)
            return upload

        return await put_stream_assembled(
            self, key, chunks, metadata, content_type=content_type, part_size=part_size,
            enforce_limits=self.enforce_limits, begin=begin,
        )  # fmt: skip

    async def get_stream(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        self.stats["get"] += 1
        loc = self._locate(key)
        fd, h, offset = await self._run(self._open_stream_sync, loc)
        info = ObjectInfo(key, h.metadata, h.etag, _when(h.modified_us), h.size, h.content_type)
        body = _Descriptor(fd)
        chunks = self._chunks(body, offset, h.size, max(1, chunk_size), key)
        return ObjectStream(info, chunks, on_close=body.close)

    async def _chunks(
        self, body: _Descriptor, offset: int, size: int, chunk_size: int, key: str
    ) -> AsyncIterator[bytes]:
        """The body from an open descriptor (the file as it was opened, whatever replaces it
        meanwhile: a rename never changes an open file)."""
        try:
            end = offset + size
            while offset < end:
                data = await self._run(os.pread, body.fd, min(chunk_size, end - offset), offset)
                if not data:
                    raise self._corrupt(key, _Corrupt("the body is cut short"))
                offset += len(data)
                yield data
        finally:
            body.close()

    async def _probe_capabilities(self) -> Capabilities:
        return await self._run(self._probe_sync)

    def describe(self) -> dict[str, Any]:
        return {"store": type(self).__name__, "url": self.url, "path": self.root}


# -- listing ---------------------------------------------------------------------------

# (sort key: the segment, plus "/" for a directory; is a directory; file name)
_Child = tuple[str, bool, str]
# (is a common prefix; key or common prefix; path)
_Item = tuple[bool, str, str]


def _classify(directory: str, entry: os.DirEntry[str]) -> _Child | None:
    """What a directory entry stands for, or None for internal and foreign files."""
    name = entry.name
    if name.endswith(_OBJ):
        if not (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
            return None  # a symlink is listed (as an unreadable object), never followed
        stem = name[: -len(_OBJ)]
        segment = _decode(stem)
        if segment is None:
            if not _is_long(stem):
                return None
            try:
                segment = _read_header(entry.path).key.rpartition("/")[2]
            except (OSError, _Corrupt):
                return None
            if _name(segment) != stem:
                return None
        return (segment, False, name)
    if not entry.is_dir(follow_symlinks=False):
        return None
    segment = _decode(name)
    if segment is None:
        if not _is_long(name):
            return None
        try:
            with open(os.path.join(entry.path, _SEG_FILE), "rb") as f:
                segment = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if "/" in segment or _name(segment) != name:
            return None
    return (segment + "/", True, name)


def _children(directory: str) -> list[_Child]:
    out: list[_Child] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                child = _classify(directory, entry)
                if child is not None:
                    out.append(child)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out.sort()  # code-point order of str == byte order of UTF-8 == S3 order
    return out


def _any_object(directory: str) -> bool:
    """True when some object lives under ``directory`` (stops at the first one)."""
    subdirs: list[str] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                child = _classify(directory, entry)
                if child is None:
                    continue
                if not child[1]:
                    return True
                subdirs.append(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(_any_object(d) for d in subdirs)


def _unreadable_entry(key: str, path: str) -> ListEntry | None:
    """The listing entry of a damaged object file or a symlink (empty etag)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return ListEntry(key, st.st_size, "", _when(st.st_mtime_ns // 1000))


class _Walker:
    """Yields keys of a listing in S3 order, a page at a time (driven from a worker thread)."""

    def __init__(
        self, root: str, prefix: str, start_after: str | None, delimiter: str | None
    ) -> None:
        self.prefix = prefix
        self.start_after = (
            start_after if start_after is not None and start_after >= prefix else None
        )
        self.delimiter = delimiter
        self.last_common: str | None = None
        self.pending: ListEntry | CommonPrefix | None = None
        directory, _, self.partial = prefix.rpartition("/")
        segments = directory.split("/") if directory else []
        self.root = root
        self.names = [_name(s) for s in segments]
        if any(s in ("", ".", "..") for s in segments):
            self.items: Iterator[_Item] = iter(())  # no valid key lives there
        else:
            path = os.path.join(root, *self.names) if segments else root
            dirkey = directory + "/" if directory else ""
            self.items = self._walk(path, dirkey, top=True, delimiter=delimiter)

    def page(self, want: int) -> tuple[list[ListEntry | CommonPrefix], bool]:
        """Up to ``want`` entries, and whether more follow."""
        out: list[ListEntry | CommonPrefix] = []
        if self.pending is not None:
            out.append(self.pending)
            self.pending = None
        while len(out) < want:
            entry = self._next()
            if entry is None:
                return out, False
            out.append(entry)
        self.pending = self._next()
        return out, self.pending is not None

    def _next(self) -> ListEntry | CommonPrefix | None:
        for is_common, key, path in self.items:
            if is_common:
                if key == self.last_common:
                    continue
                self.last_common = key
                return CommonPrefix(key)
            try:
                h = _read_header(path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # deleted meanwhile
            except (OSError, _Corrupt):
                damaged = _unreadable_entry(key, path)  # listed, so get/delete can see it
                if damaged is None:
                    continue
                return damaged
            return ListEntry(key, h.size, h.etag, _when(h.modified_us))
        return None

    def _common(self, full: str, whole: bool) -> str | None:
        """The common prefix ``full`` falls under (for a directory: only if it covers it all)."""
        assert self.delimiter is not None
        rest = full[len(self.prefix) :]
        cut = rest.find(self.delimiter)
        if cut < 0 or (whole and cut + len(self.delimiter) > len(rest)):
            return None
        return full[: len(self.prefix) + cut + len(self.delimiter)]

    def _walk(
        self, directory: str, dirkey: str, *, top: bool, delimiter: str | None
    ) -> Iterator[_Item]:
        if top:  # below it, _classify skips links
            try:
                os.close(open_dir(self.root, self.names))
            except LinkInPath as exc:
                raise link_error(self.prefix, exc.path) from None
            except (FileNotFoundError, NotADirectoryError):
                return
        children = _children(directory)
        start = 0
        after = self.start_after
        if after is not None:
            if after.startswith(dirkey):
                first = after[len(dirkey) :].split("/", 1)[0]
                start = bisect_left(children, (first,))
            elif after > dirkey:
                return  # everything here sorts before start_after
        if top and self.partial:
            start = max(start, bisect_left(children, (self.partial,)))
        for sortkey, is_dir, name in children[start:]:
            full = dirkey + sortkey
            if top and not full.startswith(self.prefix):
                break
            path = os.path.join(directory, name)
            if not is_dir:
                if after is not None and full <= after:
                    continue
                if delimiter is not None and (common := self._common(full, False)):
                    yield (True, common, path)
                    continue
                yield (False, full, path)
                continue
            if after is not None and full < after and not after.startswith(full):
                continue
            if delimiter is not None and (common := self._common(full, True)):
                if common != self.last_common and self._has_key(path, full):
                    yield (True, common, path)
                continue
            yield from self._walk(path, full, top=False, delimiter=delimiter)

    def _has_key(self, directory: str, dirkey: str) -> bool:
        """True when the directory holds a key after ``start_after``."""
        if self.start_after is not None and self.start_after.startswith(dirkey):
            return next(self._walk(directory, dirkey, top=False, delimiter=None), None) is not None
        return _any_object(directory)
