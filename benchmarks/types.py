"""Section ``types``: bytes of S3 metadata per schema type for a typical value, against the
plain JSON a naive store would write (``len(json.dumps(value))``: Decimals and UUIDs as
strings, bytes as standard base64, dates as ISO 8601).

No store is needed: each value is validated by a one-field :class:`Schema` and encoded by
its :class:`RecordCodec`; the figure is the value's size as it travels (header-safe
encoding included; the 1-byte attribute id is left out, as JSON's key is).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from benchmarks._common import BenchContext
from s3db_async._codec.codec import AttributeRegistry, RecordCodec
from s3db_async._codec.crypto import SecretBox
from s3db_async._schema.schema import Schema
from s3db_async.stores._base import encode_metadata_value

TITLE = "metadata bytes per schema type vs plain JSON (issue 12)"
STORES: tuple[str, ...] = ()

SAMPLES: list[tuple[str, str, Any]] = [
    ("string", "string", "Ann Example"),
    ("email", "email", "ann@example.com"),
    ("url", "url", "https://example.com/docs/getting-started"),
    ("number", "number", 1234.5),
    ("integer", "integer", 1_700_000_000_000),
    ("boolean", "boolean", True),
    ("date", "date", date(2024, 1, 15)),
    ("datetime", "datetime", datetime(2024, 1, 15, 12, 30, 45, tzinfo=UTC)),
    ("ip4", "ip4", "192.168.1.20"),
    ("ip6", "ip6", "2001:db8:85a3::8a2e:370:7334"),
    ("mac", "mac", "00:1a:2b:3c:4d:5e"),
    ("cidr (v4)", "cidr", "10.20.0.0/16"),
    ("cidr (v6)", "cidr", "2001:db8:abcd::/48"),
    ("uuid", "uuid", uuid.UUID("0b1c5e4e-3f0a-4c1e-9a57-2f1d2c3b4a59")),
    ("semver", "semver", "2.14.1"),
    ("json", "json", {"theme": "dark", "beta": True}),
    ("array of strings", "array|items:string", ["red", "green", "blue"]),
    ("array of integers", "array|items:integer", [1024, 2048, 65536]),
    ("embedding:8", "embedding:8", [0.5, -0.25, 0.125, 1.0, 0.0, -1.5, 0.75, 2.0]),
    ("bits:32", "bits:32", 0xDEADBEEF),
    ("money", "money", Decimal("1234.50")),
    ("money:JPY", "money:JPY", 120_000),
    ("decimal:4", "decimal:4", Decimal("3.1416")),
    ("crypto (8)", "crypto", Decimal("0.00125")),
    ("crypto:18", "crypto:18", Decimal("1.5")),
    ("geo:lat", "geo:lat", 48.8566),
    ("geo:lon", "geo:lon", 2.3522),
    ("geo:point", "geo:point", [48.8566, 2.3522]),
    ("bytes (16)", "bytes", bytes(range(16))),
    ("password", "password", "correct horse battery staple"),
    ("password:bcrypt", "password:bcrypt", "correct horse battery staple"),
    ("secret", "secret", "hunter2"),
]
"""(label, rule, typical value)."""


def _plain(value: Any) -> Any:
    """What a naive JSON store would write for a validated value."""
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, date):
        return value.isoformat()
    return value


def footprint(rule: str, value: Any) -> tuple[int, int]:
    """(metadata bytes, plain JSON bytes) of one value of ``rule``."""
    schema = Schema({"f": rule})
    registry = AttributeRegistry()
    registry.assign(schema.fields)
    box = SecretBox("bench passphrase", bytes(16)) if schema.has_secrets else None
    codec = RecordCodec(schema, registry, version="v1", secret_box=box)
    clean = schema.validate({"f": value})["f"]
    text = codec.encode({"f": clean}).metadata[registry.id_of("f")]
    plain = value if rule == "secret" else clean  # a secret's cleartext, as JSON would keep it
    return len(encode_metadata_value(text).encode("utf-8")), len(json.dumps(_plain(plain)))


async def run(ctx: BenchContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    meta_total = json_total = 0
    for label, rule, value in SAMPLES:
        meta, plain = footprint(rule, value)
        meta_total += meta
        json_total += plain
        change = 100 * (meta - plain) / plain
        ctx.log(f"{label:18} {rule:20} {meta:>4} B metadata vs {plain:>4} B JSON ({change:+.0f}%)")
        out[label] = {
            "rule": rule,
            "metadata_bytes": meta,
            "json_bytes": plain,
            "ratio": round(meta / plain, 3),
        }
    ctx.log(f"{'all':18} {'':20} {meta_total:>4} B metadata vs {json_total:>4} B JSON")
    return {"types": out, "total": {"metadata_bytes": meta_total, "json_bytes": json_total}}
