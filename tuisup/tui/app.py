"""Provides TuisupApp: the console over a Host, fed by its event stream.

The app talks to the Host only through its narrow API: a subscription (snapshot, then
events) moves the tree and the header; the log view pulls kept lines by sequence number;
keys call start, stop, restart. The Host's lifetime belongs to the caller (`run_console`),
not to Textual: quitting asks the Host to stop everything, shows what is still stopping,
and only then leaves.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static, Tree

from tuisup.engine import Host, ServiceState, ServiceStatus
from tuisup.engine.capture import install as route_service_output
from tuisup.engine.events import (
    FilesChanged,
    Health,
    HealthChanged,
    HostStopped,
    LogFileChanged,
    ManifestInvalid,
    ManifestReloaded,
    Output,
    RestartScheduled,
    StateChanged,
)
from tuisup.spec import Manifest
from tuisup.tui.commands import ServiceCommands
from tuisup.tui.procstats import ProcessStats
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.screens.quit import QuitScreen
from tuisup.tui.widgets.log_view import LogView, Query
from tuisup.tui.widgets.service_tree import GLYPHS, ServiceTree, megabytes

S = ServiceState


class TuisupApp(App[int]):
    """The tuisup console."""

    CSS_PATH = "app.tcss"
    TITLE = "tuisup"
    COMMANDS = App.COMMANDS | {ServiceCommands}
    BINDINGS = [
        Binding("s", "command('start')", "Start"),
        Binding("x", "command('stop')", "Stop"),
        Binding("r", "command('restart')", "Restart"),
        Binding("k", "command('kill')", "Kill"),
        Binding("R", "restart_all", "Restart all"),
        Binding("a", "toggle_merged", "All logs"),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match", "Next match", show=False),
        Binding("N", "previous_match", "Previous match", show=False),
        Binding("F", "toggle_filter", "Filter"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("end", "follow_end", "Follow from the end", show=False),
        Binding("t", "toggle_timestamps", "Times"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("c", "clear_view", "Clear", show=False),
        Binding("e", "export", "Export", show=False),
        Binding("L", "reload", "Reload manifest", show=False),
        Binding("W", "toggle_watch", "Watch on/off", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, host: Host) -> None:
        super().__init__()
        self.host = host
        self.quitting = False
        self.stats = ProcessStats(host.reaper.tag, set())
        self._cpu = 0.0
        self._rss = 0
        self._summary = ""
        self._reloading: dict[str, int] = {}
        """Services restarting for changed files, with their restart count before it."""

    # -- building ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The header line, the tree and the log pane, the footer."""
        manifest = self.host.manifest
        yield Static(id="summary")
        with Horizontal():
            yield ServiceTree(manifest.root.name or "tuisup", list(manifest.services), id="tree")
            with Vertical(id="log-pane"):
                yield Static(id="log-title")
                yield LogView(self.host, manifest.settings.log_lines, id="log")
                yield Input(
                    placeholder="search: text, or /regex/  (enter: find, esc: close)", id="search"
                )
        yield Footer()

    def on_mount(self) -> None:
        """Follow the Host: labels from the snapshot, then every event."""
        # Textual captured stdout for itself; in-process services' prints must still
        # reach their own logs, so put the router back on top.
        route_service_output()
        subscription = self.host.subscribe()
        tree = self.query_one(ServiceTree)
        for status in subscription.snapshot.values():
            self._show(tree, status)
            if status.log_problem:  # it failed before the console was up to hear of it
                self._log_file_changed(status.name, status.log_problem, writing=False)
        self.query_one("#search").display = False
        self._show_summary()
        self._show_log_title()
        tree.focus()
        self.follow_events(subscription)
        self.set_interval(1.0, self._tick)
        self.set_interval(1.0, self.collect_stats)

    @work(exclusive=True, group="events", exit_on_error=False)
    async def follow_events(self, subscription: object) -> None:
        """Move the tree and header as events arrive."""
        tree = self.query_one(ServiceTree)
        view = self.query_one(LogView)
        async for batch in subscription:  # type: ignore[attr-defined]
            for service in {e.service for e in batch if isinstance(e, Output)}:
                view.lines_arrived(service)
            changed = {
                e.service
                for e in batch
                if isinstance(e, StateChanged | RestartScheduled | HealthChanged)
            }
            if changed:
                snapshot = self.host.snapshot()
                for name in changed & snapshot.keys():
                    self._show(tree, snapshot[name])
                self._show_summary()
            for event in batch:
                if isinstance(event, FilesChanged):
                    shown = ", ".join(event.paths[:3]) + ("…" if len(event.paths) > 3 else "")
                    if event.paused:
                        self.notify(event.paused, title=event.service, severity="warning")
                    else:
                        self.notify(f"{shown} changed", title=f"{event.service} reloading")
                        status = self.host.snapshot().get(event.service)
                        if status is not None:  # "reloading" until the next run is up
                            self._reloading[event.service] = status.restarts
                    if event.service in self.host.supervisors:
                        self._show(tree, self.host.snapshot()[event.service])
                elif isinstance(event, ManifestReloaded):
                    self._reloaded(event)
                elif isinstance(event, LogFileChanged):
                    self._log_file_changed(event.service, event.message, writing=event.writing)
                elif isinstance(event, ManifestInvalid):
                    self.clear_notifications()
                    self.notify(
                        event.error,
                        title="services.toml not applied",
                        severity="error",
                        timeout=3600,
                    )
            if any(isinstance(e, HostStopped) for e in batch):
                self.exit(0)
                return

    def _show(self, tree: ServiceTree, status: ServiceStatus) -> None:
        since = self._reloading.get(status.name)
        if since is not None and status.state is S.RUNNING and status.restarts > since:
            del self._reloading[status.name]  # the new run is up
        tree.show(
            status,
            watching=self.host.watching(status.name),
            reloading=status.name in self._reloading,
        )

    def _reloaded(self, event: ManifestReloaded) -> None:
        names = list(self.host.supervisors)
        tree = self.query_one(ServiceTree)
        tree.sync(names)
        view = self.query_one(LogView)
        view.name_width = max((len(n) for n in names), default=6)
        if view.source is not None and view.source not in names:
            view.switch(None)
        for status in self.host.snapshot().values():
            self._show(tree, status)
        self._show_summary()
        self.clear_notifications()
        self.notify(event.summary(), title="services.toml reloaded")

    def _log_file_changed(self, service: str, message: str, *, writing: bool) -> None:
        """Say that a log file cannot be written (a warning, for 30 s) or is written again."""
        title = f"{service}: log file"
        if writing:
            self.notify(message, title=title)
        else:
            self.notify(message, title=title, severity="warning", timeout=30)

    def action_toggle_watch(self) -> None:
        """Pause or resume restarting the selected service when its files change."""
        name = self._service()
        if name is None:
            return
        watching = self.host.toggle_watch(name)
        if watching is None:
            self.notify(f"{name} watches no files (set watch in services.toml)", severity="warning")
            return
        self._show(self.query_one(ServiceTree), self.host.snapshot()[name])
        self.notify(f"{name}: {'watching its files again' if watching else 'watching paused'}")

    def action_reload(self) -> None:
        """Read services.toml again and apply what changed."""
        self.run_worker(self.host.reload(), group="reload", exit_on_error=False)

    def _tick(self) -> None:
        """Uptimes and backoff countdowns move on their own."""
        tree = self.query_one(ServiceTree)
        for status in self.host.snapshot().values():
            if status.state in (S.RUNNING, S.BACKOFF):
                self._show(tree, status)

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def collect_stats(self) -> None:
        """Gather process trees off the event loop, then show them."""
        roots = {
            name: status.pid
            for name, status in self.host.snapshot().items()
            if status.pid is not None
        }
        lifeline = self.host.lifeline.pid
        self.stats.ignore = {lifeline} if lifeline else set()
        trees, cpu, rss = self.stats.collect(roots)
        self.call_from_thread(self._show_stats, trees, cpu, rss)

    def _show_stats(self, trees: dict[str, tuple], cpu: float, rss: int) -> None:  # type: ignore[type-arg]
        tree = self.query_one(ServiceTree)
        for name in self.host.supervisors:
            tree.show_processes(name, trees.get(name, ()))
        self._cpu, self._rss = cpu, rss
        self._show_summary()

    def _show_summary(self) -> None:
        snapshot = self.host.snapshot()
        counts = {state: 0 for state in S}
        for status in snapshot.values():
            counts[status.state] += 1
        summary = Text.assemble(("tuisup ", "bold"), (f"{self.host.manifest.path.name}  ", "dim"))
        order = (S.RUNNING, S.WAITING, S.STARTING, S.BACKOFF, S.STOPPING, S.FAILED, S.EXITED)
        for state in (*order, S.STOPPED):
            if counts[state]:
                glyph, colour = GLYPHS[state]
                summary.append(f"{glyph} {counts[state]} {state.value}  ", colour)
        unhealthy = sum(status.health is Health.UNHEALTHY for status in snapshot.values())
        if unhealthy:
            summary.append(f"♥ {unhealthy} unhealthy  ", "bold red")
        summary.append(f"│ CPU {self._cpu:.1f}%  MEM {megabytes(self._rss)}", "cyan")
        if summary.plain != self._summary:
            self._summary = summary.plain
            self.query_one("#summary", Static).update(summary)

    def _show_log_title(self) -> None:
        view = self.query_one(LogView)
        title = Text(view.source or "all services", "bold")
        flags = [
            ("follow", view.follow),
            ("timestamps", view.timestamps),
            ("wrap", view.wrap),
            ("filter", view.filtering),
        ]
        title.append("  " + "  ".join(name for name, on_ in flags if on_), "dim")
        query = view.query_
        if query is not None and query.error is not None:
            title.append(f"  search {query.text}: {query.error}", "red")
        elif query is not None:
            found = view.count_matches()
            title.append(
                f"  search {query.text}: {found} match{'es' if found != 1 else ''}", "yellow"
            )
        self.query_one("#log-title", Static).update(title)

    # -- selection ----------------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#tree")
    def _selected_changed(self) -> None:
        view = self.query_one(LogView)
        service = self.query_one(ServiceTree).selected_service
        if service is not None and view.source != service:
            view.switch(service)
            self._show_log_title()

    @on(Tree.NodeSelected, "#tree")
    def _open_detail(self) -> None:
        service = self.query_one(ServiceTree).selected_service
        if service is not None:
            self.push_screen(DetailScreen(self.host.snapshot()[service]))

    def _service(self) -> str | None:
        service = self.query_one(ServiceTree).selected_service
        if service is None:
            self.notify("Pick a service in the tree first.", severity="warning")
        return service

    # -- commands -----------------------------------------------------------------------------

    def command(self, verb: str, name: str) -> None:
        """Run start, stop, restart or kill on a service, off the key handler."""
        self.run_worker(self._command(verb, name), group=f"cmd-{name}", exit_on_error=False)

    async def _command(self, verb: str, name: str) -> None:
        if verb == "kill":
            self.host.kill(name)
            return
        also = self.host.affected(verb, name)
        if also and verb == "stop":
            depend = "depends" if len(also) == 1 else "depend"
            message = f"first {', '.join(also)}, which {depend} on it"
            self.notify(message, title=f"stopping {name}")
        elif also:
            self.notify(f"first {', '.join(also)}, which it needs", title=f"starting {name}")
        await getattr(self.host, verb)(name)

    def action_command(self, verb: str) -> None:
        """Start, stop, restart or kill (SIGKILL its group) the selected service."""
        if (name := self._service()) is not None:
            self.command(verb, name)

    def action_restart_all(self) -> None:
        """Restart every service."""
        for name in self.host.supervisors:
            self.command("restart", name)

    # -- the log pane -------------------------------------------------------------------------

    def action_toggle_merged(self) -> None:
        """Switch between the selected service's log and every service's."""
        view = self.query_one(LogView)
        view.switch(
            None if view.source is not None else self.query_one(ServiceTree).selected_service
        )
        self._show_log_title()

    def action_search(self) -> None:
        """Open the search line."""
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        view = self.query_one(LogView)
        query = Query(event.value) if event.value else None
        view.set_query(query)
        if query is not None and query.error is None:
            view.jump(forward=True)
        event.input.display = False
        self.query_one(ServiceTree).focus()
        self._show_log_title()

    def on_key(self, event: object) -> None:
        """Escape closes the search line."""
        search = self.query_one("#search", Input)
        if getattr(event, "key", None) == "escape" and search.display:
            search.display = False
            self.query_one(ServiceTree).focus()

    def action_next_match(self) -> None:
        """Scroll to the next match."""
        self.query_one(LogView).jump(forward=True)

    def action_previous_match(self) -> None:
        """Scroll to the previous match."""
        self.query_one(LogView).jump(forward=False)

    def _toggle(self, flag: str) -> None:
        view = self.query_one(LogView)
        setattr(view, flag, not getattr(view, flag))
        self._show_log_title()

    def action_toggle_filter(self) -> None:
        """Hide (or show again) the lines that do not match the search."""
        self._toggle("filtering")

    def action_toggle_follow(self) -> None:
        """Follow the end of the log, or stop following."""
        self._toggle("follow")
        view = self.query_one(LogView)
        if view.follow:
            view.scroll_end(animate=False)

    def action_follow_end(self) -> None:
        """Jump to the end and follow again."""
        view = self.query_one(LogView)
        view.follow = True
        view.scroll_end(animate=False)
        self._show_log_title()

    def action_toggle_timestamps(self) -> None:
        """Show or hide when each line was kept."""
        self._toggle("timestamps")

    def action_toggle_wrap(self) -> None:
        """Wrap long lines, or scroll sideways."""
        self._toggle("wrap")

    def action_clear_view(self) -> None:
        """Clear the view (the kept log and the log file are not touched)."""
        self.query_one(LogView).clear_view()

    def action_export(self) -> None:
        """Write the shown (filtered) lines to a file, and copy them to the clipboard."""
        view = self.query_one(LogView)
        lines = view.visible_text()
        name = f"tuisup-{view.source or 'all'}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path = Path.cwd() / name
        path.write_text("\n".join(lines) + "\n")
        self.copy_to_clipboard("\n".join(lines))
        self.notify(f"{len(lines)} lines written to {path} and copied")

    def action_help(self) -> None:
        """Show or hide the keys."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # -- quitting -----------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop every service, showing what is still stopping; a second q kills."""
        if self.quitting:
            self.host.kill_all()
            return
        self.quitting = True
        self.push_screen(QuitScreen(self.host))
        self.run_worker(self.host.shutdown("quit from the console"), exit_on_error=False)


async def run_console(manifest: Manifest) -> int:
    """Run the Host with the console on top; return the exit status."""
    host = Host(manifest)
    app = TuisupApp(host)
    async with host, anyio.create_task_group() as tg:
        tg.start_soon(_quit_on_signals, app)
        await app.run_async()
        tg.cancel_scope.cancel()
    return app.return_code or 0


async def _quit_on_signals(app: TuisupApp) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async for _ in signals:
            await app.action_quit()
