"""Safe defaults: no default passphrase, nothing leaks secrets, rotation, no process tricks."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anyio
import pytest

from s3db_async import Database
from s3db_async.errors import (
    ConfigError,
    DecryptionError,
    EncryptionError,
    SchemaError,
    ValidationError,
)

PASS = "pw-Correct-Horse-42"
SECRET = "cleartext-SECRET-value-7"
ATTRS = {"user": "string", "token": "secret|required", "note": "string|optional"}


async def _all_bytes(db: Database) -> bytes:
    blob = b""
    for key in await db.store.list_keys():
        obj = await db.store.get(key)
        blob += key.encode() + obj.body + repr(obj.metadata).encode()
    return blob


async def test_no_default_passphrase_and_nothing_written(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3DB_PASSPHRASE", raising=False)
    async with Database(store_url) as db:
        db.store.stats.reset()
        with pytest.raises(EncryptionError) as info:
            await db.create_resource("acct", attributes=ATTRS)
        assert db.store.stats.get("put", 0) == 0
        assert "'token'" in info.value.message and "S3DB_PASSPHRASE" in str(info.value)
        assert not db.resource_exists("acct")


async def test_env_passphrase(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3DB_PASSPHRASE", PASS)
    async with Database(store_url) as db:
        res = await db.create_resource("acct", attributes=ATTRS)
        rec = await res.insert({"user": "ann", "token": SECRET})
        assert (await res.get(rec["id"]))["token"] == SECRET


async def test_nothing_leaks_the_passphrase_or_cleartext(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    texts: list[str] = []
    attrs = {**ATTRS, "region": "string", "creds": {"api": "secret", "pw": "password"}}
    partitions = {"by_region": {"fields": {"region": "string", "user": "string"}}}
    with caplog.at_level(logging.DEBUG, logger="s3db_async"):
        async with Database(store_url, passphrase=PASS) as db:
            # partitions on secret or password fields are refused, at any nesting
            for field in ("token", "creds.api", "creds.pw", "creds"):
                with pytest.raises(SchemaError) as refused:
                    await db.create_resource(
                        "leaky",
                        attributes=attrs,
                        partitions={"by_secret": {"fields": {"region": "string", field: ""}}},
                    )
                texts += [str(refused.value), repr(refused.value.to_dict())]
            res = await db.create_resource(
                "acct", attributes=attrs, partitions=partitions, history=True
            )
            data = {"user": "ann", "region": "eu", "token": SECRET}
            data["creds"] = {"api": SECRET, "pw": SECRET}
            rec = await res.insert(data)
            await res.update(rec["id"], {"note": "x"})
            await res.update(rec["id"], {"region": "us", "token": SECRET + "2"})
            found = await res.query({"token": SECRET + "2", "region": "us", "user": "ann"})
            assert [r.id for r in found] == [rec["id"]]
            texts += [repr(found), str(found[0]), repr(await res.get(rec["id"]))]
            texts.append(repr(res.explain({"token": SECRET, "region": "us", "user": "ann"})))
            texts.append(repr(await res.estimate_query_cost({"creds": {"api": SECRET}})))
            texts.append(repr(await res.count(by="region")))
            for bad in ("token", "creds.pw"):
                with pytest.raises(ValidationError) as refused:
                    await res.count(by=bad)
                texts.append(str(refused.value))
            with pytest.raises(ValidationError) as refused:
                await res.query({"creds": {"pw": SECRET}})
            texts += [str(refused.value), repr(refused.value.to_dict())]
            texts += [repr(db), repr(res), repr(db._secret_box), repr(db.metadata)]
            stored = await _all_bytes(db)
            assert SECRET.encode() not in stored and PASS.encode() not in stored
            keys = await db.store.list_keys()
            assert any("/partition=by_region/" in k for k in keys)
            assert any("/history/" in k for k in keys)
            # a failed decryption says so without the secret
            key = res.key_for(rec["id"])
            obj = await db.store.get(key)
            tampered = {k: (v[:-4] + "AAAA" if len(v) > 40 else v) for k, v in obj.metadata.items()}
            await db.store.put(key, obj.body, tampered)
            with pytest.raises(DecryptionError) as info:
                await res.get(rec["id"])
            texts += [str(info.value), repr(info.value)]
        with pytest.raises(DecryptionError) as wrong:
            async with Database(store_url, passphrase="not-" + PASS):
                pass
        texts += [str(wrong.value), repr(wrong.value)]
    texts.append(caplog.text)
    for text in texts:
        assert PASS not in text and SECRET not in text, text


async def test_rotate_passphrase_resumable(store_url: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource("acct", attributes=ATTRS)
        plain = await db.create_resource("plain", attributes={"a": "string"})
        await plain.insert({"a": "untouched"})
        ids = [
            (await res.insert({"user": f"u{i}", "token": f"{SECRET}-{i}"}))["id"] for i in range(30)
        ]

        # interrupt the first rotation after a few records
        seen = 0

        def progress(info: dict[str, object]) -> None:
            nonlocal seen
            seen += 1
            if seen == 5:
                raise RuntimeError("power cut")

        with pytest.raises(RuntimeError):
            await db.rotate_passphrase(PASS, "new-pass-99", on_progress=progress)
        totals = await db.rotate_passphrase(PASS, "new-pass-99")
        assert totals["records"] == 30 and totals["rewritten"] <= 30  # the rest were done
        assert (await res.get(ids[0]))["token"] == f"{SECRET}-0"
    with pytest.raises(DecryptionError):
        async with Database(store_url, passphrase=PASS):
            pass
    async with Database(store_url, passphrase="new-pass-99") as db:
        got = await db.resources["acct"].get_many(ids)
        assert [r.data["token"] for r in got] == [f"{SECRET}-{i}" for i in range(30)]  # type: ignore[index]
        again = await db.rotate_passphrase("new-pass-99", "third-pass")
        assert again["rewritten"] == 30


def test_no_signal_handlers_exit_calls_or_listeners() -> None:
    """Library code never installs signal handlers, exits the process or binds a port."""
    root = Path(__file__).resolve().parents[2] / "s3db_async"
    offenders = []
    pattern = re.compile(
        r"signal\.signal\(|add_signal_handler|sys\.exit\(|os\._exit\(|\.bind\(|start_server\("
    )
    for path in root.rglob("*.py"):
        if path.name == "__main__.py" or path.relative_to(root).parts[0] in ("cli", "_testing"):
            continue  # the command line, and the test kit's S3 servers, serve when asked
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{no}: {line.strip()}")
    assert offenders == []


async def test_errors_are_typed_with_suggestions(store_url: str) -> None:
    async with Database(store_url, passphrase=PASS) as db:
        res = await db.create_resource("acct", attributes=ATTRS)
        with pytest.raises(ValidationError) as info:
            await res.insert({"user": 5})
        assert info.value.suggestion or info.value.to_dict()["errors"]
        with anyio.fail_after(5):
            with pytest.raises(ConfigError, match="confirm"):
                await res.delete_all()
