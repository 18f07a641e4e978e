"""Section ``relation``: what RelationPlugin's ``include=`` costs (issue 20).

100 users x 10 posts (20 x 5 with ``--quick``). For ``posts include=author`` on all posts
(one ``get_many`` of the distinct users) and ``users include=posts`` (one scan of posts;
then, with a partition on ``posts.user_id``, one LIST per user), the requests and seconds of
one level, against what an N+1 loader would issue (one read per parent); and the same
includes passed to the core reads (``posts.list(include="author")`` next to a plain
``posts.list()``: the difference is the level's cost).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from s3db_async.plugins import RelationPlugin

from benchmarks._common import BenchContext
from s3db_async import Database

TITLE = "relation: requests of one include level (batched) vs one read per parent (N+1)"


async def _store(ctx: BenchContext, store: str, users: int, per_user: int) -> dict[str, Any]:
    posts_rel = {"type": "has_many", "resource": "posts", "foreign_key": "user_id"}
    plugin = RelationPlugin(
        relations={
            "users": {"posts": posts_rel, "pposts": {**posts_rel, "resource": "pposts"}},
            "posts": {
                "author": {"type": "belongs_to", "resource": "users", "foreign_key": "user_id"}
            },
        },
        partition_keys_max=users,
    )
    async with Database(ctx.url(store), plugins=[plugin], parallelism=64) as db:
        u = await db.create_resource("users", attributes={"name": "string"})
        p = await db.create_resource("posts", attributes={"user_id": "string", "n": "integer"})
        pp = await db.create_resource(
            "pposts",
            attributes={"user_id": "string", "n": "integer"},
            partitions={"by_user": {"fields": {"user_id": "string"}}},
        )
        await u.insert_many({"id": f"u{i:04d}", "name": "x"} for i in range(users))
        rows = [{"user_id": f"u{i:04d}", "n": j} for i in range(users) for j in range(per_user)]
        await asyncio.gather(p.insert_many(rows), pp.insert_many(rows))
        all_posts = list(await p.list())
        all_users = list(await u.list())
        out: dict[str, Any] = {}
        for name, resource, records, include in (
            ("posts.author", "posts", all_posts, "author"),
            ("users.posts (scan)", "users", all_users, "posts"),
            ("users.posts (partition)", "users", all_users, "pposts"),
        ):
            db.store.stats.reset()
            started = time.perf_counter()
            await plugin.load(resource, records, include)
            out[name] = {
                "parents": len(records),
                "requests": db.store.stats.total(),
                "seconds": round(time.perf_counter() - started, 3),
            }
        for name, read in (  # what users write: the include on the core read itself
            ("posts.list()", lambda: p.list()),
            ('posts.list(include="author")', lambda: p.list(include="author")),
            ('users.list(include="pposts")', lambda: u.list(include="pposts")),
        ):
            db.store.stats.reset()
            started = time.perf_counter()
            records = await read()
            out[name] = {
                "parents": len(records),
                "requests": db.store.stats.total(),
                "seconds": round(time.perf_counter() - started, 3),
            }
        db.store.stats.reset()
        started = time.perf_counter()
        await asyncio.gather(*(u.get(post["user_id"]) for post in all_posts))
        out["posts.author (N+1: one get per post)"] = {
            "parents": len(all_posts),
            "requests": db.store.stats.total(),
            "seconds": round(time.perf_counter() - started, 3),
        }
    return out


async def run(ctx: BenchContext) -> dict[str, Any]:
    users, per_user = (20, 5) if ctx.quick else (100, 10)
    out: dict[str, Any] = {}
    for store in ctx.stores:
        row = await _store(ctx, store, users, per_user)
        for name, cell in row.items():
            ctx.log(
                f"relation {store}: {name} for {cell['parents']} parents: "
                f"{cell['requests']} requests, {cell['seconds']} s"
            )
        out[store] = row
    return out
