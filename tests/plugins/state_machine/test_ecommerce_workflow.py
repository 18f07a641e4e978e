"""examples/ecommerce_workflow.py (the seed's E-commerce Workflow: StateMachinePlugin +
EventualConsistencyPlugin inventory + SchedulerPlugin jobs) runs on SeaweedFS and memory and
ends with the expected orders, stock levels and histories."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.stores("memory", "seaweedfs")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ecommerce_workflow.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecommerce_workflow_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_ecommerce_workflow_runs(store_url: str) -> None:
    out = await load().main(store_url)
    assert out["report"] == {"cancelled": 1, "delivered": 1, "pending": 1, "shipped": 1}
    assert out["stock"] == {"mug": 1, "tea": 5}  # 10-2-1+1-3 tea, 2-1 mugs
    assert out["refused"] == ["o3:CONFIRM"]
    assert out["histories"] == {
        "o1": ["CONFIRM", "SHIP", "DELIVER"],
        "o2": ["CONFIRM", "CANCEL"],
        "o3": [],
        "o4": ["CONFIRM", "SHIP"],
    }
