"""FileStore's fences: which directory it takes, and no symbolic link below it.

``check_root`` decides whether a directory may become (or already is) a store: see the
``create`` parameter of :class:`~s3db_async.stores.FileStore`.

``open_dir(root, names)`` returns a descriptor of ``root/names[0]/names[1]/...`` in which
every component below the root was opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to
its parent (``openat``), so a symbolic link planted anywhere under the root cannot send
a read or a write outside it, whatever it points to and whenever it appears. The root
itself may be a link (a data directory moved elsewhere is a common setup).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from typing import Final

from ..errors import ConfigError, NotFoundError, StoreError

__all__ = ["LinkInPath", "check_root", "link_error", "open_dir"]

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS: Final = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC


class LinkInPath(Exception):
    """A component under the root is a symbolic link; ``path`` names it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def link_error(key: str, path: str) -> StoreError:
    """The error for a read or write that would pass through the link ``path``."""
    return StoreError(
        f"{path!r} is a symbolic link (reached for {key!r}): FileStore never follows links "
        "under its directory",
        suggestion="remove the link; keep the store's files managed by s3db only",
        metadata={"key": key, "path": path, "reason": "symlink"},
    )


def check_root(root: str, internal: str, create: bool | None, url: str) -> None:
    """Refuse a directory that is not ours to take (``internal`` marks a store)."""
    try:
        with os.scandir(root) as it:
            empty = next(it, None) is None
    except FileNotFoundError:
        empty = True
    except OSError as exc:
        raise StoreError(
            f"cannot use {root!r} as a FileStore directory: {exc}",
            suggestion="point file:// at a directory",
            metadata={"path": root},
        ) from exc
    if os.path.lexists(internal):  # looked at after the scan: a store made meanwhile by
        return  # another process had its ~s3db/ before any file the scan could have seen
    init = f"`s3db --url {url} init`"
    if create is False and empty:
        raise NotFoundError(
            f"no s3db store at {root!r}",
            suggestion=f"check the path; create one with {init} or Database(url)",
            metadata={"path": root, "reason": "no store"},
        )
    if not empty and create is not True:
        raise ConfigError(
            f"{root!r} is not empty and is not an s3db store: refusing to write into it",
            suggestion="point file:// at a new or empty directory, or take this one "
            f"explicitly with {init} or Database(url, create=True)",
            metadata={"path": root, "reason": "not an s3db store"},
        )


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode)
    except OSError:
        return False


def open_dir(
    root: str,
    names: Sequence[str],
    make: Callable[[int, int], None] | None = None,
) -> int:
    """A descriptor of ``root/names...`` (the caller closes it).

    :param make: ``make(parent_fd, i)`` creates the missing component ``names[i]``;
        without it a missing component raises ``FileNotFoundError``.
    :raises LinkInPath: a component is a symbolic link.
    :raises OSError: ``FileNotFoundError``, ``NotADirectoryError`` (a file is in the way).
    """
    fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        for i, name in enumerate(names):
            child = -1
            creatable = make is not None
            while child < 0:
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if make is None or not creatable:
                        raise
                    make(fd, i)
                    creatable = False  # made (or raced with a prune): one more open decides
                except OSError as exc:
                    links = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
                    if exc.errno in links and _is_link(fd, name):
                        raise LinkInPath(os.path.join(root, *names[: i + 1])) from None
                    raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
