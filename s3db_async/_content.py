"""Binary content attached to records (files, images, documents).

Content lives in its own object, ``resource={name}/content/id={id}``, so it never
competes with the record's fields for the body; deleting the record deletes it too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .errors import NotFoundError

if TYPE_CHECKING:
    from ._database import Database
    from ._extensions import CallArgs, CallResult

__all__ = ["ContentMixin"]


class ContentMixin:
    """``set_content``/``get_content``/``has_content``/``delete_content`` of a resource."""

    if TYPE_CHECKING:
        name: str
        db: Database

        def key_for(self, record_id: str) -> str: ...
        def _id(self, value: object) -> str: ...
        async def _call(
            self,
            method: str,
            impl: Callable[CallArgs, Awaitable[CallResult]],
            /,
            *a: CallArgs.args,
            **kw: CallArgs.kwargs,
        ) -> CallResult: ...

    def content_key_for(self, record_id: str) -> str:
        """Object key of a record's binary content."""
        return f"resource={self.name}/content/id={record_id}"

    async def set_content(
        self, record_id: str, content: bytes | str, content_type: str | None = None
    ) -> str:
        """Attach binary content to an existing record; returns the content's etag.

        :raises NotFoundError: no such record.
        """
        return await self._call("set_content", self._set_content, record_id, content, content_type)

    async def _set_content(
        self, record_id: str, content: bytes | str, content_type: str | None
    ) -> str:
        rid = self._id(record_id)
        if not await self.db.store.exists(self.key_for(rid)):
            raise NotFoundError(
                f"{self.name} record {rid!r} not found",
                suggestion="insert the record before attaching content",
                metadata={"resource": self.name, "id": rid},
            )
        if isinstance(content, str):
            body = content.encode("utf-8")
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            body = bytes(content)
        return await self.db.store.put(
            self.content_key_for(rid), body, content_type=content_type or "application/octet-stream"
        )

    async def get_content(self, record_id: str) -> tuple[bytes, str | None]:
        """``(bytes, content_type)`` of a record's content.

        :raises NotFoundError: the record has no content.
        """
        return await self._call("get_content", self._get_content, record_id)

    async def _get_content(self, record_id: str) -> tuple[bytes, str | None]:
        rid = self._id(record_id)
        try:
            obj = await self.db.store.get(self.content_key_for(rid))
        except NotFoundError:
            raise NotFoundError(
                f"{self.name} record {rid!r} has no content",
                suggestion="attach it with set_content()",
                metadata={"resource": self.name, "id": rid},
            ) from None
        return obj.body, obj.content_type

    async def has_content(self, record_id: str) -> bool:
        """True when the record has content (one HEAD)."""
        return await self.db.store.exists(self.content_key_for(self._id(record_id)))

    async def delete_content(self, record_id: str) -> None:
        """Remove a record's content (the record stays)."""
        await self.db.store.delete(self.content_key_for(self._id(record_id)))
