"""A complete custom plugin in about 50 lines (docs/plugins/building-plugins.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from s3db_async import Database, Plugin, Record, Resource
from s3db_async.errors import ConfigError


class InsertCounterPlugin(Plugin):
    """Stamps new records, counts inserts in PluginStorage, adds ``resource.insert_count()``."""

    def __init__(self, *, resource: str, flush_every: float = 1.0, **options: Any) -> None:
        super().__init__(**options)  # namespace=, log_level=, resource_names=, alias=
        if not resource:
            raise ConfigError(
                "InsertCounterPlugin needs a target resource",
                suggestion="pass InsertCounterPlugin(resource='orders')",
            )
        self.resource, self.flush_every, self.pending = resource, flush_every, 0

    async def on_install(self) -> None:
        await self.when_resource(self.resource, self.setup)  # now, or once it is created

    async def setup(self, resource: Resource) -> None:
        await self.add_plugin_attribute(resource, "_counted", "boolean|optional")
        self.add_resource_hook(resource, "before_insert", self.stamp)
        self.listen(resource, "inserted", self.count)
        self.add_resource_method(resource, "insert_count", self.insert_count)

    async def on_start(self) -> None:
        self.spawn(self.flusher, name="flush")  # cancelled on stop() and disconnect()

    async def on_stop(self) -> None:
        await self.flush()

    def stamp(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "_counted": True}

    def count(self, record: Record) -> None:
        self.pending += 1

    async def flush(self) -> None:
        n, self.pending = self.pending, 0
        if n:  # exact across processes: compare-and-swap on the counter object
            await self.get_storage().increment(f"inserts/{self.resource}", n)

    async def flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            await self.flush()

    async def insert_count(self) -> int:
        await self.flush()
        data = await self.get_storage().get(f"inserts/{self.resource}")
        return int(data["value"]) if data else 0


async def main() -> None:
    async with Database(
        "memory://demo/app", plugins=[InsertCounterPlugin(resource="orders")]
    ) as db:
        orders = await db.create_resource("orders", attributes={"item": "string"})
        for item in ("tea", "cake", "scone"):
            await orders.insert({"item": item})
        print("inserts:", await orders.insert_count())  # type: ignore[attr-defined]
        print("stamped:", (await orders.list())[0]["_counted"])
        await db.uninstall_plugin("insert_counter", purge_data=True)
        print("method removed:", not hasattr(orders, "insert_count"))


if __name__ == "__main__":
    asyncio.run(main())
