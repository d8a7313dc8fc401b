"""Provides DetailScreen: one service's spec, restart state, exit history and environment.

Every value is shown as `Text`, never read as markup: commands, paths, environment values,
reasons and errors come from the manifest, services and checks, and are made safe.
"""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tuisup.model import ServiceView
from tuisup.model.views import IN_PROCESS, ListenView
from tuisup.terminal import one_line, text_lines


def shown(text: str) -> Text:
    """Text as is, not markup, each of its lines made safe (a command may have several)."""
    return Text("\n".join(text_lines(text)))


def describe(status: ServiceView) -> Table:
    """Return the service's detail as a two-column table."""
    spec = status.spec
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    rows = [
        ("state", status.state.value + (f" — {one_line(status.reason)}" if status.reason else "")),
        ("command" if spec.target is None else "target", spec.command),
        ("executor", _executor(status)),
        ("cwd", str(spec.cwd)),
        ("restart", f"{spec.restart}; success exit codes {list(spec.success_exit_codes)}"),
        (
            "backoff",
            f"{spec.backoff} from {spec.backoff_delay:g}s up to "
            f"{spec.backoff_max:g}s, jitter ±{spec.jitter:.0%}",
        ),
        ("budget", f"{spec.max_restarts} restarts in {spec.restart_window:g}s"),
        ("restarts", str(status.restarts)),
        ("stop", _stop(status)),
    ]
    if spec.depends_on:
        needs = ", ".join(f"{name} ({condition})" for name, condition in spec.depends_on.items())
        rows.append(("depends on", needs))
    if spec.healthcheck is not None:
        rows.append(("health check", _healthcheck(status)))
    if spec.restart_dependents:
        rows.append(("dependents", "restarted whenever this service starts again"))
    if spec.hooks:
        rows.append(("hooks", _hooks(status)))
    if spec.listen is not None:
        rows.append(("listens to", _listen(spec.listen)))
    if status.replica is not None or spec.port is not None:
        rows.append(("replica", _replica(status)))
    if spec.group is not None:
        rows.append(("group", _group(status)))
    for key, value in rows:
        table.add_row(key, shown(value))
    return table


def _replica(status: ServiceView) -> str:
    """`2 of worker, port 8002`."""
    parts = [f"{status.replica} of {status.declared}"] if status.replica is not None else []
    if status.spec.port is not None:
        parts.append(f"port {status.spec.port}")
    return ", ".join(parts)


def _group(status: ServiceView) -> str:
    """`pipeline: broker, consumer, indexer; rest_for_one; budget 3 restarts in 5s, then stop`."""
    group = status.spec.group
    assert group is not None
    text = f"{group.name}: {', '.join(group.services)}; {group.strategy}; budget {group.budget()}"
    return text + (f"\nfailed: {status.group_failed}" if status.group_failed else "")


def _healthcheck(status: ServiceView) -> str:
    spec = status.spec
    check = spec.healthcheck
    assert check is not None
    text = (
        f"{check.kind} {check.target}: every {check.interval:g}s, timeout {check.timeout:g}s, "
        f"unhealthy after {check.retries} failures"
    )
    if check.start_period:
        text += f", none counted for {check.start_period:g}s after a start"
    if spec.restart_on_unhealthy:
        text += "; restarted when unhealthy"
    if status.health is not None:
        text += f"\nnow {status.health}" + (
            f": {one_line(status.health_reason)}" if status.health_reason else ""
        )
    return text


def _hooks(status: ServiceView) -> str:
    """Each event's command, a line each, then how long a run may take."""
    spec = status.spec
    lines = [f"{event}: {one_line(command)}" for event, command in spec.hooks.items()]
    lines.append(f"one run of each at a time, killed after {spec.hook_timeout:g}s")
    return "\n".join(lines)


def _listen(listen: ListenView) -> str:
    """What a listener's stdin receives: `state, health events of api, db (…)`."""
    kinds = f"{', '.join(listen.kinds)} events" if listen.kinds is not None else "every event"
    services = ", ".join(listen.services) if listen.services is not None else "every service"
    return (
        f"{kinds} of {services}, as JSON lines on its stdin, a snapshot first; "
        f"{listen.buffer} kept while it does not read"
    )


def _executor(status: ServiceView) -> str:
    spec = status.spec
    if spec.executor is not None:
        return spec.executor
    if status.executor is not None:
        return f"{status.executor} (the default for this target)"
    return "async for a coroutine, thread otherwise (decided at start)"


def _stop(status: ServiceView) -> str:
    spec = status.spec
    if status.executor in IN_PROCESS or (spec.target and spec.executor is None):
        return (
            "sets the token if it asked for it, and after "
            f"{spec.stop_timeout:g}s cancels a task or interrupts a thread; "
            "one that never asked is cancelled or interrupted at once"
        )
    return f"{spec.stop_signal} to the group, SIGKILL after {spec.stop_timeout:g}s"


def history(status: ServiceView) -> Table:
    """Return the exit history, newest first."""
    table = Table(box=None, header_style="bold", padding=(0, 1))
    for column in ("started", "ran", "ended"):
        table.add_column(column)
    for record in reversed(status.history):
        ended = "stopped" if record.requested else one_line(record.status.describe())
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(record.started)),
            f"{record.runtime:.1f}s",
            Text(ended, "bright_black" if record.requested else "red"),
        )
    return table


def environment(status: ServiceView) -> Table:
    """Return the service's own variables (on top of tuisup's), secrets masked."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="green", no_wrap=True)
    table.add_column()
    for name, value in sorted(status.spec.env.items()):
        table.add_row(shown(name), shown(value))  # secrets come masked from the host
    return table


class DetailScreen(ModalScreen[None]):
    """A service's detail; escape, enter or q closes it."""

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll {
        width: 90%; height: 85%; border: thick $accent; background: $panel; padding: 1 2;
    }
    DetailScreen .heading { text-style: bold; color: $accent; margin-top: 1; }
    """
    BINDINGS = [
        ("escape", "dismiss", "Close"),
        ("enter", "dismiss", "Close"),
        ("q", "dismiss", "Close"),
    ]

    def __init__(self, status: ServiceView) -> None:
        super().__init__()
        self.status = status

    def compose(self) -> ComposeResult:
        """The spec, the exit history and the environment."""
        status = self.status
        with VerticalScroll():
            yield Static(Text(status.name, "bold"))
            yield Static(describe(status))
            yield Static("exit history", classes="heading")
            yield Static(history(status) if status.history else Text("no exit yet", "dim"))
            yield Static("environment (added to tuisup's)", classes="heading")
            yield Static(environment(status) if status.spec.env else Text("none", "dim"))
