"""Provides the manifest checks of listener services: `listen` and `listen_buffer`.

`listen` is checked per service like any value; whether the names in its `services` exist
is checked by `check_listened` once every service has been read (as `depends_on` is), and
whether the service can have a stdin at all by `check_listener`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tuisup.manifest.checks import in_process_problem
from tuisup.manifest.locator import Key
from tuisup.manifest.problems import (
    INVALID,
    Checker,
    Invalid,
    describe,
    did_you_mean,
    quote,
    unknown_service,
)
from tuisup.spec import ExecutorKind, Listen

ALWAYS_SENT = ("snapshot", "missed")
"""What every listener gets, whatever its `kinds`: where things stand, and what it lost."""
_KEYS = ("kinds", "services")
_EXAMPLE = '{ kinds = ["state"], services = ["db"] }'


def listen(ck: Checker, path: Key, raw: object) -> Listen | Invalid:
    """`{ kinds = ["state", "health"], services = ["api", "db"] }`; each key may be left out."""
    if not isinstance(raw, dict):
        return ck.fail(path, f"expected a table such as {_EXAMPLE}, got {describe(raw)}")
    before = len(ck.problems)
    for key in raw:
        if key not in _KEYS:
            ck.unknown((*path, key), _KEYS)
    kinds = _words(ck, (*path, "kinds"), raw["kinds"], _kind) if "kinds" in raw else None
    services = (
        _words(ck, (*path, "services"), raw["services"], _name) if "services" in raw else None
    )
    if len(ck.problems) > before or kinds is INVALID or services is INVALID:
        return INVALID
    return Listen(kinds=kinds, services=services)


def _words(
    ck: Checker, path: Key, raw: object, check: Callable[[object], str | None]
) -> tuple[str, ...] | Invalid:
    """A non-empty array of distinct strings, each passing `check` (None: no problem)."""
    if not isinstance(raw, list):
        return ck.fail(path, f"expected an array of strings, got {describe(raw)}")
    if not raw:
        return ck.fail(path, f"expected at least one (leave {path[-1]} out for all)")
    seen: list[str] = []
    for i, item in enumerate(raw):
        problem = check(item)
        if problem is None and item in seen:
            problem = f"{quote(item)} is listed twice"
        if problem is not None:
            ck.fail((*path, i), problem)
        else:
            seen.append(str(item))
    return tuple(seen) if len(seen) == len(raw) else INVALID


def kinds() -> tuple[str, ...]:
    """The `event` words a listener can ask for (`status` is only made for control clients).

    The events are imported only for a manifest that names kinds.
    """
    from tuisup.backlog import selectable

    return selectable()


def _kind(item: object) -> str | None:
    if not isinstance(item, str):
        return f"expected an event kind, got {describe(item)}"
    if item in ALWAYS_SENT:
        return f"{quote(item)} is always sent: list the other kinds only"
    known = kinds()
    if item not in known:
        listing = ", ".join(quote(kind) for kind in known)
        return f"expected one of {listing}, got {quote(item)}{did_you_mean(item, known)}"
    return None


def _name(item: object) -> str | None:
    return None if isinstance(item, str) else f"expected a service name, got {describe(item)}"


def check_listener(
    ck: Checker, base: Key, table: Mapping[str, object], executor: ExecutorKind | None
) -> None:
    """A listener reads its stdin: it is a process; `listen_buffer` needs `listen`."""
    if "listen" not in table:
        if "listen_buffer" in table:
            ck.fail(
                (*base, "listen_buffer"),
                "listen_buffer applies to a listener only: add listen",
                key=True,
            )
        return
    if problem := in_process_problem("listen", executor, "it has no stdin of its own"):
        ck.fail((*base, "listen"), problem, key=True)


def check_listened(ck: Checker, tables: Mapping[str, Any]) -> None:
    """Check that every service a `listen` names is in the manifest (itself may be)."""
    for service, raw in tables.items():
        table = raw.get("listen") if isinstance(raw, dict) else None
        names = table.get("services") if isinstance(table, dict) else None
        if not isinstance(names, list):
            continue
        for i, name in enumerate(names):
            if isinstance(name, str) and name not in tables:
                path = ("services", service, "listen", "services", i)
                ck.fail(path, unknown_service(name, list(tables)))
