"""RecordCodec, AttributeRegistry, value encodings and SecretBox."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3db_async._codec.codec import (
    BEHAVIORS,
    AttributeRegistry,
    RecordCodec,
    record_version,
)
from s3db_async._codec.crypto import SecretBox
from s3db_async._schema.encoding import (
    b62,
    dec_date,
    dec_embedding,
    dec_float,
    dec_number,
    enc_date,
    enc_embedding,
    enc_float,
    enc_number,
    esc_text,
    unb62,
    unesc_text,
)
from s3db_async._schema.schema import Schema
from s3db_async.errors import (
    DecryptionError,
    EncryptionError,
    MetadataLimitError,
    SchemaError,
    ValidationError,
)
from s3db_async.stores import ObjectStore
from s3db_async.stores._base import encode_metadata_value, metadata_size

from .._strategies import (
    ALL_TYPES,
    PASSPHRASE,
    RECORD,
    SALT,
    check_wire,
    dates_or_times,
    embeddings,
    make_codec,
    same,
)


@pytest.fixture(scope="module")
def box() -> SecretBox:
    return SecretBox(PASSPHRASE, SALT)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("behavior", ["body-overflow", "body-only", "truncate-data"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=RECORD)
def test_round_trip_every_type(box: SecretBox, behavior: str, record: dict[str, Any]) -> None:
    schema, codec = make_codec(ALL_TYPES, box, behavior=behavior)
    clean = schema.validate(record)
    enc = codec.encode(clean)
    check_wire(enc)
    if behavior == "truncate-data" and (enc.truncated or enc.dropped):
        return  # lossy by design; covered by the boundary tests
    decoded = codec.decode(enc.metadata, enc.body)
    same(clean, decoded)
    # S3 may hand keys back in another case: ids must survive it
    shouted = {k.upper(): v for k, v in enc.metadata.items()}
    same(clean, codec.decode(shouted, enc.body))


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_text_round_trip_and_is_never_bigger_than_rfc2047(s: str) -> None:
    for in_list in (False, True):
        enc = esc_text(s, in_list=in_list)
        assert unesc_text(enc) == s
        assert encode_metadata_value(enc) == enc
        assert enc.isascii() and enc.isprintable() and enc == enc.strip()
        if in_list:
            assert "," not in enc
            assert len(enc) <= max(len(esc_text(s)), 2 + 3 * len(s.encode("utf-8")))
        else:
            assert len(enc) <= len(encode_metadata_value(s)) + 2


@pytest.mark.parametrize(
    "s",
    ["", " ", "~", "~e", "~u", "~t", "~%", "=?UTF-8?B?YQ==?=", "a,b", "100%", "tab\there",
     "x ", " x", "\x00", "\x7f", "日本語", "😀𝄞", "é" * 10, "\ud7ff", "\U0010ffff", "line\nbreak"],
)  # fmt: skip
def test_text_edge_cases(s: str) -> None:
    assert unesc_text(esc_text(s)) == s
    assert unesc_text(esc_text(s, in_list=True)) == s
    assert len(esc_text(s)) <= len(encode_metadata_value(s)) + 2  # "~%" was "~u~%25"


@settings(max_examples=500)
@given(st.integers() | st.integers(min_value=-(2**1000), max_value=2**1000))
def test_int_encoding(n: int) -> None:
    assert unb62(b62(n)) == n
    assert type(dec_number(enc_number(n))) is int
    if abs(n) >= 10**4:
        assert len(b62(n)) < len(str(n))


@settings(max_examples=500)
@given(st.floats())
def test_float_encoding(f: float) -> None:
    text = enc_float(f)
    same(f, dec_float(text))
    back = dec_number(enc_number(f))
    assert type(back) is float
    same(f, back)
    assert len(text) <= len(repr(f)) + 1


@pytest.mark.parametrize(
    "f", [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e308, -1e308, 5e-324, -5e-324, 1e16, 1e-5,
          math.inf, -math.inf, 123456.789, 2.0**53],
)  # fmt: skip
def test_float_edge_cases(f: float) -> None:
    same(f, dec_number(enc_number(f)))
    same(f, dec_float(enc_float(f)))
    assert math.isnan(dec_number(enc_number(math.nan)))


@settings(max_examples=300, deadline=None)
@given(dates_or_times)
def test_date_encoding(d: date) -> None:
    same(d, dec_date(enc_date(d)))


def test_date_encoding_details() -> None:
    paris = ZoneInfo("Europe/Paris")
    ambiguous = datetime(2023, 10, 29, 2, 30, tzinfo=paris, fold=1)
    for value in [
        date(1970, 1, 1),
        date(1, 1, 1),
        date(9999, 12, 31),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ambiguous,
        datetime(2024, 1, 1, fold=1),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-3, microseconds=5))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30), "IST")),
    ]:
        same(value, dec_date(enc_date(value)))
    assert dec_date(enc_date(ambiguous)).tzinfo is paris
    assert len(enc_date(date(2024, 1, 15))) == 4  # vs 10 for ISO
    assert len(enc_date(datetime(2024, 1, 15, 12, 30, tzinfo=UTC))) == 7  # vs 25 for ISO


@settings(max_examples=300)
@given(embeddings)
def test_embedding_encoding(v: list[float]) -> None:
    same(v, dec_embedding(enc_embedding(v)))


def test_embedding_picks_the_shorter_form() -> None:
    assert enc_embedding([0.5, 1.0, 0.0, -2.0]) == ".5,1.,0.,-2."
    model_like = [0.123456789, -0.987654321, 0.5555555, 0.1]
    as32 = [float(x) for x in __import__("array").array("f", model_like)]
    enc = enc_embedding(as32)
    assert enc.startswith("~4") and len(enc) == 2 + math.ceil(16 * 4 / 3)
    assert enc_embedding(model_like) == ".123456789,-.987654321,.5555555,.1"
    assert enc_embedding([1 / 3, 2 / 7, -5 / 11, 1 / 13]).startswith("~8")


def test_compact_sizes() -> None:
    _schema, codec = make_codec(
        {"n": "number", "i": "integer", "b": "boolean", "d": "date", "t": "array|items:string"}
    )
    enc = codec.encode(
        {"n": 30, "i": 1700000000000, "b": True, "d": date(2024, 1, 15), "t": ["a", "b"]}
    )
    md = {k: v for k, v in enc.metadata.items() if k != "_v"}
    assert list(md.values()) == ["U", "Tvcokgi", "1", ".58L", "a,b"]


# -- None, empty values, nesting, extras -------------------------------------------------


def test_none_and_empty_values_are_preserved_exactly(box: SecretBox) -> None:
    schema, codec = make_codec(ALL_TYPES, box)
    record = {
        "s": "",
        "n": None,
        "b": None,
        "d": None,
        "tags": [],
        "nums": [],
        "dates": [],
        "maybe": [None, ""],
        "lines": [{}],
        "matrix": [[]],
        "meta": None,
        "obj": {},
        "any": "",
        "vec": None,
        "pw": "",
        "nested": {"a": {}},
        "anyarr": [None, [], {}],
    }
    clean = schema.validate(record)
    enc = codec.encode(clean)
    same(clean, codec.decode(enc.metadata, enc.body))
    for nested in ({"a": None}, None, {}, {"a": {"b": ""}}, {"d": False}):
        clean = schema.validate({"nested": nested})
        enc = codec.encode(clean)
        same(clean, codec.decode(enc.metadata, enc.body))


def test_absent_fields_are_absent() -> None:
    _schema, codec = make_codec({"a": "string", "b": "integer", "p": {"x": "string"}})
    enc = codec.encode({"b": 1})
    assert set(enc.metadata) == {"_v", "1"}
    assert codec.decode(enc.metadata, enc.body) == {"b": 1}


def test_extra_fields_round_trip_with_allow_extra() -> None:
    schema, codec = make_codec({"a": "string", "p": {"x": "string"}}, allow_extra=True)
    data = {"a": "x", "free": {"k": [1, "ü"]}, "p": {"x": "y", "more": None}, "zz": 1.5}
    clean = schema.validate(data)
    enc = codec.encode(clean)
    assert "_x" in enc.metadata
    same(clean, codec.decode(enc.metadata, enc.body))


def test_top_level_id_is_not_stored() -> None:
    _schema, codec = make_codec({"a": "string"})
    enc = codec.encode({"id": "abc", "a": "x"})
    assert "abc" not in enc.metadata.values() and "_x" not in enc.metadata
    assert codec.decode(enc.metadata, enc.body) == {"a": "x"}


# -- registry -------------------------------------------------------------------------------


def test_registry_ids_count_in_base36_and_skip_the_plugin_space() -> None:
    reg = AttributeRegistry()
    assert reg.assign([f"f{i}" for i in range(1000)]) is True
    ids = [reg.id_of(f"f{i}") for i in range(1000)]
    assert ids[:12] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b"]
    assert ids[35:38] == ["z", "10", "11"]
    assert "p" in ids and not any(len(i) > 1 and i.startswith("p") for i in ids)
    assert len(set(ids)) == 1000
    assert reg.assign(["f1", "f2"]) is False
    assert reg.assign(["_ttl", "_geo.lat"], plugin=True) is True
    assert reg.id_of("_ttl", plugin=True) == "p0" and reg.id_of("_geo.lat") == "p1"
    assert reg.path_of("p1") == "_geo.lat" and reg.path_of("P1") == "_geo.lat"
    assert reg.path_of("nope") is None
    with pytest.raises(KeyError):
        reg.id_of("missing")
    stored = msgspec.json.decode(msgspec.json.encode(reg.to_dict()))
    assert AttributeRegistry.from_dict(stored) == reg


def test_registry_never_reuses_or_shifts_ids() -> None:
    reg = AttributeRegistry()
    reg.assign(["name", "email", "age"])
    before = dict(reg.ids)
    # "email" removed from the schema, "phone" added: email keeps its id, phone gets a new one
    reg.assign(["name", "age", "phone"])
    assert {k: reg.ids[k] for k in before} == before
    assert reg.ids["phone"] == "3"
    # a registry rebuilt from storage continues after the highest id, even without counters
    rebuilt = AttributeRegistry.from_dict({"ids": reg.ids})
    rebuilt.assign(["zip"])
    assert rebuilt.ids["zip"] == "4"
    assert set(rebuilt.ids.values()) == {"0", "1", "2", "3", "4"}
    assert AttributeRegistry.from_dict({}).to_dict() == AttributeRegistry().to_dict()


def test_schema_evolution_reads_old_records() -> None:
    reg = AttributeRegistry()
    _v1_schema, v1 = make_codec({"name": "string", "old": "integer"}, registry=reg)
    old_record = v1.encode({"name": "Ann", "old": 5})
    _, v2 = make_codec({"name": "string", "new": "boolean"}, registry=reg, version="v2")
    assert reg.ids == {"name": "0", "old": "1", "new": "2"}
    assert v2.decode(old_record.metadata, old_record.body) == {"name": "Ann"}
    assert record_version(old_record.metadata) == "v1"
    assert v1.decode(old_record.metadata, old_record.body) == {"name": "Ann", "old": 5}
    new_record = v2.encode({"name": "Bob", "new": True})
    assert v1.decode(new_record.metadata, new_record.body) == {"name": "Bob"}
    assert record_version({"_V": "v9"}) == "v9" and record_version({}) is None


def test_plugin_fields_use_plugin_ids() -> None:
    schema = Schema({"name": "string"}).with_plugin_attribute("_seen", "boolean", "P")
    reg = AttributeRegistry()
    reg.assign(schema.fields.keys() - schema.plugin_fields)
    reg.assign(schema.plugin_fields, plugin=True)
    codec = RecordCodec(schema, reg, version="v1")
    enc = codec.encode({"name": "x", "_seen": True})
    assert enc.metadata == {"_v": "v1", "0": "x", "p0": "1"}
    assert codec.decode(enc.metadata, b"") == {"name": "x", "_seen": True}


def test_codec_needs_ids_and_a_known_behavior() -> None:
    schema = Schema({"a": "string"})
    with pytest.raises(SchemaError, match="no attribute id"):
        RecordCodec(schema, AttributeRegistry(), version="v1")
    reg = AttributeRegistry()
    reg.assign(["a"])
    with pytest.raises(SchemaError, match="unknown behavior"):
        RecordCodec(schema, reg, version="v1", behavior="body-overfow")
    assert len(BEHAVIORS) == 5


def test_corrupt_values_raise_validation_error() -> None:
    _, codec = make_codec({"n": "integer", "d": "date"})
    with pytest.raises(ValidationError) as info:
        codec.decode({"_v": "v1", "0": "not*b62"}, b"")
    assert info.value.errors[0]["field"] == "n"
    with pytest.raises(ValidationError):
        codec.decode({"_v": "v1", "_b": "1"}, b"not json")


# -- behaviors at the 2 KB boundary ---------------------------------------------------------

BASE = metadata_size({"_v": "v1"})


def sized(n: int) -> dict[str, Any]:
    """A record whose metadata is exactly n bytes (one string field with id '0')."""
    return {"s": "x" * (n - BASE - 1)}


@pytest.mark.parametrize("behavior", BEHAVIORS)
def test_exactly_2048_bytes_stays_in_metadata(behavior: str) -> None:
    _, codec = make_codec({"s": "string"}, behavior=behavior)
    enc = codec.encode(sized(2048))
    if behavior == "body-only":
        assert enc.metadata == {"_v": "v1", "_b": "1"}
        assert codec.decode(enc.metadata, enc.body) == sized(2048)
        return
    assert metadata_size(enc.metadata) == 2048
    assert "_b" not in enc.metadata and set(msgspec.json.decode(enc.body)) == {"_n"}
    assert (enc.overflowed, enc.truncated, enc.dropped) == ((), (), ())
    assert codec.decode(enc.metadata, enc.body) == sized(2048)


@pytest.mark.parametrize("reserved", [0, 100])
def test_2049_bytes_overflow_to_the_body(reserved: int) -> None:
    for behavior in ("body-overflow", "user-managed"):
        _, codec = make_codec({"s": "string"}, behavior=behavior, reserved=reserved)
        fits = codec.encode(sized(2048 - reserved))
        assert "_b" not in fits.metadata and metadata_size(fits.metadata) + reserved == 2048
        enc = codec.encode(sized(2049 - reserved))
        assert enc.metadata == {"_v": "v1", "_b": "1"}
        doc = msgspec.json.decode(enc.body)
        assert doc.pop("_n") and doc == {"0": sized(2049 - reserved)["s"]}
        assert enc.overflowed == ["s"]
        assert codec.decode(enc.metadata, enc.body) == sized(2049 - reserved)


def test_2049_bytes_raise_under_enforce_limits() -> None:
    _, codec = make_codec({"s": "string", "t": "string"}, behavior="enforce-limits")
    record = {"s": "x" * 2000, "t": "y" * 43}
    assert metadata_size(codec.encode({"s": "x" * 2000, "t": "y" * 42}).metadata) == 2048
    with pytest.raises(MetadataLimitError) as info:
        codec.encode(record)
    err = info.value
    assert "2049 bytes" in err.message and "2048-byte limit" in err.message
    assert "s (2001 B)" in err.message
    assert err.metadata["size"] == 2049 and err.metadata["limit"] == 2048
    assert err.metadata["largest"][0] == {"field": "s", "bytes": 2001}
    assert err.suggestion and "body-overflow" in err.suggestion


def test_2049_bytes_are_truncated_under_truncate_data() -> None:
    _, codec = make_codec({"s": "string"}, behavior="truncate-data")
    enc = codec.encode(sized(2049))
    assert enc.truncated == ["s"] and "_b" not in enc.metadata
    assert enc.metadata["_t"] == "0"
    assert metadata_size(enc.metadata) <= 2048
    out = codec.decode(enc.metadata, enc.body)
    assert sized(2049)["s"].startswith(out["s"])
    assert len(out["s"]) == 2048 - BASE - 1 - 3  # "_t": "0" takes 3 bytes


def test_truncate_data_cuts_strings_and_drops_the_rest() -> None:
    _, codec = make_codec(
        {"small": "integer", "text": "string", "blob": "json", "code": "string|enum:a,b"},
        behavior="truncate-data",
    )
    record = {"small": 7, "text": "é" * 2000, "blob": ["z" * 3000], "code": "a"}
    enc = codec.encode(record)
    check_wire(enc)
    assert enc.truncated == ["text"] and enc.dropped == ["blob"]
    out = codec.decode(enc.metadata, enc.body)
    assert out["small"] == 7 and out["code"] == "a" and "blob" not in out
    assert record["text"].startswith(out["text"]) and len(out["text"]) > 500


def test_overflow_keeps_the_small_fields_in_metadata_deterministically() -> None:
    attributes = {f"f{i}": "string" for i in range(10)}
    _, codec = make_codec(attributes)
    record = {f"f{i}": ("v" * (i * 150)) or "-" for i in range(10)}
    enc = codec.encode(record)
    check_wire(enc)
    inside = {k for k in enc.metadata if not k.startswith("_")}
    assert inside == {"0", "1", "2", "3", "4"}  # 2+151+301+451+601 bytes fit; f5 (751) not
    assert enc.overflowed == ["f5", "f6", "f7", "f8", "f9"]
    assert codec.encode(dict(reversed(record.items()))).metadata == enc.metadata
    assert codec.decode(enc.metadata, enc.body) == record


def test_unicode_is_counted_as_sent() -> None:
    _, codec = make_codec({"s": "string"}, behavior="enforce-limits")
    enc = codec.encode({"s": "日本" * 100})
    assert metadata_size(enc.metadata) == sum(len(k) + len(v) for k, v in enc.metadata.items())
    with pytest.raises(MetadataLimitError):
        codec.encode({"s": "日本" * 400})  # 800 chars, 2400 UTF-8 bytes, more once escaped


# -- secrets ----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=6))
def test_secret_ciphertext_never_contains_the_cleartext(box: SecretBox, secret: str) -> None:
    _schema, codec = make_codec({"pw": "secret", "list": "array|items:secret"}, box)
    for behavior_codec in (codec, make_codec({"pw": "secret"}, box, behavior="body-only")[1]):
        enc = behavior_codec.encode({"pw": secret})
        wire = "".join(enc.metadata.values()) + enc.body.decode()
        assert secret not in wire and esc_text(secret) not in wire
        assert behavior_codec.decode(enc.metadata, enc.body) == {"pw": secret}
    enc = codec.encode({"list": [secret, secret]})
    one, two = enc.metadata["1"].split(",")
    assert one != two  # a fresh nonce per encryption


def test_secret_box(box: SecretBox) -> None:
    token = box.encrypt("hunter2")
    assert token.isascii() and encode_metadata_value(token) == token
    assert box.decrypt(token) == "hunter2"
    assert box.encrypt("hunter2") != token
    assert PASSPHRASE not in repr(box) and "hidden" in repr(box)
    other = SecretBox("wrong passphrase", SALT)
    with pytest.raises(DecryptionError) as info:
        other.decrypt(token)
    assert "hunter2" not in str(info.value) and PASSPHRASE not in str(info.value)
    assert "wrong passphrase" not in repr(info.value.metadata)
    for bad in ("", "abc", token[:-2], token[:-4] + "AAAA", "!" * 40):
        with pytest.raises(DecryptionError):
            box.decrypt(bad)
    with pytest.raises(EncryptionError):
        SecretBox("", SALT)
    with pytest.raises(EncryptionError):
        SecretBox("x", b"short")
    assert len(SecretBox.new_salt()) == 16 and SecretBox.new_salt() != SecretBox.new_salt()
    with pytest.raises(TypeError):
        __import__("pickle").dumps(box)


def test_secrets_need_a_box(box: SecretBox) -> None:
    _, without = make_codec({"pw": "secret", "name": "string"})
    assert without.encode({"name": "x"}).metadata["1"] == "x"  # no secret value: no key needed
    with pytest.raises(EncryptionError) as info:
        without.encode({"name": "x", "pw": "s3cret"})
    assert info.value.suggestion and "S3DB_PASSPHRASE" in info.value.suggestion
    assert info.value.metadata["field"] == "pw" and "s3cret" not in str(info.value)
    _, with_box = make_codec({"pw": "secret", "name": "string"}, box)
    enc = with_box.encode({"pw": "s3cret", "name": "x"})
    with pytest.raises(DecryptionError) as dinfo:
        without.decode(enc.metadata, enc.body)
    assert dinfo.value.suggestion and "passphrase" in dinfo.value.suggestion
    assert without.decode({"_v": "v1", "1": "x"}, b"") == {"name": "x"}


# -- through real stores ------------------------------------------------------------------------

TRICKY = {
    "s": " leading,  double  and trailing   spaces ",
    "email": "a@b.co",
    "n": -0.0,
    "i": -(2**100),
    "b": False,
    "d": datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("America/Sao_Paulo")),
    "tags": [
        *("", "~", "a,b", "two  spaces", "trailing ", "%41", "=?UTF-8?B?YQ==?="),
        *("日本", "😀", "\x00\t\n"),
    ],
    "nums": [math.inf, -math.inf, 5e-324, 1e308, 2**70],
    "maybe": [None, ""],
    "lines": [{"sku": "ü", "qty": 0, "when": date(1900, 1, 1), "price": math.inf}],
    "meta": {"k": ["é", None, 1.5, {"": []}]},
    "obj": {},
    "vec": [0.1, -0.0, 1e-30, 3.0],
    "pw": "pässwörd",
    "nested": {"a": {}},
}


async def test_round_trip_through_the_store(store: ObjectStore, box: SecretBox) -> None:
    schema, codec = make_codec(ALL_TYPES, box)
    clean = schema.validate(TRICKY)
    big = {**clean, "meta": {"k": "x" * 3000}}
    for record in (clean, big):
        enc = codec.encode(record)
        await store.put("rec", enc.body, enc.metadata, content_type=enc.content_type)
        got = await store.get("rec")
        same(record, codec.decode(got.metadata, got.body))


def test_every_write_changes_the_body_so_etags_change() -> None:
    """S3's etag is the MD5 of the body: metadata-only changes must still change it."""
    _, codec = make_codec({"s": "string"})
    a = codec.encode({"s": "x"})
    b = codec.encode({"s": "x"})
    assert "_b" not in a.metadata and a.body != b.body
    assert codec.decode(a.metadata, a.body) == {"s": "x"}
