"""Property test: any valid record survives insert + get through a Resource on every store."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings

from s3db_async import Database

from .._strategies import ALL_TYPES, RECORD, same

EXAMPLES = {"memory": 150, "file": 60, "moto": 25, "seaweedfs": 25}


def test_resource_roundtrip_property(store_url: str, store_kind: str) -> None:
    loop = asyncio.new_event_loop()
    db = Database(store_url, passphrase="roundtrip-passphrase")
    try:
        loop.run_until_complete(db.connect())
        small = loop.run_until_complete(db.create_resource("rt", attributes=ALL_TYPES))
        spilled = loop.run_until_complete(
            db.create_resource("rt_body", attributes=ALL_TYPES, behavior="body-only")
        )

        @settings(
            max_examples=EXAMPLES[store_kind],
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(RECORD)
        def check(record: dict[str, Any]) -> None:
            for res in (small, spilled):
                clean = res.schema.validate(record)
                stored = loop.run_until_complete(res.insert(record))
                got = dict(loop.run_until_complete(res.get(stored["id"])))
                assert got.pop("id") == stored["id"]
                same(clean, got)

        check()
    finally:
        loop.run_until_complete(db.disconnect())
        loop.close()
