"""``s3db stats``, ``schema-diff``, ``explain`` (request cost), ``count --by`` and ``query``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from s3db_async import Database
from s3db_async.cli import app

V1 = {"name": "string|required", "region": "string", "age": "integer"}
V2 = {
    "name": "string|required|min:2",
    "region": "string",
    "email": "email",
    "profile": {"bio": "string|max:40"},
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"file://{tmp_path / 'db'}"

    async def setup() -> None:
        async with Database(url) as db:
            users = await db.create_resource(
                "users",
                attributes=V1,
                partitions={"by_region": {"fields": {"region": "string"}}},
            )
            for i, region in enumerate(["eu", "us", "eu", "eu", None]):
                data = {"id": f"u{i}", "name": f"User{i}", "age": i}
                if region:
                    data["region"] = region
                await users.insert(data)
            await users.set_content("u0", b"x" * 100, content_type="text/plain")
            await db.create_resource(
                "users",
                attributes=V2,
                partitions={
                    "by_region": {"fields": {"region": "string"}},
                    "by_email": {"fields": {"email": "string"}},
                },
                behavior="body-only",
                timestamps=True,
            )
            await db.create_resource("empty", attributes={"x": "string"})

    asyncio.run(setup())
    return url


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--url", url, *args])
    return result.exit_code, result.stdout, result.stderr


async def _body_bytes(url: str, name: str) -> int:
    async with Database(url) as db:
        r = db.get_resource(name)
        keys = await db.store.list_keys(r.data_prefix)
        return sum([len((await db.store.get(k)).body) for k in keys])


def test_stats_json_counts_records_partitions_bytes_and_requests(url: str) -> None:
    code, out, err = run(url, "stats", "--json")
    assert code == 0, err
    report = msgspec.json.decode(out)
    by_name = {r["name"]: r for r in report["resources"]}
    users = by_name["users"]
    assert users["records"] == 5
    assert users["version"] == "v2" and users["versions"] == ["v1", "v2"]
    assert users["partitions"] == {"by_region": 4, "by_email": 0}
    assert users["by_prefix"]["content"]["bytes"] == 100
    assert users["by_prefix"]["data"]["bytes"] == asyncio.run(_body_bytes(url, "users")) > 0
    assert users["objects"] == 5 + 4 + 1
    assert by_name["empty"]["records"] == 0 and by_name["empty"]["bytes"] == 0
    assert report["totals"]["records"] == 5
    # LIST only: one page per resource, the s3db.json GET of the connection, no record GET
    requests = report["requests"]
    assert requests["list"] == 2 and requests["get"] == 1
    assert requests["total"] == sum(v for k, v in requests.items() if k != "total")


def test_stats_table(url: str) -> None:
    code, out, _ = run(url, "stats")
    assert code == 0
    assert "users" in out and "by_region: 4" in out and "v1, v2" in out
    assert "2 resources, 5 records" in out and "requests: " in out


def test_schema_diff_previous_to_current(url: str) -> None:
    code, out, _ = run(url, "schema-diff", "users", "--json")
    assert code == 0
    diff = msgspec.json.decode(out)
    assert (diff["from"], diff["to"]) == ("v1", "v2")
    fields = diff["fields"]
    assert set(fields["added"]) == {"email", "profile", "profile.bio"}
    assert set(fields["removed"]) == {"age"}
    assert fields["changed"]["name"]["changes"] == {"min": [None, 2]}
    assert diff["partitions"]["added"] == {"by_email": {"fields": {"email": "string"}}}
    assert diff["partitions"]["removed"] == {} and diff["partitions"]["changed"] == {}
    assert diff["options"]["behavior"] == ["body-overflow", "body-only"]
    assert diff["options"]["timestamps"] == [False, True]
    assert diff["identical"] is False

    code, out, _ = run(url, "schema-diff", "users")
    assert code == 0
    for text in ("v1 → v2", "email", "profile.bio", "name (min)", "by_email", "behavior"):
        assert text in out


def test_schema_diff_versions_and_errors(url: str) -> None:
    code, out, _ = run(url, "schema-diff", "users", "--from", "v2", "--to", "v1", "--json")
    diff = msgspec.json.decode(out)
    assert code == 0 and set(diff["fields"]["removed"]) == {"email", "profile", "profile.bio"}
    code, out, _ = run(url, "schema-diff", "users", "--from", "v2")
    assert code == 0 and "no differences" in out
    code, out, _ = run(url, "schema-diff", "empty", "--json")
    assert code == 0 and msgspec.json.decode(out)["identical"] is True
    code, _, err = run(url, "schema-diff", "users", "--from", "v7")
    assert code == 1 and "no version 'v7'" in err and "v1, v2" in err and "Traceback" not in err
    code, _, err = run(url, "schema-diff", "ghosts")
    assert code == 1 and "ResourceNotFoundError" in err


def test_explain_reports_partition_and_request_cost(url: str) -> None:
    code, out, _ = run(url, "explain", "users", '{"region": "eu", "age": {"$gte": 1}}')
    assert code == 0
    plan = msgspec.json.decode(out)
    assert plan["partition"] == "by_region" and plan["partition_values"] == {"region": "eu"}
    assert plan["candidate_records"] == 3 and plan["list_requests"] == 1
    assert plan["get_requests"] == 3 and plan["total_requests"] == 4
    code, out, _ = run(url, "explain", "users", '{"age": 3}')
    plan = msgspec.json.decode(out)
    assert plan["scan"] is True and plan["partition"] is None
    assert plan["candidate_records"] == 5 and plan["total_requests"] == 6
    code, _, err = run(url, "explain", "users", "[1]")
    assert code == 1 and "JSON object" in err


def test_count_by_and_query_commands(url: str) -> None:
    code, out, _ = run(url, "count", "users", "--by", "region")
    assert code == 0 and msgspec.json.decode(out) == {"eu": 3, "us": 1, "null": 1}
    code, out, _ = run(url, "count", "users", "--by", "name")
    assert code == 0 and sum(msgspec.json.decode(out).values()) == 5
    code, out, _ = run(url, "query", "users", '{"region": "eu", "age": {"$lt": 3}}')
    assert code == 0
    assert [msgspec.json.decode(line)["id"] for line in out.splitlines()] == ["u0", "u2"]
    code, out, _ = run(url, "query", "users", "{}", "--limit", "2")
    assert len(out.splitlines()) == 2
    code, _, err = run(url, "query", "users", '{"age": {"$bogus": 1}}')
    assert code == 1 and "Traceback" not in err


@pytest.mark.parametrize("n", [0, 999, 1000, 1001, 2500])
async def test_estimate_matches_the_requests_query_sends(n: int) -> None:
    """The estimate counts the same LIST pages and GETs that query() then really sends."""
    async with Database(f"memory://cost{n}/db") as db:
        r = await db.create_resource(
            "items",
            attributes={"kind": "string", "n": "integer"},
            partitions={"by_kind": {"fields": {"kind": "string"}}},
        )
        res = await r.insert_many([{"kind": "a" if i % 5 else "b", "n": i} for i in range(n)])
        assert res.all_ok
        for flt in ({"kind": "a"}, {"n": {"$gte": 0}}):
            db.store.stats.reset()
            cost = await r.estimate_query_cost(flt)
            assert db.store.stats.snapshot() == {"list": cost["list_requests"]}
            db.store.stats.reset()
            found = await r.query(flt)
            sent = db.store.stats.snapshot()
            assert sent.get("list", 0) == cost["list_requests"]
            assert sent.get("get", 0) == cost["get_requests"] == cost["candidate_records"]
            assert cost["total_requests"] == sum(sent.values())
            assert len(found) <= cost["candidate_records"]
