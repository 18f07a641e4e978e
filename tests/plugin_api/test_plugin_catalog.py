"""The plugin table (issue 18.5): the registry in ``s3db_async.plugins.catalog``, the status it
derives from what exists, and the README table generated from it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import s3db_async.plugins
from s3db_async.plugins import catalog
from s3db_async.plugins.catalog import CATALOG, PluginEntry, render_table, status, update_readme

from s3db_async import Plugin
from s3db_async.testing import STORE_KINDS

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

SEED_PLUGINS = {  # the "All Available Plugins" table of the plugin-system seed, 31 rows
    "API", "Audit", "Backup", "Cache", "Costs", "Cloud Inventory", "Eventual Consistency",
    "FullText", "Geo", "Graph", "Identity", "Kubernetes Inventory", "Importer", "Metrics",
    "ML", "Recon", "Queue Consumer", "Relation", "Replicator", "S3Queue", "Spider Suite",
    "Cookie Farm Suite", "Puppeteer", "Scheduler", "State Machine", "SMTP", "Tfstate",
    "Tournament", "Tree", "TTL", "Vector",
}  # fmt: skip


def readme_rows() -> dict[str, list[str]]:
    """The README table's rows by class name: [plugin, summary, status, docs, stores, extra]."""
    text = README.read_text(encoding="utf-8")
    table = text.split(catalog.README_START, 1)[1].split(catalog.README_END, 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.search(r"\(`(\w+)`\)", cells[0]) if len(cells) == 6 else None
        if match:
            rows[match.group(1)] = cells
    return rows


def test_the_catalog_is_the_seed_table() -> None:
    assert len(CATALOG) == 31
    assert {e.title for e in CATALOG} == SEED_PLUGINS
    for attr in ("name", "class_name", "title"):
        assert len({getattr(e, attr) for e in CATALOG}) == 31, attr
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for e in CATALOG:
        assert s3db_async.plugins._MODULES[e.class_name] == e.name  # one module per class
        assert set(e.extras) <= set(extras), e  # every extra it names exists
        assert set(e.stores) <= set(STORE_KINDS) and e.stores
        assert e.summary and "|" not in e.summary
    assert catalog.STORE_KINDS == STORE_KINDS


def test_the_readme_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert text == update_readme(text), (
        "README.md's plugin table is stale: run make plugin-table "
        "(python -m s3db_async.plugins.catalog --write-readme)"
    )
    assert set(readme_rows()) == {e.class_name for e in CATALOG}


def test_no_row_claims_a_plugin_that_is_not_there() -> None:
    """Checked here independently of ``status()``: an "available" row needs the module to
    import with its Plugin class, the docs page and tests on the store matrix."""
    by_class = {e.class_name: e for e in CATALOG}
    for class_name, cells in readme_rows().items():
        entry = by_class[class_name]
        assert cells[2] in ("available", "planned"), cells
        if cells[2] == "planned":
            assert cells[3] == "—" and cells[4] == "—", cells  # no docs or stores claimed
            continue
        module = importlib.import_module(f"s3db_async.plugins.{entry.name}")
        cls = getattr(module, class_name)
        assert isinstance(cls, type) and issubclass(cls, Plugin)
        assert (REPO / "docs" / "plugins" / f"{entry.name}.md").is_file()
        tests = list((REPO / "tests" / "plugins" / entry.name).glob("test_*.py"))
        assert tests and any("store" in t.read_text() for t in tests)
        assert cells[4] == ", ".join(entry.stores)


def test_a_row_is_available_exactly_when_nothing_is_missing() -> None:
    """Planned rows say what is missing; available ones miss nothing."""
    states = {e.name: status(e) for e in CATALOG}
    for name, st in states.items():
        assert (st.state == "available") == (not st.missing), (name, st)
    assert {n for n, st in states.items() if st.state == "available"} >= {
        "cache",
        "audit",
        "metrics",
        "eventual_consistency",
        "scheduler",
        "ttl",
        "costs",
        "importer",
        "relation",
        "tree",
        "backup",
        "graph",
        "state_machine",
    }
    assert "docs page docs/plugins/identity.md" in " ".join(states["identity"].missing)


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``kitfake_plugins`` with a real plugin ``demo`` and two that are not."""
    package = tmp_path / "src" / "kitfake_plugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "demo.py").write_text(
        textwrap.dedent(
            """\
            from s3db_async import Plugin

            class DemoPlugin(Plugin):
                pass

            class NotAPlugin:
                pass
            """
        )
    )
    (package / "broken.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    for name in [m for m in sys.modules if m.startswith("kitfake_plugins")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def test_status_follows_what_exists(fake_plugins: Path) -> None:
    root = fake_plugins
    demo = PluginEntry("demo", "Demo", "DemoPlugin", "a demo")

    def check(entry: PluginEntry) -> catalog.PluginStatus:
        return status(entry, root=root, package="kitfake_plugins")

    assert check(demo).state == "planned"  # module and class only
    (root / "docs" / "plugins").mkdir(parents=True)
    (root / "docs/plugins/demo.md").write_text("# Demo\n")
    (root / "tests/plugins/demo").mkdir(parents=True)
    assert check(demo).missing == ("no tests in tests/plugins/demo/",)
    (root / "tests/plugins/demo/test_demo.py").write_text("def test_x():\n    pass\n")
    assert "store matrix" in check(demo).missing[0]  # tests, but not on the stores
    (root / "tests/plugins/demo/test_demo.py").write_text("async def test_x(store_url): ...\n")
    assert check(demo).state == "available" and check(demo).missing == ()

    wrong_class = PluginEntry("demo", "Demo", "NotAPlugin", "a demo")
    assert "not a Plugin subclass" in check(wrong_class).missing[0]
    for name in ("broken", "absent"):  # does not import
        st = check(PluginEntry(name, "X", "XPlugin", "x"))
        assert "does not import" in st.missing[0] and st.state == "planned"

    table = render_table([check(demo), check(PluginEntry("absent", "Absent", "AbsentPlugin", "x"))])
    assert "| Demo (`DemoPlugin`) | a demo | available | [docs/plugins/demo.md]" in table
    assert "| Absent (`AbsentPlugin`) | x | planned | — | — | — |" in table
    assert "1 of 2 available" in table


def test_the_cli_writes_and_checks_the_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{catalog.README_START}\nold\n{catalog.README_END}\n\nrest\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "s3db_async.plugins.catalog", *args, "--readme", str(readme)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    stale = cli("--check")
    assert stale.returncode == 1 and "--write-readme" in stale.stderr
    assert cli("--write-readme").returncode == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{catalog.README_END}\n\nrest\n")
    assert "| Vector (`VectorPlugin`) |" in text
    assert cli("--check").returncode == 0
    with pytest.raises(ValueError, match="markers"):
        update_readme("no markers here")
    assert catalog.main([]) == 0  # prints the table
