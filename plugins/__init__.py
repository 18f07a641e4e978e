"""s3db-async plugins, imported lazily so optional dependencies only matter on use.

::

    from s3db_async.plugins import CachePlugin      # imports s3db_async.plugins.cache now

``import s3db_async`` (or this package) imports no plugin module: each class is loaded on
first access (PEP 562 ``__getattr__``). ``__all__`` lists the plugins whose module is present.
A plugin module is ``plugins/<module>.py`` or a subpackage ``plugins/<module>/`` exporting the
class; add new ones to ``_MODULES`` (a name missing there is looked up by convention:
``FooBarPlugin`` in module ``foo_bar``). The folder ``plugins/`` is only ever imported as
``s3db_async.plugins`` (``import plugins`` raises ``ImportError``), and plugin modules import
each other relatively and the core through its public modules (an import-linter contract).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

if __name__ != "s3db_async.plugins":  # the folder is on sys.path when run from the repo root
    raise ImportError(
        f"plugins/ is the package s3db_async.plugins; import it under that name, not {__name__!r}",
        name=__name__,
    )

_MODULES: dict[str, str] = {
    "ApiPlugin": "api",
    "AuditPlugin": "audit",
    "BackupPlugin": "backup",
    "CachePlugin": "cache",
    "CloudInventoryPlugin": "cloud_inventory",
    "CookieFarmPlugin": "cookie_farm",
    "CookieFarmSuitePlugin": "cookie_farm_suite",
    "CostsPlugin": "costs",
    "EventualConsistencyPlugin": "eventual_consistency",
    "FullTextPlugin": "fulltext",
    "GeoPlugin": "geo",
    "GraphPlugin": "graph",
    "IdentityPlugin": "identity",
    "ImporterPlugin": "importer",
    "KubernetesInventoryPlugin": "kubernetes_inventory",
    "MLPlugin": "ml",
    "MetricsPlugin": "metrics",
    "PuppeteerPlugin": "puppeteer",
    "QueueConsumerPlugin": "queue_consumer",
    "ReconPlugin": "recon",
    "RelationPlugin": "relation",
    "ReplicatorPlugin": "replicator",
    "S3QueuePlugin": "s3_queue",
    "SMTPPlugin": "smtp",
    "SchedulerPlugin": "scheduler",
    "SpiderPlugin": "spider",
    "SpiderSuitePlugin": "spider_suite",
    "StateMachinePlugin": "state_machine",
    "TTLPlugin": "ttl",
    "TfStatePlugin": "tfstate",
    "TournamentPlugin": "tournament",
    "TreePlugin": "tree",
    "VectorPlugin": "vector",
}

_HERE = Path(__file__).parent


def _module_present(module: str) -> bool:
    return (_HERE / f"{module}.py").is_file() or (_HERE / module / "__init__.py").is_file()


def _conventional_module(name: str) -> str:
    base = name[: -len("Plugin")] if name.endswith("Plugin") else name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


__all__ = sorted(name for name, module in _MODULES.items() if _module_present(module))


def __getattr__(name: str) -> Any:
    if not name.endswith("Plugin") or name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _MODULES.get(name) or _conventional_module(name)
    if not _module_present(module):
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r} (no plugins/{module}.py)"
        )
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
