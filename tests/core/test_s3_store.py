"""S3Store specifics on real servers (moto and SeaweedFS).

The generic contract (put/get/list/conditional writes) lives in test_store_contract.py;
this file covers what only an HTTP store has: connect errors, credentials, encoding on
the wire, the capability probe, retries and honest request counts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from s3db_async.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigError,
    EndpointUnreachableError,
    MissingDependencyError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
    UnsupportedCapabilityError,
)
from s3db_async.stores import CommonPrefix, ListEntry, ObjectStore, S3Store, encode_metadata_value
from s3db_async.stores import _s3 as s3mod
from s3db_async.stores._aws import ensure_bucket
from tests._servers import CountingProxy, S3Server, free_port

pytestmark = pytest.mark.stores("moto", "seaweedfs")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(request: pytest.FixtureRequest, store_kind: str) -> S3Server:
    """The running server of the current store kind (moto or SeaweedFS)."""
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    return server


@pytest.fixture
def proxy(server: S3Server) -> Iterator[CountingProxy]:
    with CountingProxy(server.endpoint) as p:
        yield p


@pytest.fixture
async def proxied(server: S3Server, proxy: CountingProxy) -> AsyncIterator[S3Store]:
    store = S3Store(
        server.url(f"px{uuid.uuid4().hex[:10]}", endpoint=proxy.endpoint) + "?max_retries=3"
    )
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


def _prefix() -> str:
    return f"s3t{uuid.uuid4().hex[:10]}"


# -- connect errors ------------------------------------------------------------------------


async def test_missing_bucket_raises_bucket_not_found(server: S3Server) -> None:
    store = S3Store(server.url(_prefix(), bucket="s3db-no-such-bucket"))
    with pytest.raises(BucketNotFoundError) as info:
        await store.connect()
    err = info.value
    assert "s3db-no-such-bucket" in err.message and server.endpoint in err.message
    assert err.suggestion and "s3db --url" in err.suggestion and "init" in err.suggestion
    assert isinstance(err, KeyError)  # NotFoundError stays a KeyError
    await store.close()


@pytest.mark.stores("seaweedfs")  # moto accepts any signature
async def test_wrong_secret_raises_authentication_error(server: S3Server) -> None:
    url = server.url(_prefix()).replace("s3dbtestsecret", "wrongsecret", 1)
    store = S3Store(url)
    with pytest.raises(AuthenticationError) as info:
        await store.connect()
    assert info.value.suggestion and "KEY:SECRET" in info.value.suggestion
    assert isinstance(info.value, PermissionError)
    assert "wrongsecret" not in str(info.value)
    with pytest.raises(AuthenticationError):
        await store.put("k", b"x")
    with pytest.raises(AuthenticationError):
        await store.list_keys("")
    await store.close()


async def test_unreachable_endpoint_fails_fast() -> None:
    port = free_port()  # nothing listens there
    store = S3Store(f"http://k:s@127.0.0.1:{port}/some-bucket/p?connect_timeout=1")
    t0 = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        await store.connect()
    assert time.monotonic() - t0 < 3
    assert info.value.retriable and info.value.suggestion
    assert f"127.0.0.1:{port}" in info.value.message
    assert isinstance(info.value, ConnectionError)
    await store.close()


async def test_ensure_bucket_creates_once(server: S3Server) -> None:
    bucket = f"s3db-new-{uuid.uuid4().hex[:8]}"
    url = server.url("pre", bucket=bucket)
    with pytest.raises(BucketNotFoundError):
        await S3Store(url).connect()
    assert await ensure_bucket(url) is True
    assert await ensure_bucket(url) is False
    async with S3Store(url) as store:
        await store.put("k", b"1")
        assert await store.list_keys("") == ["k"]


async def test_ensure_bucket_needs_aioboto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aioboto3", None)
    with pytest.raises(MissingDependencyError) as info:
        await ensure_bucket("http://k:s@127.0.0.1:9/bkt")
    assert "s3db-async[aws]" in str(info.value)


def test_rejects_non_s3_urls() -> None:
    with pytest.raises(ConfigError):
        S3Store("memory://x")


def test_connection_string_options() -> None:
    store = S3Store(
        "http://k:s@127.0.0.1:9/bkt/pre/fix?parallelism=8&timeout=7&max_retries=2"
        "&connect_timeout=1.5&region=eu-west-1"
    )
    assert (store.parallelism, store.timeout, store.max_retries) == (8, 7.0, 2)
    assert (store.connect_timeout, store.region, store.prefix) == (1.5, "eu-west-1", "pre/fix/")
    assert "s:" not in store.url and "***" in store.url
    assert S3Store("http://k:s@127.0.0.1:9/bkt", parallelism=3, max_retries=0).max_retries == 0
    assert S3Store("http://k:s@127.0.0.1:9/bkt").region == "us-east-1"


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore.auth.boto3", None)
    store = S3Store("s3://some-bucket/prefix")
    with pytest.raises(MissingDependencyError) as info:
        _ = store.client
    assert "s3db-async[aws]" in str(info.value)


# -- wire format ---------------------------------------------------------------------------


async def test_non_ascii_metadata_is_sent_encoded(server: S3Server) -> None:
    prefix = _prefix()
    value = "Zoë 😀 ünï 日本"
    async with S3Store(server.url(prefix)) as store:
        await store.put("doc", b"{}", {"Title": value, "plain": "ascii ok"})
        obj = await store.get("doc")
        assert obj.metadata == {"title": value, "plain": "ascii ok"}
        assert (await store.head("doc")).metadata == obj.metadata
    client = server.boto3_client()
    raw = client.head_object(Bucket=server.bucket, Key=f"{prefix}/doc")
    client.close()
    assert raw["Metadata"]["title"] == encode_metadata_value(value)
    assert raw["Metadata"]["title"].isascii()
    assert raw["Metadata"]["plain"] == "ascii ok"


async def test_content_type_and_special_keys(store: ObjectStore) -> None:
    keys = ["sp ace/x", "hash#/y", "pct%41", "plus+eq=amp&", "ünï/日本", "q?uery"]
    for k in keys:
        await store.put(k, k.encode(), content_type="text/plain")
    for k in keys:
        obj = await store.get(k)
        assert obj.body == k.encode() and obj.content_type == "text/plain"
    assert sorted(await store.list_keys("")) == sorted(keys)
    await store.put("default-ct", b"")
    assert (await store.head("default-ct")).content_type == "application/octet-stream"


async def test_character_prefix_listing(store: ObjectStore) -> None:
    keys = ["id=a1", "id=a2", "id=a2/sub", "id=b1", "ida", "id", "other/x"]
    for k in keys:
        await store.put(k, b"1")
    assert await store.list_keys("id=a") == ["id=a1", "id=a2", "id=a2/sub"]
    assert await store.list_keys("id") == ["id", "id=a1", "id=a2", "id=a2/sub", "id=b1", "ida"]
    assert await store.list_keys("id=a2/") == ["id=a2/sub"]
    assert await store.list_keys("zzz") == []
    assert [e.key async for e in store.list("id=", start_after="id=a2")] == ["id=a2/sub", "id=b1"]
    assert [e.key async for e in store.list("id=", limit=1)] == ["id=a1"]
    shallow = [
        e.prefix if isinstance(e, CommonPrefix) else e.key
        async for e in store.list("id=a", delimiter="/")
    ]
    assert shallow == ["id=a1", "id=a2", "id=a2/"]
    dashed = [
        e.prefix if isinstance(e, CommonPrefix) else e.key
        async for e in store.list("id", delimiter="=")
    ]
    assert dashed == ["id", "id=", "ida"]


async def test_list_entries_carry_size_etag_and_time(store: ObjectStore) -> None:
    etag = await store.put("e/1", b"12345")
    (entry,) = [e async for e in store.list("e/")]
    assert isinstance(entry, ListEntry)
    assert (entry.key, entry.size, entry.etag) == ("e/1", 5, etag)
    assert entry.last_modified.tzinfo is not None


async def test_delete_if_match_is_refused_without_a_request(store: ObjectStore) -> None:
    etag = await store.put("d", b"1")
    store.stats.reset()
    with pytest.raises(UnsupportedCapabilityError) as info:
        await store.delete("d", if_match=etag)
    assert info.value.suggestion and "tombstone" in info.value.suggestion
    assert store.stats.total() == 0
    assert await store.exists("d")


async def test_errors_never_leak_obstore_types(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        await store.copy("absent", "x")
    with pytest.raises(PreconditionFailed):
        await store.put("absent", b"1", if_none_match=True, if_match='"x"')


# -- capabilities --------------------------------------------------------------------------


async def test_capabilities_probe_true_and_cached(server: S3Server) -> None:
    async with S3Store(server.url(_prefix())) as store:
        caps = await store.capabilities()
    assert caps.conditional_create and caps.conditional_update and caps.conditional_writes
    assert caps.conditional_delete is False
    # a second store on the same endpoint reuses the probe: only the bucket check is sent
    second = S3Store(server.url(_prefix()))
    await second.connect()
    assert second.stats.snapshot() == {"get": 1}
    assert await second.capabilities() == caps
    await second.close()


async def test_probe_cleans_up(server: S3Server) -> None:
    prefix = _prefix()
    store = S3Store(server.url(prefix))
    s3mod._CAPABILITIES.pop(store._capability_key(), None)
    await store.connect()
    assert store.stats["put"] == 5 and store.stats["delete_many"] == 1
    assert await store.list_keys("") == []
    await store.close()


# -- retries and request accounting ---------------------------------------------------------


_METHOD_OF = {
    "put": "PUT",
    "copy": "PUT",
    "get": "GET",
    "list": "GET",
    "head": "HEAD",
    "delete": "POST",  # obstore deletes one key with a one-key DeleteObjects request
    "delete_many": "POST",
}


def _by_method(stats: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for op, n in stats.items():
        out[_METHOD_OF[op]] = out.get(_METHOD_OF[op], 0) + n
    return out


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
async def test_request_counts_match_what_the_server_saw(
    server: S3Server, proxy: CountingProxy
) -> None:
    """store.stats against a counting proxy, no failures: every op of the contract."""
    s3mod._CAPABILITIES.clear()  # let connect() probe through the proxy too
    store = S3Store(server.url(_prefix(), endpoint=proxy.endpoint))
    await store.connect()
    keys = [f"many/{i:05d}" for i in range(1500)]
    sem = asyncio.Semaphore(32)

    async def put(k: str) -> None:
        async with sem:
            await store.put(k, b"x", {"n": k[-2:]})

    await asyncio.gather(*(put(k) for k in keys))
    e = await store.put("one", b"1", if_none_match=True)
    await store.put("one", b"2", if_match=e)
    with pytest.raises(PreconditionFailed):
        await store.put("one", b"3", if_match=e)
    await store.get("one")
    await store.head("one")
    with pytest.raises(NotFoundError):
        await store.get("missing")
    await store.copy("one", "two")
    assert len(await store.list_keys("many/")) == 1500  # 2 pages
    assert len(await store.list_keys("many/", limit=10)) == 10  # 1 page
    assert [x async for x in store.list("", delimiter="/")]
    await store.delete("two")
    assert await store.delete_many(keys) == 1500  # 2 batches
    await store.close()
    seen = proxy.snapshot()
    assert _by_method(store.stats.snapshot()) == seen, (store.stats.snapshot(), seen)
    assert store.stats["list"] == 4 and store.stats["delete_many"] == 3  # 2 + probe cleanup


@pytest.mark.slow
@pytest.mark.stores("seaweedfs", "moto")
async def test_a_full_page_listing_is_one_request(proxied: S3Store, proxy: CountingProxy) -> None:
    """Exactly 1,000 keys: one LIST on the wire (continuation tokens, not start-after), and
    keys nested under a key at a page boundary are not skipped."""
    keys = [f"d/{i:04d}" for i in range(999)] + ["d/a", "d/a/b", "d/a/c", "d/a0", "d/b"]
    sem = asyncio.Semaphore(32)

    async def put(k: str) -> None:
        async with sem:
            await proxied.put(k, b"")

    await asyncio.gather(*(put(k) for k in keys[:1000]))
    proxy.reset()
    proxied.stats.reset()
    assert len(await proxied.list_keys("d/")) == 1000
    assert proxied.stats["list"] == 1 and proxy.snapshot() == {"GET": 1}
    await asyncio.gather(*(put(k) for k in keys[1000:]))
    proxy.reset()
    proxied.stats.reset()
    assert await proxied.list_keys("d/") == keys  # 'd/a' ends page one, 'd/a/b' starts two
    assert proxied.stats["list"] == 2 and proxy.snapshot() == {"GET": 2}


async def test_retries_are_counted(proxied: S3Store, proxy: CountingProxy) -> None:
    proxied.stats.reset()
    proxy.reset()
    proxy.inject(503, times=2, method="PUT")
    await proxied.put("r", b"1")
    assert proxied.stats["put"] == 3
    proxy.inject(500, times=1, method="GET")
    assert (await proxied.get("r")).body == b"1"
    proxy.inject(503, times=4, method="HEAD")  # max_retries=3: 4 attempts, all fail
    with pytest.raises(StoreError) as info:
        await proxied.head("r")
    assert info.value.retriable and info.value.metadata["status"] == 503
    assert _by_method(proxied.stats.snapshot()) == proxy.snapshot()
    assert proxied.stats.snapshot() == {"put": 3, "get": 2, "head": 4}


async def test_4xx_answers_are_not_retried(proxied: S3Store, proxy: CountingProxy) -> None:
    await proxied.put("k", b"1")
    proxied.stats.reset()
    with pytest.raises(PreconditionFailed):
        await proxied.put("k", b"2", if_none_match=True)
    with pytest.raises(NotFoundError):
        await proxied.get("nope")
    assert proxied.stats.snapshot() == {"put": 1, "get": 1}


async def test_409_conflict_is_retried_for_conditional_writes(
    proxied: S3Store, proxy: CountingProxy
) -> None:
    proxied.stats.reset()
    proxy.inject(409, times=2, method="PUT", code="ConditionalRequestConflict")
    etag = await proxied.put("c", b"1", if_none_match=True)  # the retry is evaluated again
    assert proxied.stats["put"] == 3
    proxy.inject(409, times=1, method="PUT", code="ConditionalRequestConflict")
    await proxied.put("c", b"2", if_match=etag)
    proxy.inject(409, times=4, method="PUT", code="ConditionalRequestConflict")
    with pytest.raises(PreconditionFailed) as info:
        await proxied.put("c", b"3", if_none_match=True)
    assert info.value.retriable and info.value.status_code == 409
    proxy.inject(409, times=1, method="PUT", code="OperationAborted")
    await proxied.put("plain", b"x")  # a plain put is retried the same way


# -- shutdown ------------------------------------------------------------------------------


async def test_close_leaves_nothing_in_flight(server: S3Server) -> None:
    store = S3Store(server.url(_prefix()))
    await store.connect()
    await store.put("k", b"1")
    tasks = [asyncio.ensure_future(store.get("k")) for _ in range(20)]
    await asyncio.sleep(0)
    await store.close()
    assert not [f for f in store._inflight if not f.done()]
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # a closed store reopens on use
    assert (await store.get("k")).body == b"1"
    await store.close()


_EXIT_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {repo!r})
from s3db_async.stores import S3Store

async def main():
    store = S3Store({url!r})
    await store.connect()
    await asyncio.gather(*(store.put(f"k{{i}}", b"x", if_none_match=True) for i in range(40)))
    tasks = [asyncio.ensure_future(store.get(f"k{{i % 40}}")) for i in range(200)]
    await asyncio.sleep(0.005)
    for t in tasks[::2]:
        t.cancel()
    if {close}:
        await store.close()
    await asyncio.gather(*tasks, return_exceptions=True)

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.stores("seaweedfs")
def test_process_exits_cleanly_after_cancelled_requests(server: S3Server, tmp_path: Path) -> None:
    """Interpreter exit with requests cancelled mid-flight, with and without close(): rc 0.

    Without the store's exit drain this aborted (SIGABRT) in about 1 run of 13.
    """
    for i in range(8):
        script = tmp_path / f"exit{i}.py"
        script.write_text(
            textwrap.dedent(_EXIT_SCRIPT).format(
                repo=str(REPO), url=server.url(_prefix()), close=i % 2 == 0
            )
        )
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
