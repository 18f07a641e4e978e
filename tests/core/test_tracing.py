"""OpenTelemetry spans per resource operation (in a subprocess: the tracer provider is global)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from s3db_async import Database, NotFoundError

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    async def main():
        async with Database("memory://traced") as db:
            users = await db.create_resource("users", attributes={"name": "string"})
            rec = await users.insert({"name": "Ann"})
            await users.get(rec["id"])
            try:
                await users.get("missing")
            except NotFoundError:
                pass
        for span in exporter.get_finished_spans():
            a = span.attributes
            print(span.name, a["db.system.name"], a["db.collection.name"],
                  a["db.operation.name"], span.status.status_code.name)

    asyncio.run(main())
    """
)


def test_spans_per_operation() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.splitlines() == [
        "insert users s3db users insert UNSET",
        "get users s3db users get UNSET",
        "get users s3db users get ERROR",
    ]


def test_no_provider_means_no_tracer() -> None:
    from s3db_async._tracing import active_tracer

    assert active_tracer() is None
