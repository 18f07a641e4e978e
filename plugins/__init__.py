"""s3db-async plugins, imported lazily so optional dependencies only matter on use."""

from __future__ import annotations

__all__: list[str] = []
