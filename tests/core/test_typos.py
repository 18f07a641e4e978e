"""Silent typos become loud errors (issue 15.4): unknown filter and count(by=) fields,
unknown event names, contradictory rules, type aliases."""

from __future__ import annotations

from typing import Any

import pytest

from s3db_async import Database, Plugin, Resource
from s3db_async.errors import ConfigError, SchemaError, ValidationError

pytestmark = pytest.mark.stores("memory", "file")

ATTRIBUTES: dict[str, Any] = {
    "name": "string|required",
    "region": "string",
    "profile": {"age": "integer", "address": {"city": "string"}},
    "lines": {"type": "array", "items": {"sku": "string", "qty": "integer"}},
    "tags": "array|items:string",
    "meta": "json",
}


async def _customers(db: Database) -> Resource:
    res = await db.create_resource("customers", attributes=ATTRIBUTES, timestamps=True)
    await res.insert(
        {
            "name": "Ann",
            "region": "eu",
            "profile": {"age": 30, "address": {"city": "Porto"}},
            "lines": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
            "tags": ["vip"],
            "meta": {"source": "web"},
        }
    )
    await res.insert({"name": "Bob", "region": "us", "lines": [{"sku": "C3", "qty": 5}]})
    await res.insert({"name": "Cid", "region": "eu"})
    return res


@pytest.mark.parametrize(
    ("flt", "field", "suggested"),
    [
        ({"regoin": "eu"}, "regoin", "region"),
        ({"region": "eu", "nmae": {"$ne": "x"}}, "nmae", "name"),
        ({"profile.aeg": {"$gte": 18}}, "profile.aeg", "profile.age"),
        ({"profile": {"adress": {"city": "Porto"}}}, "profile.adress.city", "profile.address.city"),
        ({"lines.skus": "A1"}, "lines.skus", "lines.sku"),
        ({"$or": [{"region": "eu"}, {"regoin": "us"}]}, "regoin", "region"),
        ({"$and": [{"$not": {"nam": "Ann"}}]}, "nam", "name"),
        ({"name.first": "Ann"}, "name.first", None),
    ],
)
async def test_query_with_an_unknown_field_raises_with_a_suggestion(
    db: Database, flt: dict[str, Any], field: str, suggested: str | None
) -> None:
    res = await _customers(db)
    db.store.stats.reset()
    with pytest.raises(ValidationError) as info:
        await res.query(flt)
    err = info.value
    assert err.fields == [field]
    assert field in err.message and "customers" in err.message
    if suggested is not None:
        assert f"did you mean {suggested!r}" in (err.suggestion or "")
    assert sum(db.store.stats.values()) == 0  # refused before any request
    with pytest.raises(ValidationError):
        res.explain(flt)


async def test_known_paths_still_query(db: Database) -> None:
    res = await _customers(db)
    names = lambda rows: sorted(r["name"] for r in rows)  # noqa: E731
    assert names(await res.query({"region": "eu"})) == ["Ann", "Cid"]
    assert names(await res.query({"profile.age": {"$gte": 18}})) == ["Ann"]
    assert names(await res.query({"profile": {"address": {"city": "Porto"}}})) == ["Ann"]
    assert names(await res.query({"profile": {"$exists": True}})) == ["Ann"]
    assert names(await res.query({"id": {"$exists": True}})) == ["Ann", "Bob", "Cid"]
    assert names(await res.query({"created_at": {"$exists": True}})) == ["Ann", "Bob", "Cid"]
    assert names(await res.query({"meta.source": "web"})) == ["Ann"]  # free-form json
    assert names(await res.query({"tags": {"$contains": "vip"}})) == ["Ann"]
    # a path through an array of objects matches when some item matches
    assert names(await res.query({"lines.sku": "B2"})) == ["Ann"]
    assert names(await res.query({"lines.qty": {"$gte": 5}})) == ["Bob"]
    assert names(await res.query({"lines.sku": {"$in": ["C3", "Z"]}})) == ["Bob"]
    # ... and the negative conditions need every item to match
    assert names(await res.query({"lines.sku": {"$ne": "A1"}})) == ["Bob", "Cid"]
    assert names(await res.query({"lines.sku": {"$nin": ["B2"]}})) == ["Bob", "Cid"]
    assert names(await res.query({"lines.sku": {"$exists": False}})) == ["Cid"]


async def test_plugin_attributes_are_known_fields(db: Database) -> None:
    res = await _customers(db)
    await res.add_plugin_attribute("_audit_seen", "boolean", "Audit")
    assert await res.query({"_audit_seen": True}) == []
    with pytest.raises(ValidationError, match="_audit_sen"):
        await res.query({"_audit_sen": True})


async def test_allow_extra_accepts_any_path(db: Database) -> None:
    res = await db.create_resource("loose", attributes={"a": "string"}, allow_extra=True)
    await res.insert({"a": "x", "extra": {"deep": 1}})
    assert len(await res.query({"extra.deep": 1})) == 1


async def test_a_field_of_an_older_version_is_still_known(db: Database) -> None:
    res = await db.create_resource("items", attributes={"name": "string", "age": "integer"})
    await res.insert({"name": "old", "age": 3})
    await db.create_resource("items", attributes={"name": "string", "email": "email"})
    assert res.version == "v2"
    assert [r["name"] for r in await res.query({"age": 3})] == ["old"]
    assert await res.count(by="age") == {3: 1}
    with pytest.raises(ValidationError, match="did you mean 'age'"):
        await res.query({"agee": 3})


async def test_count_by_an_unknown_field_raises(db: Database) -> None:
    res = await _customers(db)
    with pytest.raises(ValidationError) as info:
        await res.count(by="regoin")
    assert info.value.fields == ["regoin"]
    assert "did you mean 'region'" in (info.value.suggestion or "")
    with pytest.raises(ValidationError, match=r"profile\.aeg"):
        await res.count(by="profile.aeg")
    assert await res.count(by="region") == {"eu": 2, "us": 1}
    assert await res.count(by="profile.age") == {30: 1, None: 2}


async def test_unknown_event_names_raise(db: Database) -> None:
    res = await _customers(db)
    with pytest.raises(ConfigError) as info:
        res.on("insertd", lambda r: None)
    assert "insertd" in info.value.message
    assert "did you mean 'inserted'" in (info.value.suggestion or "")
    with pytest.raises(ConfigError, match="updatd"):
        res.once("updatd", lambda r, before: None)
    with pytest.raises(ConfigError, match="conected"):
        db.on("conected", lambda d: None)
    with pytest.raises(ConfigError, match=r"plugin\.instaled"):
        db.on("plugin.instaled", lambda p: None)  # the plugin. namespace is checked too
    for name in ("inserted", "updated", "deleted", "deleted_all", "truncated", "error"):
        res.on(name, lambda *a: None)
    db.on("plugin.installed", lambda p: None)


async def test_plugins_emit_custom_events_by_dotted_name_or_registry(db: Database) -> None:
    class Flusher(Plugin):
        event_names = Plugin.event_names | {"flushed"}

    plugin = Flusher()
    seen: list[Any] = []
    plugin.on("flushed", seen.append)  # registered by the class
    plugin.on("flusher.done", seen.append)  # namespaced custom event
    res = await _customers(db)
    res.on("flusher.done", seen.append)  # any emitter accepts a namespaced name
    plugin.emit("flushed", 1)
    plugin.emit("flusher.done", 2)
    res.emit("flusher.done", 3)
    assert seen == [1, 2, 3]
    with pytest.raises(ConfigError):
        plugin.on("flushd", seen.append)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("string|min:2|max:1", "min:2 is greater than max:1"),
        ("integer|min:10|max:3", "min:10 is greater than max:3"),
        ("array|items:string|min:3|max:1", "min:3 is greater than max:1"),
        ("decimal:2|min:5|max:1", "min:5 is greater than max:1"),
        ("string|enum:a,bb|min:2", "enum value 'a'"),
        ("number|enum:1,5|max:4", "enum value 5"),
        ("string|enum:apple,pear|pattern:^a", "enum value 'pear'"),
        ("string|enum:a,b|default:c", "default 'c' is invalid"),
        ("string|min:3|default:ab", "default 'ab' is invalid"),
    ],
)
async def test_contradictory_rules_raise_at_create_resource(
    db: Database, rule: str, message: str
) -> None:
    with pytest.raises(SchemaError) as info:
        await db.create_resource("things", attributes={"f": rule})
    assert message in info.value.message and info.value.fields == ["f"]
    assert "things" not in db.resources
    nested = {"outer": {"inner": rule}}
    with pytest.raises(SchemaError) as info:
        await db.create_resource("things", attributes=nested)
    assert info.value.fields == ["outer.inner"]


@pytest.mark.parametrize(
    ("rule", "suggested"),
    [
        ("int", "integer"),
        ("int|required", "integer"),
        ("bool", "boolean"),
        ("str", "string"),
        ("float", "number"),
        ("dict", "object"),
        ("list", "array"),
    ],
)
async def test_type_aliases_suggest_the_real_type(db: Database, rule: str, suggested: str) -> None:
    with pytest.raises(SchemaError) as info:
        await db.create_resource("things", attributes={"f": rule})
    assert info.value.suggestion == f"did you mean {suggested!r}?"
    with pytest.raises(SchemaError) as info:
        await db.create_resource("things", attributes={"f": {"type": rule}})
    assert info.value.suggestion == f"did you mean {suggested!r}?"
