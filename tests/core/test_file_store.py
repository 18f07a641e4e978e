"""FileStore specifics: on-disk layout and key safety, listing order, crash safety and
conditional writes across OS processes. The generic contract is in test_store_contract."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3db_async.errors import (
    CorruptObjectError,
    InvalidKeyError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
)
from s3db_async.stores import FileStore, ListEntry, MemoryStore, open_store
from s3db_async.stores._base import validate_key
from s3db_async.testing import spawn_processes

from ._file_store_worker import cas, race, write_forever


def _files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*")}


async def _listing(
    store: FileStore | MemoryStore,
    prefix: str = "",
    *,
    start_after: str | None = None,
    limit: int | None = None,
    delimiter: str | None = None,
) -> list[str]:
    """Keys and ``P:``-marked common prefixes, in the order listed."""
    entries = store.list(prefix, start_after=start_after, limit=limit, delimiter=delimiter)
    return [e.key if isinstance(e, ListEntry) else "P:" + e.prefix async for e in entries]


@pytest.fixture
async def fstore(tmp_path: Path) -> FileStore:
    store = FileStore(f"file://{tmp_path / 'root'}", fsync=False)
    await store.connect()
    return store


# -- construction ------------------------------------------------------------------------


async def test_connect_creates_the_root_directory(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "er" / "db"
    store = open_store(f"file://{root}")
    assert isinstance(store, FileStore)
    assert not root.exists()
    async with store:
        assert root.is_dir()
        await store.put("k", b"v")
    assert (root / "k~o").is_file()


async def test_relative_path_is_resolved_against_cwd_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore("file://./rel/db")
    assert store.root == str(tmp_path / "rel" / "db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a later chdir does not move the store
    async with store:
        await store.put("a/b", b"1")
    assert (tmp_path / "rel" / "db" / "a" / "b~o").is_file()
    assert not (elsewhere / "rel").exists()
    assert store.describe()["path"] == str(tmp_path / "rel" / "db")


async def test_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        await FileStore(f"file://{tmp_path / 'file'}").connect()


async def test_works_without_connect(tmp_path: Path) -> None:
    store = FileStore(f"file://{tmp_path / 'lazy'}")
    with pytest.raises(NotFoundError):
        await store.get("x")
    await store.put("x", b"1", if_none_match=True)
    assert (await store.get("x")).body == b"1"


def test_rejects_other_schemes() -> None:
    with pytest.raises(ValueError):
        FileStore("memory://x")


# -- layout and key safety ---------------------------------------------------------------


async def test_layout_is_readable(fstore: FileStore) -> None:
    await fstore.put("resource=users/data/id=1", b"{}")
    root = Path(fstore.root)
    assert (root / "resource=users" / "data" / "id=1~o").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["resource=users", "~s3db"]


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/../../b",
        "a/..",
        "..",
        ".",
        "./a",
        "/etc/passwd",
        "//x",
        "a//b",
        "nul\x00byte",
        "trailing/",
        "new\nline",
        "\udc80surrogate",
        "x" * 1025,
    ],
)
async def test_escape_attempts_are_rejected(fstore: FileStore, key: str) -> None:
    parent = Path(fstore.root).parent
    before = _files(parent)
    with pytest.raises(InvalidKeyError):
        await fstore.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        await fstore.copy("src", key)
    assert _files(parent) == before


TRICKY_KEYS = [
    "back\\slash",
    "a\\..\\..\\b",
    "..\\x",
    "x~o",
    "~o",
    "~s3db",
    "~s3db/tmp/x",
    "~s3db/locks/000",
    "a/~seg",
    "%2e%2e/x",
    "%7E",
    "%",
    "100%",
    "seg~h" + "0" * 40,
    "seg~h" + "0" * 40 + "~o",
    "...",
    " .. ",
    ".hidden",
    "dir/~o",
    "l" * 241,
    "l" * 240,
    "é" * 130,  # 260 bytes
    "\\" * 300 + "/inner",
    "%" * 1000,
    "~" * 200 + "/" + "~" * 200,
    "😀" * 200 + "/x",
    "a/" + "b" * 254 + "/c",
]


async def test_tricky_keys_are_stored_safely_inside_the_root(fstore: FileStore) -> None:
    root = Path(fstore.root)
    outside_before = _files(root.parent) - _files(root)
    for i, key in enumerate(TRICKY_KEYS):
        await fstore.put(key, str(i).encode(), {"i": str(i)})
    for i, key in enumerate(TRICKY_KEYS):
        obj = await fstore.get(key)
        assert obj.body == str(i).encode(), key
        assert obj.metadata == {"i": str(i)}
        assert (await fstore.head(key)).size == len(str(i))
    assert await fstore.list_keys() == sorted(TRICKY_KEYS, key=lambda k: k.encode())
    # nothing written outside the root, no name over NAME_MAX, no symlinks
    assert _files(root.parent) - _files(root) == outside_before
    for path in _files(root):
        assert not path.is_symlink()
        assert len(path.name.encode()) <= 255
        assert path.resolve().is_relative_to(root.resolve())
    # the internal area is untouched by keys that look like it
    assert sorted(p.name for p in (root / "~s3db").iterdir()) == ["locks", "tmp"]
    assert await fstore.delete_many(TRICKY_KEYS) == len(TRICKY_KEYS)
    assert await fstore.list_keys() == []


async def test_key_too_long_for_a_path_is_rejected(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 200] * 8)  # a root path of ~1,600 bytes
    store = FileStore(f"file://{deep}", fsync=False)
    key = "/".join(["%" * 80] * 12)  # 12 segments of 240 escaped bytes: ~2,900 bytes
    with pytest.raises(InvalidKeyError):
        await store.put(key, b"x")
    await store.put("short", b"x")
    assert await store.list_keys() == ["short"]


async def test_internal_area_is_recreated_if_removed(fstore: FileStore) -> None:
    await fstore.put("a", b"1")
    shutil.rmtree(Path(fstore.root) / "~s3db")
    await fstore.put("b", b"2", if_none_match=True)
    assert await fstore.list_keys() == ["a", "b"]


async def test_object_and_prefix_coexist(fstore: FileStore) -> None:
    await fstore.put("a", b"1")
    await fstore.put("a/b", b"2")
    await fstore.put("a/b/c", b"3")
    assert await fstore.list_keys() == ["a", "a/b", "a/b/c"]
    await fstore.delete("a/b")
    assert await fstore.list_keys() == ["a", "a/b/c"]
    assert (await fstore.get("a/b/c")).body == b"3"
    await fstore.delete("a")
    assert (await fstore.get("a/b/c")).body == b"3"
    await fstore.delete("a/b/c")
    assert await fstore.list_keys() == []
    # empty directories are pruned on delete
    assert sorted(p.name for p in Path(fstore.root).iterdir()) == ["~s3db"]


async def test_unicode_keys_round_trip_in_s3_order(fstore: FileStore) -> None:
    keys = [
        "a",
        "a-b",
        "a.b",
        "a/b",
        "a0",
        "A",
        "Z/z",
        "é",
        "e\u0301",  # not normalized: a different key than "é"
        "日本/東京",
        "日本語",
        "😀",
        "\uffff",
        "z",
        "ab/c",
        "ab",
    ]
    for k in keys:
        await fstore.put(k, k.encode())
    expected = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert await fstore.list_keys() == expected
    for k in keys:
        assert (await fstore.get(k)).body == k.encode()
    assert (await _listing(fstore, "", delimiter="/"))[:6] == [
        "A",
        "P:Z/",
        "a",
        "a-b",
        "a.b",
        "P:a/",
    ]
    mem = MemoryStore(f"memory://{uuid.uuid4().hex}")
    for k in keys:
        await mem.put(k, b"")
    for prefix in ["", "a", "a/", "日", "ab"]:
        for delimiter in [None, "/", "b"]:
            assert await _listing(fstore, prefix, delimiter=delimiter) == await _listing(
                mem, prefix, delimiter=delimiter
            ), (prefix, delimiter)


async def test_long_segments_list_in_order(fstore: FileStore) -> None:
    long = "x" * 300
    keys = [long, long + "/a", long + "y/b", "x" * 299, long[:-1] + "z", long + "/" + long]
    for k in keys:
        await fstore.put(k, b"")
    assert await fstore.list_keys() == sorted(keys)
    assert await _listing(fstore, "x" * 299, delimiter="/") == [
        "x" * 299,
        long,
        f"P:{long}/",
        f"P:{long}y/",
        long[:-1] + "z",
    ]
    assert await fstore.list_keys(long + "/") == [long + "/a", long + "/" + long]


async def test_foreign_files_are_ignored(fstore: FileStore) -> None:
    root = Path(fstore.root)
    await fstore.put("k", b"v")
    (root / "README.txt").write_text("not an object")
    (root / "junk~o").write_bytes(b"garbage")
    (root / "bad%zz~o").write_bytes(b"garbage")
    (root / "empty-dir").mkdir()
    (root / "bad~dir").mkdir()
    os.symlink("/etc", root / "link")
    # an object file that cannot be read is a damaged object: listed, unreadable, deletable
    assert await _listing(fstore, "", delimiter="/") == ["junk", "k"]
    assert await fstore.list_keys() == ["junk", "k"]
    with pytest.raises(CorruptObjectError):
        await fstore.get("junk")
    await fstore.delete("junk")
    assert await fstore.list_keys() == ["k"]


# -- listing vs. the reference (MemoryStore) --------------------------------------------

_segment = st.one_of(
    st.text(alphabet="ab-.=~%\\é😀0", min_size=1, max_size=3),
    # around the 240-byte limit where names get shortened ("%" escapes to 3 bytes)
    st.builds(
        lambda c, n, tail: c * n + tail,
        st.sampled_from("a%"),
        st.integers(78, 241),
        st.text("ab", max_size=2),
    ),
)
_key = st.lists(_segment, min_size=1, max_size=3).map("/".join)


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except ValueError:
        return False
    return True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(_key.filter(_valid), min_size=0, max_size=25, unique=True),
    data=st.data(),
)
def test_listing_matches_memory_store(keys: list[str], data: st.DataObject) -> None:
    def fragment() -> st.SearchStrategy[str]:
        return st.one_of(
            st.just(""),
            st.text(alphabet="ab/-.=é0", max_size=4),
            st.sampled_from(keys or [""]).flatmap(
                lambda k: st.integers(0, len(k)).map(lambda i: k[:i])
            ),
        )

    queries = [
        (
            data.draw(fragment()),
            data.draw(st.one_of(st.none(), fragment())),
            data.draw(st.one_of(st.none(), st.integers(1, 6))),
            data.draw(st.sampled_from([None, "/", "=", "b", "a/", "/b"])),
        )
        for _ in range(6)
    ]

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            fs = FileStore(f"file://{tmp}", fsync=False)
            mem = MemoryStore(f"memory://{uuid.uuid4().hex}")
            for k in keys:
                await fs.put(k, k.encode())
                await mem.put(k, k.encode())
            for prefix, start_after, limit, delimiter in queries:
                fs.stats.reset()
                mem.stats.reset()
                got = await _listing(
                    fs, prefix, start_after=start_after, limit=limit, delimiter=delimiter
                )
                want = await _listing(
                    mem, prefix, start_after=start_after, limit=limit, delimiter=delimiter
                )
                assert got == want, (prefix, start_after, limit, delimiter)
                assert fs.stats == mem.stats
            entries = [e async for e in fs.list()]
            assert all(isinstance(e, ListEntry) and e.size == len(e.key.encode()) for e in entries)

    anyio.run(run)


async def test_list_skips_empty_directories_and_pages(fstore: FileStore) -> None:
    root = Path(fstore.root)
    (root / "ghost" / "deeper").mkdir(parents=True)
    await fstore.put("real/x", b"")
    assert await _listing(fstore, "", delimiter="/") == ["P:real/"]
    assert await _listing(fstore, "gh", delimiter="/") == []


@pytest.mark.slow
async def test_list_pages_count_like_s3(fstore: FileStore) -> None:
    keys = [f"d/{i:04d}" for i in range(1000)] + [f"e/{i}/x" for i in range(1001)]
    async with anyio.create_task_group() as tg:
        limiter = anyio.Semaphore(64)

        async def put(k: str) -> None:
            async with limiter:
                await fstore.put(k, b"")

        for k in keys:
            tg.start_soon(put, k)
    fstore.stats.reset()
    assert len(await fstore.list_keys("d/")) == 1000
    assert fstore.stats["list"] == 1
    fstore.stats.reset()
    prefixes = await _listing(fstore, "e/", delimiter="/")
    assert len(prefixes) == 1001 and fstore.stats["list"] == 2
    fstore.stats.reset()
    assert len(await fstore.list_keys("", limit=1500)) == 1500
    assert fstore.stats["list"] == 2


# -- crash safety ------------------------------------------------------------------------


async def test_unrenamed_temp_file_is_invisible_and_cleaned_when_stale(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'db'}"
    store = FileStore(url)
    await store.connect()
    await store.put("k", b"old", {"v": "1"})
    tmp_dir = Path(store.root) / "~s3db" / "tmp"
    stale = tmp_dir / "123-deadbeef"
    stale.write_bytes(b"S3DB\x01\x00\x00")  # a writer died half-way
    fresh = tmp_dir / "456-cafebabe"
    fresh.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert await store.list_keys() == ["k"]
    assert (await store.get("k")).body == b"old"
    again = FileStore(url)
    await again.connect()  # removes stale temp files only
    assert not stale.exists()
    assert fresh.exists()
    assert (await again.get("k")).metadata == {"v": "1"}


@pytest.mark.slow
async def test_killed_writer_never_leaves_a_torn_object(tmp_path: Path) -> None:
    root = tmp_path / "db"
    size = 4 * 1024 * 1024
    rng = random.Random(7)
    for _ in range(4):
        async with spawn_processes(write_forever, f"file://{root}", 1, ("victim", size)) as group:
            await group.wait_for("ready")
            await anyio.sleep(rng.uniform(0.0, 0.15))
            group.kill(0)
            (outcome,) = await group.outcomes()
            assert outcome.killed
        store = FileStore(f"file://{root}")
        obj = await store.get("victim")
        assert obj.size == size == len(obj.body)
        assert obj.body == obj.body[:1] * size  # one whole version
        assert int(obj.metadata["version"]) % 256 == obj.body[0]
        assert obj.etag == '"' + hashlib.md5(obj.body).hexdigest() + '"'
        assert await store.list_keys() == ["victim"]


# -- conditional writes across OS processes ---------------------------------------------


async def race_rounds(url: str, processes: int, rounds: int) -> None:
    """``processes`` workers race to create each key; exactly one wins every round."""
    async with spawn_processes(race, url, processes) as group:
        await group.release("connected")
        async with open_store(url) as store:
            for rnd in range(rounds):
                key = f"race/{rnd}"
                for i in range(processes):  # the same key to every worker at once
                    group.send(i, key)
                answers = [(await group.wait_for(key, i))[1] for i in range(processes)]
                assert sorted(answers) == ["lose"] * (processes - 1) + ["win"], (rnd, answers)
                winner = group.pids[answers.index("win")]
                assert (await store.get(key)).body == str(winner).encode()
        for i in range(processes):
            group.send(i, None)
        await group.results()


async def cas_counter(url: str, processes: int, n: int) -> None:
    """``processes`` workers add 1 ``n`` times each by compare-and-swap: nothing is lost."""
    async with open_store(url) as store:
        await store.put("counter", b"0")
        async with spawn_processes(cas, url, processes, ("counter", n)) as group:
            await group.release("connected")
            await group.results()
        assert (await store.get("counter")).body == str(processes * n).encode()


@pytest.mark.slow
async def test_multi_process_create_race_has_one_winner_per_round(tmp_path: Path) -> None:
    await race_rounds(f"file://{tmp_path / 'db'}", 6, 20)


@pytest.mark.slow
async def test_multi_process_compare_and_swap_counter_is_exact(tmp_path: Path) -> None:
    await cas_counter(f"file://{tmp_path / 'db'}", 4, 25)


async def test_conditional_delete_and_put_in_one_process_two_stores(tmp_path: Path) -> None:
    one = FileStore(f"file://{tmp_path}", fsync=False)
    two = FileStore(f"file://{tmp_path}", fsync=False)
    etag = await one.put("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await two.put("k", b"2", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await two.delete("k", if_match='"stale"')
    with pytest.raises(PreconditionFailed):
        await two.delete("missing", if_match=etag)
    await two.delete("k", if_match=etag)
    assert not await one.exists("k")
    caps = await one.capabilities()
    assert caps.conditional_writes and caps.conditional_delete


def test_fsync_can_be_turned_off_in_the_url(tmp_path: Path) -> None:
    assert FileStore(f"file://{tmp_path}").fsync is True
    assert FileStore(f"file://{tmp_path}?fsync=false").fsync is False
    assert FileStore(f"file://{tmp_path}?fsync=true").fsync is True
    assert FileStore(f"file://{tmp_path}?fsync=false", fsync=True).fsync is True
