"""One place for each public signature (issue 17 item 2): the Resource and PluginStorage
methods hold it and run their collaborators' implementations, so middlewares and tracing
see every public call, nested ones included, under its own name."""

from __future__ import annotations

from typing import Any

import pytest

from s3db_async import Database, PluginStorage
from s3db_async._plugin.locks import Locks
from s3db_async._resource.content import Content
from s3db_async._resource.listing import Listing
from s3db_async._resource.records import Records
from s3db_async._resource.resource import MIDDLEWARE_METHODS

pytestmark = pytest.mark.stores("memory")

LOCK_METHODS = ("acquire_lock", "release_lock", "refresh_lock", "is_locked", "lock")


def test_collaborators_hold_no_second_copy_of_a_public_signature() -> None:
    public = MIDDLEWARE_METHODS | {"stream"}
    for collaborator in (Records, Listing, Content):
        assert not public & set(vars(collaborator)), collaborator
    assert not set(LOCK_METHODS) & set(vars(Locks))
    assert all(callable(getattr(PluginStorage, name)) for name in LOCK_METHODS)


async def test_middlewares_see_each_public_call_and_its_nested_calls(db: Database) -> None:
    res = await db.create_resource("items", attributes={"n": "integer|optional"})
    seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recorder(method: str) -> Any:
        async def mw(nxt: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append((method, args, kwargs))
            return await nxt(*args, **kwargs)

        return mw

    for method in MIDDLEWARE_METHODS:
        res.use_middleware(method, recorder(method))

    async def names(call: Any) -> list[str]:
        seen.clear()
        await call
        return [name for name, _, _ in seen]

    assert await names(res.insert({"id": "a", "n": 1})) == ["insert"]
    assert seen[0][1:] == (({"id": "a", "n": 1},), {})
    assert await names(res.insert_many([{"id": "b"}], preserve_timestamps=True)) == [
        "insert_many",
        "insert",
    ]
    assert seen[1][2] == {"preserve_timestamps": True}
    assert await names(res.get("a")) == ["get"]
    assert await names(res.get_or_none("zz")) == ["get_or_none", "get"]  # was never seen
    assert await names(res.get_many(["a", "b"])) == ["get_many"]
    assert await names(res.exists("a")) == ["exists"]
    assert await names(res.update("a", n=2, retries=3)) == ["update"]
    assert seen[0][1:] == (("a", {"n": 2}), {"if_match": None, "retries": 3, "full": True})
    assert await names(res.patch("a", {"n": 3})) == ["patch"]
    assert seen[0][2]["full"] is False
    assert await names(res.replace("a", {"n": 4})) == ["replace"]
    assert await names(res.upsert({"id": "a", "n": 5})) == ["upsert", "update"]
    assert await names(res.upsert({"id": "c", "n": 6})) == ["upsert", "update", "insert"]
    assert await names(res.update_many([{"id": "c", "n": 7}])) == ["update"]
    assert await names(res.set_content("a", b"x")) == ["set_content"]
    assert await names(res.get_content("a")) == ["get_content"]
    assert await names(res.list_ids()) == ["list_ids"]
    assert await names(res.count()) == ["count"]
    assert await names(res.list(limit=1)) == ["list"]
    assert await names(res.page(size=1)) == ["page"]
    assert await names(res.query({"n": 5})) == ["query"]
    assert [r.id for r in await res.query({"n": 5})] == ["a"]
    assert await names(res.delete("b")) == ["delete"]
    assert await names(res.delete_many(["c"])) == ["delete_many"]
    assert await res.list_ids() == ["a"]
