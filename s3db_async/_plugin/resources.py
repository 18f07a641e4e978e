"""Resources owned by a plugin: created idempotently, recorded, dropped on a purge.

::

    logs = await plugin.create_plugin_resource(
        "audit_logs", attributes={"op": "string", "at": "datetime"}
    )                         # plg_audit_audit_logs (namespace "eu": plg_eu_audit_audit_logs)

Naming follows the seed: ``plg_[{namespace}_]{plugin}_{name}``, or ``resource_names={name:
...}`` (see :meth:`Plugin.resource_name`). Creating goes through ``db.create_resource``, so a
second install, a restart or a second process creating the same resource gets the same one (the
definition is a compare-and-swap on ``s3db.json``), and a changed definition becomes a new
schema version exactly as it would for any resource (pass ``migrations=`` to upgrade records).

Each resource is recorded in the plugin's storage, ``{storage root}_s3db/resources/{name}``,
*before* it is created: a crash in between leaves a recording of a resource that does not exist
(harmless: a purge finds nothing to drop), never a resource nobody knows the plugin owns.
``uninstall(purge_data=True)`` drops every recorded resource (records, then definition), then the
recording goes with the rest of the storage; ``uninstall()`` keeps all of it. A resource that
already exists without this plugin's recording belongs to someone else and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .._resource.resource import Resource
    from .base import Plugin

__all__ = ["RECORD_PREFIX", "create_plugin_resource", "drop_plugin_resources", "recorded"]

RECORD_PREFIX = "_s3db/resources/"
"""Where a plugin's storage records the resources it created (one key per resource)."""

_BASE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")


def _check_base(name: Any) -> str:
    if not isinstance(name, str) or not _BASE_RE.match(name):
        raise ConfigError(
            f"invalid plugin resource name {name!r}",
            suggestion="use up to 80 letters, digits, '_', '-' or '.', e.g. 'audit_logs'",
            metadata={"field": "name", "reason": "invalid name", "value": repr(name)},
        )
    return name


async def recorded(plugin: Plugin) -> list[str]:
    """Names of the resources ``plugin`` recorded as its own (sorted; one LIST)."""
    keys = await plugin.get_storage().list(RECORD_PREFIX)
    return sorted(k.rsplit("/", 1)[-1] for k in keys)


async def create_plugin_resource(
    plugin: Plugin,
    name: str,
    *,
    attributes: Mapping[str, Any],
    partitions: Mapping[str, Any] | None = None,
    **options: Any,
) -> Resource:
    """Create (or get, or update the definition of) the plugin resource ``name``.

    :raises ConfigError: invalid ``name``, or a resource of that name exists and is not this
        plugin's (a user resource, or another plugin's).
    :raises SchemaError: as ``db.create_resource`` (bad attributes, partitions, options).
    """
    base = _check_base(name)
    actual = plugin.resource_name(base)
    db = plugin.db
    storage = plugin.get_storage()
    key = RECORD_PREFIX + actual
    record = await storage.get(key)
    if record is None:
        await db.reload()  # a resource another process created since we connected counts
        if db.resource_exists(actual):
            # Every process records before it creates: if a sibling process of this plugin
            # created it since our first read, its recording is there now.
            record = await storage.get(key)
        if record is None and db.resource_exists(actual):
            raise ConfigError(
                f"resource {actual!r} already exists and is not owned by plugin {plugin.alias!r}",
                suggestion=f"give the plugin another name for it: resource_names={{{base!r}: "
                "'...'}, or another namespace=",
                metadata={
                    "field": "name",
                    "reason": "resource exists",
                    "resource": actual,
                    "plugin": plugin.name,
                },
            )
    if record is None:
        await storage.set(
            key,
            {
                "resource": actual,
                "name": base,
                "plugin": plugin.name,
                "namespace": plugin.namespace,
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
    resource = await db.create_resource(
        actual, attributes=attributes, partitions=partitions, **options
    )
    plugin.log.debug(
        "plugin resource %s ready",
        actual,
        extra={"plugin": plugin.name, "resource": actual, "op": "create_plugin_resource"},
    )
    return resource


async def drop_plugin_resources(plugin: Plugin) -> dict[str, int]:
    """Drop every resource ``plugin`` recorded (records and definition), then its recording.

    Returns resource name → objects deleted. Safe to repeat after a crash: each recording is
    removed only after its resource is gone.
    """
    db = plugin.db
    storage = plugin.get_storage()
    names = await recorded(plugin)
    if names:
        await db.reload()  # definitions other processes added or changed
    dropped: dict[str, int] = {}
    for actual in names:
        dropped[actual] = await db.drop_resource(actual, confirm=True)
        await storage.delete(RECORD_PREFIX + actual)
        plugin.log.info(
            "dropped plugin resource %s (%d objects)",
            actual,
            dropped[actual],
            extra={"plugin": plugin.name, "resource": actual, "op": "uninstall"},
        )
    return dropped
