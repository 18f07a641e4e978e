"""``include=`` on the core resource methods (issue 20): ``get``, ``get_or_none``,
``get_many``, ``list``, ``page`` and ``query`` load relations of every kind, nested, with one
batched read per relation level whatever the number of parent records; a bad include, or
include without RelationPlugin, raises a typed error before any request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from s3db_async.plugins import CachePlugin, RelationPlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, UnknownOptionError

from .test_relation import BASE, RELATIONS, setup

ALL = ("users", "profiles", "posts", "comments", "tags", "post_tags")


def count_calls(db: Database) -> Counter[tuple[str, str]]:
    """Logical calls of the batched reads, per (resource, method), seen by middlewares."""
    calls: Counter[tuple[str, str]] = Counter()
    for name in ALL:
        for method in ("get", "get_many", "query", "list"):

            async def mw(
                next_: Callable[..., Awaitable[Any]], *a: Any, _k: Any = (name, method), **kw: Any
            ) -> Any:
                calls[_k] += 1
                return await next_(*a, **kw)

            db.get_resource(name).use_middleware(method, mw)
    return calls


async def add_comments(db: Database) -> None:
    comments = db.get_resource("comments")
    await comments.insert_many(
        {"id": f"c{i}", "post_id": post, "text": f"on {post}"}
        for i, post in enumerate(["u0p0", "u0p0", "u1p1"])
    )


async def test_include_on_get_loads_every_kind_nested_two_levels(db: Database) -> None:
    await setup(db)
    await add_comments(db)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    user = await users.get("u0", include=["posts.tags", "posts.comments", "profile"])
    assert [p["id"] for p in user["posts"]] == ["u0p0", "u0p1"]  # has_many
    assert user["profile"]["id"] == "pr0"  # has_one
    assert [t["label"] for t in user["posts"][0]["tags"]] == ["A"]  # belongs_to_many, level 2
    assert [c["id"] for c in user["posts"][0]["comments"]] == ["c0", "c1"]  # has_many, level 2
    assert user["posts"][1]["comments"] == []
    post = await posts.get("u1p1", include={"author": ["profile"], "comments": ["post"]})
    assert post["author"]["name"] == "user 1"  # belongs_to
    assert post["author"]["profile"]["id"] == "pr1"
    assert post["comments"][0]["post"]["id"] == "u1p1"  # belongs_to, level 2
    assert post["title"] == "u1p1" and post.id == "u1p1"  # still the record get returns
    assert "author" not in await posts.get("u1p1")  # without include: the plain record


async def test_include_on_list_query_page_get_many_and_get_or_none(db: Database) -> None:
    await setup(db, users=3)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    listed = await users.list(include="posts.author")
    assert [[p["author"]["id"] for p in u["posts"]] for u in listed] == [
        ["u0", "u0"],
        ["u1", "u1"],
        ["u2", "u2"],
    ]
    assert listed.skipped == []  # still the RecordList
    found = await posts.query({"user_id": "u2"}, include=["author", "tags"])
    assert [(p["id"], p["author"]["id"], [t["id"] for t in p["tags"]]) for p in found] == [
        ("u2p0", "u2", ["a"]),
        ("u2p1", "u2", ["a"]),
    ]
    first = await posts.page(size=4, include="author")
    second = await posts.page(size=4, cursor=first.next_cursor, include="author")
    assert [p["author"]["id"] for p in first.items] == ["u0", "u0", "u1", "u1"]
    assert [p["id"] for p in second.items] == ["u2p0", "u2p1"]
    assert all(p["author"]["id"] == "u2" for p in second.items)
    batch = await users.get_many(["u1", "ghost", "u0"], include=["profile", "posts"])
    assert [(r["id"], r["profile"]["id"], len(r["posts"])) for r in batch.ok] == [
        ("u1", "pr1", 2),
        ("u0", "pr0", 2),
    ]
    assert len(batch.errors) == 1
    assert await users.get_or_none("ghost", include="posts") is None
    assert len((await users.get_or_none("u2", include="posts") or {})["posts"]) == 2
    assert len(await users.list(limit=0, include="posts")) == 0
    assert "posts" not in await users.get("u0", include=[])  # nothing to include


async def test_each_level_is_one_batched_read_whatever_the_number_of_parents(
    db: Database,
) -> None:
    """No N+1: per level one ``query`` (has_*: one scan, LIST + a GET per candidate) or one
    ``get_many`` (belongs_to: one GET per distinct target), for 1 parent or 12."""
    await setup(db, users=6)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    calls = count_calls(db)

    async def cost(read: Callable[[], Awaitable[Any]]) -> tuple[dict[str, int], dict[Any, int]]:
        calls.clear()
        db.store.stats.reset()
        await read()
        return dict(db.store.stats), dict(calls)

    include = ["posts.tags", "profile"]
    one, one_calls = await cost(lambda: users.get("u0", include=include))
    six, six_calls = await cost(lambda: users.list(include=include))
    level_calls = {
        ("posts", "query"): 1,  # users -> posts (has_many)
        ("profiles", "query"): 1,  # users -> profile (has_one)
        ("post_tags", "query"): 1,  # posts -> tags (belongs_to_many): the junction...
        ("tags", "get_many"): 1,  # ... and one get_many of the distinct tags
    }
    assert one_calls == {("users", "get"): 1, **level_calls}
    assert six_calls == {("users", "list"): 1, **level_calls}
    # 3 scans (posts, profiles, post_tags: 1 LIST each, a GET per stored record: 12, 6, 12)
    # and 1 GET of the one distinct tag, for one parent as for six
    assert one == {"get": 1 + 12 + 6 + 12 + 1, "list": 3}
    assert six == {"get": 6 + 12 + 6 + 12 + 1, "list": 1 + 3}

    one, one_calls = await cost(lambda: posts.get("u0p0", include="author"))
    all_, all_calls = await cost(lambda: posts.list(include="author"))
    assert one_calls == {("posts", "get"): 1, ("users", "get_many"): 1}
    assert all_calls == {("posts", "list"): 1, ("users", "get_many"): 1}
    assert one == {"get": 1 + 1}  # belongs_to: no LIST, one GET per distinct user
    assert all_ == {"list": 1, "get": 12 + 6}  # 12 posts, 6 distinct authors, not 12


async def test_has_many_through_a_partition_costs_one_list_per_key_and_one_get_many(
    db: Database,
) -> None:
    await db.use_plugin(RelationPlugin(relations={"users": {"posts": BASE}}))
    users = await db.create_resource("users", attributes={"name": "string"})
    posts = await db.create_resource(
        "posts",
        attributes={"user_id": "string", "title": "string"},
        partitions={"by_user": {"fields": {"user_id": "string"}}},
    )
    for u in range(3):
        await users.insert({"id": f"u{u}", "name": "x"})
        await posts.insert_many({"user_id": f"u{u}", "title": str(p)} for p in range(2))
    db.store.stats.reset()
    listed = await users.query({"name": "x"}, include="posts")
    assert [len(u["posts"]) for u in listed] == [2, 2, 2]
    # users: 1 LIST + 3 GETs; posts: 1 LIST per user's partition + 6 GETs (no scan)
    assert dict(db.store.stats) == {"list": 1 + 3, "get": 3 + 6}


async def test_include_errors_are_typed_and_send_no_request(db: Database) -> None:
    plugin = await setup(db, users=1)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    db.store.stats.reset()
    with pytest.raises(ConfigError) as info:
        await posts.get("u0p0", include=["author", "nope"])
    err = info.value
    assert err.metadata["field"] == "include" and err.metadata["reason"] == "unknown relation"
    assert err.metadata["value"] == "nope" and err.metadata["resource"] == "posts"
    assert "author" in (err.suggestion or "") and "tags" in (err.suggestion or "")
    with pytest.raises(ConfigError) as info:
        await users.list(include="posts.writer")  # unknown at the second level
    assert info.value.metadata["resource"] == "posts"
    assert info.value.metadata["relations"] == ["author", "comments", "tags"]
    for bad in (3, [""], [None]):
        with pytest.raises(ConfigError) as info:
            await users.get("u0", include=bad)
        assert info.value.metadata["field"] == "include" and info.value.suggestion
    with pytest.raises(UnknownOptionError) as unknown:
        await users.count(include="posts")  # count returns no records
    assert unknown.value.metadata["reason"] == "not an option of count"
    with pytest.raises(UnknownOptionError) as unknown:
        await db.get_resource("tags").get("a", include="posts")  # tags has no relations
    assert "RelationPlugin" in (unknown.value.suggestion or "")
    assert dict(db.store.stats) == {}  # every error came before any request
    await plugin.uninstall()
    with pytest.raises(UnknownOptionError) as unknown:
        await posts.get("u0p0", include="author")
    assert isinstance(unknown.value, TypeError)
    assert unknown.value.metadata["field"] == "include"
    assert "RelationPlugin" in (unknown.value.suggestion or "")


async def test_without_the_plugin_include_raises_a_typed_error(db: Database) -> None:
    posts = await db.create_resource("posts", attributes={"title": "string"})
    await posts.insert({"id": "p", "title": "t"})
    for call in (
        lambda: posts.get("p", include=["author"]),
        lambda: posts.list(include="author"),
        lambda: posts.query({"title": "t"}, include="author"),
        lambda: posts.get_many(["p"], include="author"),
        lambda: posts.page(include="author"),
    ):
        with pytest.raises(UnknownOptionError) as info:
            await call()
        assert info.value.metadata["field"] == "include"
        assert info.value.metadata["reason"] == "no installed plugin handles this option"
        assert "RelationPlugin" in (info.value.suggestion or "")


async def test_include_runs_outside_the_cache_and_never_pollutes_it(db: Database) -> None:
    """The cache middleware caches the plain record; includes are loaded on top of it."""
    cache = await db.use_plugin(CachePlugin(driver="memory", ttl=300))
    await setup(db, users=1)
    posts = db.get_resource("posts")
    for _ in range(2):  # a miss, then a hit
        post = await posts.get("u0p1", include="author")
        assert post["author"]["id"] == "u0"
    assert "author" not in await posts.get("u0p1")
    assert cache.stats()["resources"]["posts"]["get"]["hits"] == 2


async def test_the_plugin_helpers_still_work(db: Database) -> None:
    plugin = await setup(db)
    assert plugin.relations["posts"].keys() == RELATIONS["posts"].keys()
    via_core = await db.get_resource("users").get("u1", include="posts.author")
    via_plugin = await plugin.get("users", "u1", include="posts.author")
    assert via_core == via_plugin
    with pytest.raises(ConfigError):
        await plugin.get("users", "u1", include="nope")
