"""E-commerce workflow: a state machine for orders, stock kept by eventual consistency, and
scheduled jobs (the seed's "E-commerce Workflow").

Run it with ``python examples/ecommerce_workflow.py`` (data in ``./.s3db-ecommerce``), or
pass any store URL to :func:`main`. It:

- walks orders through ``pending -> confirmed -> shipped -> delivered`` (or ``cancelled``);
  confirming an order reserves its items with ``sub`` on the ``quantity`` counter of
  ``inventory`` (a guard refuses the confirmation when the stock is short), cancelling a
  confirmed order puts them back with ``add``;
- runs the scheduler's ``inventory_sync`` (every 15 minutes: consolidate the counters) and
  ``daily_reports`` (09:00: orders per status, into ``reports``) jobs once, now;
- prints the report and each order's history, and returns the report.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import Any

from s3db_async.plugins import EventualConsistencyPlugin, SchedulerPlugin, StateMachinePlugin

from s3db_async import Database

URL = "file://./.s3db-ecommerce"

ORDER_MACHINE = {
    "initial": "pending",
    "resource": "orders",
    "field": "status",
    "states": {
        "pending": {
            "on": {
                "CONFIRM": {"target": "confirmed", "guard": "in_stock"},
                "CANCEL": "cancelled",
            },
            "after": {86400: "CANCEL"},  # unconfirmed orders are cancelled after a day
        },
        "confirmed": {
            "on": {"SHIP": "shipped", "CANCEL": "cancelled"},
            "entry": "reserve_stock",
        },
        "shipped": {"on": {"DELIVER": "delivered"}},
        "delivered": {"type": "final"},
        "cancelled": {"type": "final", "entry": "release_stock"},
    },
}


def build_plugins() -> tuple[StateMachinePlugin, EventualConsistencyPlugin, SchedulerPlugin]:
    """The three plugins, wired to each other through the database they are installed in."""
    stock = EventualConsistencyPlugin(resource="inventory", field="quantity", mode="sync")

    async def in_stock(context: dict[str, Any], payload: Any, info: Any) -> bool:
        inventory = stock.db.get_resource("inventory")
        for sku, qty in context["items"].items():
            if (await inventory.get(sku)).get("quantity", 0) < qty:
                return False
        return True

    async def reserve_stock(context: dict[str, Any], transition: Any, plugin: Any) -> None:
        for sku, qty in context["items"].items():
            await stock.sub("inventory", sku, "quantity", qty)

    async def release_stock(context: dict[str, Any], transition: Any, plugin: Any) -> None:
        if transition["from"] == "confirmed":  # only confirmed orders had stock reserved
            for sku, qty in context["items"].items():
                await stock.add("inventory", sku, "quantity", qty)

    machines = StateMachinePlugin(
        machines={"order_processing": ORDER_MACHINE},
        guards={"in_stock": in_stock},
        actions={"reserve_stock": reserve_stock, "release_stock": release_stock},
    )

    async def inventory_sync(db: Database, ctx: Any) -> int:
        return await stock.consolidate_all("inventory", "quantity")

    async def daily_reports(db: Database, ctx: Any) -> dict[str, int]:
        report: dict[str, int] = {}
        for order in await db.get_resource("orders").list():
            report[order["status"]] = report.get(order["status"], 0) + 1
        report = dict(sorted(report.items()))
        await db.get_resource("reports").upsert({"id": "daily", "orders_per_status": report})
        return report

    scheduler = SchedulerPlugin(
        jobs={
            "inventory_sync": {"schedule": "*/15 * * * *", "action": inventory_sync},
            "daily_reports": {"schedule": "0 9 * * *", "action": daily_reports},
        }
    )
    return machines, stock, scheduler


async def main(url: str = URL) -> dict[str, Any]:
    """Run the workflow on ``url``; returns the report, stock levels and histories."""
    machines, stock, scheduler = build_plugins()
    async with Database(url, plugins=[machines, stock, scheduler]) as db:
        inventory = await db.create_resource("inventory", attributes={"name": "string"})
        orders = await db.create_resource(
            "orders", attributes={"customer": "string", "items": "json", "status": "string"}
        )
        reports = await db.create_resource("reports", attributes={"orders_per_status": "json"})
        await inventory.insert({"id": "tea", "name": "Green tea"})
        await inventory.insert({"id": "mug", "name": "Mug"})
        await stock.set("inventory", "tea", "quantity", 10)
        await stock.set("inventory", "mug", "quantity", 2)

        plans = {
            "o1": ({"tea": 2, "mug": 1}, ["CONFIRM", "SHIP", "DELIVER"]),
            "o2": ({"tea": 1}, ["CONFIRM", "CANCEL"]),
            "o3": ({"mug": 5}, ["CONFIRM"]),  # refused: only 1 mug left
            "o4": ({"tea": 3}, ["CONFIRM", "SHIP"]),
        }
        refused: list[str] = []
        for oid, (items, events) in plans.items():
            await orders.insert({"id": oid, "customer": "ann", "items": items, "status": "pending"})
            await machines.initialize("order_processing", oid, {"items": items})
            for event in events:
                if await machines.can("order_processing", oid, event):
                    await machines.send("order_processing", oid, event)
                else:
                    refused.append(f"{oid}:{event}")

        await scheduler.run_job("inventory_sync")
        run = await scheduler.run_job("daily_reports")
        assert run["status"] == "succeeded", run
        report = (await reports.get("daily"))["orders_per_status"]
        levels = {r["id"]: r["quantity"] for r in await inventory.list()}
        histories = {
            oid: [h["event"] for h in await machines.history("order_processing", oid)]
            for oid in plans
        }
    print("orders per status:", report)
    print("stock:", levels, "refused:", refused)
    for oid, events in histories.items():
        print(f"  {oid}: {' -> '.join(events) or '(none)'}")
    return {"report": report, "stock": levels, "refused": refused, "histories": histories}


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else URL
    if target == URL:
        shutil.rmtree(".s3db-ecommerce", ignore_errors=True)
    asyncio.run(main(target))
