"""TreePlugin (issue 20): both drivers, every operation, verify/rebuild, bad input, request
counts of a query, and a crash between the record write and the structure write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from s3db_async.plugins import TreePlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, NotFoundError, ValidationError

DRIVERS = ["nested_set", "adjacency"]


@pytest.fixture(params=DRIVERS)
async def env(request: Any, store_url: str) -> AsyncIterator[tuple[Database, TreePlugin]]:
    tree = TreePlugin(resources={"cats": {"driver": request.param}})
    async with Database(store_url, plugins=[tree]) as db:
        await db.create_resource("cats", attributes={"name": "string"})
        yield db, tree


async def build(tree: TreePlugin) -> dict[str, str]:
    """all -> (shoes -> (boots, sandals), hats -> (caps)), plus a second root misc."""
    ids: dict[str, str] = {}
    ids["all"] = (await tree.create_root("cats", {"name": "all"})).id
    ids["shoes"] = (await tree.add_child("cats", ids["all"], {"name": "shoes"})).id
    ids["hats"] = (await tree.add_child("cats", ids["all"], {"name": "hats"})).id
    ids["boots"] = (await tree.add_child("cats", ids["shoes"], {"name": "boots"})).id
    ids["sandals"] = (await tree.add_sibling("cats", ids["boots"], {"name": "sandals"})).id
    ids["caps"] = (await tree.add_child("cats", ids["hats"], {"name": "caps"})).id
    ids["misc"] = (await tree.add_sibling("cats", ids["all"], {"name": "misc"})).id
    return ids


def names(ids: dict[str, str], got: list[str]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back[g] for g in got]


async def test_queries_answer_children_descendants_ancestors_path_depth_roots(
    env: tuple[Database, TreePlugin],
) -> None:
    _, tree = env
    ids = await build(tree)
    assert names(ids, await tree.roots("cats")) == ["all", "misc"]
    assert names(ids, await tree.get_children("cats", ids["all"])) == ["shoes", "hats"]
    assert names(ids, await tree.descendants("cats", ids["all"])) == [
        "shoes",
        "boots",
        "sandals",
        "hats",
        "caps",
    ]
    assert names(ids, await tree.ancestors("cats", ids["sandals"])) == ["all", "shoes"]
    assert names(ids, await tree.path("cats", ids["caps"])) == ["all", "hats", "caps"]
    assert await tree.depth("cats", ids["boots"]) == 2
    assert await tree.depth("cats", ids["misc"]) == 0
    assert await tree.parent("cats", ids["caps"]) == ids["hats"]
    recs = await tree.get_children("cats", ids["shoes"], records=True)
    assert [r["name"] for r in recs] == ["boots", "sandals"]
    nested = await tree.get_tree("cats", ids["all"])
    assert nested[0]["record"]["name"] == "all"
    assert [c["record"]["name"] for c in nested[0]["children"]] == ["shoes", "hats"]
    assert [c["id"] for c in nested[0]["children"][0]["children"]] == [ids["boots"], ids["sandals"]]
    whole = await tree.get_tree("cats", records=False)
    assert [t["id"] for t in whole] == [ids["all"], ids["misc"]]
    assert (await tree.verify("cats")).ok


async def test_move_subtree_and_refuse_a_move_into_its_own_subtree(
    env: tuple[Database, TreePlugin],
) -> None:
    _, tree = env
    ids = await build(tree)
    await tree.move("cats", ids["shoes"], ids["caps"])
    assert names(ids, await tree.path("cats", ids["sandals"])) == [
        "all",
        "hats",
        "caps",
        "shoes",
        "sandals",
    ]
    assert await tree.depth("cats", ids["boots"]) == 4
    assert (await tree.verify("cats")).ok
    with pytest.raises(ValidationError) as err:
        await tree.move("cats", ids["hats"], ids["boots"])
    assert err.value.suggestion
    await tree.move("cats", ids["hats"], None)  # a subtree becomes a tree of its own
    assert names(ids, await tree.roots("cats")) == ["all", "misc", "hats"]
    assert names(ids, await tree.descendants("cats", ids["all"])) == []
    await tree.move("cats", ids["hats"], ids["misc"])
    assert names(ids, await tree.descendants("cats", ids["misc"])) == [
        "hats",
        "caps",
        "shoes",
        "boots",
        "sandals",
    ]
    report = await tree.verify("cats")
    assert report.ok, report.errors


async def test_delete_subtree_or_reparent(env: tuple[Database, TreePlugin]) -> None:
    db, tree = env
    ids = await build(tree)
    gone = await tree.delete("cats", ids["shoes"], mode="reparent")
    assert gone == [ids["shoes"]]
    assert names(ids, await tree.get_children("cats", ids["all"])) == ["boots", "sandals", "hats"]
    assert await tree.depth("cats", ids["boots"]) == 1
    assert (await tree.verify("cats")).ok
    gone = await tree.delete("cats", ids["hats"])
    assert sorted(gone) == sorted([ids["hats"], ids["caps"]])
    cats = db.get_resource("cats")
    assert not await cats.exists(ids["caps"])
    assert names(ids, await tree.descendants("cats", ids["all"])) == ["boots", "sandals"]
    report = await tree.verify("cats")
    assert report.ok and report.untracked == [], report
    with pytest.raises(NotFoundError):
        await tree.delete("cats", ids["hats"])
    with pytest.raises(ValidationError):
        await tree.delete("cats", ids["all"], mode="cascade")


async def test_bad_input_is_a_typed_error_with_a_suggestion(
    env: tuple[Database, TreePlugin],
) -> None:
    db, tree = env
    with pytest.raises(NotFoundError) as missing:
        await tree.add_child("cats", "nope", {"name": "x"})
    assert missing.value.suggestion
    assert await db.get_resource("cats").count() == 0  # nothing inserted for a bad parent
    with pytest.raises(ConfigError):
        await tree.roots("dogs")
    for bad in (
        {"resources": {}},
        {"resources": {"c": {"driver": "btree"}}},
        {"resources": {"c": {"drivr": "adjacency"}}},
    ):
        with pytest.raises(ConfigError) as err:
            TreePlugin(**bad)
        assert err.value.suggestion


async def test_verify_finds_corruption_and_rebuild_repairs_it(
    env: tuple[Database, TreePlugin],
) -> None:
    _, tree = env
    ids = await build(tree)
    storage = tree.get_storage()
    doc = await storage.get("tree/cats")
    if doc["driver"] == "nested_set":  # what two unserialized writers do to the numbers
        doc["nodes"][ids["boots"]]["lft"] = doc["nodes"][ids["sandals"]]["lft"]
    else:
        doc["nodes"][ids["all"]]["parent"] = ids["caps"]  # a cycle
    await storage.set("tree/cats", doc)
    report = await tree.verify("cats")
    assert not report.ok and report.errors
    repaired = await tree.rebuild("cats")
    assert repaired.ok, repaired.errors
    assert len(await tree.descendants("cats", ids["shoes"])) == 2


async def test_a_crash_between_insert_and_link_leaves_only_an_untracked_record(
    env: tuple[Database, TreePlugin],
) -> None:
    db, tree = env
    root = await tree.create_root("cats", {"name": "all"})

    async def die(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("process died")

    tree._mutate = die  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await tree.add_child("cats", root.id, {"name": "lost"})
    del tree._mutate
    report = await tree.verify("cats")
    assert report.ok and len(report.untracked) == 1
    assert await tree.purge_untracked("cats") == report.untracked
    assert await db.get_resource("cats").count() == 1


async def test_a_descendants_query_is_one_get_and_records_add_one_batch(
    env: tuple[Database, TreePlugin],
) -> None:
    db, tree = env
    ids = await build(tree)
    db.store.stats.reset()
    assert len(await tree.descendants("cats", ids["all"])) == 5
    assert dict(db.store.stats) == {"get": 1}
    db.store.stats.reset()
    assert len(await tree.descendants("cats", ids["all"], records=True)) == 5
    assert sum(db.store.stats.values()) == 1 + 5, dict(db.store.stats)


async def test_attach_many_imports_links_in_any_order_and_rejects_cycles(
    env: tuple[Database, TreePlugin],
) -> None:
    db, tree = env
    cats = db.get_resource("cats")
    for rid in ("a", "b", "c", "d", "x", "y"):
        await cats.insert({"id": rid, "name": rid})
    db.store.stats.reset()
    assert await tree.attach_many("cats", {"d": "b", "c": "a", "b": "a", "a": None}) == 4
    # one structure write, not one per node (plus a HEAD per new id: the records exist)
    assert db.store.stats["head"] <= 4 and sum(db.store.stats.values()) <= 6 + 4
    assert await tree.descendants("cats", "a") in (["c", "b", "d"], ["b", "d", "c"])
    assert await tree.path("cats", "d") == ["a", "b", "d"]
    with pytest.raises(ValidationError) as err:
        await tree.attach_many("cats", {"x": "y", "y": "x"})
    assert err.value.suggestion
    await tree.attach("cats", "x", "d")
    assert await tree.depth("cats", "x") == 3
    with pytest.raises(ValidationError):
        await tree.attach("cats", "ghost", None)
    report = await tree.verify("cats")
    assert report.ok and report.untracked == ["y"], report


async def test_an_add_child_costs_the_insert_the_lock_and_one_cas(
    env: tuple[Database, TreePlugin],
) -> None:
    db, tree = env
    root = await tree.create_root("cats", {"name": "root"})
    db.store.stats.reset()
    await tree.add_child("cats", root.id, {"name": "kid"})
    # record, lock, structure; releasing the lock is a conditional DELETE, or a tombstone
    # PUT on stores without conditional deletes (S3)
    assert db.store.stats.get("put") in (3, 4), dict(db.store.stats)
    assert sum(db.store.stats.values()) <= 8, dict(db.store.stats)


# -- audit (issue 20): what the page promises --------------------------------------------
async def test_attach_many_links_existing_records_only(env: tuple[Database, TreePlugin]) -> None:
    """attach_many "links existing records", like attach: an id without a record is a
    ValidationError and nothing is linked (it used to make a node verify() calls broken)."""
    db, tree = env
    cats = db.get_resource("cats")
    await cats.insert({"id": "a", "name": "a"})
    with pytest.raises(ValidationError) as err:
        await tree.attach_many("cats", {"a": None, "ghost": "a"})
    assert err.value.metadata["field"] == "links" and "ghost" in err.value.metadata["value"]
    assert err.value.suggestion
    assert await tree.roots("cats") == []
    many = {f"n{i}": ("n0" if i else None) for i in range(60)}  # above the HEAD limit: a LIST
    await cats.insert_many([{"id": k, "name": k} for k in many if k != "n59"])
    db.store.stats.reset()
    with pytest.raises(ValidationError) as err:
        await tree.attach_many("cats", many)
    assert "n59" in err.value.metadata["value"] and db.store.stats["head"] == 0
    await cats.insert({"id": "n59", "name": "n59"})
    assert await tree.attach_many("cats", many) == 60
    assert (await tree.verify("cats")).ok


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"resources": ["cats"]}, "resources"),
        ({"resource": "cats", "lock_ttl": "30"}, "lock_ttl"),
        ({"resource": "cats", "lock_ttl": 0}, "lock_ttl"),
        ({"resource": "cats", "lock_timeout": -1}, "lock_timeout"),
    ],
)
def test_bad_options_name_their_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        TreePlugin(**options)
    assert err.value.metadata["field"] == field and err.value.suggestion
