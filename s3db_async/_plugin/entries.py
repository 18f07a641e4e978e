"""What :class:`~s3db_async.PluginStorage` and its locks read back from the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _clock
from ..errors import ConfigError

__all__ = ["CONTENT_TYPE", "Entry", "check_ttl"]

CONTENT_TYPE = "application/json"


@dataclass(slots=True)
class Entry:
    """A stored value as read back: etag, data, expiry, tombstone flag, op ids."""

    key: str
    etag: str
    data: Any
    expires_at: float | None
    tombstone: bool
    ops: list[str]
    in_body: bool

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or _clock.time())

    def live(self, now: float | None = None) -> bool:
        return not self.tombstone and not self.expired(now)


def check_ttl(ttl: float | None, *, required: bool = False) -> float | None:
    """A ttl in seconds (``None`` unless ``required``); anything else raises ConfigError."""
    if ttl is None and not required:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ConfigError(
            f"ttl must be a positive number of seconds, got {ttl!r}",
            suggestion="pass ttl=60 for one minute",
            metadata={"ttl": ttl},
        )
    return float(ttl)
