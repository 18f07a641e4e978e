"""Types users see (issue 17 item 6). mypy checks this module in ``make lint``: each
``assert_type`` fails the lint when a public method's type widens (to ``Any``, say); the test
also runs, so the values are the ones the types promise."""

from __future__ import annotations

from typing import Any, assert_type

import pytest

from s3db_async import BatchResult, ConfigError, Database, Plugin, Record

pytestmark = pytest.mark.stores("memory")


class CachePlugin(Plugin):
    """A plugin class to look up by class."""


async def test_resource_methods_keep_their_types(db: Database) -> None:
    res = await db.create_resource(
        "typed",
        attributes={"region": "string", "n": "number|optional"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )
    rec = await res.insert({"region": "eu"})
    assert_type(rec, Record)
    got = await res.get(rec["id"])
    assert_type(got, Record)
    assert_type(await res.exists(rec["id"]), bool)
    many = await res.get_many([rec["id"]])
    assert_type(many, BatchResult)
    assert_type(await res.insert_many([{"region": "us"}]), BatchResult)
    updated = await res.update(rec["id"], {"n": 2})
    assert_type(updated, Record)
    assert isinstance(got, Record) and isinstance(many, BatchResult) and updated["n"] == 2


async def test_count_is_an_int_without_by_and_a_dict_with_it(db: Database) -> None:
    res = await db.create_resource(
        "counted",
        attributes={"region": "string"},
        partitions={"by_region": {"fields": {"region": "string"}}},
    )
    await res.insert_many([{"region": "eu"}, {"region": "eu"}, {"region": "us"}])
    total = await res.count()
    assert_type(total, int)
    in_eu = await res.count(partition="by_region", partition_values={"region": "eu"})
    assert_type(in_eu, int)
    groups = await res.count(by="region")
    assert_type(groups, dict[Any, int])
    assert (total, in_eu, groups) == (3, 2, {"eu": 2, "us": 1})
    with pytest.raises(ConfigError, match="without partition"):
        await res.count(partition_values={"region": "eu"})  # not silently the total
    with pytest.raises(ConfigError, match="without partition"):
        await res.count(partition_values={"region": "eu"}, by="region")


async def test_plugin_lookup_by_class_is_typed(db: Database) -> None:
    cache = await db.use_plugin(CachePlugin())
    assert_type(cache, CachePlugin)
    found = db.plugins.get(CachePlugin)
    assert_type(found, CachePlugin)
    assert_type(db.plugins.get(CachePlugin, None), CachePlugin | None)
    assert_type(db.plugins.get("cache"), Plugin | None)
    assert found is cache and db.plugins.get("cache") is cache
