"""The plugin table: every plugin of the plugin system, and what really exists of each.

::

    from s3db_async.plugins.catalog import CATALOG, status

    for entry in CATALOG:
        print(entry.title, status(entry).state)    # "available" or "planned"

A plugin is **available** only when all of these hold, checked each time, never declared:
its module ``s3db_async.plugins.<name>`` imports, it defines the class and the class is a
:class:`~s3db_async.Plugin` subclass, its docs page ``docs/plugins/<name>.md`` exists and its
tests folder ``tests/plugins/<name>/`` holds tests. Anything less is **planned** (with the
reasons). The README's table is generated from here and checked by the test suite::

    python -m s3db_async.plugins.catalog                  # print the table (Markdown)
    python -m s3db_async.plugins.catalog --write-readme   # rewrite it in README.md
    python -m s3db_async.plugins.catalog --check          # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from s3db_async.plugin import Plugin

__all__ = [
    "CATALOG",
    "README_END",
    "README_START",
    "STORE_KINDS",
    "PluginEntry",
    "PluginStatus",
    "main",
    "render_table",
    "repository_root",
    "status",
    "update_readme",
]

STORE_KINDS = ("memory", "file", "moto", "seaweedfs")
"""The stores of the test matrix (``s3db_async.testing.STORE_KINDS``)."""

README_START = "<!-- plugin-table:start -->"
README_END = "<!-- plugin-table:end -->"
PACKAGE = "s3db_async.plugins"


@dataclass(frozen=True)
class PluginEntry:
    """One plugin of the table.

    :param name: the one key: module ``s3db_async.plugins.<name>``, docs page
        ``docs/plugins/<name>.md``, tests ``tests/plugins/<name>/``.
    :param extras: the pip extras it needs (``pip install 's3db-async[extra]'``).
    :param stores: the store kinds its tests run on.
    """

    name: str
    title: str
    class_name: str
    summary: str
    extras: tuple[str, ...] = ()
    stores: tuple[str, ...] = STORE_KINDS

    @property
    def module(self) -> str:
        return f"{PACKAGE}.{self.name}"

    @property
    def docs_page(self) -> str:
        return f"docs/plugins/{self.name}.md"

    @property
    def tests_dir(self) -> str:
        return f"tests/plugins/{self.name}"


@dataclass(frozen=True)
class PluginStatus:
    """What exists of a plugin: ``state`` is ``"available"`` only with no ``missing`` part."""

    entry: PluginEntry
    missing: tuple[str, ...] = field(default=())

    @property
    def state(self) -> str:
        return "planned" if self.missing else "available"

    @property
    def available(self) -> bool:
        return not self.missing


_WITHOUT_MOTO = ("memory", "file", "seaweedfs")

_TESTED_ON: dict[str, tuple[str, ...]] = {
    # plugins whose tests do not run on every store kind (by their pytest ``stores`` marks)
    "audit": _WITHOUT_MOTO,
    "cache": _WITHOUT_MOTO,
    "metrics": _WITHOUT_MOTO,
}


def _entry(name: str, title: str, cls: str, summary: str, *extras: str) -> PluginEntry:
    return PluginEntry(name, title, cls, summary, tuple(extras), _TESTED_ON.get(name, STORE_KINDS))


CATALOG: tuple[PluginEntry, ...] = (
    _entry("api", "API", "ApiPlugin", "REST API for resources, with OpenAPI and auth"),
    _entry("audit", "Audit", "AuditPlugin", "Operation log of every write, for compliance"),
    _entry("backup", "Backup", "BackupPlugin", "Backups to one or several destinations"),
    _entry("cache", "Cache", "CachePlugin", "Read cache in memory, on S3 or on disk", "cache"),
    _entry("costs", "Costs", "CostsPlugin", "S3 request and storage cost tracking"),
    _entry(
        "cloud_inventory",
        "Cloud Inventory",
        "CloudInventoryPlugin",
        "Multi-cloud resource inventory with versions and diffs",
        "aws",
    ),
    _entry(
        "eventual_consistency",
        "Eventual Consistency",
        "EventualConsistencyPlugin",
        "Counters and balances from consolidated transactions",
    ),
    _entry("fulltext", "FullText", "FullTextPlugin", "Full-text search over resource fields"),
    _entry("geo", "Geo", "GeoPlugin", "Location queries and proximity search"),
    _entry("graph", "Graph", "GraphPlugin", "Vertices, edges and path finding", "graph"),
    _entry(
        "identity",
        "Identity",
        "IdentityPlugin",
        "OAuth2/OIDC identity provider with MFA",
        "bcrypt",
    ),
    _entry(
        "kubernetes_inventory",
        "Kubernetes Inventory",
        "KubernetesInventoryPlugin",
        "Multi-cluster Kubernetes inventory with versions and diffs",
    ),
    _entry(
        "importer", "Importer", "ImporterPlugin", "Bulk import from JSON, CSV and more", "importer"
    ),
    _entry(
        "metrics", "Metrics", "MetricsPlugin", "Operation metrics and usage analytics", "metrics"
    ),
    _entry("ml", "ML", "MLPlugin", "Model training, storage and inference on resources", "vector"),
    _entry(
        "recon",
        "Recon",
        "ReconPlugin",
        "DNS, port, TLS and subdomain reconnaissance with scheduled sweeps",
    ),
    _entry(
        "queue_consumer",
        "Queue Consumer",
        "QueueConsumerPlugin",
        "Consume RabbitMQ or SQS messages into resources",
        "rabbitmq",
        "aws",
    ),
    _entry("relation", "Relation", "RelationPlugin", "hasOne, hasMany, belongsTo relations"),
    _entry(
        "replicator",
        "Replicator",
        "ReplicatorPlugin",
        "Replicate changes to PostgreSQL, SQS, another s3db",
        "postgres",
        "aws",
    ),
    _entry("s3_queue", "S3Queue", "S3QueuePlugin", "Distributed work queue on conditional writes"),
    _entry(
        "spider_suite",
        "Spider Suite",
        "SpiderSuitePlugin",
        "Crawling bundle: browser, S3 queue and TTL",
    ),
    _entry(
        "cookie_farm_suite",
        "Cookie Farm Suite",
        "CookieFarmSuitePlugin",
        "Browser persona bundle: cookie farm, browser and queue",
    ),
    _entry("puppeteer", "Puppeteer", "PuppeteerPlugin", "Headless browser pool for automation"),
    _entry(
        "scheduler", "Scheduler", "SchedulerPlugin", "Cron jobs run once across processes"
    ),  # croniter (a core dependency) and the runtime's jobs: no extra
    _entry(
        "state_machine", "State Machine", "StateMachinePlugin", "Finite state machine workflows"
    ),
    _entry("smtp", "SMTP", "SMTPPlugin", "Email delivery through providers, with webhooks"),
    _entry(
        "tfstate", "Tfstate", "TfStatePlugin", "Terraform state tracking and diffs", "scheduler"
    ),
    _entry("tournament", "Tournament", "TournamentPlugin", "Brackets, matches and leagues"),
    _entry("tree", "Tree", "TreePlugin", "Hierarchies as nested sets or adjacency lists"),
    _entry("ttl", "TTL", "TTLPlugin", "Automatic record expiry"),
    _entry("vector", "Vector", "VectorPlugin", "Vector similarity search", "vector"),
)
"""The 31 plugins of the plugin system, in the order of its table."""


def repository_root() -> Path:
    """The checkout this package runs from (``plugins/`` sits at its top)."""
    return Path(__file__).resolve().parent.parent


def status(entry: PluginEntry, *, root: Path | None = None, package: str = PACKAGE) -> PluginStatus:
    """Check what exists of ``entry`` (imports the module if there is one).

    :param root: where ``docs/`` and ``tests/`` are (default: :func:`repository_root`).
    :param package: the package holding the plugin modules.
    """
    base = root or repository_root()
    missing: list[str] = []
    try:
        module = importlib.import_module(f"{package}.{entry.name}")
    except ImportError as exc:
        missing.append(f"module {package}.{entry.name} does not import ({exc})")
    else:
        cls = getattr(module, entry.class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            missing.append(f"{entry.class_name} is not a Plugin subclass in {module.__name__}")
    if not (base / entry.docs_page).is_file():
        missing.append(f"no docs page {entry.docs_page}")
    test_files = sorted((base / entry.tests_dir).glob("test_*.py"))
    if not test_files:
        missing.append(f"no tests in {entry.tests_dir}/")
    elif not any(_MATRIX_FIXTURES & set(_words(f)) for f in test_files):
        missing.append(
            f"the tests in {entry.tests_dir}/ do not run on the store matrix "
            "(no store_kind, store_url, db or s3db_store_* fixture)"
        )
    return PluginStatus(entry, tuple(missing))


_MATRIX_FIXTURES = frozenset(
    {"store_kind", "store_url", "db", "s3db_store_kind", "s3db_store_url", "s3db_store_db"}
)


def _words(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)


def _extras(extras: Sequence[str]) -> str:
    return ", ".join(f"`{extra}`" for extra in extras) if extras else "—"


def render_table(statuses: Sequence[PluginStatus] | None = None) -> str:
    """The Markdown table of every plugin (status checked now unless given)."""
    rows = statuses if statuses is not None else [status(e) for e in CATALOG]
    lines = [
        "| Plugin | What it does | Status | Docs | Tested on | Extra |",
        "|---|---|---|---|---|---|",
    ]
    for st in rows:
        e = st.entry
        docs = f"[{e.docs_page}]({e.docs_page})" if st.available else "—"
        stores = ", ".join(e.stores) if st.available else "—"
        lines.append(
            f"| {e.title} (`{e.class_name}`) | {e.summary} | {st.state} | {docs} | {stores} "
            f"| {_extras(e.extras)} |"
        )
    available = sum(st.available for st in rows)
    lines.append("")
    lines.append(
        f"{available} of {len(rows)} available. Generated by "
        "`python -m s3db_async.plugins.catalog --write-readme` from "
        "`s3db_async.plugins.catalog`: a plugin is available only when its module imports, "
        "its docs page exists and its tests run on the store matrix (a test checks this "
        "table). Extra: `pip install 's3db-async[extra]'`."
    )
    return "\n".join(lines)


def update_readme(text: str, table: str | None = None) -> str:
    """``text`` with the table between :data:`README_START` and :data:`README_END` replaced.

    :raises ValueError: the markers are missing or out of order.
    """
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README needs the markers {README_START} and {README_END}, in order")
    body = table if table is not None else render_table()
    return f"{text[: start + len(README_START)]}\n{body}\n{text[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m s3db_async.plugins.catalog [--write-readme | --check] [--readme PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m s3db_async.plugins.catalog", description="The plugin table."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write-readme", action="store_true", help="rewrite the README table")
    mode.add_argument("--check", action="store_true", help="exit 1 if the README table is stale")
    parser.add_argument("--readme", type=Path, default=repository_root() / "README.md")
    args = parser.parse_args(argv)
    if not (args.write_readme or args.check):
        sys.stdout.write(render_table() + "\n")
        return 0
    current = args.readme.read_text(encoding="utf-8")
    wanted = update_readme(current)
    if args.check:
        if current != wanted:
            sys.stderr.write(
                f"{args.readme}: the plugin table is stale; run "
                "python -m s3db_async.plugins.catalog --write-readme\n"
            )
            return 1
        return 0
    if current != wanted:
        args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
