"""CachePlugin: cached reads with exact invalidation (docs/plugins/cache.md).

Drivers live in :mod:`s3db_async.plugins.cache.drivers` (imported when the plugin is
created, so a missing ``aiocache`` is reported as :class:`MissingDependencyError`).
"""

from __future__ import annotations

from .plugin import CACHED_OPERATIONS, CachePlugin

__all__ = ["CACHED_OPERATIONS", "CachePlugin"]
