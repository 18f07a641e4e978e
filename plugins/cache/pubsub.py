"""Cross-process invalidation over Redis pub/sub for the CachePlugin.

Every invalidation a process makes is published on one channel per database (and plugin
namespace); every other process drops the matching entries of its in-process layers at
once. A message can be missed (a dropped connection): on reconnecting, a process drops
everything its in-process layers hold, and ``max_staleness`` bounds the rest.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .drivers import require_redis

if TYPE_CHECKING:
    from .plugin import CachePlugin

__all__ = ["InvalidationBus"]


class InvalidationBus:
    """Publishes this process's invalidations and applies the others' (see module doc)."""

    def __init__(self, plugin: CachePlugin, url: str, *, channel: str) -> None:
        require_redis()
        import redis.asyncio as aioredis

        self.plugin = plugin
        self.url = url
        self.channel = channel
        self.origin = uuid.uuid4().hex
        self.client = aioredis.Redis.from_url(url, decode_responses=False)
        self.pubsub: Any = None
        self.received = 0
        self.published = 0
        self.reconnects = 0

    async def subscribe(self) -> None:
        """Subscribe now (so a write published after this returns is seen)."""
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(self.channel)
        # redis-py reconnects a dropped pub/sub connection by itself on the next read and
        # subscribes again without raising, so a lost connection is seen here, not as an error.
        self.pubsub.connection.register_connect_callback(self._reconnected)

    def _reconnected(self, connection: Any) -> None:
        """The connection came back: messages may have been missed, so forget local entries."""
        self.plugin.drop_local()
        self.reconnects += 1

    async def publish(self, message: Mapping[str, Any]) -> None:
        payload = json.dumps({"o": self.origin, **message}, separators=(",", ":"))
        try:
            await self.client.publish(self.channel, payload)
            self.published += 1
        except Exception as exc:  # the write succeeded; others fall back on max_staleness
            self.plugin.log.warning(
                "cache invalidation not published: %s", exc, extra={"op": "publish"}
            )

    async def listen(self) -> None:
        """Apply messages until cancelled; on a lost connection, drop the local entries
        (messages may have been missed) and subscribe again."""
        delay = 0.1
        task = asyncio.current_task()
        while True:
            try:
                if self.pubsub is None:
                    await self.subscribe()
                    self.plugin.drop_local()
                    self.reconnects += 1
                while True:
                    msg = await self.pubsub.get_message(timeout=1.0)
                    if task is not None and task.cancelling():
                        # The read's own timeout (asyncio.timeout on 3.11) can absorb a
                        # cancel that lands as it expires: the stop still stands.
                        raise asyncio.CancelledError
                    if msg is None or msg.get("type") != "message":
                        continue
                    delay = 0.1
                    self._apply(msg.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.plugin.log.warning(
                    "cache pub/sub connection lost: %s", exc, extra={"op": "subscribe"}
                )
                await self._drop_pubsub()
                self.plugin.drop_local()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict) or message.get("o") == self.origin:
            return
        self.received += 1
        self.plugin.remote_invalidation(message)

    async def _drop_pubsub(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:
                pass

    async def close(self) -> None:
        await self._drop_pubsub()
        await self.client.aclose()
