"""``python -m benchmarks``: start the servers, run the sections, print one JSON document."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks reuse the test servers (tests/_servers.py)
    sys.path.insert(0, str(REPO))

from benchmarks import discover_sections  # noqa: E402
from benchmarks._common import BenchContext, log  # noqa: E402

ALL_STORES = ("memory", "file", "moto", "seaweedfs")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "--stores",
        default=",".join(ALL_STORES),
        help="comma-separated stores to measure (default: %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="short runs (about 0.4 s per point)")
    p.add_argument("--only", action="append", metavar="SECTION", help="run only these sections")
    p.add_argument("--rounds", type=int, default=None, help="repetitions, best kept")
    args = p.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(stores) - set(ALL_STORES))
    if unknown:
        p.error(f"unknown store(s) {unknown}; choose from {', '.join(ALL_STORES)}")
    args.stores = stores
    return args


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    import obstore

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "obstore": getattr(obstore, "__version__", "?"),
        "quick": args.quick,
        "stores": args.stores,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


async def _run_sections(
    ctx: BenchContext, sections: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, module in sections.items():
        log(f"section {name}: {getattr(module, 'TITLE', '')}")
        t0 = time.perf_counter()
        try:
            results[name] = await module.run(ctx)
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"section {name} failed:\n{traceback.format_exc()}")
        log(f"section {name} done in {time.perf_counter() - t0:.1f}s")
    return results, errors


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sections = discover_sections()
    if args.only:
        missing = sorted(set(args.only) - set(sections))
        if missing:
            log(f"unknown section(s) {missing}; available: {', '.join(sections)}")
            return 2
        sections = {k: v for k, v in sections.items() if k in args.only}

    from tests._servers import S3Server, start_moto, start_seaweedfs

    servers: dict[str, S3Server] = {}
    with tempfile.TemporaryDirectory(prefix="s3db-bench-") as tmp:
        tmpdir = Path(tmp)
        try:
            if "seaweedfs" in args.stores:
                log("starting SeaweedFS ...")
                servers["seaweedfs"] = start_seaweedfs(tmpdir / "seaweedfs")
            if "moto" in args.stores:
                log("starting moto ...")
                servers["moto"] = start_moto(process=True)
            ctx = BenchContext(
                stores=args.stores,
                servers=servers,
                tmpdir=tmpdir,
                quick=args.quick,
                target_seconds=0.4 if args.quick else 1.5,
                rounds=args.rounds or (1 if args.quick else 2),
            )
            results, errors = asyncio.run(_run_sections(ctx, sections))
        finally:
            for server in servers.values():
                server.stop()
    doc = {"meta": _meta(args), "sections": results, "errors": errors}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
