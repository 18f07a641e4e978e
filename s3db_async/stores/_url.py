"""One parser for every connection string.

Accepted forms::

    memory://bucket/prefix
    file:///absolute/path            file://./relative/path
    s3://bucket/prefix?region=eu-west-1
    s3://KEY:SECRET@bucket/prefix?region=eu-west-1
    http://KEY:SECRET@127.0.0.1:8333/bucket/prefix     (MinIO, SeaweedFS, moto, R2 ...)
    https://KEY:SECRET@host/bucket/prefix

Query options: ``region``, ``parallelism``, ``timeout``, ``connect_timeout``,
``deadline``, ``max_retries``, ``virtual_hosted`` (``true`` to use virtual-hosted-style on
a custom endpoint; path-style is the default there), ``fsync`` (``file://`` only; ``false``
skips flushing each write to disk). Numbers are range-checked (:data:`OPTION_RANGES`).

A ``file://`` URL has no host: ``file://tmp/x`` is refused (write ``file://./tmp/x`` or
``file:///tmp/x``). Control characters are refused anywhere in a URL, raw or
percent-encoded, rather than silently dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConnectionStringError

__all__ = ["OPTION_RANGES", "ConnectionConfig", "parse_connection_string"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MEMORY_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,254}$")
_KNOWN_OPTIONS = {
    "region",
    "parallelism",
    "timeout",
    "connect_timeout",
    "deadline",
    "max_retries",
    "virtual_hosted",
    "session_token",
    "fsync",
}
_INT_OPTIONS = {"parallelism", "max_retries"}
_FLOAT_OPTIONS = {"timeout", "connect_timeout", "deadline"}
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "parallelism": (1, 10_000),
    "max_retries": (0, 100),
    "timeout": (0.001, 86_400),  # seconds
    "connect_timeout": (0.001, 3_600),
    "deadline": (0.001, 86_400),
}
"""Inclusive bounds of the numeric query options."""
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_BOOL_OPTIONS = {"virtual_hosted", "fsync"}
_SCHEMES = ("memory", "file", "s3", "http", "https")


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """A parsed connection string.

    ``endpoint`` is ``None`` for AWS (``s3://``); ``path`` is set for ``file://``.
    """

    scheme: str
    bucket: str = ""
    prefix: str = ""
    path: str | None = None
    endpoint: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    options: dict[str, object] = field(default_factory=dict)

    @property
    def masked(self) -> str:
        """The connection string with credentials hidden (safe to log)."""
        cred = "***:***@" if self.access_key else ""
        prefix = f"/{self.prefix}" if self.prefix else ""
        if self.scheme == "memory":
            return f"memory://{self.bucket}{prefix}"
        if self.scheme == "file":
            return f"file://{self.path}"
        if self.scheme == "s3":
            return f"s3://{cred}{self.bucket}{prefix}"
        assert self.endpoint is not None
        scheme, host = self.endpoint.split("://", 1)
        return f"{scheme}://{cred}{host}/{self.bucket}{prefix}"

    def with_prefix(self, prefix: str) -> ConnectionConfig:
        """A copy with another key prefix."""
        return replace(self, prefix=prefix.strip("/"))


def _bad(url: str, part: str, reason: str, suggestion: str) -> ConnectionStringError:
    shown = re.sub(r"//([^:/@]+):([^@]+)@", "//***:***@", url)
    return ConnectionStringError(
        f"bad {part} in connection string {shown!r}: {reason}",
        suggestion=suggestion,
        metadata={"part": part, "url": shown},
    )


def _parse_options(url: str, query: str) -> tuple[dict[str, object], str | None]:
    options: dict[str, object] = {}
    region = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _KNOWN_OPTIONS:
            raise _bad(
                url,
                "query",
                f"unknown option {name!r}",
                f"use one of: {', '.join(sorted(_KNOWN_OPTIONS))}",
            )
        if name == "region":
            region = value or None
            continue
        parsed: object = value
        try:
            if name in _INT_OPTIONS:
                parsed = int(value)
            elif name in _FLOAT_OPTIONS:
                parsed = float(value)
            elif name in _BOOL_OPTIONS:
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                parsed = value.lower() in ("1", "true", "yes")
        except ValueError:
            raise _bad(
                url,
                "query",
                f"option {name}={value!r} is not a valid value",
                f"give {name} {'an integer' if name in _INT_OPTIONS else 'a number'}"
                if name not in _BOOL_OPTIONS
                else f"give {name} true or false",
            ) from None
        if name in OPTION_RANGES:
            low, high = OPTION_RANGES[name]
            number = float(parsed)  # type: ignore[arg-type]
            if not (math.isfinite(number) and low <= number <= high):
                raise _bad(
                    url,
                    "query",
                    f"option {name}={value!r} is out of range",
                    f"give {name} a value from {low:g} to {high:g}",
                )
        options[name] = parsed
    return options, region


def _check_control(url: str, text: str) -> None:
    """Refuse control characters (newline, tab, NUL ...) instead of dropping them."""
    found = _CONTROL_RE.search(text)
    if found is not None:
        raise _bad(
            url,
            "url",
            f"control character {found.group()!r} at position {found.start()}",
            "remove newlines and other control characters (a trailing newline from a file?)",
        )


def _prefix(url: str, raw: str) -> str:
    """The key prefix of a URL path, percent-decoded and checked."""
    prefix = unquote(raw).strip("/")
    _check_control(url, prefix)
    return prefix


def _check_bucket(url: str, bucket: str) -> None:
    if not bucket:
        raise _bad(
            url, "bucket", "no bucket name", "write the bucket after the host: .../my-bucket"
        )
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise _bad(
            url,
            "bucket",
            f"{bucket!r} is not a valid S3 bucket name",
            "use 3-63 lowercase letters, digits, '-' or '.'",
        )


def parse_connection_string(url: str) -> ConnectionConfig:
    """Parse a connection string into a :class:`ConnectionConfig`.

    :raises ConnectionStringError: with ``metadata['part']`` naming the bad part.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConnectionStringError(
            "empty connection string",
            suggestion="pass e.g. 'file://./data' or 'memory://test' or 's3://bucket/prefix'",
            metadata={"part": "url"},
        )
    _check_control(url, url)
    url = url.strip()
    if "://" not in url:
        raise _bad(
            url,
            "scheme",
            "no scheme",
            f"start with one of {', '.join(s + '://' for s in _SCHEMES)}",
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise _bad(
            url,
            "scheme",
            f"unsupported scheme {scheme!r}",
            f"use one of {', '.join(s + '://' for s in _SCHEMES)}",
        )

    if scheme == "file":
        rest = url.split("://", 1)[1]
        path, _, query = rest.partition("?")
        options, _ = _parse_options(url, query)
        path = unquote(path)
        if not path:
            raise _bad(
                url, "path", "no directory", "write file:///abs/dir or file://./relative/dir"
            )
        if path == "localhost" or path.startswith("localhost/"):
            path = path[len("localhost") :] or "/"
        if not path.startswith(("/", ".", "~")):
            raise _bad(
                url,
                "host",
                f"a file URL has no host, and {path.split('/', 1)[0]!r} is read as one",
                f"write file://./{path} (relative to the working directory) "
                f"or file:///{path} (absolute)",
            )
        _check_control(url, path)
        return ConnectionConfig(scheme="file", path=path, options=options)

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad(
            url, "host", str(exc), "check host and port, e.g. http://127.0.0.1:9000/bucket"
        ) from None
    options, region = _parse_options(url, parts.query)
    if parts.fragment:
        raise _bad(url, "fragment", "unexpected '#'", "percent-encode '#' in keys as %23")
    access_key = unquote(parts.username) if parts.username else None
    secret_key = unquote(parts.password) if parts.password else None
    if (access_key is None) != (secret_key is None) or access_key == "":
        raise _bad(
            url,
            "credentials",
            "access key and secret must be given together",
            "write KEY:SECRET@ (percent-encode '/', ':' and '@' inside them)",
        )
    host = parts.hostname or ""
    path = parts.path.strip("/")

    if scheme == "memory":
        bucket, _, prefix = (host + "/" + path if path else host).partition("/")
        bucket = bucket or "default"
        if not _MEMORY_BUCKET_RE.match(bucket):
            raise _bad(url, "bucket", f"{bucket!r} is not a valid name", "use letters and digits")
        return ConnectionConfig(
            scheme="memory", bucket=bucket, prefix=_prefix(url, prefix), options=options
        )

    if scheme == "s3":
        bucket = host
        _check_bucket(url, bucket)
        return ConnectionConfig(
            scheme="s3",
            bucket=bucket,
            prefix=_prefix(url, path),
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            options=options,
        )

    # http(s): endpoint + /bucket/prefix
    if not host:
        raise _bad(url, "host", "no host", "write http(s)://host:port/bucket")
    bucket, _, prefix = path.partition("/")
    _check_bucket(url, bucket)
    netloc_host = f"[{host}]" if ":" in host else host
    endpoint = f"{scheme}://{netloc_host}" + (f":{port}" if port else "")
    return ConnectionConfig(
        scheme=scheme,
        bucket=bucket,
        prefix=_prefix(url, prefix),
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        options=options,
    )
