"""The exception compiled converters raise (shared by every type module)."""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["Invalid", "fail"]


class Invalid(Exception):
    """Raised by converters; ``errors`` holds ``(relative_path, rule, message, value_type)``."""

    __slots__ = ("errors",)

    def __init__(self, errors: list[tuple[str, str, str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def fail(rule: str, message: str, value: Any) -> NoReturn:
    """Raise :class:`Invalid` for one failing value.

    Only the value's *type name* is recorded, never the value itself (so a cleartext
    password or secret never reaches an error message).
    """
    raise Invalid([("", rule, message, type(value).__name__)])
