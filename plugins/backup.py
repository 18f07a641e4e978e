"""BackupPlugin: full and incremental backups of chosen resources, restored exactly.

::

    backup = BackupPlugin(
        destination={"driver": "filesystem", "path": "./backups/{db}"},
        resources=["users", "orders"],          # default: every resource
        compression="gzip",                     # or "zstd", "none"
        encryption_key="a long passphrase",     # AES-256-GCM, optional
        retention={"daily": 7, "weekly": 4, "monthly": 12},
        schedule="0 3 * * *",                   # optional cron, one leader runs it
    )
    await db.use_plugin(backup)
    info = await backup.backup()                   # full
    info2 = await backup.backup(kind="incremental")
    await backup.verify(info2.id)
    await backup.restore(info2.id, mode="merge")

How it works:

- **What is copied.** A resource lives in the store under ``resource={name}/``: records,
  partition references, history entries, binary content, its id sequence. A backup copies
  every one of those objects byte for byte, with metadata and content type, plus the
  resource's definition from ``s3db.json``. A restore writes them back, so records, history
  and content come back exactly, whatever their encoding or encryption.
- **Streaming.** Objects are read ``concurrency`` at a time and appended in key order to a
  temporary archive file (length-prefixed msgpack frames, gzip- or zstd-compressed in a
  stream, then AES-GCM in 1 MiB chunks): memory stays bounded whatever the number of
  records. The ``s3`` destination uploads that file in parts (a multipart upload past
  ``part_size``) and downloads it in chunks; a restore writes ``concurrency`` objects at a
  time.
- **Incremental.** Every backup also stores an index (``{id}/index``: each key present and
  its etag). An incremental backup lists the store, compares each etag with its parent's
  index and copies only the new or changed objects (no clock involved); a restore of an
  incremental rebuilds the exact state: for each key of its index the newest copy along the
  chain full -> incremental -> ..., and keys deleted since stay deleted.
- **Checksums and manifest.** The manifest ``{id}/manifest.json`` holds the SHA-256 of
  the archive, object counts per resource, the chain parent and the encryption salt. It is
  written last: a crash mid-backup leaves an archive without manifest, which
  :meth:`BackupPlugin.list_backups` ignores and the next retention pass removes.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import collections
import contextlib
import hashlib
import importlib
import os
import re
import secrets as _secrets
import shutil
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from s3db_async import ObjectStore, open_store
from s3db_async.errors import ConfigError, NotFoundError, PreconditionFailed, S3dbError
from s3db_async.plugin import JobRun, Plugin, require_dependency
from s3db_async.stores import DEFAULT_PART_SIZE, MIN_PART_SIZE, StoredObject

__all__ = [
    "BackupCorruptError",
    "BackupInfo",
    "BackupPlugin",
    "Destination",
    "FilesystemDestination",
    "MultiDestination",
    "RestoreReport",
    "S3Destination",
]

MODES = ("merge", "replace", "skip")
KINDS = ("full", "incremental")
COMPRESSIONS = ("gzip", "zstd", "none")
STRATEGIES = ("all", "any", "priority")
CHUNK = 1 << 20  # plaintext bytes per AES-GCM chunk
_INFLATE_SLICE = 1 << 16  # compressed bytes decompressed at a time on read
_LEN = struct.Struct(">I")


class BackupCorruptError(S3dbError):
    """A backup whose archive does not match its manifest (checksum, decryption, content)."""


def _bad(field_name: str, reason: str, suggestion: str, value: Any = None) -> ConfigError:
    return ConfigError(
        f"BackupPlugin: {field_name} {reason}",
        suggestion=suggestion,
        metadata={"field": field_name, "reason": reason, "value": repr(value)},
    )


# -- destinations ----------------------------------------------------------------------------
class Destination(abc.ABC):
    """Where backups go: named blobs (``{id}/manifest.json``, ``{id}/data``)."""

    name = "destination"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect (called once before first use)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def put_file(self, name: str, path: Path) -> None:
        """Store the file at ``path`` as ``name``."""

    @abc.abstractmethod
    async def get_file(self, name: str, path: Path) -> None:
        """Copy ``name`` into the file ``path``. :raises NotFoundError: no such blob."""

    @abc.abstractmethod
    async def put_bytes(self, name: str, body: bytes) -> None:
        """Store ``body`` as ``name``."""

    @abc.abstractmethod
    async def get_bytes(self, name: str) -> bytes:
        """Read ``name``. :raises NotFoundError: no such blob."""

    @abc.abstractmethod
    async def names(self) -> list[str]:
        """Every blob name, sorted."""

    @abc.abstractmethod
    async def delete(self, name: str) -> None:
        """Delete ``name`` (missing is fine)."""


class FilesystemDestination(Destination):
    """Backups in a local directory. ``path`` may hold ``{db}`` (the database's name) and
    ``{date}`` (the UTC day each backup was taken, ``2026-12-04``): with ``{date}`` each
    backup goes to the folder of its day, and listing, restoring and retention see every day.
    """

    name = "filesystem"

    def __init__(self, path: str | Path) -> None:
        if not str(path):
            raise _bad("path", "is empty", "pass path='./backups/{db}'", path)
        self.template = str(path)
        try:
            self.template.format(db="db", date="2026-01-01")
        except (KeyError, IndexError, ValueError) as exc:
            raise _bad(
                "path", f"has an unknown placeholder ({exc})",
                "use only {db} and {date} in the path, e.g. './backups/{db}/{date}'", path,
            ) from None  # fmt: skip
        self._bind("db")

    def _bind(self, safe: str) -> None:
        parts = Path(self.template.format(db=safe, date="{date}")).parts
        cut = next((i for i, part in enumerate(parts) if "{date}" in part), len(parts))
        self.root = Path(*parts[:cut]) if cut else Path()
        self.dated: tuple[str, ...] = tuple(parts[cut:])  # components below root, per day

    def bind(self, db_name: str) -> None:
        """Fill the path template for one database."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", db_name).strip("_") or "db"
        self._bind(safe)

    def _day_dirs(self, name: str) -> tuple[str, ...]:
        """The folders between the root and a blob, from the UTC day in the backup id."""
        if not self.dated:
            return ()
        stamp = name.split("/", 1)[0][:8]
        day = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp.isdigit() else "undated"
        return tuple(part.replace("{date}", day) for part in self.dated)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*self._day_dirs(name), name)

    async def put_file(self, name: str, path: Path) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    async def get_file(self, name: str, path: Path) -> None:
        source = self._path(name)
        if not source.is_file():
            raise NotFoundError(
                f"no backup blob {name!r} in {self.root}",
                suggestion="list the backups with list_backups()",
                metadata={"key": name},
            )
        shutil.copyfile(source, path)

    async def put_bytes(self, name: str, body: bytes) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(body)
        os.replace(tmp, target)

    async def get_bytes(self, name: str) -> bytes:
        source = self._path(name)
        if not source.is_file():
            raise NotFoundError(
                f"no backup blob {name!r} in {self.root}",
                suggestion="list the backups with list_backups()",
                metadata={"key": name},
            )
        return source.read_bytes()

    async def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        depth = len(self.dated)
        out = []
        for p in self.root.rglob("*"):
            if not p.is_file() or p.name.endswith(".part"):
                continue
            parts = p.relative_to(self.root).parts
            name = "/".join(parts[depth:])
            if len(parts) > depth + 1 and parts[:depth] == self._day_dirs(name):
                out.append(name)  # with {date}: only files in the folder of their day
        return sorted(out)

    async def delete(self, name: str) -> None:
        path = self._path(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for parent in [path.parent, *path.parent.parents][: 1 + len(self.dated)]:
            with contextlib.suppress(OSError):  # empty folders go: the backup's, its day's
                parent.rmdir()


class S3Destination(Destination):
    """Backups in another bucket / prefix: a connection string (``s3://...``,
    ``http://host/bucket``, ``file://``, ``memory://``) or an open :class:`ObjectStore`."""

    name = "s3"

    def __init__(
        self,
        url: str | ObjectStore,
        *,
        prefix: str = "backups/",
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if isinstance(url, str) and not url:
            raise _bad("url", "is empty", "pass url='s3://bucket/prefix'", url)
        if not isinstance(prefix, str):
            raise _bad("prefix", "must be a string", "pass prefix='backups/'", prefix)
        self.url = url
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        if (
            isinstance(part_size, bool)
            or not isinstance(part_size, int)
            or part_size < MIN_PART_SIZE
        ):
            raise _bad(
                "part_size",
                f"must be an int of at least {MIN_PART_SIZE} bytes (S3's 5 MiB minimum)",
                f"leave the default ({DEFAULT_PART_SIZE}) or pass part_size=16 * 2**20",
                part_size,
            )
        self.part_size = part_size
        self.store: ObjectStore | None = url if isinstance(url, ObjectStore) else None
        self._owned = False

    async def open(self) -> None:
        if self.store is None:
            assert isinstance(self.url, str)
            self.store = open_store(self.url)
            await self.store.connect()
            self._owned = True

    async def close(self) -> None:
        if self._owned and self.store is not None:
            await self.store.close()
            self.store = None
            self._owned = False

    def _store(self) -> ObjectStore:
        if self.store is None:
            raise ConfigError(
                "S3Destination used before open()",
                suggestion="install the plugin with db.use_plugin() first",
                metadata={"field": "destination", "reason": "not open"},
            )
        return self.store

    async def put_file(self, name: str, path: Path) -> None:
        """Upload in parts of ``part_size`` (multipart past one part): memory stays bounded."""
        await self._store().put_stream(
            self.prefix + name, _file_chunks(path), part_size=self.part_size
        )

    async def get_file(self, name: str, path: Path) -> None:
        """Download in chunks straight into ``path``."""
        async with await self._store().get_stream(self.prefix + name) as stream:
            with path.open("wb") as out:
                async for chunk in stream:
                    await asyncio.to_thread(out.write, chunk)

    async def put_bytes(self, name: str, body: bytes) -> None:
        await self._store().put(self.prefix + name, body)

    async def get_bytes(self, name: str) -> bytes:
        return (await self._store().get(self.prefix + name)).body

    async def names(self) -> list[str]:
        keys = await self._store().list_keys(self.prefix)
        return sorted(k[len(self.prefix) :] for k in keys)

    async def delete(self, name: str) -> None:
        await self._store().delete(self.prefix + name)


class MultiDestination(Destination):
    """Several destinations: ``all`` (every one must succeed), ``any`` (one suffices) or
    ``priority`` (the first that succeeds). Reads try them in order."""

    name = "multi"

    def __init__(self, destinations: Sequence[Destination], *, strategy: str = "all") -> None:
        if not destinations:
            raise _bad("destinations", "is empty", "pass at least one destination")
        if strategy not in STRATEGIES:
            raise _bad("strategy", "is not a strategy", f"use one of {STRATEGIES}", strategy)
        self.destinations = list(destinations)
        self.strategy = strategy
        self.failures: list[tuple[str, BaseException]] = []

    async def open(self) -> None:
        for d in self.destinations:
            await d.open()

    async def close(self) -> None:
        for d in self.destinations:
            await d.close()

    async def _write(self, fn: Callable[[Destination], Any]) -> None:
        done = 0
        for d in self.destinations:
            try:
                await fn(d)
            except Exception as exc:
                if self.strategy == "all":
                    raise
                self.failures.append((d.name, exc))
                continue
            done += 1
            if self.strategy == "priority":
                return
        if done == 0:
            raise S3dbError(
                "no backup destination accepted the write",
                suggestion="check the destinations; failures are in MultiDestination.failures",
                metadata={"reason": "all destinations failed"},
            )

    async def put_file(self, name: str, path: Path) -> None:
        await self._write(lambda d: d.put_file(name, path))

    async def put_bytes(self, name: str, body: bytes) -> None:
        await self._write(lambda d: d.put_bytes(name, body))

    async def get_file(self, name: str, path: Path) -> None:
        last: Exception | None = None
        for d in self.destinations:
            try:
                await d.get_file(name, path)
                return
            except Exception as exc:
                last = exc
        assert last is not None
        raise last

    async def get_bytes(self, name: str) -> bytes:
        last: Exception | None = None
        for d in self.destinations:
            try:
                return await d.get_bytes(name)
            except Exception as exc:
                last = exc
        assert last is not None
        raise last

    async def names(self) -> list[str]:
        out: set[str] = set()
        for d in self.destinations:
            with contextlib.suppress(Exception):
                out.update(await d.names())
        return sorted(out)

    async def delete(self, name: str) -> None:
        for d in self.destinations:
            with contextlib.suppress(Exception):
                await d.delete(name)


def make_destination(config: Any) -> Destination:
    """A destination from a dict (``{"driver": "filesystem", "path": ...}``), a
    :class:`Destination`, a path or a URL string.

    :raises ConfigError: unknown driver or missing options.
    """
    if isinstance(config, Destination):
        return config
    if isinstance(config, Path):
        return FilesystemDestination(config)
    if isinstance(config, str):
        if "://" in config and not config.startswith("file://"):
            return S3Destination(config)
        return FilesystemDestination(config.removeprefix("file://"))
    if not isinstance(config, Mapping):
        raise _bad("destination", "must be a dict, a path or a URL", "pass './backups'", config)
    driver = config.get("driver", "filesystem")
    allowed = _DRIVER_KEYS.get(driver) if isinstance(driver, str) else None
    if allowed is not None:
        unknown = sorted(str(k) for k in config if k not in allowed)
        if unknown:
            raise _bad(
                f"destination[{unknown[0]!r}]",
                f"is not an option of the {driver} driver",
                f"use {', '.join(sorted(allowed - {'driver'}))} at the top level of the dict"
                " (no nested 'config'), e.g. {'driver': 'filesystem', 'path': './backups'}",
                unknown,
            )
    if driver == "filesystem":
        if "path" not in config:
            raise _bad("path", "is required for the filesystem driver", "pass path='./backups'")
        return FilesystemDestination(config["path"])
    if driver == "s3":
        url = config.get("url") or config.get("store")
        if url is None:
            raise _bad("url", "is required for the s3 driver", "pass url='s3://bucket/backups'")
        return S3Destination(
            url,
            prefix=config.get("prefix", "backups/"),
            part_size=config.get("part_size", DEFAULT_PART_SIZE),
        )
    if driver == "multi":
        subs = config.get("destinations")
        if not isinstance(subs, Sequence) or isinstance(subs, str) or not subs:
            raise _bad("destinations", "must be a non-empty list", "pass destinations=[...]")
        return MultiDestination(
            [make_destination(s) for s in subs], strategy=config.get("strategy", "all")
        )
    raise _bad("driver", "is not a backup driver", "use filesystem, s3 or multi", driver)


_DRIVER_KEYS: dict[str, frozenset[str]] = {
    "filesystem": frozenset({"driver", "path"}),
    "s3": frozenset({"driver", "url", "store", "prefix", "part_size"}),
    "multi": frozenset({"driver", "destinations", "strategy"}),
}
"""The keys each destination driver takes in its dict (anything else is a typo)."""


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes, CHUNK at a time (read in a worker thread)."""
    with path.open("rb") as f:
        while block := await asyncio.to_thread(f.read, CHUNK):
            yield block


# -- archive format --------------------------------------------------------------------------
class _Frame(msgspec.Struct, array_like=True, omit_defaults=True):
    kind: str  # "o" object, "d" resource definition, "k" key index
    key: str
    body: bytes = b""
    metadata: dict[str, str] = {}
    content_type: str | None = None
    keys: list[str] = []
    etags: list[str] = []


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(_Frame)


def _derive(key: str | bytes, salt: bytes) -> bytes:
    if isinstance(key, bytes) and len(key) == 32:
        return key
    material = key.encode() if isinstance(key, str) else key
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(material)


def _zstd() -> Any:
    require_dependency(
        "zstandard",
        extra="backup",
        min_version="0.22",
        plugin="BackupPlugin",
        description="zstd compression of backups",
    )
    return importlib.import_module("zstandard")


def _compressor(compression: str) -> Any:
    if compression == "gzip":
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression == "zstd":
        return _zstd().ZstdCompressor(level=3).compressobj()
    return None


def _decompressor(compression: str) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(31)
    if compression == "zstd":
        return _zstd().ZstdDecompressor().decompressobj()
    return None


class _Writer:
    """Frames -> gzip -> AES-GCM chunks -> file, hashing what is written."""

    def __init__(self, out: IO[bytes], compression: str, key: bytes | None) -> None:
        self.out, self.key = out, key
        self.z = _compressor(compression)
        self.buf = bytearray()
        self.sha = hashlib.sha256()
        self.nonce_prefix = _secrets.token_bytes(8)
        self.chunks = 0
        self.size = 0

    def _emit(self, data: bytes) -> None:
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)

    def _flush_chunk(self, final: bool) -> None:
        if self.key is None:
            self._emit(bytes(self.buf))
            self.buf.clear()
            return
        while len(self.buf) >= CHUNK or (final and (self.buf or self.chunks == 0)):
            piece = bytes(self.buf[:CHUNK])
            del self.buf[:CHUNK]
            last = final and not self.buf
            nonce = self.nonce_prefix + struct.pack(">I", self.chunks)
            aad = struct.pack(">I?", self.chunks, last)
            sealed = AESGCM(self.key).encrypt(nonce, piece, aad)
            self._emit(nonce + _LEN.pack(len(sealed)) + (b"\x01" if last else b"\x00") + sealed)
            self.chunks += 1
            if last:
                break

    def _plain(self, data: bytes) -> None:
        self.buf += data
        if self.key is None or len(self.buf) >= CHUNK:
            self._flush_chunk(False)

    def write(self, frame: _Frame) -> None:
        raw = _enc.encode(frame)
        data = _LEN.pack(len(raw)) + raw
        self._plain(self.z.compress(data) if self.z else data)

    def close(self) -> str:
        if self.z:
            self.buf += self.z.flush()
        self._flush_chunk(True)
        return self.sha.hexdigest()


def _read_frames(path: Path, compression: str, key: bytes | None) -> Iterator[_Frame]:
    """Frames of an archive file (decrypt, decompress in a stream).

    :raises BackupCorruptError: a chunk does not decrypt or the stream is cut short.
    """

    def plain() -> Iterator[bytes]:
        with path.open("rb") as f:
            if key is None:
                while block := f.read(CHUNK):
                    yield block
                return
            index, ended = 0, False
            while header := f.read(17):
                if len(header) < 17 or ended:
                    raise _corrupt(path, "truncated or trailing encrypted data")
                nonce, size, last = header[:12], _LEN.unpack(header[12:16])[0], header[16] == 1
                sealed = f.read(size)
                try:
                    yield AESGCM(key).decrypt(nonce, sealed, struct.pack(">I?", index, last))
                except InvalidTag as exc:
                    raise _corrupt(path, "a chunk does not decrypt (wrong key or altered)") from exc
                index, ended = index + 1, last
            if not ended:
                raise _corrupt(path, "the encrypted stream is cut short")

    def pieces() -> Iterator[bytes]:
        """Plaintext in small slices, so one slice never inflates to much (a 1 MiB chunk of
        repetitive records can decompress to tens of MiB)."""
        for block in plain():
            view = memoryview(block)
            for i in range(0, len(block), _INFLATE_SLICE):
                yield view[i : i + _INFLATE_SLICE].tobytes()

    z = _decompressor(compression)
    buf = bytearray()
    for piece in pieces():
        try:
            buf += z.decompress(piece) if z else piece
        except Exception as exc:  # zlib.error, zstd.ZstdError
            raise _corrupt(path, f"does not decompress: {exc}") from exc
        while len(buf) >= 4:
            n = _LEN.unpack(buf[:4])[0]
            if len(buf) < 4 + n:
                break
            try:
                yield _dec.decode(bytes(buf[4 : 4 + n]))
            except msgspec.DecodeError as exc:
                raise _corrupt(path, f"a frame does not decode: {exc}") from exc
            del buf[: 4 + n]
    if buf or (z is not None and not getattr(z, "eof", True)):
        raise _corrupt(path, "the archive ends in the middle of a frame")


def _corrupt(path: Path | str, reason: str) -> BackupCorruptError:
    return BackupCorruptError(
        f"backup archive {path}: {reason}",
        suggestion="restore from another backup; run verify() on each",
        metadata={"reason": reason},
    )


# -- results ---------------------------------------------------------------------------------
@dataclass
class BackupInfo:
    """One backup's manifest."""

    id: str
    kind: str
    started_at: str
    finished_at: str
    resources: dict[str, int]
    """Objects stored per resource."""
    keys: dict[str, int]
    """Keys present per resource at backup time (incrementals store fewer objects)."""
    size: int
    sha256: str
    compression: str
    encrypted: bool
    salt: str = ""
    parent: str | None = None
    index_sha256: str = ""
    format: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        """Objects stored in this backup."""
        return sum(self.resources.values())


@dataclass
class RestoreReport:
    """What a restore did."""

    backup_id: str
    mode: str
    written: int = 0
    skipped: int = 0
    deleted: int = 0
    resources: list[str] = field(default_factory=list)


def _prefix(resource: str) -> str:
    return f"resource={resource}/"


class _Cursor:
    """Walks a sorted (key, etag) stream alongside a sorted listing: bounded memory."""

    def __init__(self, entries: AsyncIterator[tuple[str, str]]) -> None:
        self.entries = entries
        self.current: tuple[str, str] | None = None
        self.done = False

    async def etag_of(self, key: str) -> str | None:
        """The etag of ``key`` in the stream (keys asked in increasing order), else None."""
        while not self.done and (self.current is None or self.current[0] < key):
            try:
                self.current = await anext(self.entries)
            except StopAsyncIteration:
                self.done, self.current = True, None
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        return None


def _manifest_name(backup_id: str) -> str:
    return f"{backup_id}/manifest.json"


def _data_name(backup_id: str) -> str:
    return f"{backup_id}/data"


def _index_name(backup_id: str) -> str:
    return f"{backup_id}/index"


# -- the plugin ------------------------------------------------------------------------------
class BackupPlugin(Plugin):
    """Full and incremental backups (gzip, AES-GCM, SHA-256, manifest, retention, schedule)
    to filesystem / s3 / multi destinations; ``verify`` and ``restore``."""

    def __init__(
        self,
        *,
        destination: Any = "./backups/{db}",
        resources: Sequence[str] | None = None,
        compression: str = "gzip",
        encryption_key: str | bytes | None = None,
        retention: Mapping[str, int] | None = None,
        schedule: str | float | None = None,
        schedule_kind: str = "full",
        tz: str = "UTC",
        temp_dir: str | None = None,
        progress: Callable[[str, int], Any] | None = None,
        concurrency: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise _bad("concurrency", "must be an int >= 1", "pass concurrency=16", concurrency)
        self.destination = make_destination(destination)
        if resources is not None and (
            isinstance(resources, str) or not all(isinstance(r, str) for r in resources)
        ):
            raise _bad("resources", "must be a list of names", "pass ['users']", resources)
        if compression not in COMPRESSIONS:
            raise _bad("compression", "is not supported", f"use one of {COMPRESSIONS}", compression)
        if compression == "zstd":
            _zstd()  # MissingDependencyError with the install command, now rather than later
        if encryption_key is not None and (
            not isinstance(encryption_key, str | bytes) or len(encryption_key) < 8
        ):
            raise _bad(
                "encryption_key",
                "must be a passphrase of 8+ characters or 32 bytes",
                "pass encryption_key=os.environ['BACKUP_KEY']",
            )
        retention = dict(retention or {})
        for name, count in retention.items():
            if name not in ("daily", "weekly", "monthly", "last"):
                raise _bad(
                    "retention", f"has unknown key {name!r}", "use daily/weekly/monthly/last"
                )
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise _bad("retention", f"{name} must be a count >= 0", "pass {'daily': 7}", count)
        if schedule is not None and (
            isinstance(schedule, bool)
            or not isinstance(schedule, str | int | float)
            or (not isinstance(schedule, str) and not schedule > 0)
        ):
            raise _bad(
                "schedule", "must be a cron expression or seconds", "pass '0 3 * * *'", schedule
            )
        if not isinstance(tz, str):
            raise _bad("tz", "must be a time zone name", "pass tz='Europe/Berlin'", tz)
        if tz.upper() != "UTC":
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise _bad(
                    "tz", "is not a known time zone", "use an IANA name like 'UTC'", tz
                ) from None
        if isinstance(schedule, str) and not croniter.is_valid(schedule):
            raise _bad(
                "schedule",
                "is not a cron expression",
                "pass 5 fields like '0 3 * * *', or seconds between backups",
                schedule,
            )
        if progress is not None and not callable(progress):
            raise _bad("progress", "must be callable", "pass fn(resource, objects)", progress)
        if schedule_kind not in KINDS:
            raise _bad(
                "schedule_kind", "is not a backup kind", f"use one of {KINDS}", schedule_kind
            )
        self.resources = list(resources) if resources is not None else None
        self.compression = compression
        self.encryption_key = encryption_key
        self.retention = retention
        self.schedule = schedule
        self.schedule_kind = schedule_kind
        self.tz = tz
        self.temp_dir = temp_dir
        self.progress = progress
        self.concurrency = concurrency

    async def on_install(self) -> None:
        if isinstance(self.destination, FilesystemDestination):
            self.destination.bind(self.db.url.split("://", 1)[-1])
        elif isinstance(self.destination, MultiDestination):
            for d in self.destination.destinations:
                if isinstance(d, FilesystemDestination):
                    d.bind(self.db.url.split("://", 1)[-1])
        await self.destination.open()

    async def on_start(self) -> None:
        await self.destination.open()  # again after a stop(): on_stop() closed it
        if isinstance(self.schedule, str):
            self.scheduler = self.cron(
                self.schedule, self._scheduled, tz=self.tz, name="backup", leader=True
            )
        elif self.schedule is not None:
            self.scheduler = self.every(
                float(self.schedule), self._scheduled, name="backup", leader=True
            )

    async def on_stop(self) -> None:
        await self.destination.close()

    async def _scheduled(self, run: JobRun) -> None:
        await self.backup(kind=self.schedule_kind, _extra={"tick": run.tick.isoformat()})

    # -- backup ------------------------------------------------------------------------------
    def _chosen(self, resources: Sequence[str] | None) -> list[str]:
        """The resources to back up, in the order of their keys in the store."""
        if isinstance(resources, str):
            raise _bad("resources", "must be a list of names", f"pass [{resources!r}]", resources)
        names = list(resources) if resources is not None else self.resources
        if names is None:
            return sorted(self.db.list_resources(), key=_prefix)
        missing = [n for n in names if not self.db.resource_exists(n)]
        if missing:
            raise NotFoundError(
                f"BackupPlugin: no resource {missing[0]!r}",
                suggestion=f"existing resources: {', '.join(self.db.list_resources())}",
                metadata={"field": "resources", "reason": "unknown resource", "value": missing[0]},
            )
        return sorted(set(names), key=_prefix)

    async def backup(
        self,
        *,
        kind: str = "full",
        resources: Sequence[str] | None = None,
        _extra: dict[str, Any] | None = None,
    ) -> BackupInfo:
        """Take a backup; ``kind="incremental"`` stores only what changed since the previous
        backup of the same resources (a full one when there is none yet).

        :raises ConfigError: bad ``kind``. :raises NotFoundError: unknown resource.
        """
        if kind not in KINDS:
            raise _bad("kind", "is not a backup kind", f"use one of {KINDS}", kind)
        await self.db.reload()
        names = self._chosen(resources)
        parent: BackupInfo | None = None
        if kind == "incremental":
            for info in reversed(await self.list_backups()):
                if set(info.resources) == set(names):
                    parent = info
                    break
            if parent is None:
                kind = "full"
        started = datetime.now(UTC)
        backup_id = f"{started:%Y%m%dT%H%M%S%fZ}-{kind}-{_secrets.token_hex(3)}"
        salt = _secrets.token_bytes(16) if self.encryption_key is not None else b""
        key = _derive(self.encryption_key, salt) if self.encryption_key is not None else None
        counts: dict[str, int] = {}
        present: dict[str, int] = {}
        self.emit("backup.started", backup_id, kind, names)
        try:
            with tempfile.TemporaryDirectory(dir=self.temp_dir) as tmp:
                path, index_path = Path(tmp) / "data", Path(tmp) / "index"
                before = None if parent is None else _Cursor(self._entries(parent, Path(tmp)))
                with path.open("wb") as out, index_path.open("wb") as iout:
                    writer = _Writer(out, self.compression, key)
                    iwriter = _Writer(iout, self.compression, key)
                    definitions = self.db.metadata.get("resources", {})
                    writer.write(
                        _Frame(
                            "d",
                            "s3db.json",
                            body=msgspec.json.encode(
                                {
                                    "resources": {n: definitions.get(n) for n in names},
                                    "secrets": self.db.metadata.get("secrets"),
                                }
                            ),
                        )
                    )
                    for name in names:  # in key order, as the parent's index is
                        counts[name], present[name] = await self._copy(
                            writer, iwriter, name, before
                        )
                    sha, index_sha = writer.close(), iwriter.close()
                    size = writer.size
                await self.destination.put_file(_data_name(backup_id), path)
                await self.destination.put_file(_index_name(backup_id), index_path)
            info = BackupInfo(
                id=backup_id,
                kind=kind,
                started_at=started.isoformat(),
                finished_at=datetime.now(UTC).isoformat(),
                resources=counts,
                keys=present,
                size=size,
                sha256=sha,
                compression=self.compression,
                encrypted=key is not None,
                salt=base64.b64encode(salt).decode(),
                parent=parent.id if parent else None,
                index_sha256=index_sha,
                extra=dict(_extra or {}),
            )
            await self.destination.put_bytes(
                _manifest_name(backup_id), msgspec.json.encode(asdict(info))
            )
        except Exception as exc:
            self.emit("backup.failed", backup_id, exc)
            raise
        self.emit("backup.completed", info)
        if self.retention:
            await self.apply_retention()
        return info

    async def _copy(
        self, writer: _Writer, iwriter: _Writer, name: str, before: _Cursor | None
    ) -> tuple[int, int]:
        """Stream the objects of one resource (only new or changed ones when ``before``,
        the parent's index, is given) and its index; return objects copied, keys present."""
        store = self.db.store
        prefix = f"resource={name}/"
        copied = present = 0
        index = _Frame("k", prefix)

        def note(key: str, etag: str) -> None:
            nonlocal index, present
            index.keys.append(key)
            index.etags.append(etag)
            present += 1
            if len(index.keys) >= 1000:
                iwriter.write(index)
                index = _Frame("k", prefix)

        async def fetch(key: str) -> StoredObject | None:
            try:
                return await store.get(key)
            except NotFoundError:
                return None  # deleted while listing

        # Reads run ahead in a window of `concurrency` GETs; results are written in key order
        # (the index must be sorted), so memory holds at most that many objects.
        window: collections.deque[tuple[str, str, asyncio.Task[StoredObject | None] | None]]
        window = collections.deque()

        async def settle() -> None:
            nonlocal copied
            key, etag, task = window.popleft()
            if task is None:  # unchanged since the parent: indexed, not copied
                note(key, etag)
                return
            obj = await task
            if obj is None:
                return
            note(key, obj.etag)
            writer.write(
                _Frame("o", key, obj.body, dict(obj.metadata), content_type=obj.content_type)
            )
            copied += 1
            if self.progress is not None and copied % 1000 == 0:
                self.progress(name, copied)

        try:
            async for entry in store.list(prefix):
                key, etag = getattr(entry, "key", None), getattr(entry, "etag", None)
                if key is None:
                    continue  # a common prefix, not an object
                if before is not None and etag is not None and await before.etag_of(key) == etag:
                    window.append((key, etag, None))
                else:
                    window.append((key, etag or "", asyncio.ensure_future(fetch(key))))
                while len(window) > self.concurrency:
                    await settle()
            while window:
                await settle()
        finally:
            for _, _, task in window:
                if task is not None:
                    task.cancel()
        iwriter.write(index)  # the last (maybe empty) frame: every resource has one
        if self.progress is not None:
            self.progress(name, copied)
        return copied, present

    async def _entries(self, info: BackupInfo, tmp: Path) -> AsyncIterator[tuple[str, str]]:
        """(key, etag) of every key in a backup's index, in key order."""
        async for frame in self._frames(info, tmp, index=True):
            for pair in zip(frame.keys, frame.etags, strict=True):
                yield pair

    async def _index_keys(self, info: BackupInfo, wanted: tuple[str, ...]) -> set[str]:
        with tempfile.TemporaryDirectory(dir=self.temp_dir) as tmp:
            return {k async for k, _ in self._entries(info, Path(tmp)) if k.startswith(wanted)}

    # -- catalogue ---------------------------------------------------------------------------
    async def list_backups(self) -> list[BackupInfo]:
        """Every complete backup (one with a manifest), oldest first."""
        out = []
        for name in await self.destination.names():
            if name.endswith("/manifest.json"):
                out.append(await self.get_backup(name.split("/", 1)[0]))
        return sorted(out, key=lambda i: (i.started_at, i.id))

    async def get_backup(self, backup_id: str) -> BackupInfo:
        """The manifest of one backup. :raises NotFoundError: no such backup."""
        try:
            raw = await self.destination.get_bytes(_manifest_name(backup_id))
        except NotFoundError:
            raise
        except Exception as exc:
            raise NotFoundError(
                f"no backup {backup_id!r}",
                suggestion="list the backups with list_backups()",
                metadata={"field": "id", "reason": str(exc), "value": backup_id},
            ) from exc
        return BackupInfo(**msgspec.json.decode(raw))

    async def _chain(self, backup_id: str) -> list[BackupInfo]:
        chain = [await self.get_backup(backup_id)]
        while chain[-1].parent is not None:
            chain.append(await self.get_backup(chain[-1].parent))
        return chain  # newest first

    async def _frames(
        self, info: BackupInfo, tmp: Path, *, index: bool = False
    ) -> AsyncIterator[_Frame]:
        path = tmp / (info.id + (".index" if index else ".data"))
        await self.destination.get_file((_index_name if index else _data_name)(info.id), path)
        sha = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                sha.update(block)
        if sha.hexdigest() != (info.index_sha256 if index else info.sha256):
            raise _corrupt(info.id, "SHA-256 does not match the manifest")
        key = None
        if info.encrypted:
            if self.encryption_key is None:
                raise ConfigError(
                    f"backup {info.id} is encrypted",
                    suggestion="pass the encryption_key it was taken with",
                    metadata={"field": "encryption_key", "reason": "missing"},
                )
            key = _derive(self.encryption_key, base64.b64decode(info.salt))
        for frame in _read_frames(path, info.compression, key):
            yield frame
        path.unlink()

    async def verify(self, backup_id: str) -> BackupInfo:
        """Check a backup end to end (and its chain): checksum, decryption, decompression,
        object counts. :raises BackupCorruptError: it does not match its manifest."""
        chain = await self._chain(backup_id)
        with tempfile.TemporaryDirectory(dir=self.temp_dir) as tmp:
            for info in chain:
                counts: dict[str, int] = dict.fromkeys(info.resources, 0)
                async for frame in self._frames(info, Path(tmp)):
                    if frame.kind == "o":
                        name = frame.key.split("/", 1)[0].removeprefix("resource=")
                        counts[name] = counts.get(name, 0) + 1
                if counts != info.resources:
                    raise _corrupt(info.id, f"object counts {counts} != manifest {info.resources}")
                keys: dict[str, int] = {}
                async for frame in self._frames(info, Path(tmp), index=True):
                    name = frame.key.removeprefix("resource=").rstrip("/")
                    keys[name] = keys.get(name, 0) + len(frame.keys)
                if keys != info.keys:
                    raise _corrupt(info.id, f"index counts {keys} != manifest {info.keys}")
        self.emit("backup.verified", chain[0])
        return chain[0]

    # -- restore -----------------------------------------------------------------------------
    async def restore(
        self,
        backup_id: str,
        *,
        resources: Sequence[str] | None = None,
        mode: str = "merge",
    ) -> RestoreReport:
        """Write a backup back into this database.

        ``merge`` overwrites objects present in the backup and keeps others; ``replace``
        also deletes what the backup does not hold (per restored resource); ``skip`` writes
        only objects that do not exist (``If-None-Match``). Resource definitions missing
        here are added to ``s3db.json``.
        """
        if mode not in MODES:
            raise _bad("mode", "is not a restore mode", f"use one of {MODES}", mode)
        if isinstance(resources, str):
            raise _bad("resources", "must be a list of names", f"pass [{resources!r}]", resources)
        chain = await self._chain(backup_id)
        head = chain[0]
        names = sorted(head.resources) if resources is None else sorted(resources)
        unknown = [n for n in names if n not in head.resources]
        if unknown:
            raise NotFoundError(
                f"backup {backup_id} holds no resource {unknown[0]!r}",
                suggestion=f"it holds: {', '.join(sorted(head.resources))}",
                metadata={"field": "resources", "reason": "not in backup", "value": unknown[0]},
            )
        wanted = tuple(f"resource={n}/" for n in names)
        report = RestoreReport(backup_id=backup_id, mode=mode, resources=names)
        store = self.db.store
        done: set[str] = set()
        final_keys: set[str] | None = None
        if head.kind != "full":
            final_keys = await self._index_keys(head, wanted)
        self.emit("restore.started", backup_id, names, mode)
        writes: set[asyncio.Task[bool]] = set()

        async def reap(until: int) -> None:
            """Wait until at most ``until`` writes are in flight; count the finished ones."""
            while len(writes) > until:
                finished, _ = await asyncio.wait(writes, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    writes.discard(task)
                    if task.result():
                        report.written += 1
                    else:
                        report.skipped += 1
                    handled = report.written + report.skipped
                    if self.progress is not None and handled % 1000 == 0:
                        self.progress("restore", handled)

        try:
            await self._restore_frames(chain, names, wanted, mode, final_keys, done, writes, reap)
        finally:
            for task in writes:
                task.cancel()
        if mode == "replace":
            keep = final_keys if final_keys is not None else done
            for prefix in wanted:
                stale = [k for k in await store.list_keys(prefix) if k not in keep]
                if stale:
                    report.deleted += await store.delete_many(stale)
        await self.db.reload()
        await self.db.records_replaced(names)  # caches drop, indexes rebuild
        if self.progress is not None:
            self.progress("restore", report.written + report.skipped)
        self.emit("restore.completed", report)
        return report

    async def _restore_frames(
        self,
        chain: list[BackupInfo],
        names: list[str],
        wanted: tuple[str, ...],
        mode: str,
        final_keys: set[str] | None,
        done: set[str],
        writes: set[asyncio.Task[bool]],
        reap: Callable[[int], Awaitable[None]],
    ) -> None:
        """Write the objects of ``chain`` (newest first), ``concurrency`` writes at a time;
        ``done`` collects the keys written (to skip older copies along the chain)."""
        store = self.db.store
        with tempfile.TemporaryDirectory(dir=self.temp_dir) as tmp:
            for depth, info in enumerate(chain):
                async for frame in self._frames(info, Path(tmp)):
                    if frame.kind == "d" and depth == 0:
                        doc = msgspec.json.decode(frame.body)
                        defs = {n: doc["resources"][n] for n in names if doc["resources"].get(n)}
                        await self.db.adopt_resource_definitions(defs, secrets=doc.get("secrets"))
                    elif frame.kind == "o" and frame.key.startswith(wanted):
                        if frame.key in done or (
                            final_keys is not None and frame.key not in final_keys
                        ):
                            continue
                        if len(chain) > 1 or mode == "replace":  # else: each key comes once
                            done.add(frame.key)
                        writes.add(asyncio.ensure_future(self._put(store, frame, mode)))
                        await reap(self.concurrency - 1)
            await reap(0)

    @staticmethod
    async def _put(store: ObjectStore, frame: _Frame, mode: str) -> bool:
        try:
            await store.put(
                frame.key,
                frame.body,
                frame.metadata,
                content_type=frame.content_type,
                if_none_match=mode == "skip",
            )
        except PreconditionFailed:
            return False
        return True

    # -- retention ---------------------------------------------------------------------------
    async def apply_retention(self) -> list[str]:
        """Delete backups outside the retention policy (newest per day / ISO week / month,
        ``last`` newest overall); an incremental's chain is kept with it. Without a policy
        (``retention=None``) no backup is deleted. Returns ids deleted.
        """
        backups = await self.list_backups()
        by_id = {b.id: b for b in backups}
        # no policy: every complete backup is kept (only crashed leftovers go)
        keep: set[str] = set() if self.retention else set(by_id)
        newest_first = list(reversed(backups))
        keep.update(b.id for b in newest_first[: self.retention.get("last", 0)])
        for rule, bucket in (
            ("daily", lambda d: d.strftime("%Y-%m-%d")),
            ("weekly", lambda d: "{}-W{:02d}".format(*d.isocalendar()[:2])),
            ("monthly", lambda d: d.strftime("%Y-%m")),
        ):
            seen: list[str] = []
            for b in newest_first:
                label = bucket(datetime.fromisoformat(b.started_at))
                if label not in seen:
                    if len(seen) >= self.retention.get(rule, 0):
                        break
                    seen.append(label)
                    keep.add(b.id)
        for bid in list(keep):
            parent = by_id[bid].parent if bid in by_id else None
            while parent is not None and parent in by_id:
                keep.add(parent)
                parent = by_id[parent].parent
        deleted = [b.id for b in backups if b.id not in keep]
        complete = set(by_id)
        for bid in deleted:  # manifest first: a half-deleted backup is no longer listed
            await self.destination.delete(_manifest_name(bid))
            await self.destination.delete(_data_name(bid))
            await self.destination.delete(_index_name(bid))
        for name in await self.destination.names():  # leftovers of crashed backups
            bid = name.split("/", 1)[0]
            if bid not in complete and name.endswith(("/data", "/index")):
                started = bid.split("-", 1)[0]
                with contextlib.suppress(ValueError):
                    at = datetime.strptime(started, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
                    if datetime.now(UTC) - at > timedelta(hours=1):
                        await self.destination.delete(name)
        if deleted:
            self.emit("backup.pruned", deleted)
        return deleted
