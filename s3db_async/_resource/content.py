"""Binary content attached to records (files, images, documents).

Content lives in its own object, ``resource={name}/content/id={id}``, so it never
competes with the record's fields for the body; deleting the record deletes it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFoundError

if TYPE_CHECKING:
    from .resource import Resource

__all__ = ["Content"]


class Content:
    """Binary content of one resource's records, behind :meth:`Resource.set_content` and
    friends (``*_impl``: what the facade runs through its middlewares)."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def content_key_for(self, record_id: str) -> str:
        return f"resource={self.resource.name}/content/id={record_id}"

    async def set_content_impl(
        self, record_id: str, content: bytes | str, content_type: str | None
    ) -> str:
        rid = self.resource._id(record_id)
        if not await self.resource.db.store.exists(self.resource.key_for(rid)):
            raise NotFoundError(
                f"{self.resource.name} record {rid!r} not found",
                suggestion="insert the record before attaching content",
                metadata={"resource": self.resource.name, "id": rid},
            )
        if isinstance(content, str):
            body = content.encode("utf-8")
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            body = bytes(content)
        return await self.resource.db.store.put(
            self.content_key_for(rid), body, content_type=content_type or "application/octet-stream"
        )

    async def get_content_impl(self, record_id: str) -> tuple[bytes, str | None]:
        rid = self.resource._id(record_id)
        try:
            obj = await self.resource.db.store.get(self.content_key_for(rid))
        except NotFoundError:
            raise NotFoundError(
                f"{self.resource.name} record {rid!r} has no content",
                suggestion="attach it with set_content()",
                metadata={"resource": self.resource.name, "id": rid},
            ) from None
        return obj.body, obj.content_type

    async def has_content(self, record_id: str) -> bool:
        return await self.resource.db.store.exists(
            self.content_key_for(self.resource._id(record_id))
        )

    async def delete_content(self, record_id: str) -> None:
        await self.resource.db.store.delete(self.content_key_for(self.resource._id(record_id)))
