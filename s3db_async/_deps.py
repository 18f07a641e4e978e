"""Optional dependencies of plugins: checks with actionable errors, and a report.

The core installs nothing a plugin alone needs; each plugin names its packages and the pip
extra that brings them, and checks them when it is installed::

    class QueueConsumerPlugin(Plugin):
        dependencies = (Dependency("aioboto3", extra="aws", min_version="13"),)

    require_dependency("aioboto3", extra="aws", min_version="13")   # or call it directly

A missing or too old package raises :class:`MissingDependencyError` whose message lists
each package, the version required and the exact ``pip install 's3db-async[extra]'``.
``S3DB_SKIP_PLUGIN_DEP_CHECK=1`` skips the checks (tests that mock the packages).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import MissingDependencyError

__all__ = [
    "DISTRIBUTION",
    "SKIP_ENV",
    "Dependency",
    "DependencyStatus",
    "check_dependency",
    "get_plugin_dependency_report",
    "register_plugin_dependencies",
    "require_dependencies",
    "require_dependency",
]

DISTRIBUTION = "s3db-async"
SKIP_ENV = "S3DB_SKIP_PLUGIN_DEP_CHECK"
"""Environment variable: ``1`` skips every dependency check."""

_REGISTRY: dict[str, tuple[Dependency, ...]] = {}
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)(?:;(.*))?$")
_EXTRA_RE = re.compile(r"extra\s*==\s*['\"]([^'\"]+)['\"]")
_MIN_RE = re.compile(r">=\s*([0-9][0-9A-Za-z.]*)")


@dataclass(frozen=True, slots=True)
class Dependency:
    """A package a plugin needs.

    :param package: the distribution name on PyPI (``aio-pika``).
    :param extra: the ``s3db-async`` extra that installs it (``rabbitmq``).
    :param min_version: lowest acceptable version (``"9"``, ``"1.26"``), or ``None``.
    :param module: the import name when it differs from the package (``aio_pika``).
    :param description: what it is for, shown in the error.
    """

    package: str
    extra: str
    min_version: str | None = None
    module: str | None = None
    description: str = ""

    @property
    def import_name(self) -> str:
        """The module to import."""
        return self.module or self.package.replace("-", "_")

    @property
    def install_command(self) -> str:
        """``pip install 's3db-async[extra]'``."""
        return f"pip install '{DISTRIBUTION}[{self.extra}]'"


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    """Whether one dependency is usable, as reported by :func:`get_plugin_dependency_report`."""

    package: str
    extra: str
    min_version: str | None
    installed_version: str | None
    ok: bool
    reason: str = ""
    used_by: tuple[str, ...] = field(default=())

    @property
    def install_command(self) -> str:
        """``pip install 's3db-async[extra]'``."""
        return f"pip install '{DISTRIBUTION}[{self.extra}]'"


def _skip() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.end() != len(piece):
            break
    return tuple(parts)


def _version_ok(installed: str, minimum: str) -> bool:
    have, need = _version_tuple(installed), _version_tuple(minimum)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def check_dependency(dep: Dependency) -> DependencyStatus:
    """Look ``dep`` up without importing it."""
    try:
        found = importlib.util.find_spec(dep.import_name) is not None
    except (ImportError, ValueError):
        found = False
    try:
        version: str | None = importlib.metadata.version(dep.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if not found:
        return DependencyStatus(
            dep.package, dep.extra, dep.min_version, None, False, "not installed"
        )
    if dep.min_version and version is not None and not _version_ok(version, dep.min_version):
        return DependencyStatus(
            dep.package,
            dep.extra,
            dep.min_version,
            version,
            False,
            f"version {version} installed, >={dep.min_version} required",
        )
    return DependencyStatus(dep.package, dep.extra, dep.min_version, version, True)


def _error(statuses: list[tuple[Dependency, DependencyStatus]], plugin: str | None) -> str:
    who = plugin or DISTRIBUTION
    lines = [f"{who}: missing dependencies detected!", ""]
    for dep, status in statuses:
        lines.append(f"  - missing dependency: {dep.package}")
        if dep.description:
            lines.append(f"    description: {dep.description}")
        lines.append(
            f"    required: {dep.package}>={dep.min_version}"
            if dep.min_version
            else f"    required: {dep.package} (any version)"
        )
        lines.append(f"    found: {status.reason}")
        lines.append(f"    install: {dep.install_command}")
    extras = ",".join(sorted({dep.extra for dep, _ in statuses}))
    lines += ["", f"Quick fix: pip install '{DISTRIBUTION}[{extras}]'"]
    return "\n".join(lines)


def require_dependencies(deps: Iterable[Dependency], *, plugin: str | None = None) -> None:
    """Check several dependencies; one error lists every missing one.

    :raises MissingDependencyError: something is missing or too old (unless
        ``S3DB_SKIP_PLUGIN_DEP_CHECK=1``).
    """
    if _skip():
        return
    bad = [(dep, status) for dep in deps if not (status := check_dependency(dep)).ok]
    if not bad:
        return
    extras = sorted({dep.extra for dep, _ in bad})
    raise MissingDependencyError(
        _error(bad, plugin),
        suggestion=f"pip install '{DISTRIBUTION}[{','.join(extras)}]'",
        metadata={
            "plugin": plugin,
            "missing": [dep.package for dep, _ in bad],
            "extras": extras,
            "required": {dep.package: dep.min_version for dep, _ in bad},
        },
    )


def require_dependency(
    package: str,
    *,
    extra: str,
    min_version: str | None = None,
    module: str | None = None,
    plugin: str | None = None,
    description: str = "",
) -> None:
    """Check that ``package`` (at least ``min_version``) is installed.

    ::

        require_dependency("aioboto3", extra="aws", min_version="13", plugin="CostsPlugin")

    :raises MissingDependencyError: missing or too old; the message names the package, the
        version required and ``pip install 's3db-async[extra]'``.
    """
    require_dependencies(
        [Dependency(package, extra, min_version, module, description)], plugin=plugin
    )


def register_plugin_dependencies(plugin: str, deps: Iterable[Dependency]) -> None:
    """Record what ``plugin`` needs, for :func:`get_plugin_dependency_report`."""
    _REGISTRY[plugin] = tuple(deps)


def _declared_extras() -> list[Dependency]:
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    out = []
    for req in requires:
        m = _REQ_RE.match(req)
        if m is None or m.group(3) is None:
            continue
        extra = _EXTRA_RE.search(m.group(3))
        if extra is None or extra.group(1) == "dev":
            continue
        minimum = _MIN_RE.search(m.group(2) or "")
        out.append(Dependency(m.group(1), extra.group(1), minimum.group(1) if minimum else None))
    return out


def get_plugin_dependency_report() -> list[DependencyStatus]:
    """Every optional package (the package's extras and what loaded plugins declare).

    ::

        for s in get_plugin_dependency_report():
            print(s.package, s.installed_version or "-", "ok" if s.ok else s.install_command)
    """
    merged: dict[str, tuple[Dependency, set[str]]] = {}
    for dep in _declared_extras():
        merged.setdefault(dep.package.lower(), (dep, set()))
    for plugin, deps in _REGISTRY.items():
        for dep in deps:
            known = merged.get(dep.package.lower())
            if known is None or (dep.min_version and not known[0].min_version):
                merged[dep.package.lower()] = (dep, known[1] if known else set())
            merged[dep.package.lower()][1].add(plugin)
    report = []
    for dep, users in merged.values():
        s = check_dependency(dep)
        report.append(
            DependencyStatus(
                s.package,
                s.extra,
                s.min_version,
                s.installed_version,
                s.ok,
                s.reason,
                tuple(sorted(users)),
            )
        )
    return sorted(report, key=lambda s: (s.extra, s.package.lower()))
