"""s3db-async quickstart: a small shop on the embedded file store.

Run it with ``make demo`` (or ``python examples/quickstart.py``). It creates two
resources (one partitioned, one with a secret field), inserts, queries, updates,
lists by partition and prints a table. Data lives in ``./.s3db-demo``.
"""

from __future__ import annotations

import asyncio
import shutil

from rich.console import Console
from rich.table import Table

from s3db_async import Database

URL = "file://./.s3db-demo"
console = Console()


async def main() -> None:
    shutil.rmtree(".s3db-demo", ignore_errors=True)
    async with Database(URL, passphrase="demo-passphrase") as db:
        customers = await db.create_resource(
            "customers",
            attributes={
                "name": "string|required|min:2",
                "email": "string|required|email",
                "region": "string|enum:eu,us,apac",
                "vip": "boolean|default:false",
                "api_key": "secret",
                "profile": {"city": "string|optional", "tags": "array|items:string|optional"},
            },
            partitions={"by_region": {"fields": {"region": "string"}}},
            timestamps=True,
        )
        orders = await db.create_resource(
            "orders",
            attributes={"customer_id": "string|required", "total": "number|min:0", "items": "json"},
        )

        people = [
            ("Ann Lee", "eu", "Lisbon"),
            ("Bo Chen", "apac", "Singapore"),
            ("Cara Diaz", "us", "Austin"),
            ("Dan Okafor", "eu", "Berlin"),
            ("Eve Martin", "us", "Boston"),
        ]
        inserted = await customers.insert_many(
            {
                "name": name,
                "email": f"{name.split()[0].lower()}@example.com",
                "region": region,
                "api_key": f"sk-{i:04d}-do-not-print",
                "profile": {"city": city, "tags": ["new"]},
            }
            for i, (name, region, city) in enumerate(people)
        )
        ids = [r["id"] for r in inserted.ok]
        console.print(f"inserted {len(ids)} customers")

        for cid, total in zip(ids, (120.5, 18.0, 640.0, 42.0, 99.9), strict=True):
            await orders.insert({"customer_id": cid, "total": total, "items": [{"sku": "A1"}]})

        big = await orders.query({"total": {"$gte": 100}})
        console.print(f"orders of 100 or more: {len(big)}")

        await customers.update(ids[0], {"vip": True, "profile": {"tags": ["new", "vip"]}})
        ann = await customers.get(ids[0])
        console.print(f"{ann['name']} is VIP: {ann['vip']}, tags {ann['profile']['tags']}")
        console.print(f"secret decrypted on read: {ann['api_key'][:8]}…")

        eu = await customers.list(partition="by_region", partition_values={"region": "eu"})
        console.print(f"customers in the eu partition: {[c['name'] for c in eu]}")
        console.print(f"customers per region: {await customers.count(by='region')}")

        table = Table(title="customers")
        for col in ("name", "region", "city", "vip"):
            table.add_column(col)
        async for c in customers.stream():
            table.add_row(c["name"], c["region"], c["profile"]["city"], "yes" if c["vip"] else "")
        console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
