"""Every ```python block of README.md and docs/**/*.md runs (issue 15.3).

Each block runs in a fresh temporary directory, in its own interpreter, with a timeout and
without ``S3DB_URL``/``S3DB_PASSPHRASE`` from the environment. Blocks may use top-level
``await`` (as in ``python -m asyncio`` or a notebook). A block that defines ``test_*``
functions is run by pytest (pytest-asyncio in auto mode), so its assertions run too.

A block that is deliberately not runnable (a fragment of a class, a shape of a call) is
preceded by ``<!-- not-run: reason -->``; it must still compile. An unmarked block that
fails fails this test.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TIMEOUT = 120
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->\s*$")

# Runs the block at argv[1]: pytest for test functions, else as a script with top-level await.
_RUNNER = """
import ast, asyncio, sys
path = sys.argv[1]
source = open(path, encoding="utf-8").read()
if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
       for n in ast.walk(ast.parse(source))):
    import pytest
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
                          "-o", "asyncio_default_fixture_loop_scope=function", path]))
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
result = eval(code, namespace)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its source and its not-run reason (if any)."""

    path: Path
    line: int
    source: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with the marker on the line before each."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(path, line, match.group(1), marker.group(1) if marker else None))
    return blocks


BLOCKS = [b for path in DOCS for b in python_blocks(path)]


def run_block(block: Block, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run one block in ``workdir`` in a new interpreter."""
    script = workdir / "doc_example_test.py"
    script.write_text(block.source, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3DB_")}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_the_docs_have_python_examples() -> None:
    assert len(BLOCKS) > 20
    assert any(b.path.name == "README.md" for b in BLOCKS)


def test_fragments_are_few() -> None:
    marked = [b.name for b in BLOCKS if b.not_run is not None]
    assert len(marked) <= len(BLOCKS) // 3, marked


def test_no_link_leaves_the_repository() -> None:
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
        links = re.findall(r"\]\(([^)\s#]+)[^)]*\)", re.sub(r"`[^`\n]*`", "", text))
        links += re.findall(r"`(\.\./[^`\s]+)`", text)  # paths named in prose
        for link in links:
            if "://" in link or link.startswith("mailto:"):
                continue
            resolved = (path.parent / link).resolve()
            assert resolved.is_relative_to(ROOT), f"{path.name}: {link} is outside a clone"
            assert resolved.exists(), f"{path.name}: {link} does not exist"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.not_run is not None:
        assert block.not_run, f"{block.name}: say why the block does not run"
        compile(block.source, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    result = run_block(block, tmp_path)
    assert result.returncode == 0, (
        f"{block.name} failed (mark it <!-- not-run: reason --> only if it is a fragment):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def test_the_runner_catches_a_failing_block(tmp_path: Path) -> None:
    broken = Block(ROOT / "README.md", 0, "from s3db_async import Nothing\n", None)
    assert run_block(broken, tmp_path).returncode != 0
    failing_test = Block(ROOT / "README.md", 0, "def test_x():\n    assert 1 == 2\n", None)
    assert run_block(failing_test, tmp_path).returncode != 0
    awaiting = Block(ROOT / "README.md", 0, "import asyncio\nawait asyncio.sleep(0)\n", None)
    assert run_block(awaiting, tmp_path).returncode == 0


def test_markers_are_read_from_the_line_before_a_block(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- not-run: a fragment -->\n```python\nx = 1\n```\n\ntext\n\n```python\ny = 2\n```\n"
    )
    first, second = python_blocks(doc)
    assert (first.not_run, first.source) == ("a fragment", "x = 1\n")
    assert (second.not_run, second.line) == (None, 8)


def test_the_quickstart_example_runs(tmp_path: Path) -> None:
    """``make demo`` runs examples/quickstart.py; it must work from a fresh directory."""
    source = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    result = run_block(Block(ROOT / "examples" / "quickstart.py", 1, source, None), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / ".s3db-demo").is_dir() and "Dan Okafor" in result.stdout
