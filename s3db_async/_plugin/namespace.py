"""Plugin namespaces: validation, detection and naming.

Several instances of one plugin run side by side when each has its own namespace::

    cache_eu = CachePlugin(namespace="eu")      # storage plugin=cache/eu/...
    cache_us = CachePlugin(namespace="us")      # storage plugin=cache/us/...

Resources a plugin creates are named ``plg_<namespace>_<plugin>_<name>`` (namespace first, so
one namespace's resources sort together); without a namespace, ``plg_<plugin>_<name>``. The
namespace ``"default"`` is the same as no namespace.

On install, a namespaced plugin lists the namespaces already present in storage and logs an
INFO notice naming them and the one it uses (:func:`detect_and_warn_namespaces`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .storage import PluginStorage

__all__ = [
    "DEFAULT_NAMESPACE",
    "detect_and_warn_namespaces",
    "get_namespaced_resource_name",
    "get_validated_namespace",
    "list_plugin_namespaces",
    "validate_namespace",
    "warn_namespace_usage",
]

DEFAULT_NAMESPACE = "default"
"""The namespace that adds nothing to keys and resource names."""

MAX_NAMESPACE_LENGTH = 50
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_-]+")
_log = logging.getLogger("s3db_async.plugins.namespace")


def validate_namespace(namespace: Any) -> str:
    """Return ``namespace`` when it is valid: 1-50 letters, digits, ``-`` or ``_``.

    ::

        validate_namespace("client-acme")   # "client-acme"
        validate_namespace("prod env")      # ConfigError

    :raises ConfigError: empty, too long, not a string or with other characters.
    """
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(
            "Namespace must be a non-empty string",
            suggestion="use letters, digits, '-' or '_', e.g. namespace='production'",
            metadata={"namespace": namespace},
        )
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        raise ConfigError(
            f"Namespace must be {MAX_NAMESPACE_LENGTH} characters or less (got {len(namespace)})",
            suggestion="shorten the namespace",
            metadata={"namespace": namespace},
        )
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise ConfigError(
            f"Namespace can only contain alphanumeric characters, hyphens, and underscores "
            f"(got {namespace!r})",
            suggestion="replace spaces and symbols with '-' or '_'",
            metadata={"namespace": namespace},
        )
    return namespace


def get_validated_namespace(
    config: Mapping[str, Any] | None, default_namespace: str = DEFAULT_NAMESPACE
) -> str:
    """The validated ``config["namespace"]``, or ``default_namespace`` when absent.

    ::

        get_validated_namespace({"namespace": "uptime"})   # "uptime"
        get_validated_namespace({})                         # "default"

    :raises ConfigError: the namespace is invalid.
    """
    value = (config or {}).get("namespace")
    return validate_namespace(default_namespace if value is None else value)


def get_namespaced_resource_name(
    base_resource_name: str, namespace: str | None, plugin_prefix: str | None = None
) -> str:
    """The name of a plugin resource in ``namespace`` (namespace first).

    ::

        get_namespaced_resource_name("plg_recon_hosts", "default", "plg_recon")
        # "plg_recon_hosts"
        get_namespaced_resource_name("plg_recon_hosts", "uptime", "plg_recon")
        # "plg_uptime_recon_hosts"

    :param base_resource_name: the name without namespace (``plg_<plugin>_<name>``).
    :param namespace: ``None`` or ``"default"`` leave the name unchanged.
    :param plugin_prefix: ``plg_<plugin>``; when given, the base name must start with it.
    :raises ConfigError: invalid namespace, or a base name outside ``plugin_prefix``.
    """
    if namespace is None or namespace == DEFAULT_NAMESPACE:
        return base_resource_name
    validate_namespace(namespace)
    if plugin_prefix is not None and not base_resource_name.startswith(plugin_prefix):
        raise ConfigError(
            f"resource name {base_resource_name!r} does not start with {plugin_prefix!r}",
            suggestion=f"name plugin resources '{plugin_prefix}_<name>'",
            metadata={"resource": base_resource_name, "plugin_prefix": plugin_prefix},
        )
    if base_resource_name.startswith("plg_"):
        return f"plg_{namespace}_{base_resource_name[4:]}"
    return f"{namespace}_{base_resource_name}"


async def list_plugin_namespaces(
    storage: PluginStorage, plugin_prefix: str | None = None
) -> list[str]:
    """Namespaces in use by a plugin, sorted (one LIST request).

    :param storage: any :class:`PluginStorage` on the database's store.
    :param plugin_prefix: the plugin's slug (defaults to ``storage.slug``).
    """
    return await storage.list_namespaces(plugin_prefix)


def warn_namespace_usage(
    plugin_name: str,
    current_namespace: str | None,
    existing_namespaces: Iterable[str],
    *,
    logger: logging.Logger | None = None,
) -> None:
    """Log which namespaces exist and which one this instance uses (two INFO notices)."""
    log = logger or _log
    existing = sorted(existing_namespaces)
    current = current_namespace or DEFAULT_NAMESPACE
    extra = {"plugin": plugin_name, "namespace": current, "op": "namespace"}
    if existing:
        log.info(
            "[%s] Detected %d existing namespace(s): %s",
            plugin_name,
            len(existing),
            ", ".join(existing),
            extra=extra,
        )
    log.info('[%s] Using namespace: "%s"', plugin_name, current, extra=extra)


async def detect_and_warn_namespaces(
    storage: PluginStorage,
    plugin_name: str,
    plugin_prefix: str | None = None,
    current_namespace: str | None = None,
    *,
    logger: logging.Logger | None = None,
) -> list[str]:
    """List the plugin's namespaces, log them and the current one; return the list.

    ::

        found = await detect_and_warn_namespaces(storage, "ReconPlugin", "recon", "uptime")
        # WARNING [ReconPlugin] Detected 2 existing namespace(s): default, stealth
        # WARNING [ReconPlugin] Using namespace: "uptime"
    """
    namespaces = await list_plugin_namespaces(storage, plugin_prefix)
    warn_namespace_usage(plugin_name, current_namespace, namespaces, logger=logger)
    return namespaces
