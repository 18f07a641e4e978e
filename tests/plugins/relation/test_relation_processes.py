"""RelationPlugin across real OS processes (file, SeaweedFS).

- A process SIGKILLed in the middle of a cascade leaves the parent record (it is deleted
  last) and some of its children; deleting it again from another process finishes the job.
- Two processes deleting the same parent at once both succeed and leave nothing behind.
- Four processes attaching the same belongs_to_many links create each junction row once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from s3db_async.plugins import RelationPlugin

from s3db_async import Database
from s3db_async.testing import WorkerContext, spawn_processes

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]

RELATIONS = {
    "users": {
        "posts": {
            "type": "has_many",
            "resource": "posts",
            "foreign_key": "user_id",
            "on_delete": "cascade",
        }
    }
}
POSTS = 8


async def deleter(ctx: WorkerContext) -> bool:
    async with Database(ctx.url, plugins=[RelationPlugin(relations=RELATIONS)]) as db:
        posts = db.get_resource("posts")
        if ctx.args and ctx.args[0] == "hang":

            async def hang(record: Any) -> Any:
                if record["id"] == "p3":
                    await ctx.report("mid")
                    await asyncio.sleep(3600)  # SIGKILLed here, mid-cascade
                return record

            posts.add_hook("before_delete", hang)
        await ctx.barrier("go")
        return await db.get_resource("users").delete("u")


async def populate(db: Database) -> None:
    users = await db.create_resource("users", attributes={"name": "string"})
    posts = await db.create_resource("posts", attributes={"user_id": "string", "n": "integer"})
    await users.insert({"id": "u", "name": "n"})
    await posts.insert_many({"id": f"p{i}", "user_id": "u", "n": i} for i in range(POSTS))


async def test_a_process_killed_mid_cascade_leaves_the_parent_and_a_retry_finishes(
    store_url: str,
) -> None:
    plugin = RelationPlugin(relations=RELATIONS)
    async with Database(store_url, plugins=[plugin]) as db:
        await populate(db)
        async with spawn_processes(deleter, store_url, 1, ("hang",), auto_release=True) as group:
            await group.wait_for("mid", index=0)
            group.kill(0)
            outcomes = await group.outcomes()
        assert outcomes[0].killed
        users, posts = db.get_resource("users"), db.get_resource("posts")
        assert await users.exists("u")  # the parent goes last
        assert "p3" in await posts.list_ids()
        assert await users.delete("u")
        assert await posts.list_ids() == [] and not await users.exists("u")


async def test_two_processes_deleting_one_parent_both_succeed(store_url: str) -> None:
    async with Database(store_url) as db:
        await populate(db)
        async with spawn_processes(deleter, store_url, 2, auto_release=True) as group:
            outcomes = await group.outcomes()
        assert all(o.error is None for o in outcomes), outcomes
        assert await db.get_resource("posts").list_ids() == []
        assert not await db.get_resource("users").exists("u")


TAGS = {
    "posts": {
        "tags": {
            "type": "belongs_to_many",
            "resource": "tags",
            "through": "post_tags",
            "foreign_key": "post_id",
            "other_key": "tag_id",
        }
    }
}


async def attacher(ctx: WorkerContext) -> int:
    plugin = RelationPlugin(relations=TAGS)
    async with Database(ctx.url, plugins=[plugin]):
        await ctx.barrier("go")
        return await plugin.attach("posts", "p", "tags", "a", "b", "c")


async def test_four_processes_attaching_the_same_links_create_each_row_once(
    store_url: str,
) -> None:
    async with Database(store_url) as db:
        await db.create_resource("posts", attributes={"title": "string"})
        await db.create_resource("tags", attributes={"label": "string"})
        junction = await db.create_resource(
            "post_tags", attributes={"post_id": "string", "tag_id": "string"}
        )
        async with spawn_processes(attacher, store_url, 4, auto_release=True) as group:
            outcomes = await group.outcomes()
        assert all(o.error is None for o in outcomes), outcomes
        assert sum(o.value for o in outcomes) == 3
        assert sorted(await junction.list_ids()) == ["p~a", "p~b", "p~c"]
