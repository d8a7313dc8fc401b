"""Provides the manifest checks of a service's event hooks: its `on` table.

Each key is an event (`HookEvent`), each value a command as a health check's: a string
runs through `/bin/sh -c`, an array is used as given. A hook whose event the rest of the
service's table rules out (`healthy` without a health check) is reported, as a dependency
condition that can never hold is.
"""

from __future__ import annotations

from collections.abc import Mapping

from tuisup.manifest import checks
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import INVALID, Checker, Invalid
from tuisup.spec import Hook, HookEvent

_KEYS = tuple(str(event) for event in HookEvent)


def on_table(ck: Checker, path: Key, raw: object) -> dict[HookEvent, Hook] | Invalid:
    """`{ failed = "notify-send …", unhealthy = ["./dump.sh"] }`, in the order written."""
    table = checks.table(ck, path, raw)
    if table is INVALID:
        return INVALID
    hooks: dict[HookEvent, Hook] = {}
    for key, value in table.items():
        if key not in _KEYS:
            ck.unknown((*path, key), _KEYS)
            continue
        command = checks.command(ck, (*path, key), value, shell=isinstance(value, str))
        if command is not INVALID:
            hooks[HookEvent(key)] = Hook(argv=command[0], command=command[1])
    return hooks if len(hooks) == len(table) else INVALID


def check_reachable(ck: Checker, base: Key, table: Mapping[str, object]) -> None:
    """Report each hook whose event the service's own table rules out."""
    hooks = table.get("on")
    if not isinstance(hooks, dict):
        return
    name = base[-1]
    never = {
        "healthy": None if "healthcheck" in table else f"{name} has no healthcheck",
        "unhealthy": None if "healthcheck" in table else f"{name} has no healthcheck",
        "files_changed": None if table.get("watch") else f"{name} watches no files",
        "restarting": f'{name} has restart = "never"' if table.get("restart") == "never" else None,
    }
    for key in hooks:
        why = never.get(key)
        if why is not None:
            ck.fail((*base, "on", key), f"can never run: {why}", key=True)
