"""Section ``stores``: the ObjectStore layer, per store and against raw clients.

- ``stores``: ops/s of ``put``/``get``/``head``/``list`` at concurrency 1 and 64 on every
  selected store, with the requests each operation sent (from ``store.stats``).
- ``clients``: on each S3 server (SeaweedFS, moto), ``put``/``get`` ops/s of S3Store, of
  raw obstore and of raw aioboto3 against the same server, measured in short interleaved
  slices so server drift hits all three alike.
- ``ratios``: S3Store / obstore and S3Store / aioboto3 (median of the per-slice ratios);
  ``targets`` checks the issue's goals on SeaweedFS (S3Store >= 90% of obstore and >= 3x
  aioboto3).

Bodies are ~200 bytes with four metadata fields, like a small record.
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from benchmarks._common import BODY, METADATA, BenchContext, Op, run_ops
from s3db_async.stores import ObjectStore, open_store

TITLE = "ObjectStore ops/s and requests/op; S3Store vs raw obstore vs aioboto3"
CONCURRENCY = (1, 64)
KEYS = 500
LIST_KEYS = 100
CONTENT_TYPE = "application/json"


def _key(i: int) -> str:
    return f"obj/{i % KEYS:05d}"


async def _populate(put: Op, n: int) -> None:
    await run_ops(put, n, 32)


async def _bench_store(ctx: BenchContext, name: str) -> dict[str, Any]:
    store: ObjectStore = open_store(ctx.url(name))
    await store.connect()
    try:
        await _populate(lambda i: store.put(_key(i), BODY, METADATA), KEYS)
        await _populate(lambda i: store.put(f"list/{i:03d}", BODY, METADATA), LIST_KEYS)
        ops: dict[str, Op] = {
            "put": lambda i: store.put(_key(i), BODY, METADATA, content_type=CONTENT_TYPE),
            "get": lambda i: store.get(_key(i)),
            "head": lambda i: store.head(_key(i)),
            "list": lambda i: store.list_keys("list/"),
        }
        out: dict[str, Any] = {}
        for op, fn in ops.items():
            out[op] = {}
            for c in CONCURRENCY:
                r = await ctx.measure(fn, concurrency=c, stats=store.stats)
                ctx.log(f"{name:9} {op:4} c={c:<3} {r['ops_per_s']:>10.1f} ops/s")
                out[op][f"c{c}"] = r
        return out
    finally:
        await store.close()


# -- raw clients -------------------------------------------------------------------------


class _Client:
    name = ""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, i: int) -> None: ...

    async def get(self, i: int) -> None: ...


class _S3StoreClient(_Client):
    name = "s3store"

    def __init__(self, ctx: BenchContext, server: str) -> None:
        self.store = open_store(ctx.url(server))

    async def open(self) -> None:
        await self.store.connect()

    async def close(self) -> None:
        await self.store.close()

    async def put(self, i: int) -> None:
        await self.store.put(_key(i), BODY, METADATA, content_type=CONTENT_TYPE)

    async def get(self, i: int) -> None:
        await self.store.get(_key(i))


class _ObstoreClient(_Client):
    """obstore used directly: the ceiling S3Store is held to."""

    name = "obstore"

    def __init__(self, ctx: BenchContext, server: str) -> None:
        import obstore
        from obstore.store import S3Store

        s = ctx.servers[server]
        self.obstore = obstore
        self.prefix = f"raw-obstore-{uuid.uuid4().hex[:8]}/"
        self.attributes = {**METADATA, "Content-Type": CONTENT_TYPE}
        self.client = S3Store(
            s.bucket,
            endpoint=s.endpoint,
            access_key_id=s.access_key,
            secret_access_key=s.secret_key,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "pool_max_idle_per_host": "100"},
        )

    async def put(self, i: int) -> None:
        await self.obstore.put_async(
            self.client,
            self.prefix + _key(i),
            BODY,
            attributes=self.attributes,
        )

    async def get(self, i: int) -> None:
        res = await self.obstore.get_async(self.client, self.prefix + _key(i))
        bytes(await res.bytes_async())

    async def close(self) -> None:
        del self.client


class _Aioboto3Client(_Client):
    """aioboto3 with a pool as large as the others' (``pool=None``: botocore's default, 10)."""

    name = "aioboto3"

    def __init__(self, ctx: BenchContext, server: str, pool: int | None = 100) -> None:
        if pool is None:
            self.name = "aioboto3_default_pool"
        self.pool = pool
        self.server = ctx.servers[server]
        self.prefix = f"raw-aioboto3-{uuid.uuid4().hex[:8]}/"
        self._cm: Any = None
        self.s3: Any = None

    async def open(self) -> None:
        import aioboto3
        from aiobotocore.config import AioConfig

        s = self.server
        pool: dict[str, Any] = {"max_pool_connections": self.pool} if self.pool else {}
        session: Any = aioboto3.Session()
        self._cm = session.client(
            "s3",
            endpoint_url=s.endpoint,
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key,
            region_name="us-east-1",
            config=AioConfig(s3={"addressing_style": "path"}, **pool),
        )
        self.s3 = await self._cm.__aenter__()

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)

    async def put(self, i: int) -> None:
        await self.s3.put_object(
            Bucket=self.server.bucket,
            Key=self.prefix + _key(i),
            Body=BODY,
            Metadata=METADATA,
            ContentType=CONTENT_TYPE,
        )

    async def get(self, i: int) -> None:
        res = await self.s3.get_object(Bucket=self.server.bucket, Key=self.prefix + _key(i))
        async with res["Body"] as body:
            await body.read()


async def _bench_point(
    ctx: BenchContext, clients: list[_Client], op: str, concurrency: int
) -> dict[str, dict[str, Any]]:
    """One (op, concurrency) point for every client, in interleaved slices.

    Each client runs ``4 * rounds + 2`` short slices, alternating with the others, so a
    server that speeds up or slows down over time affects all clients alike. ops/s is the
    total over the slices; the per-slice rates are kept for paired ratios.
    """
    slices = 4 * ctx.rounds + 2
    slice_seconds = 2 * ctx.target_seconds / slices
    sizes: dict[str, int] = {}
    for client in clients:  # calibrate (and warm up) each client
        fn = getattr(client, op)
        warm = max(20, concurrency * 2)
        rate = warm / max(await run_ops(fn, warm, concurrency), 1e-6)
        sizes[client.name] = max(warm, int(rate * slice_seconds))
    runs: dict[str, list[tuple[int, float]]] = {c.name: [] for c in clients}
    for i in range(slices):
        for client in clients[i % len(clients) :] + clients[: i % len(clients)]:
            n = sizes[client.name]
            runs[client.name].append((n, await run_ops(getattr(client, op), n, concurrency)))
    out: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        ops = sum(n for n, _ in rs)
        secs = sum(t for _, t in rs)
        rates = [n / t for n, t in rs]
        out[name] = {
            "ops_per_s": round(ops / secs, 1),
            "n": ops,
            "seconds": round(secs, 3),
            "concurrency": concurrency,
            "slice_ops_per_s": [round(r, 1) for r in rates],
        }
    return out


async def _bench_clients(ctx: BenchContext, server: str) -> dict[str, Any]:
    clients: list[_Client] = [
        _S3StoreClient(ctx, server),
        _ObstoreClient(ctx, server),
        _Aioboto3Client(ctx, server),
        _Aioboto3Client(ctx, server, pool=None),
    ]
    result: dict[str, dict[str, dict[str, Any]]] = {c.name: {} for c in clients}
    try:
        for client in clients:
            await client.open()
            await _populate(client.put, KEYS)
        for op in ("put", "get"):
            for c in CONCURRENCY:
                point = f"{op}_c{c}"
                for name, r in (await _bench_point(ctx, clients, op, c)).items():
                    result[name][point] = r
                    ctx.log(f"{server:9} {name:8} {point:7} {r['ops_per_s']:>9.1f} ops/s")
    finally:
        for client in clients:
            await client.close()
    return result


def _paired(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over slices of a's rate / b's rate (slices adjacent in time are paired)."""
    pairs: list[float] = [
        x / y for x, y in zip(a["slice_ops_per_s"], b["slice_ops_per_s"], strict=True)
    ]
    return statistics.median(pairs)


def _ratios(clients: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """S3Store against each raw client: median of per-slice ratios (robust to drift)."""
    out: dict[str, Any] = {}
    for point in clients["s3store"]:
        mine = clients["s3store"][point]
        out[point] = {
            "vs_obstore": round(_paired(mine, clients["obstore"][point]), 3),
            "vs_aioboto3": round(_paired(mine, clients["aioboto3"][point]), 2),
            "vs_aioboto3_default_pool": round(
                _paired(mine, clients["aioboto3_default_pool"][point]), 2
            ),
            # the most any obstore-based store could reach against this server
            "obstore_vs_aioboto3": round(
                _paired(clients["obstore"][point], clients["aioboto3"][point]), 2
            ),
        }
    return out


def _targets(ratios: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals: >= 90% of raw obstore and >= 3x raw aioboto3 (same pool size)."""
    checks: dict[str, bool] = {}
    for point, r in ratios.items():
        checks[f"{point} s3store/obstore >= 0.9"] = r["vs_obstore"] >= 0.9
        checks[f"{point} s3store/aioboto3 >= 3"] = r["vs_aioboto3"] >= 3.0
    return {"all_met": all(checks.values()), **checks}


async def run(ctx: BenchContext) -> dict[str, Any]:
    out: dict[str, Any] = {"stores": {}, "clients": {}, "ratios": {}}
    for name in ctx.stores:
        ctx.log(f"store {name}")
        out["stores"][name] = await _bench_store(ctx, name)
    for server in ("seaweedfs", "moto"):
        if server in ctx.servers:
            ctx.log(f"clients on {server}")
            clients = await _bench_clients(ctx, server)
            out["clients"][server] = clients
            out["ratios"][server] = _ratios(clients)
    if "seaweedfs" in out["ratios"]:
        out["targets"] = {"seaweedfs": _targets(out["ratios"]["seaweedfs"])}
    return out
