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


@pytest.mark.stores("memory", "file")
async def test_reset_zeroes_the_figures_and_counting_goes_on(store_url: str) -> None:
    """``reset()`` replaced the series objects the middlewares close over: nothing was
    counted after it, ever."""
    from s3db_async import Database

    async with Database(store_url) as db:
        orders = await db.create_resource("orders", attributes={"item": "string"})
        metrics = await db.use_plugin(MetricsPlugin(flush_interval=None))
        order = await orders.insert({"item": "tea"})
        await orders.get(order["id"])
        metrics.reset()
        assert metrics.get_metrics()["resources"] == {}
        await orders.get(order["id"])
        await orders.get(order["id"])
        figures = metrics.get_metrics()
        assert figures["resources"]["orders"]["get"]["count"] == 2
        assert sum(figures["resources"]["orders"]["get"]["buckets"]) == 2
        assert "insert" not in figures["resources"]["orders"]
        assert figures["totals"]["count"] == 2
        assert 's3db_operations_total{operation="get",resource="orders"} 2.0' in (
            metrics.prometheus_text()
        )
        assert await metrics.flush()
        flushed = await metrics.get_flushed_metrics()
        assert flushed["resources"]["orders"]["get"]["count"] == 2
