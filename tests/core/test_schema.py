"""Schema: rule parsing, validation (every failing field), canonical forms, plugin fields."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3db_async._schema.schema import Schema
from s3db_async.errors import SchemaError, ValidationError

FULL = {
    "email": "string|required|email",
    "name": "string|min:2|max:50",
    "profile": {"age": "number|optional", "tags": "array|items:string"},
    "password": "secret",
    "tags": "array|items:string|min:1",
    "items": {"type": "array", "items": {"sku": "string|required", "qty": "integer|min:1"}},
    "status": "string|enum:active,inactive|default:active",
    "meta": "json",
    "obj": "object",
    "vec": "embedding:3",
    "ip": "ip4",
    "ip6": "ip6",
    "site": "url",
    "born": "date",
    "flag": "boolean",
    "count": "integer|min:0",
    "fmt": "string|enum:json,xml",
    "anything": "any",
}


def errors_of(schema: Schema, data: Any, **kw: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        schema.validate(data, **kw)
    return {e["field"]: e["rule"] for e in info.value.errors}


# -- parsing -------------------------------------------------------------------------


def test_parses_every_type_and_indexes_leaves_by_dotted_path() -> None:
    s = Schema(FULL)
    assert set(s.fields) == {
        "email", "name", "profile.age", "profile.tags", "password", "tags", "items", "status",
        "meta", "obj", "vec", "ip", "ip6", "site", "born", "flag", "count", "fmt", "anything",
    }  # fmt: skip
    assert set(s.objects) == {"profile"}
    email = s.fields["email"]
    assert (email.type, email.required, email.nullable) == ("email", True, False)
    assert s.fields["name"].rules == {"min": 2, "max": 50}
    assert s.fields["vec"].dimensions == 3
    assert s.fields["tags"].item_type == "string"
    assert s.fields["items"].item_type == "object"
    assert s.fields["status"].enum == ("active", "inactive")
    assert s.fields["status"].default == "active"
    assert s.fields["password"].secret and s.secret_fields == ["password"]
    assert not s.fields["profile.age"].required
    assert s.plugin_fields == set()


def test_rule_dict_form_is_equivalent_to_rule_string() -> None:
    a = Schema({"n": "string|required|min:2|max:5", "e": "number|enum:1,2.5"})
    b = Schema(
        {
            "n": {"type": "string", "required": True, "min": 2, "max": 5},
            "e": {"type": "number", "enum": [1, 2.5]},
        }
    )
    c = Schema({"n": {"type": "string|required", "min": 2, "max": 5}, "e": "enum:1,2.5|number"})
    assert a.definition() == b.definition() == c.definition()
    assert a.hash() == b.hash() == c.hash()


def test_string_enum_of_json_is_a_string_enum_not_json() -> None:
    s = Schema({"fmt": "string|enum:json,xml", "bare": "enum:a,b"})
    spec = s.fields["fmt"]
    assert spec.type == "string" and spec.enum == ("json", "xml")
    assert s.fields["bare"].type == "string" and s.fields["bare"].enum == ("a", "b")
    assert s.validate({"fmt": "json"}) == {"fmt": "json"}
    assert errors_of(s, {"fmt": "yaml"}) == {"fmt": "enum"}
    assert errors_of(s, {"fmt": {"a": 1}}) == {"fmt": "string"}


def test_refining_type_tokens() -> None:
    s = Schema({"a": "string|email", "b": "email|string", "c": "number|integer", "d": "string|url"})
    assert [s.fields[k].type for k in "abcd"] == ["email", "email", "integer", "url"]


def test_typed_rule_arguments() -> None:
    s = Schema(
        {
            "n": "number|enum:1,2.5|default:2.5",
            "i": "integer|default:7",
            "b": "boolean|default:false",
            "a": "array|items:integer|default:[1,2]",
            "o": "object|default:{}",
            "d": "date|default:2024-01-15",
            "s": "string|default:a,b:c",
        }
    )
    f = s.fields
    assert f["n"].enum == (1, 2.5) and type(f["n"].enum[0]) is int
    assert f["n"].default == 2.5 and f["i"].default == 7 and f["b"].default is False
    assert f["a"].default == [1, 2] and f["o"].default == {}
    assert f["d"].default == date(2024, 1, 15)
    assert f["s"].default == "a,b:c"


@pytest.mark.parametrize(
    ("attributes", "rule", "suggests"),
    [
        ({"name": "string|requried"}, "requried", "required"),
        ({"name": "strng|required"}, "strng", "string"),
        ({"name": "string|mni:2"}, "mni", "min"),
        ({"p": {"deep": "integer|optinal"}}, "optinal", "optional"),
        ({"name": {"type": "string", "requried": True}}, "requried", "required"),
        ({"tags": "array|items:strin"}, "strin", "string"),
    ],
)
def test_unknown_rule_names_the_field_and_rule_and_suggests(
    attributes: dict[str, Any], rule: str, suggests: str
) -> None:
    with pytest.raises(SchemaError) as info:
        Schema(attributes)
    err = info.value
    assert rule in err.message
    assert err.suggestion is not None and repr(suggests) in err.suggestion
    assert err.metadata["rule"] == rule
    field = err.metadata["field"]
    assert field and field.split(".")[0].split("[")[0] in attributes
    assert field in err.message or field.split("[")[0] in err.message


@pytest.mark.parametrize(
    ("definition", "rule"),
    [
        ("boolean|min:2", "min"),
        ("string|number", "number"),
        ("integer|default:abc", "default"),
        ("string|enum:a,b|default:c", "default"),
        ("embedding", "dimensions"),
        ("embedding:0", "dimensions"),
        ("string|min:-1", "min"),
        ("string|min", "min"),
        ("string|pattern:(", "pattern"),
        ("string|required|optional", "optional"),
        ("required", "type"),
        ("", "type"),
        ("number|enum:a,b", "enum"),
        ("string:3", "string"),
        ("string|min:2|min:3", "min"),
    ],
)
def test_bad_definitions_raise_schema_error(definition: str, rule: str) -> None:
    with pytest.raises(SchemaError) as info:
        Schema({"f": definition})
    assert info.value.metadata["rule"] == rule
    assert "'f'" in info.value.message


@pytest.mark.parametrize("name", ["a.b", "x[0]", "$$type2", ""])
def test_bad_field_names(name: str) -> None:
    with pytest.raises(SchemaError):
        Schema({name: "string"})


def test_definition_must_be_string_or_dict() -> None:
    with pytest.raises(SchemaError) as info:
        Schema({"f": 3})
    assert "rule string or a dict" in info.value.message


# -- validation --------------------------------------------------------------------------


def test_validation_error_lists_every_failing_field() -> None:
    s = Schema(FULL)
    bad = {
        "email": "not-an-email",
        "name": "A",
        "profile": {"age": "old", "tags": ["ok", 3]},
        "tags": [],
        "items": [{"sku": "a", "qty": 0}, {"qty": 2}],
        "status": "gone",
        "vec": [1, 2],
        "ip": "999.1.1.1",
        "ip6": "nope",
        "site": "not a url",
        "born": "yesterday",
        "flag": "yes",
        "count": -1,
        "meta": {"x": float("nan")},
        "obj": [1],
        "emial": "typo",
    }
    with pytest.raises(ValidationError) as info:
        s.validate(bad)
    err = info.value
    got = {e["field"]: e["rule"] for e in err.errors}
    assert got == {
        "email": "email",
        "name": "min",
        "profile.age": "number",
        "profile.tags[1]": "string",
        "tags": "min",
        "items[0].qty": "min",
        "items[1].sku": "required",
        "status": "enum",
        "vec": "dimensions",
        "ip": "ip4",
        "ip6": "ip6",
        "site": "url",
        "born": "date",
        "flag": "boolean",
        "count": "min",
        "meta": "json",
        "obj": "object",
        "emial": "unknown",
    }
    for e in err.errors:
        assert set(e) == {"field", "rule", "message", "value_type"}
        assert e["message"].startswith(e["field"])
    assert {e["field"]: e["value_type"] for e in err.errors}["profile.age"] == "str"
    assert "did you mean 'email'" in next(e for e in err.errors if e["field"] == "emial")["message"]
    assert err.fields == list(got)
    assert isinstance(err, ValueError)
    assert "18 fields failed validation" in str(err)


def test_required_fields_and_value_types() -> None:
    s = Schema({"a": "string|required", "b": "integer|required", "c": "string"})
    with pytest.raises(ValidationError) as info:
        s.validate({"b": None})
    assert info.value.errors == [
        {"field": "b", "rule": "required", "message": "b is required (not null)",
         "value_type": "NoneType"},
        {"field": "a", "rule": "required", "message": "a is required", "value_type": "missing"},
    ]  # fmt: skip


def test_none_semantics() -> None:
    s = Schema({"opt": "string", "req": "string|required", "nul": "string|required|nullable"})
    assert s.validate({"opt": None, "req": "x", "nul": None}) == {
        "opt": None,
        "req": "x",
        "nul": None,
    }
    assert errors_of(s, {"req": None, "nul": None}) == {"req": "required"}
    assert errors_of(s, {"req": "x"}) == {"nul": "required"}


def test_defaults_apply_when_absent_only_and_are_not_shared() -> None:
    s = Schema({"status": "string|default:active", "tags": "array|items:string|default:[]"})
    a = s.validate({})
    assert a == {"status": "active", "tags": []}
    a["tags"].append("x")
    assert s.validate({}) == {"status": "active", "tags": []}
    assert s.validate({"status": None}) == {"status": None, "tags": []}
    assert s.validate({}, partial=True) == {}


def test_partial_validation_checks_only_given_fields() -> None:
    s = Schema(FULL)
    assert s.validate({"name": "Bob", "profile": {"age": 3}}, partial=True) == {
        "name": "Bob",
        "profile": {"age": 3},
    }
    assert errors_of(s, {"name": "B", "profile": {"age": "x"}}, partial=True) == {
        "name": "min",
        "profile.age": "number",
    }
    # array items are whole values: validated fully even in partial mode
    assert errors_of(s, {"items": [{"qty": 1}]}, partial=True) == {"items[0].sku": "required"}


def test_unknown_fields_fail_unless_allow_extra() -> None:
    strict = Schema({"a": "string", "p": {"b": "integer"}})
    assert errors_of(strict, {"a": "x", "z": 1, "p": {"b": 1, "c": 2}}) == {
        "z": "unknown",
        "p.c": "unknown",
    }
    loose = Schema({"a": "string", "p": {"b": "integer"}}, allow_extra=True)
    data = {"a": "x", "z": [1, {"k": None}], "p": {"b": 1, "c": "y"}}
    assert loose.validate(data) == data
    assert errors_of(loose, {"z": datetime.now()}) == {"z": "json"}


def test_coercions_are_the_documented_ones() -> None:
    s = Schema(
        {
            "i": "integer",
            "d": "date",
            "dt": "date",
            "aware": "date",
            "arr": "array|items:number",
            "vec": "embedding:2",
            "j": "json",
        }
    )
    out = s.validate(
        {
            "i": 3.0,
            "d": "2024-01-15",
            "dt": "2024-01-15T10:20:30",
            "aware": "2024-01-15T10:20:30+02:00",
            "arr": (1, 2.5),
            "vec": (1, 2),
            "j": ("a", {"b": (1,)}),
        }
    )
    assert out == {
        "i": 3,
        "d": date(2024, 1, 15),
        "dt": datetime(2024, 1, 15, 10, 20, 30),
        "aware": datetime(2024, 1, 15, 10, 20, 30, tzinfo=timezone(timedelta(hours=2))),
        "arr": [1, 2.5],
        "vec": [1.0, 2.0],
        "j": ["a", {"b": [1]}],
    }
    assert type(out["i"]) is int and type(out["d"]) is date and type(out["dt"]) is datetime
    assert all(type(x) is float for x in out["vec"])
    assert errors_of(s, {"i": 3.5}) == {"i": "integer"}
    assert errors_of(s, {"i": True}) == {"i": "integer"}
    assert errors_of(s, {"arr": [True]}) == {"arr[0]": "number"}


def test_no_coercion_from_strings_for_numbers_and_booleans() -> None:
    s = Schema({"n": "number", "b": "boolean", "s": "string"})
    assert errors_of(s, {"n": "1", "b": 1, "s": 5}) == {
        "n": "number",
        "b": "boolean",
        "s": "string",
    }


def test_dates_keep_their_python_type() -> None:
    s = Schema({"d": "date"})
    now = datetime.now(UTC)
    assert s.validate({"d": now})["d"] is now
    assert type(s.validate({"d": date(2020, 1, 1)})["d"]) is date


def test_min_max_apply_to_length_or_value() -> None:
    s = Schema({"s": "string|min:2|max:3", "a": "array|min:1|max:2", "n": "number|min:-1.5|max:10"})
    assert s.validate({"s": "ab", "a": [1], "n": -1.5}) == {"s": "ab", "a": [1], "n": -1.5}
    assert errors_of(s, {"s": "abcd", "a": [1, 2, 3], "n": 10.5}) == {
        "s": "max",
        "a": "max",
        "n": "max",
    }
    assert errors_of(s, {"s": "a", "a": [], "n": math.nan}) == {"s": "min", "a": "min", "n": "min"}


def test_pattern_is_a_regex_search() -> None:
    s = Schema({"code": {"type": "string", "pattern": "^[A-Z]{2}-\\d+$|^x$"}})
    assert s.validate({"code": "AB-12"}) == {"code": "AB-12"}
    assert errors_of(s, {"code": "ab-12"}) == {"code": "pattern"}


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        ("email", "a.b+c@d.co", "a@b"),
        ("url", "https://example.com/x?y=1", "example.com"),
        ("ip4", "192.168.0.1", "192.168.0.256"),
        ("ip6", "2001:db8::1", "2001:db8:::1"),
    ],
)
def test_formats(type_: str, good: str, bad: str) -> None:
    s = Schema({"f": type_})
    assert s.validate({"f": good}) == {"f": good}
    assert errors_of(s, {"f": bad}) == {"f": type_}


def test_validate_returns_new_containers() -> None:
    s = Schema({"p": {"tags": "array|items:string"}, "o": "object", "j": "json"})
    data = {"p": {"tags": ["a"]}, "o": {"k": [1]}, "j": [{"x": 1}]}
    out = s.validate(data)
    assert out == data
    out["p"]["tags"].append("b")
    out["o"]["k"].append(2)
    out["j"][0]["x"] = 2
    assert data == {"p": {"tags": ["a"]}, "o": {"k": [1]}, "j": [{"x": 1}]}


# -- nested objects ------------------------------------------------------------------------


def test_nested_object_is_required_when_it_holds_a_required_field() -> None:
    s = Schema({"address": {"street": "string|required", "city": "string"}})
    assert s.objects["address"].required
    assert errors_of(s, {}) == {"address.street": "required"}
    assert errors_of(s, {"address": None}) == {"address": "required"}


def test_optional_nested_object_via_dollar_type() -> None:
    s = Schema({"address": {"$$type": "object|optional", "street": "string|required"}})
    assert s.validate({}) == {}
    assert s.validate({"address": None}) == {"address": None}
    assert errors_of(s, {"address": {}}) == {"address.street": "required"}


def test_nested_defaults_create_the_object_unless_explicitly_optional() -> None:
    s = Schema(
        {
            "prefs": {"theme": "string|default:dark", "size": "integer"},
            "extra": {"$$type": "object|optional", "x": "string|default:y"},
            "plain": {"a": "string"},
        }
    )
    assert s.validate({}) == {"prefs": {"theme": "dark"}}
    assert s.validate({"extra": {}, "plain": {}}) == {
        "prefs": {"theme": "dark"},
        "extra": {"x": "y"},
        "plain": {},
    }


def test_props_form_and_field_named_type() -> None:
    a = Schema({"geo": {"type": "object", "props": {"lat": "number", "lng": "number"}}})
    b = Schema({"geo": {"lat": "number", "lng": "number"}})
    assert a.definition() == b.definition()
    c = Schema({"item": {"$$type": "object", "type": "string", "name": "string"}})
    assert set(c.fields) == {"item.type", "item.name"}
    d = Schema({"item": {"type": "string", "name": "string"}})  # not rule keys: nested object
    assert set(d.fields) == {"item.type", "item.name"}
    assert Schema(c.definition()).definition() == c.definition()


def test_arrays_of_objects_and_nested_arrays() -> None:
    s = Schema(
        {
            "lines": {"type": "array", "items": {"sku": "string", "qty": "integer"}},
            "matrix": {"type": "array", "items": {"type": "array", "items": "integer"}},
            "maybe": {"type": "array", "items": "string|nullable"},
            "free": "array|items:object",
        }
    )
    data = {
        "lines": [{"sku": "a", "qty": 1}, {"sku": "b"}],
        "matrix": [[1, 2], []],
        "maybe": ["a", None],
        "free": [{"any": [1, "x"]}],
    }
    assert s.validate(data) == data
    assert errors_of(s, {"matrix": [[1, "x"]], "lines": [None]}) == {
        "matrix[0][1]": "integer",
        "lines[0]": "object",
    }
    assert errors_of(s, {"free": [None], "maybe": [1]}) == {
        "free[0]": "object",
        "maybe[0]": "string",
    }


# -- canonical forms ---------------------------------------------------------------------


def test_definition_is_canonical_and_reparses_to_itself() -> None:
    s = Schema(FULL)
    d = s.definition()
    again = Schema(d)
    assert again.definition() == d
    assert again.hash() == s.hash()
    assert d["email"] == {"type": "email", "required": True}
    assert d["profile"] == {
        "age": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    }


def test_hash_is_stable_across_dict_order_and_processes() -> None:
    a = Schema(FULL)
    b = Schema(dict(reversed(list(FULL.items()))))
    assert a.hash() == b.hash()
    assert a.hash().startswith("sha256:") and len(a.hash()) == 7 + 64
    assert Schema({**FULL, "x": "string"}).hash() != a.hash()
    assert Schema({**FULL, "name": "string|min:3|max:50"}).hash() != a.hash()
    code = (
        "from s3db_async._schema.schema import Schema\n"
        "from tests.core.test_schema import FULL\n"
        "print(Schema(FULL).hash())"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert out.stdout.strip() == a.hash()


def test_json_schema() -> None:
    s = Schema(FULL).with_plugin_attribute("_hidden", "boolean", "P")
    js = s.to_json_schema()
    assert js["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert js["type"] == "object" and js["additionalProperties"] is False
    assert "_hidden" not in js["properties"]
    assert js["required"] == ["email"]
    props = js["properties"]
    assert props["email"] == {"type": "string", "format": "email"}
    assert props["password"] == {"type": ["string", "null"], "writeOnly": True}
    assert props["name"]["minLength"] == 2 and props["name"]["maxLength"] == 50
    assert props["status"]["enum"] == ["active", "inactive", None]
    assert props["status"]["default"] == "active"
    assert props["vec"]["minItems"] == props["vec"]["maxItems"] == 3
    assert props["items"]["items"]["required"] == ["sku"]
    assert props["profile"]["properties"]["age"] == {"type": ["number", "null"]}
    assert props["meta"] == {}


# -- plugin attributes ----------------------------------------------------------------------


def test_plugin_attributes_make_a_new_schema() -> None:
    user = Schema({"name": "string"})
    s = user.with_plugin_attribute("_has_embedding", "boolean|optional", "VectorPlugin")
    s = s.with_plugin_attribute(
        "_index", {"type": "string", "enum": ["pending", "done"]}, "IndexingPlugin"
    )
    s = s.with_plugin_attribute("_geo", {"lat": "number", "lng": "number"}, "GeoPlugin")
    assert "_has_embedding" not in user.fields
    assert s.plugin_fields == {"_has_embedding", "_index", "_geo.lat", "_geo.lng"}
    assert s.fields["_index"].plugin and s.fields["_index"].plugin_name == "IndexingPlugin"
    assert s.fields["_geo.lat"].plugin_name == "GeoPlugin"
    assert s.plugin_attributes == {
        "_has_embedding": "VectorPlugin",
        "_index": "IndexingPlugin",
        "_geo": "GeoPlugin",
    }
    assert s.hash() == user.hash()  # plugin fields do not change the user's version
    assert s.hash(include_plugins=True) != user.hash(include_plugins=True)
    assert s.definition() == user.definition()
    assert s.validate({"name": "a", "_index": "done"}) == {"name": "a", "_index": "done"}
    rebuilt = Schema(s.definition(), plugin_attributes=s.plugin_definition())
    assert rebuilt.plugin_attributes == s.plugin_attributes
    assert rebuilt.hash(include_plugins=True) == s.hash(include_plugins=True)
    removed = s.without_plugin_attribute("_index", "IndexingPlugin")
    assert "_index" not in removed.fields and "_has_embedding" in removed.fields


def test_plugin_attribute_conflicts() -> None:
    s = Schema({"email": "string"}).with_plugin_attribute("_x", "string", "A")
    with pytest.raises(SchemaError, match="collides with a user attribute"):
        s.with_plugin_attribute("email", "string", "A")
    with pytest.raises(SchemaError, match="belongs to plugin 'A'"):
        s.with_plugin_attribute("_x", "integer", "B")
    with pytest.raises(SchemaError, match="belongs to plugin 'A'"):
        s.without_plugin_attribute("_x", "B")
    with pytest.raises(SchemaError, match="not a plugin attribute"):
        s.without_plugin_attribute("email")
    assert s.with_plugin_attribute("_x", "integer", "A").fields["_x"].type == "integer"
    with pytest.raises(SchemaError):
        Schema({"a": "string"}, plugin_attributes={"a": "string"})


# -- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip

RECORDS = st.fixed_dictionaries(
    {"email": st.just("a@b.co")},
    optional={
        "name": st.text(min_size=2, max_size=50) | st.none(),
        "profile": st.fixed_dictionaries(
            {}, optional={"age": st.integers() | st.floats(), "tags": st.lists(st.text())}
        ),
        "meta": json_values,
        "count": st.integers(min_value=0),
        "born": st.dates() | st.datetimes(timezones=st.none() | st.just(UTC)),
        "vec": st.lists(st.floats(allow_nan=False), min_size=3, max_size=3),
    },
)


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_validate_is_idempotent(record: dict[str, Any]) -> None:
    s = Schema(FULL)
    once = s.validate(record)
    assert s.validate(once) == once
    assert once["status"] == "active"
