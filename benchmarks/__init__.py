"""``make bench``: throughput and S3 requests per operation, as one JSON document.

Run ``python -m benchmarks [--stores memory,file,moto,seaweedfs] [--quick] [--only SECTION]``.
The JSON goes to stdout; progress goes to stderr.

Adding a section
----------------
A section is a module of this package (not starting with ``_``) with::

    TITLE = "what it measures"            # optional, shown in the progress log
    STORES = ("memory", "file", "moto", "seaweedfs")   # optional: the stores it can use

    async def run(ctx: BenchContext) -> dict[str, Any]:
        ...

``run`` gets a :class:`benchmarks._common.BenchContext`: the selected stores
(``ctx.stores``), their connection strings (``ctx.url(store, prefix)``), the running S3
servers (``ctx.servers``), ``ctx.quick`` and helpers to time operations at a given
concurrency (``ctx.measure``). It returns any JSON-serialisable dict; it appears under
``sections[<module name>]``. Sections are discovered automatically and run in name order
(``stores`` first); a failing section is reported under ``errors`` and the others still run.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["discover_sections"]


def discover_sections() -> dict[str, ModuleType]:
    """Every section module of this package, ``stores`` first, then by name."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    names.sort(key=lambda n: (n != "stores", n))
    out: dict[str, ModuleType] = {}
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if callable(getattr(module, "run", None)):
            out[name] = module
    return out
