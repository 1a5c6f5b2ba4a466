"""The check shared by methods that must be told which task a sample comes from."""

from __future__ import annotations

from birram.errors import ConfigError
from birram.methods.base import Context


def needs_task_identity(method_name: str, scenario: str) -> ConfigError:
    return ConfigError(f"method {method_name!r} needs the task identity: use scenario 'task' "
                       f"(got {scenario!r})")


def require_task_identity(method_name: str, ctx: Context) -> None:
    """Refuse scenarios where the task of a test sample is unknown (one-line ConfigError)."""
    if ctx.protocol.scenario != "task":
        raise needs_task_identity(method_name, ctx.protocol.scenario)
