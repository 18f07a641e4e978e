"""TTLPlugin does what docs/plugins/ttl.md says (issue 19 audit): a ``ttl`` record expires
``ttl`` seconds after its insert, also when it is replaced meanwhile (``replace`` drops the
fields not given, and dropped the plugin's ``_expires_at``: the record never expired)."""

from __future__ import annotations

import pytest
from s3db_async.plugins import TTLPlugin

from s3db_async import Database
from s3db_async.plugin import ManualClock, use_clock

pytestmark = pytest.mark.stores("memory", "file")


async def test_a_replaced_record_keeps_its_expiry(store_url: str) -> None:
    with use_clock(ManualClock()) as clock:
        ttl = TTLPlugin(resources={"sessions": {"ttl": 10}})
        async with Database(store_url, plugins=[ttl]) as db:
            sessions = await db.create_resource("sessions", attributes={"user": "string"})
            s = await sessions.insert({"user": "ann"})
            expires = s["_expires_at"]
            clock.advance(5)
            replaced = await sessions.replace(s["id"], {"user": "bob"})
            assert replaced["_expires_at"] == expires
            moved = await sessions.replace(s["id"], {"user": "cy", "_expires_at": expires + 100})
            assert moved["_expires_at"] == expires + 100  # a given expiry wins
            await sessions.replace(s["id"], {"user": "dee"})
            clock.advance(6)  # past the first expiry, not the moved one
            assert (await sessions.get(s["id"]))["user"] == "dee"
            clock.advance(100)
            assert await sessions.get_or_none(s["id"]) is None
            report = await ttl.sweep()
            assert report.expired == 1
            with ttl.including_expired():
                assert await sessions.get_or_none(s["id"]) is None  # hard-deleted


@pytest.mark.parametrize("name", [5, ""])
def test_a_resources_key_that_is_not_a_name_raises_config_error(name: object) -> None:
    from s3db_async.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        TTLPlugin(resources={name: 60})  # type: ignore[dict-item]
    assert err.value.metadata["field"] == "resources" and err.value.suggestion
