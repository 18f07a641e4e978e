"""A Model Context Protocol server over stdio, on the official ``mcp`` SDK.

::

    s3db --url file://./data mcp                   # read-only tools
    s3db --url file://./data mcp --allow-writes    # plus insert, update and delete
    s3db --url file://./data mcp --reveal-secrets  # hand decrypted secrets to the assistant

Tools: ``list_resources``, ``get_schema(resource)``, ``get(resource, id)``,
``query(resource, filter, limit)``, ``count(resource, partition, partition_values, by)`` and,
only with ``allow_writes``, ``insert(resource, data)``, ``update(resource, id, changes)``,
``delete(resource, id)``. A failing call comes back as a tool error whose text is the
error's class, message and suggestion; never a traceback. Records are returned as JSON
(dates as ISO strings, bytes as base64, decimals as strings).

``secret`` and ``password`` fields (nested and array ones included) come back as ``"***"``
and a ``query`` filter may not test them (it would reveal them bit by bit), unless the
server is built with ``reveal_secrets=True`` (``s3db mcp --reveal-secrets``).

Needs the ``mcp`` extra: ``pip install 's3db-async[mcp]'``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .._deps import require_dependency
from .._record import mask
from .._resource.query import sensitive_conditions
from ..errors import S3dbError, ValidationError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .._database import Database
    from .._resource.resource import Resource

__all__ = ["READ_TOOLS", "WRITE_TOOLS", "build_server", "serve_stdio", "tool_error_text"]

READ_TOOLS = ("list_resources", "get_schema", "get", "query", "count")
WRITE_TOOLS = ("insert", "update", "delete")
MCP_MIN_VERSION = "2.3"
DEFAULT_QUERY_LIMIT = 100

T = TypeVar("T")


def _require_mcp() -> None:
    require_dependency(
        "mcp",
        extra="mcp",
        min_version=MCP_MIN_VERSION,
        description="the Model Context Protocol SDK, for 's3db mcp'",
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON values (str keys; dates, bytes, decimals... as strings)."""
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def _json_object(value: Any) -> dict[str, Any]:
    out = _jsonable(value)
    if not isinstance(out, dict):  # pragma: no cover - records and definitions are dicts
        raise TypeError(f"expected a JSON object, got {type(out).__name__}")
    return out


def tool_error_text(exc: BaseException) -> str:
    """``ClassName: message (suggestion)`` plus one line per failing field."""
    if isinstance(exc, S3dbError):
        text = f"{type(exc).__name__}: {exc.message}"
        if exc.suggestion:
            text += f" ({exc.suggestion})"
        if isinstance(exc, ValidationError) and exc.errors:
            text += "".join(f"\n  - {e.get('field')}: {e.get('message')}" for e in exc.errors)
        return text
    return f"{type(exc).__name__}: {exc}"


def build_server(
    db: Database, *, allow_writes: bool = False, reveal_secrets: bool = False
) -> MCPServer[Any]:
    """An :class:`mcp.server.mcpserver.MCPServer` whose tools act on the connected ``db``.

    :param allow_writes: also expose ``insert``, ``update`` and ``delete``.
    :param reveal_secrets: hand decrypted ``secret`` values and password hashes to the
        assistant and let filters test them (masked as ``"***"`` and refused by default).
    :raises MissingDependencyError: the ``mcp`` package is missing or too old.
    """
    _require_mcp()
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    async def guarded(make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except (S3dbError, ValueError, TypeError, KeyError, OSError) as exc:
            raise ToolError(tool_error_text(exc)) from None

    def as_mapping(value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError(
                f"{what} must be a JSON object, got {type(value).__name__}",
                suggestion=f'pass {what} as an object, e.g. {{"name": "Ann"}}',
            )
        return value

    def shown(resource: Resource, record: Mapping[str, Any]) -> dict[str, Any]:
        masked = () if reveal_secrets else resource.schema.sensitive_fields
        return _json_object(mask(record, masked) if masked else record)

    def check_filter(resource: Resource, flt: Mapping[str, Any] | None) -> None:
        if reveal_secrets:
            return
        for field, kind in sensitive_conditions(flt, resource.schema.sensitive_fields):
            raise ValidationError(
                f"filters on {kind} field {field!r} are refused: this server does not "
                "reveal secrets",
                errors=[{"field": field, "rule": "filter", "message": f"{kind} field"}],
                suggestion="filter on other fields; the server's operator can start it "
                "with --reveal-secrets",
                metadata={"field": field},
            )

    server: MCPServer[Any] = MCPServer(
        name="s3db-async",
        instructions=(
            f"An s3db-async document database at {db.url}. Call list_resources first, then "
            "get_schema to learn a resource's fields; query takes a MongoDB-like filter "
            '({"age": {"$gte": 18}, "region": "eu"}).'
            + ("" if allow_writes else " This server is read-only.")
            + ("" if reveal_secrets else ' Secret and password fields are shown as "***".')
        ),
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    async def list_resources() -> dict[str, Any]:
        """Every resource with its schema version, behavior, partitions and field count."""

        async def go() -> dict[str, Any]:
            out = []
            for name in db.list_resources():
                r = db.resources[name]
                out.append(
                    {
                        "name": name,
                        "version": r.version,
                        "behavior": r.behavior,
                        "partitions": {p.name: p.field_names for p in r.partitions.values()},
                        "fields": len(r.schema.fields),
                        "description": r.definition.get("description"),
                    }
                )
            return {"resources": out}

        return await guarded(go)

    async def get_schema(resource: str) -> dict[str, Any]:
        """A resource's definition (attributes, partitions, behavior) and its JSON Schema."""

        async def go() -> dict[str, Any]:
            r = db.get_resource(resource)
            return _json_object(
                {
                    "name": resource,
                    "version": r.version,
                    "definition": r.definition,
                    "json_schema": r.schema.to_json_schema(),
                }
            )

        return await guarded(go)

    async def get(resource: str, id: str) -> dict[str, Any]:
        """One record by id."""

        async def go() -> dict[str, Any]:
            r = db.get_resource(resource)
            return shown(r, await r.get(id))

        return await guarded(go)

    async def query(
        resource: str,
        filter: dict[str, Any] | None = None,
        limit: int | None = DEFAULT_QUERY_LIMIT,
    ) -> dict[str, Any]:
        """Records matching a MongoDB-like filter ({"field": value, "age": {"$gte": 18}}),
        at most limit of them (default 100, null for all). A filter pinning every field of
        a partition reads only that partition."""

        async def go() -> dict[str, Any]:
            r = db.get_resource(resource)
            flt = None if filter is None else as_mapping(filter, "filter")
            check_filter(r, flt)
            if limit is not None and limit < 0:
                raise ValidationError(
                    f"limit must be >= 0, got {limit}", suggestion="pass null for every record"
                )
            fetch = None if limit is None else limit + 1
            records: list[Any] = await r.query(flt, limit=fetch)
            truncated = limit is not None and len(records) > limit
            records = records[:limit] if limit is not None else records
            return {
                "records": [shown(r, rec) for rec in records],
                "count": len(records),
                "truncated": truncated,
                "partition": r.explain(flt)["partition"],
            }

        return await guarded(go)

    async def count(
        resource: str,
        partition: str | None = None,
        partition_values: dict[str, Any] | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """How many records, optionally inside a partition (partition_values as
        {"field": value}); with by, a count per value of that field."""

        async def go() -> dict[str, Any]:
            values = None if partition_values is None else as_mapping(partition_values, "values")
            n = await db.get_resource(resource).count(
                partition=partition, partition_values=values, by=by
            )
            if not isinstance(n, dict):
                return {"count": n}
            return {"by": by, "groups": {_group_key(k): v for k, v in n.items()}}

        return await guarded(go)

    def add(fn: Callable[..., Any], annotations: ToolAnnotations) -> None:
        doc = inspect.cleandoc(fn.__doc__ or "")
        server.add_tool(fn, description=doc, annotations=annotations)

    for tool in (list_resources, get_schema, get, query, count):
        add(tool, read_only)
    if not allow_writes:
        return server

    async def insert(resource: str, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and insert a record; returns it with its id."""

        async def go() -> dict[str, Any]:
            r = db.get_resource(resource)
            return shown(r, await r.insert(as_mapping(data, "data")))

        return await guarded(go)

    async def update(resource: str, id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge changes into a record (nested objects are merged); returns the record."""

        async def go() -> dict[str, Any]:
            r = db.get_resource(resource)
            return shown(r, await r.update(id, as_mapping(changes, "changes")))

        return await guarded(go)

    async def delete(resource: str, id: str) -> dict[str, Any]:
        """Delete a record (an error if it does not exist)."""

        async def go() -> dict[str, Any]:
            await db.get_resource(resource).delete(id, must_exist=True)
            return {"deleted": True, "resource": resource, "id": id}

        return await guarded(go)

    add(insert, ToolAnnotations(read_only_hint=False, destructive_hint=False))
    add(update, ToolAnnotations(read_only_hint=False, destructive_hint=False))
    add(delete, ToolAnnotations(read_only_hint=False, destructive_hint=True))
    return server


def _group_key(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


async def serve_stdio(
    db: Database, *, allow_writes: bool = False, reveal_secrets: bool = False
) -> None:
    """Serve ``db`` over stdin/stdout until the client closes the connection."""
    server = build_server(db, allow_writes=allow_writes, reveal_secrets=reveal_secrets)
    await server.run_stdio_async()
