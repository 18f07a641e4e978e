"""Issue 16 item 1 on the real S3Store path: a proxy drops the server's answer to a
conditional PUT after the server applied it (moto and SeaweedFS).

Before the fix S3Store resent the PUT (obstore's "error sending request" was taken for
"not sent"), the resend answered 412 and ``update`` re-applied its change (``n == 2``),
``insert`` raised ``AlreadyExistsError`` for the record it had just written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from s3db_async import Database, PluginStorage

from .._faults import ReplyDroppingProxy
from .._servers import S3Server

pytestmark = pytest.mark.stores("moto", "seaweedfs")


def _conditional_put_of(fragment: bytes):  # type: ignore[no-untyped-def]
    def match(head: bytes) -> bool:
        lowered = head.lower()
        return (
            head.startswith(b"PUT ")
            and fragment in head.split(b"\r\n", 1)[0]
            and (b"\r\nif-match:" in lowered or b"\r\nif-none-match:" in lowered)
        )

    return match


@pytest.fixture
async def proxied(
    store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Database, ReplyDroppingProxy]]:
    server: S3Server = request.getfixturevalue(f"{store_kind}_server")
    proxy = ReplyDroppingProxy("127.0.0.1", server.port).start()
    url = server.url(f"lost{id(proxy):x}", endpoint=f"http://127.0.0.1:{proxy.port}")
    db = Database(url + "?max_retries=2", passphrase="test-passphrase")
    await db.connect()
    try:
        yield db, proxy
    finally:
        await db.disconnect()
        proxy.close()


async def test_update_and_insert_with_dropped_replies(
    proxied: tuple[Database, ReplyDroppingProxy],
) -> None:
    db, proxy = proxied
    res = await db.create_resource(
        "counters",
        attributes={"n": "integer|required", "kind": "string"},
        partitions={"by_kind": {"fields": {"kind": "string"}}},
    )
    proxy.drop(1, _conditional_put_of(b"/data/id%3Dk"))
    rec = await res.insert({"id": "k", "n": 0, "kind": "a"})
    assert len(proxy.dropped) == 1 and rec["id"] == "k"

    proxy.drop(1, _conditional_put_of(b"/data/id%3Dk"))
    updated = await res.update("k", lambda r: {"n": r["n"] + 1, "kind": "b"})
    assert len(proxy.dropped) == 2
    assert updated["n"] == 1 and (await res.get("k"))["n"] == 1
    assert await res.list_ids(partition="by_kind", partition_values={"kind": "b"}) == ["k"]
    assert await res.count(partition="by_kind", partition_values={"kind": "a"}) == 0


async def test_sequence_with_dropped_replies(
    proxied: tuple[Database, ReplyDroppingProxy],
) -> None:
    db, proxy = proxied
    storage = PluginStorage(db, "seq")
    proxy.drop(3, _conditional_put_of(b"sequence%3Dorders"))
    assert [await storage.next_sequence("orders") for _ in range(3)] == [1, 2, 3]
    assert len(proxy.dropped) == 3


def test_s3_retry_classification() -> None:
    """Conditional writes are resent only when provably not applied."""
    from obstore import exceptions as obx

    from s3db_async.stores._s3 import _ambiguous, _retriable

    sent = obx.GenericError("Error performing PUT - HttpError { kind: Request, source: x }")
    timeout = obx.GenericError("Error performing PUT - HttpError { kind: Timeout, source: x }")
    never = obx.GenericError("Error performing PUT - HttpError { kind: Connect, source: x }")
    for exc in (sent, timeout):
        assert not _retriable(exc, None, idempotent=False) and _ambiguous(exc, None)
        assert _retriable(exc, None, idempotent=True)
    assert _retriable(never, None, idempotent=False) and not _ambiguous(never, None)
    for status in (409, 429, 503):
        assert _retriable(sent, status, idempotent=False) and not _ambiguous(sent, status)
    assert not _retriable(sent, 500, idempotent=False) and _ambiguous(sent, 500)
    assert _retriable(sent, 500, idempotent=True)
    assert not _ambiguous(sent, 412) and not _retriable(sent, 412, idempotent=True)
