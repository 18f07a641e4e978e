"""RelationPlugin (issue 20) on every store: the four relation kinds, nested ``include=``
batched per level (request counts do not grow with the number of records), cascades on
delete, referential checks on insert, accessors, and the s3db.js defect (its documented
import fails: here the plugin imports and works as documented)."""

from __future__ import annotations

from typing import Any

import pytest
from s3db_async.plugins import RelationPlugin

from s3db_async import Database
from s3db_async.errors import ConfigError, ConflictError, ValidationError

RELATIONS: dict[str, Any] = {
    "users": {
        "posts": {
            "type": "has_many",
            "resource": "posts",
            "foreign_key": "user_id",
            "on_delete": "cascade",
        },
        "profile": {
            "type": "has_one",
            "resource": "profiles",
            "foreign_key": "user_id",
            "on_delete": "set_null",
        },
    },
    "posts": {
        "author": {"type": "belongs_to", "resource": "users", "foreign_key": "user_id"},
        "comments": {
            "type": "has_many",
            "resource": "comments",
            "foreign_key": "post_id",
            "on_delete": "restrict",
        },
        "tags": {
            "type": "belongs_to_many",
            "resource": "tags",
            "through": "post_tags",
            "foreign_key": "post_id",
            "other_key": "tag_id",
        },
    },
    "comments": {"post": {"type": "belongs_to", "resource": "posts", "foreign_key": "post_id"}},
}


async def setup(db: Database, users: int = 2, **options: Any) -> RelationPlugin:
    plugin = await db.use_plugin(RelationPlugin(relations=RELATIONS, **options))
    await db.create_resource("users", attributes={"name": "string"})
    await db.create_resource("profiles", attributes={"user_id": "string|optional", "bio": "string"})
    await db.create_resource("posts", attributes={"user_id": "string", "title": "string"})
    await db.create_resource("comments", attributes={"post_id": "string", "text": "string"})
    await db.create_resource("tags", attributes={"label": "string"})
    await db.create_resource("post_tags", attributes={"post_id": "string", "tag_id": "string"})
    for tag in ("a", "b"):
        await db.get_resource("tags").insert({"id": tag, "label": tag.upper()})
    for u in range(users):
        uid = f"u{u}"
        await db.get_resource("users").insert({"id": uid, "name": f"user {u}"})
        await db.get_resource("profiles").insert({"id": f"pr{u}", "user_id": uid, "bio": "hi"})
        for p in range(2):
            pid = f"{uid}p{p}"
            await db.get_resource("posts").insert({"id": pid, "user_id": uid, "title": pid})
            await db.get_resource("post_tags").insert(
                {"id": f"{pid}a", "post_id": pid, "tag_id": "a"}
            )
    return plugin


def _one(**config: Any) -> dict[str, Any]:
    return {"users": {"rel": config}}


BASE = {"type": "has_many", "resource": "posts", "foreign_key": "user_id"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({**BASE, "type": "many"}, "type"),
        ({"type": "has_many", "foreign_key": "x"}, "resource"),
        ({"type": "has_many", "resource": "posts"}, "foreign_key"),
        ({**BASE, "on_delete": "zap"}, "on_delete"),
        ({**BASE, "type": "belongs_to", "on_delete": "cascade"}, "on_delete"),
        ({**BASE, "type": "belongs_to_many"}, "through"),
        ({**BASE, "type": "belongs_to_many", "through": "j"}, "other_key"),
        ({**BASE, "fk": 1}, "fk"),
        ({**BASE, "type": "belongs_to", "local_key": "uid"}, "local_key"),  # was ignored
    ],
)
def test_bad_options_raise_typed_errors_with_suggestions(
    config: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RelationPlugin(relations=_one(**config))
    assert info.value.metadata["field"] == field and info.value.suggestion


async def test_documented_import_and_accessors_work(db: Database) -> None:
    """s3db.js defect: its docs import RelationsPlugin, whose source was deleted (import error)."""
    await setup(db)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    assert [p["id"] for p in await users.related("u0", "posts")] == ["u0p0", "u0p1"]
    assert (await users.related("u0", "profile"))["id"] == "pr0"
    assert (await posts.related("u1p0", "author"))["name"] == "user 1"
    assert [t["label"] for t in await posts.related("u1p0", "tags")] == ["A"]
    assert await posts.related("u1p0", "comments") == []
    with pytest.raises(ConfigError) as info:
        await users.related("u0", "friends")
    assert info.value.suggestion


async def test_include_nested_on_get_list_query(db: Database) -> None:
    plugin = await setup(db)
    user = await plugin.get("users", "u0", include=["posts.tags", "profile"])
    assert [p["id"] for p in user["posts"]] == ["u0p0", "u0p1"]
    assert all([t["id"] for t in p["tags"]] == ["a"] for p in user["posts"])
    assert user["profile"]["bio"] == "hi"
    listed = await plugin.list("posts", include={"author": ["profile"]})
    assert {p["id"]: p["author"]["profile"]["id"] for p in listed}["u1p1"] == "pr1"
    found = await plugin.query("posts", {"user_id": "u1"}, include="author")
    assert [p["author"]["id"] for p in found] == ["u1", "u1"]
    records = await db.get_resource("users").list()
    await db.get_resource("users").include(records, "posts")
    assert sorted(len(r["posts"]) for r in records) == [2, 2]


async def test_include_is_batched_per_level_not_per_record(db: Database) -> None:
    """No N+1: the requests of an include level do not depend on the number of parents."""
    plugin = await setup(db, users=6)
    posts = list(await db.get_resource("posts").list())
    assert len(posts) == 12

    async def cost(records: list[Any], include: Any) -> dict[str, int]:
        db.store.stats.reset()
        await plugin.load("posts", records, include)
        return dict(db.store.stats)

    one, many = await cost(posts[:1], "author"), await cost(posts, "author")
    # belongs_to: one get_many of the distinct users: one GET per user, no LIST, no per-post read
    assert many.get("list", 0) == one.get("list", 0) == 0
    assert many.get("get", 0) == 6 and one.get("get", 0) == 1
    users = list(await db.get_resource("users").list())
    one, many = await cost_users(db, plugin, users[:1]), await cost_users(db, plugin, users)
    assert one.get("list") == many.get("list"), (one, many)  # one scan of posts per level


async def cost_users(db: Database, plugin: RelationPlugin, users: list[Any]) -> dict[str, int]:
    db.store.stats.reset()
    await plugin.load("users", users, "posts")
    return dict(db.store.stats)


async def test_on_delete_cascade_set_null_restrict_and_junction(db: Database) -> None:
    plugin = await setup(db)
    events: list[tuple[str, dict[str, Any]]] = []
    for name in ("relation.cascade", "relation.set_null"):
        plugin.on(name, lambda payload, name=name: events.append((name, payload)))
    users, posts = db.get_resource("users"), db.get_resource("posts")
    await db.get_resource("comments").insert({"id": "c1", "post_id": "u1p0", "text": "x"})
    with pytest.raises(ConflictError) as info:
        await users.delete("u1")  # cascade reaches u1p0, whose comments restrict
    assert info.value.metadata["reason"] == "restrict" and info.value.suggestion
    assert await users.exists("u1") and await posts.exists("u1p0")  # restrict checked first
    assert await users.delete("u0")
    assert not await posts.exists("u0p0") and not await posts.exists("u0p1")
    assert (await db.get_resource("profiles").get("pr0"))["user_id"] is None
    junction = db.get_resource("post_tags")
    assert sorted(r["post_id"] for r in await junction.list()) == ["u1p0", "u1p1"]
    assert await posts.exists("u1p1")
    assert sorted((n, p["relation"], tuple(p["ids"])) for n, p in events) == [
        ("relation.cascade", "posts", ("u0p0", "u0p1")),
        ("relation.set_null", "profile", ("pr0",)),
    ]


async def test_reference_check_on_insert(db: Database) -> None:
    await setup(db, users=1, check_references=True)
    posts = db.get_resource("posts")
    with pytest.raises(ValidationError) as info:
        await posts.insert({"user_id": "ghost", "title": "t"})
    assert info.value.metadata["field"] == "user_id" and info.value.suggestion
    post = await posts.insert({"user_id": "u0", "title": "ok"})
    for write in (
        lambda: posts.update(post.id, {"user_id": "ghost"}),
        lambda: posts.patch(post.id, user_id="ghost"),
        lambda: posts.replace(post.id, {"user_id": "ghost", "title": "t"}),
        lambda: posts.upsert({"id": post.id, "user_id": "ghost", "title": "t"}),
    ):
        with pytest.raises(ValidationError):
            await write()
    assert (await posts.get(post.id))["user_id"] == "u0"  # nothing was written
    db.store.stats.reset()
    await posts.update(post.id, {"title": "renamed"})  # no foreign key set: no check
    assert db.store.stats.get("head", 0) == 0
    db.store.stats.reset()
    await posts.update(post.id, {"user_id": "u0"})  # sets the key: one HEAD of users/u0
    assert db.store.stats.get("head", 0) == 1


async def test_uninstall_removes_accessors_and_cascades(db: Database) -> None:
    plugin = await setup(db, users=1)
    await plugin.uninstall()
    users = db.get_resource("users")
    assert not hasattr(users, "related")
    await users.delete("u0")
    assert await db.get_resource("posts").exists("u0p0")  # no cascade without the plugin


async def test_has_many_through_a_partition_on_the_foreign_key(db: Database) -> None:
    """With a partition on the foreign key, a level LISTs each key's partition and GETs only
    the matching children (no scan of the related resource)."""
    plugin = await db.use_plugin(
        RelationPlugin(
            relations={"users": {"posts": {**BASE, "on_delete": "cascade"}}},
            partition_keys_max=2,
        )
    )
    users = await db.create_resource("users", attributes={"name": "string"})
    posts = await db.create_resource(
        "posts",
        attributes={"user_id": "string", "title": "string"},
        partitions={"by_user": {"fields": {"user_id": "string"}}},
    )
    for u in range(3):
        await users.insert({"id": f"u{u}", "name": "x"})
        for p in range(3):
            await posts.insert({"id": f"u{u}p{p}", "user_id": f"u{u}", "title": "t"})
    records = [await users.get("u0"), await users.get("u1")]
    db.store.stats.reset()
    await plugin.load("users", records, "posts")
    assert dict(db.store.stats) == {"list": 2, "get": 6}  # 2 partition LISTs, 6 posts
    assert [p["id"] for p in records[1]["posts"]] == ["u1p0", "u1p1", "u1p2"]
    everyone = list(await users.list())
    db.store.stats.reset()
    await plugin.load("users", everyone, "posts")  # 3 keys > partition_keys_max: one scan
    assert db.store.stats.get("list") == 1 and db.store.stats.get("get") == 9
    assert await users.delete("u2")
    assert await posts.list_ids(partition="by_user", partition_values={"user_id": "u2"}) == []


async def test_a_crash_in_the_middle_of_a_cascade_leaves_the_parent_and_a_retry_finishes(
    db: Database,
) -> None:
    """The record goes last: a delete interrupted after some children keeps the parent, so
    deleting it again completes the cascade."""
    await setup(db, users=1)
    users, posts = db.get_resource("users"), db.get_resource("posts")
    crashed: list[str] = []

    async def crash(data: Any) -> Any:  # the process "dies" on the second post
        rid = data["id"] if isinstance(data, dict) else getattr(data, "id", data)
        if rid == "u0p1" and not crashed:
            crashed.append(rid)
            raise RuntimeError("killed")
        return data

    posts.add_hook("before_delete", crash)
    with pytest.raises(RuntimeError):
        await users.delete("u0")
    assert crashed == ["u0p1"] and await users.exists("u0")
    assert await users.delete("u0")  # the retry finishes the job
    assert await posts.list_ids() == [] and not await users.exists("u0")


async def test_plugin_installed_after_the_resources_exist(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    posts = await db.create_resource("posts", attributes={"user_id": "string", "title": "string"})
    await users.insert({"id": "u", "name": "n"})
    await posts.insert({"id": "p", "user_id": "u", "title": "t"})
    await db.use_plugin(RelationPlugin(relations={"users": {"posts": BASE}}))
    assert [p["id"] for p in await users.related("u", "posts")] == ["p"]


def test_partition_keys_max_must_be_a_count() -> None:
    for bad in (-1, "3", True):
        with pytest.raises(ConfigError) as info:
            RelationPlugin(partition_keys_max=bad)  # type: ignore[arg-type]
        assert info.value.metadata["field"] == "partition_keys_max"


async def test_attach_and_detach_belongs_to_many(db: Database) -> None:
    plugin = await setup(db, users=1, check_references=True)
    posts = db.get_resource("posts")
    assert await plugin.attach("posts", "u0p0", "tags", "b", "a") == 1  # "a" was linked
    assert await plugin.attach("posts", "u0p0", "tags", "b") == 0  # idempotent
    assert sorted(t["id"] for t in await posts.related("u0p0", "tags")) == ["a", "b"]
    with pytest.raises(ValidationError):
        await plugin.attach("posts", "u0p0", "tags", "nope")
    with pytest.raises(ConfigError):
        await plugin.attach("posts", "u0p0", "author", "u0")
    assert await plugin.detach("posts", "u0p0", "tags", "a") == 1
    assert [t["id"] for t in await posts.related("u0p0", "tags")] == ["b"]
    assert await plugin.detach("posts", "u0p0", "tags") == 1
    assert await posts.related("u0p0", "tags") == []


async def test_delete_many_cascades_too(db: Database) -> None:
    await setup(db, users=3)
    result = await db.get_resource("users").delete_many(["u0", "u2"])
    assert result.all_ok
    assert sorted(await db.get_resource("posts").list_ids()) == ["u1p0", "u1p1"]


# -- audit (issue 20): what the page promises --------------------------------------------
def test_relations_must_be_a_dict() -> None:
    with pytest.raises(ConfigError) as info:
        RelationPlugin(relations=[("users", {})])  # type: ignore[arg-type]
    assert info.value.metadata["field"] == "relations" and info.value.suggestion


async def test_insert_many_checks_references_item_by_item(db: Database) -> None:
    """The page said insert_many is not checked; it is, per item: a missing reference
    fails that item alone and the others are written."""
    await setup(db, users=1, check_references=True)
    posts = db.get_resource("posts")
    result = await posts.insert_many(
        [
            {"id": "bad", "user_id": "ghost", "title": "t"},
            {"id": "good", "user_id": "u0", "title": "t"},
        ]
    )
    by_id = {item.id: item for item in result}
    assert by_id["good"].ok and not by_id["bad"].ok
    error = by_id["bad"].error
    assert isinstance(error, ValidationError) and error.metadata["field"] == "user_id"
    assert await posts.exists("good") and not await posts.exists("bad")


async def test_local_key_is_used_by_include_cascade_attach_and_detach(db: Database) -> None:
    """local_key (the page: "the field of this record that the foreign key matches") was
    ignored by attach/detach, which wrote the record's id into the junction: the rows they
    made were never found by include=."""
    rel = await db.use_plugin(
        RelationPlugin(
            relations={
                "users": {
                    "posts": {
                        "type": "has_many",
                        "resource": "posts",
                        "foreign_key": "author_email",
                        "local_key": "email",
                        "on_delete": "cascade",
                    }
                },
                "posts": {
                    "tags": {
                        "type": "belongs_to_many",
                        "resource": "tags",
                        "through": "post_tags",
                        "foreign_key": "post_slug",
                        "other_key": "tag_id",
                        "local_key": "slug",
                    }
                },
            }
        )
    )
    users = await db.create_resource("users", attributes={"email": "string"})
    posts = await db.create_resource(
        "posts", attributes={"author_email": "string", "slug": "string|optional"}
    )
    tags = await db.create_resource("tags", attributes={"label": "string"})
    junction = await db.create_resource(
        "post_tags", attributes={"post_slug": "string", "tag_id": "string"}
    )
    await users.insert({"id": "u1", "email": "ann@example.com"})
    await posts.insert({"id": "p1", "author_email": "ann@example.com", "slug": "hello"})
    await posts.insert({"id": "p2", "author_email": "ann@example.com"})  # no slug
    await tags.insert({"id": "t1", "label": "T"})
    got = await users.get("u1", include="posts")
    assert sorted(p.id for p in got["posts"]) == ["p1", "p2"]
    assert await rel.attach("posts", "p1", "tags", "t1") == 1
    assert [r["post_slug"] for r in await junction.list()] == ["hello"]
    assert [t.id for t in (await posts.get("p1", include="tags"))["tags"]] == ["t1"]
    assert await rel.attach("posts", "p1", "tags", "t1") == 0  # already linked
    with pytest.raises(ValidationError) as info:
        await rel.attach("posts", "p2", "tags", "t1")
    assert info.value.metadata["field"] == "slug" and info.value.suggestion
    assert await rel.detach("posts", "p1", "tags") == 1
    assert await posts.related("p1", "tags") == []
    await users.delete("u1")
    assert not await posts.exists("p1") and not await posts.exists("p2")
