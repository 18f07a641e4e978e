"""Optional OpenTelemetry spans: one per resource operation, named ``{operation} {resource}``.

Only ``opentelemetry-api`` is used (``pip install 's3db-async[otel]'``). Spans are made only
when the application has installed a real tracer provider, so the default (no provider, or
the API not installed) costs one check per operation and nothing else.
"""

from __future__ import annotations

import os
from typing import Any

from ._version import __version__

# A provider named in the environment is loaded by OpenTelemetry on first use; read once.
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

__all__ = ["active_tracer"]

try:  # optional dependency
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where the API is absent
    _trace = None  # type: ignore[assignment]

_DEFAULT_PROVIDERS: tuple[type, ...] = (
    (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider) if _trace is not None else ()
)


_cache: list[Any] = [None, None]  # [provider, its tracer]
_UNKNOWN = object()


def active_tracer() -> Any | None:
    """The s3db tracer when a real tracer provider is installed, else ``None``.

    Called once per operation, so the usual answers are cheap: OpenTelemetry sets the global
    provider once per process, so a tracer found is kept; while none is set (its module
    global still ``None`` and no provider named in the environment at import), nothing
    else is looked up.
    """
    if _cache[1] is not None:
        return _cache[1]
    if _trace is None:
        return None
    if not _ENV_PROVIDER and getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN) is None:
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, _DEFAULT_PROVIDERS):
        return None
    if _cache[0] is not provider:
        _cache[:] = [provider, provider.get_tracer("s3db_async", __version__)]
    return _cache[1]
