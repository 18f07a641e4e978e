"""MetricsPlugin options raise typed errors for bad values (issue 19 audit)."""

from __future__ import annotations

from typing import Any

import pytest
from s3db_async.plugins import MetricsPlugin

from s3db_async.errors import ConfigError


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"buckets": 0.5}, "buckets"),
        ({"buckets": None}, "buckets"),
        ({"host": 5}, "host"),
        ({"host": ""}, "host"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        MetricsPlugin(**options)
    assert err.value.metadata["field"] == field
    assert err.value.metadata["reason"] and err.value.suggestion
