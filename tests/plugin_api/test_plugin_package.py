"""plugins/ has one module name, ``s3db_async.plugins`` (issue 17.4)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import s3db_async.plugins

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose sys.path starts with the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_plugin_package_is_named_s3db_async_plugins() -> None:
    assert s3db_async.plugins.__name__ == "s3db_async.plugins"
    assert Path(s3db_async.plugins.__file__ or "") == REPO / "plugins" / "__init__.py"


def test_import_plugins_under_its_folder_name_fails() -> None:
    result = run_python(
        """
        import sys
        assert sys.path[0] in ("", "."), sys.path[0]   # the repository root is importable
        try:
            import plugins
        except ImportError as exc:
            print("refused:", exc)
        else:
            print("loaded as", plugins.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:"), result.stdout
    assert "s3db_async.plugins" in result.stdout


def is_project_file(path: Path) -> bool:
    """A source file of this repository (the virtualenv excluded)."""
    path = path.resolve()
    return path.is_relative_to(REPO) and not path.is_relative_to(REPO / ".venv")


def duplicates(modules: dict[str, object]) -> dict[str, list[str]]:
    """Source files of the repository loaded under more than one module name."""
    by_file: dict[str, list[str]] = {}
    for name, module in list(modules.items()):
        path = getattr(module, "__file__", None)
        if path and is_project_file(Path(path)):
            by_file.setdefault(str(Path(path).resolve()), []).append(name)
    return {f: names for f, names in by_file.items() if len(names) > 1}


def test_no_module_of_this_test_run_is_loaded_under_two_names() -> None:
    assert duplicates(dict(sys.modules)) == {}


def test_no_module_is_loaded_under_two_names_from_the_repository_root() -> None:
    result = run_python(
        """
        import sys
        from pathlib import Path
        import s3db_async, s3db_async.plugins, s3db_async.testing, s3db_async.cli
        try:
            import plugins  # noqa: F401
        except ImportError:
            pass
        seen = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            here = Path.cwd()
            path = Path(path).resolve() if path else None
            if path and path.is_relative_to(here) and not path.is_relative_to(here / ".venv"):
                seen.setdefault(str(path), []).append(name)
        print({f: n for f, n in seen.items() if len(n) > 1})
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{}"
