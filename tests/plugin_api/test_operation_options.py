"""Operation options: extra keyword options of resource operations reach the handler a plugin
registered, around the whole operation (middlewares and the operation never see them); an
option nothing handles raises a typed error before any request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from s3db_async import Database, Resource
from s3db_async.errors import ConfigError, UnknownOptionError
from s3db_async.plugin import OPTION_METHODS, Plugin


class TagPlugin(Plugin):
    """Adds ``tag=`` to reads: the records come back with ``_tag`` set to the value."""

    def __init__(self, calls: list[Any] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.calls = calls if calls is not None else []

    async def on_install(self) -> None:
        await self.when_resource("items", self.setup)

    def setup(self, resource: Resource) -> None:
        async def handler(
            next_: Callable[..., Awaitable[Any]], value: Any, *a: Any, **kw: Any
        ) -> Any:
            self.calls.append(("tag", value, a, kw))
            result = await next_(*a, **kw)
            for record in [result] if isinstance(result, dict) else list(result):
                record["_tag"] = value
            return result

        self.add_operation_option(
            resource, "tag", handler, methods=["get", "list", "query"], description="tag records"
        )


async def _items(db: Database) -> Resource:
    items = await db.create_resource("items", attributes={"n": "integer"})
    await items.insert_many({"id": f"i{n}", "n": n} for n in range(3))
    return items


async def test_an_option_reaches_its_handler_and_not_the_middlewares(db: Database) -> None:
    items = await _items(db)
    plugin = await db.use_plugin(TagPlugin())
    seen: list[dict[str, Any]] = []

    async def middleware(next_: Callable[..., Awaitable[Any]], *a: Any, **kw: Any) -> Any:
        seen.append(kw)
        return await next_(*a, **kw)

    items.use_middleware("get", middleware)
    db.store.stats.reset()
    record = await items.get("i1", tag="x")
    assert record["_tag"] == "x" and record["n"] == 1
    assert dict(db.store.stats) == {"get": 1}  # the option costs no request of its own
    assert seen == [{}]  # the middleware ran, without the option
    assert plugin.calls == [("tag", "x", ("i1",), {})]
    listed = await items.list(limit=2, tag="y")
    assert [(r["id"], r["_tag"]) for r in listed] == [("i0", "y"), ("i1", "y")]
    assert plugin.calls[-1] == ("tag", "y", (None, None, 2), {"strict": False})
    assert {r["_tag"] for r in await items.query({"n": {"$gte": 1}}, tag="z")} == {"z"}
    plain = await items.get("i1")
    assert "_tag" not in plain  # no option: no handler
    assert len(plugin.calls) == 3
    assert items.operation_options["tag"].owner == plugin.alias
    assert items.operation_options["tag"].methods == frozenset({"get", "list", "query"})


async def test_an_option_nothing_handles_raises_a_typed_error_before_any_request(
    db: Database,
) -> None:
    items = await _items(db)
    db.store.stats.reset()
    for call in (
        lambda: items.get("i1", tag="x"),
        lambda: items.list(tag="x"),
        lambda: items.get_many(["i1"], tag="x"),
        lambda: items.count(tag="x"),
        lambda: items.delete("i1", tag="x"),
    ):
        with pytest.raises(UnknownOptionError) as info:
            await call()
        err = info.value
        assert isinstance(err, TypeError) and isinstance(err, ConfigError)
        assert err.metadata["field"] == "tag" and err.metadata["resource"] == "items"
        assert err.metadata["reason"] and err.suggestion
    assert dict(db.store.stats) == {}
    with pytest.raises(UnknownOptionError) as info:
        await items.get("i1", include=["x"])
    assert "RelationPlugin" in (info.value.suggestion or "")  # the bundled plugin is named


async def test_an_option_on_a_method_it_was_not_registered_for(db: Database) -> None:
    items = await _items(db)
    await db.use_plugin(TagPlugin())
    with pytest.raises(UnknownOptionError) as info:
        await items.count(tag="x")
    assert info.value.metadata["reason"] == "not an option of count"
    assert "get" in (info.value.suggestion or "")
    assert await items.count() == 3


async def test_registration_errors_and_uninstall(db: Database) -> None:
    items = await _items(db)
    plugin = await db.use_plugin(TagPlugin())

    async def handler(next_: Callable[..., Awaitable[Any]], value: Any, *a: Any, **kw: Any) -> Any:
        return await next_(*a, **kw)

    bad: list[tuple[str, list[str], str]] = [
        ("x", ["insert"], "bad methods"),  # its keywords are record fields
        ("x", [], "bad methods"),
        ("not a name", ["get"], "not a keyword"),
        ("strict", ["list"], "parameter of the method"),
        ("limit", ["get", "query"], "parameter of the method"),
        ("tag", ["get"], "already registered"),
    ]
    for name, methods, reason in bad:
        with pytest.raises(ConfigError) as info:
            items.add_operation_option(name, handler, methods=methods)
        assert info.value.metadata["reason"] == reason, name
        assert info.value.suggestion
    assert "insert" not in OPTION_METHODS and "get" in OPTION_METHODS
    await plugin.uninstall()
    assert "tag" not in items.operation_options
    with pytest.raises(UnknownOptionError):
        await items.get("i1", tag="x")


async def test_options_compose_in_the_order_passed(db: Database) -> None:
    items = await _items(db)
    order: list[str] = []

    def make(name: str) -> Callable[..., Awaitable[Any]]:
        async def handler(
            next_: Callable[..., Awaitable[Any]], value: Any, *a: Any, **kw: Any
        ) -> Any:
            order.append(f"{name}>")
            result = await next_(*a, **kw)
            order.append(f"<{name}")
            return result

        return handler

    items.add_operation_option("first", make("a"), methods=["exists"])
    items.add_operation_option("second", make("b"), methods=["exists"])
    assert await items.exists("i0", second=1, first=2)
    assert order == ["b>", "a>", "<a", "<b"]
    assert items.remove_operation_option("first") and not items.remove_operation_option("first")


async def test_a_handler_can_answer_without_the_operation(db: Database) -> None:
    """Like a middleware, a handler may skip ``next`` (here: a canned answer, no request)."""
    items = await _items(db)

    async def canned(next_: Callable[..., Awaitable[Any]], value: Any, *a: Any, **kw: Any) -> Any:
        return value

    items.add_operation_option("answer", canned, methods=["count", "list_ids"])
    db.store.stats.reset()
    assert await items.count(answer=42) == 42
    assert await items.list_ids(answer=["a"]) == ["a"]
    assert dict(db.store.stats) == {}
