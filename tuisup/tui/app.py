"""Provides TuisupApp: the console over a host, fed by its event stream.

The app knows a host only through the HostAPI Protocol (`tuisup.api`), so it runs the same
on the in-process Host and, attached, on a host in another process over its socket: a
subscription (snapshot, then events) moves the tree and the header; the log view pulls kept
lines by sequence number; keys call start, stop, restart. The host's lifetime belongs to
the caller, not to Textual: quitting an embedded host stops everything, shows what is still
stopping, and only then leaves; quitting an attached console detaches (`q`), and stopping
that host is a key of its own (`Q`), confirmed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Input, Static, Tree
from textual.worker import Worker, WorkerState

from tuisup.api import HostAPI, Subscription
from tuisup.model import (
    ACTIVE,
    ApiError,
    BadRequest,
    Health,
    ProcessStats,
    ServiceState,
    ServiceView,
    TableView,
)
from tuisup.model import events as ev
from tuisup.terminal import one_line, text_lines
from tuisup.tui.commands import ServiceCommands
from tuisup.tui.screens.confirm import ConfirmScreen
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.screens.quit import QuitScreen
from tuisup.tui.widgets.log_view import LogView, Query
from tuisup.tui.widgets.service_tree import GLYPHS, ServiceTree, megabytes

S = ServiceState
STOPPED = "it stopped, and every service with it"
"""What an attached console says as it leaves a host that stopped."""
FOLLOW_AGAIN = 1.0
"""Seconds before following the Host's events again after the follower failed."""


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
        Binding("R", "restart_all", "Restart all", show=False),  # in ? help; q must fit at 120
        Binding("a", "toggle_merged", "All logs"),
        Binding("slash", "search", "Search", priority=True),  # see action_search
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
        Binding("plus", "scale(1)", "One replica more", show=False),
        Binding("minus", "scale(-1)", "One replica fewer", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("Q", "stop_host", "Stop tuisup", show=False),  # attached only
        # One of each pair is enabled (`check_action`): embedded, q quits; attached, q
        # detaches, and the footer says which.
        Binding("q", "quit", "Quit"),
        Binding("q", "detach", "Detach"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+q", "detach", "Detach", show=False, priority=True),
    ]

    def __init__(
        self,
        api: HostAPI,
        *,
        log_lines: int = 10_000,
        on_mount: Callable[[], None] | None = None,
    ) -> None:
        """A console over `api`.

        Args:
            api: The host, in this process or over its socket.
            log_lines: Lines the log view keeps.
            on_mount: What the embedding runner needs done once the app has the terminal.
        """
        super().__init__()
        self.api = api
        self.quitting = False
        """The host is being stopped from here: q again kills what is left."""
        self._left = False
        self._log_lines = log_lines
        self._on_mount = on_mount
        self._cpu = 0.0
        self._rss = 0
        self._summary = ""
        self._reported: dict[str, None] = {}
        """Failures of the stats worker already notified."""
        self._reloading: dict[str, int] = {}
        """Services restarting for changed files, with their restart count before it."""
        self._gave_up: str | None = None
        """Why a group with `on_failure = "shutdown"` stopped tuisup, if one did."""
        self._scaling: dict[str, int] = {}
        """Replicated tables being scaled, and the count asked for: `+` pressed again
        before the host said it is done counts from there."""

    # -- building ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The header line, the tree and the log pane, the footer."""
        manifest = Path(self.api.manifest_path)
        views = self.api.snapshot()
        names = list(views)
        yield Static(id="summary")
        with Horizontal():
            title = one_line(manifest.absolute().parent.name) or "tuisup"  # a folder's name
            yield ServiceTree(title, list(views.values()), id="tree")
            with Vertical(id="log-pane"):
                yield Static(id="log-title")
                yield LogView(self.api, names, self._log_lines, id="log")
                yield Input(
                    placeholder="search: text, or /regex/  (enter: find, esc: close)", id="search"
                )
        footer = Footer(compact=True)
        # Textual's Footer composes no keys until a focus change is published (a refresh
        # after it), and shows them a refresh later still: the first frame had none. Our
        # keys are the app's, known before any focus, so it may compose them at once.
        footer.set_reactive(Footer._bindings_ready, True)
        yield footer

    async def on_mount(self) -> None:
        """Follow the host: labels from the snapshot, then every event."""
        if self._on_mount is not None:
            self._on_mount()
        subscription = await self.api.subscribe()
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
        self._fetch_tables()
        # Whatever was kept before the subscription began (the view's own first pull may
        # have come earlier still); what comes after is announced by the subscription.
        self.query_one(LogView).pull()
        # Owned by the tree they update: they stop when it goes (as the app quits), never
        # firing into a screen that is being taken down.
        tree.set_interval(1.0, self._tick)
        tree.set_interval(1.0, self.collect_stats)

    @work(exclusive=True, group="events", exit_on_error=False)
    async def follow_events(self, subscription: Subscription) -> None:
        """Move the tree and header as events arrive.

        If it fails, `on_worker_state_changed` says so and follows again from a fresh
        snapshot.
        """
        tree = self.query_one(ServiceTree)
        view = self.query_one(LogView)
        async for batch in subscription:
            if any(isinstance(e, ev.Missed) for e in batch):
                self._caught_up()  # states, health and lines may have changed unseen
            for service in {e.service for e in batch if isinstance(e, ev.Output)}:
                view.lines_arrived(service)
            changed = {
                e.service
                for e in batch
                if isinstance(
                    e, ev.StateChanged | ev.RestartScheduled | ev.HealthChanged | ev.WatchToggled
                )
            }
            if changed:
                snapshot = self.api.snapshot()
                for name in changed & snapshot.keys():
                    self._show(tree, snapshot[name])
                self._show_summary()
            for event in batch:
                self._on_event(tree, event)
            if any(isinstance(e, ev.HostStopped) for e in batch):
                # A group that gave up with on_failure = "shutdown" makes it a failure.
                self._leave(1 if self._gave_up else 0, self._gave_up or STOPPED)
                return
        # The subscription ended without the host saying it stopped: it is gone.
        self._leave(1, "the connection to it was lost")

    def _on_event(self, tree: ServiceTree, event: ev.Event) -> None:
        """React to one event beyond the labels it changed: notifications, reloads."""
        if isinstance(event, ev.FilesChanged):
            self._files_changed(tree, event)
        elif isinstance(event, ev.ManifestReloaded):
            self._reloaded(event)
        elif isinstance(event, ev.Scaled):
            self._scaling.pop(event.service, None)
            self._resync()  # a table scaled to 0 keeps its node: the tree knows it
        elif isinstance(event, ev.LogFileChanged):
            self._log_file_changed(event.service, event.message, writing=event.writing)
        elif isinstance(event, ev.ManifestInvalid):
            self.clear_notifications()
            self.notify(
                event.error,
                title="services.toml not applied",
                severity="error",
                timeout=3600,
            )
        elif isinstance(event, ev.GroupRestarting):
            self.notify(event.describe(), title="group restart", severity="warning")
        elif isinstance(event, ev.GroupFailed):
            self._group_failed(event)
        elif isinstance(event, ev.ControlRefused):
            text = f"uid {event.uid} (pid {event.pid}): only this user may control tuisup"
            self.notify(text, title="control connection refused", severity="warning")

    def _caught_up(self) -> None:
        """Redraw from the snapshot, and pull the lines that unseen events announced.

        After events went unseen (`missed`), or with a fresh subscription.
        """
        self._resync()
        self.query_one(LogView).pull()
        self._fetch_tables()

    @work(exclusive=True, group="tables", exit_on_error=False)
    async def _fetch_tables(self) -> None:
        """Learn the replicated tables: one with no replica keeps a node, which no view makes."""
        try:
            tables = await self.api.tables()
        except BadRequest:  # a host from before `tables`: none is shown
            return
        if tables != self.query_one(ServiceTree).tables:  # mostly the same: drawn already
            self._resync(tables)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Report a worker that failed (a command, the stats, the tables, following events).

        Never silent: following events starts again, from a fresh snapshot.
        """
        worker = event.worker
        if event.state is not WorkerState.ERROR:
            return
        error = worker.error
        what = f"{type(error).__name__}: {error}" if error is not None else "failed"
        if isinstance(error, ApiError):
            what = str(error)
        if worker.group == "stats":  # it runs every second: each failure is said once
            if what in self._reported:
                return
            self._reported[what] = None
        self.notify(what, title=worker.description or worker.name, severity="error")
        if worker.group == "events" and not self.quitting:
            self.set_timer(FOLLOW_AGAIN, self._follow_again)

    def _follow_again(self) -> None:
        self.run_worker(self._subscribe_again(), group="subscribe", exit_on_error=False)

    async def _subscribe_again(self) -> None:
        subscription = await self.api.subscribe()
        self.follow_events(subscription)
        self._caught_up()

    def _files_changed(self, tree: ServiceTree, event: ev.FilesChanged) -> None:
        status = self.api.snapshot().get(event.service)
        if event.paused:
            self.notify(event.paused, title=event.service, severity="warning")
        else:
            # File names, one line: a name may hold a newline as well as an escape.
            shown = one_line(", ".join(event.paths[:3])) + ("…" if len(event.paths) > 3 else "")
            self.notify(f"{shown} changed", title=f"{event.service} reloading")
            if status is not None:  # "reloading" until the next run is up
                self._reloading[event.service] = status.restarts
        if status is not None:
            self._show(tree, status)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a notification, its text as is: not read as markup, and made safe.

        Notifications name files, services and manifest errors: a file called `[a="b].py`
        must show as itself, not break the markup parser, and an escape must not reach the
        terminal. Each line is made safe on its own: a manifest error lists one problem a line.
        """
        message = "\n".join(text_lines(message))
        super().notify(
            message, title=one_line(title), severity=severity, timeout=timeout, markup=markup
        )

    def _show(self, tree: ServiceTree, status: ServiceView) -> None:
        since = self._reloading.get(status.name)
        if since is not None and status.state is S.RUNNING and status.restarts > since:
            del self._reloading[status.name]  # the new run is up
        tree.show(status, watching=status.watching, reloading=status.name in self._reloading)

    def _group_failed(self, event: ev.GroupFailed) -> None:
        if event.on_failure == "shutdown":
            self._gave_up = event.reason
        self.notify(event.reason, title=f"group {event.group} failed", severity="error")

    def _reloaded(self, event: ev.ManifestReloaded) -> None:
        self._resync()
        self._fetch_tables()  # tables may have come or gone
        self.clear_notifications()
        self.notify(event.summary(), title="services.toml reloaded")

    def _resync(self, tables: dict[str, TableView] | None = None) -> None:
        """Follow a new set of services (a reload, a scale, events missed).

        The tree, and the log's names; `tables` as the host says now (None: as known).
        """
        snapshot = self.api.snapshot()
        names = list(snapshot)
        tree = self.query_one(ServiceTree)
        tree.sync(list(snapshot.values()), tables)
        view = self.query_one(LogView)
        view.name_width = max((len(n) for n in names), default=6)
        if view.source is not None and view.source not in names:
            view.switch(None)
            self._show_log_title()  # it named the service that went
        for status in snapshot.values():
            self._show(tree, status)
        self._show_summary()

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
        if name is not None:
            self.run_worker(
                self._toggle_watch(name), description=f"watch {name}", exit_on_error=False
            )

    async def _toggle_watch(self, name: str) -> None:
        watching = await self.api.toggle_watch(name)
        if watching is None:
            self.notify(f"{name} watches no files (set watch in services.toml)", severity="warning")
            return
        status = self.api.snapshot().get(name)
        if status is not None:
            self._show(self.query_one(ServiceTree), status)
        self.notify(f"{name}: {'watching its files again' if watching else 'watching paused'}")

    def action_reload(self) -> None:
        """Read services.toml again and apply what changed."""
        self.run_worker(
            self.api.reload(), group="reload", description="reload", exit_on_error=False
        )

    def _tick(self) -> None:
        """Uptimes and backoff countdowns move on their own."""
        tree = self.query_one(ServiceTree)
        for status in self.api.snapshot().values():
            if status.state in (S.RUNNING, S.BACKOFF):
                self._show(tree, status)

    @work(exclusive=True, group="stats", exit_on_error=False)
    async def collect_stats(self) -> None:
        """Ask the host for its process trees (it reads them off its loop), then show them."""
        self._show_stats(await self.api.processes())

    def _show_stats(self, stats: ProcessStats) -> None:
        trees = self.query(ServiceTree)
        if not trees:
            return  # the console quit while the host read them
        tree = trees.first()
        for name in self.api.snapshot():
            tree.show_processes(name, stats.trees.get(name, ()))
        self._cpu, self._rss = stats.cpu, stats.rss
        self._show_summary()

    def _show_summary(self) -> None:
        snapshot = self.api.snapshot()
        counts = {state: 0 for state in S}
        for status in snapshot.values():
            counts[status.state] += 1
        manifest = one_line(Path(self.api.manifest_path).name)
        summary = Text.assemble(("tuisup ", "bold"), (f"{manifest}  ", "dim"))
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
        tree = self.query_one(ServiceTree)
        service = tree.selected_service
        if service is not None and service not in tree.parents and view.source != service:
            view.switch(service)
            self._show_log_title()

    @on(Tree.NodeSelected, "#tree")
    def _open_detail(self) -> None:
        service = self.query_one(ServiceTree).selected_service
        status = self.api.snapshot().get(service) if service is not None else None
        if status is not None:  # None: a service that is leaving the manifest
            self.push_screen(DetailScreen(status))

    def _service(self) -> str | None:
        service = self.query_one(ServiceTree).selected_service
        if service is None:
            self.notify("Pick a service in the tree first.", severity="warning")
        return service

    # -- commands -----------------------------------------------------------------------------

    def command(self, verb: str, name: str) -> None:
        """Run start, stop, restart or kill on a service, off the key handler."""
        self.run_worker(
            self._command(verb, name),
            group=f"cmd-{name}",
            description=f"{verb} {name}",
            exit_on_error=False,
        )

    async def _command(self, verb: str, name: str) -> None:
        if verb == "kill":
            await self.api.kill(name)
            return
        also = await self.api.affected(verb, name)
        if also and verb == "stop":
            depend = "depends" if len(also) == 1 else "depend"
            message = f"first {', '.join(also)}, which {depend} on it"
            self.notify(message, title=f"stopping {name}")
        elif also:
            self.notify(f"first {', '.join(also)}, which it needs", title=f"starting {name}")
        await getattr(self.api, verb)(name)

    def action_command(self, verb: str) -> None:
        """Start, stop, restart or kill (SIGKILL its group) the selected service."""
        if (name := self._service()) is not None:
            self.command(verb, name)

    def action_scale(self, delta: int) -> None:
        """Run one replica more (`+`) or fewer (`-`) of the selected replicated service."""
        if (name := self._service()) is None:
            return
        views = self.api.snapshot()
        table = views[name].declared if name in views else name
        now = self._scaling.get(table, sum(v.declared == table for v in views.values()))
        if now + delta < 0:
            return
        self._scaling[table] = now + delta
        self.run_worker(
            self._scale(table, now + delta),
            group=f"scale-{table}",
            description=f"scale {table}",
            exit_on_error=False,
        )

    async def _scale(self, table: str, count: int) -> None:
        try:
            await self.api.scale(table, count)
        finally:
            if self._scaling.get(table) == count:
                del self._scaling[table]

    def action_restart_all(self) -> None:
        """Restart every service."""
        for name in self.api.snapshot():
            self.command("restart", name)

    # -- the log pane -------------------------------------------------------------------------

    def action_toggle_merged(self) -> None:
        """Switch between the selected service's log and every service's."""
        view = self.query_one(LogView)
        tree = self.query_one(ServiceTree)
        selected = tree.selected_service
        view.switch(None if view.source is not None or selected in tree.parents else selected)
        self._show_log_title()

    def action_search(self) -> None:
        """Open the search line, and type into it from the very next key.

        Keys read together (a quick typist over ssh: `/xk`) are dispatched one after the
        other: `/` is a priority binding, run as soon as it is read, and the focus moves
        at once (`focus()` would wait behind the keys already read), so `x` and `k` reach
        the search line, not the tree, where they stop and kill the service.
        """
        if isinstance(self.focused, Input) or len(self.screen_stack) > 1:
            raise SkipAction()  # a / typed in an input (a /regex/, the palette), or a dialog
        search = self.query_one("#search", Input)
        search.display = True
        self.screen.set_focus(search)

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
        # Beside tuisup's logs, not among the project's files: a service watching the
        # project must not restart because its log was exported.
        path = Path(self.api.manifest_path).absolute().parent / ".tuisup" / "exports" / name
        text = "\n".join(lines)
        self.copy_to_clipboard(text)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError as exc:
            self.notify(f"{len(lines)} lines copied, but not written: {exc}", severity="error")
            return
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        self.notify(f"{len(lines)} lines written to {shown} and copied")

    def action_help(self) -> None:
        """Show or hide the keys."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # -- quitting -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Attached to a host in another process, q detaches and Q stops it; else q quits."""
        if action in ("detach", "stop_host"):
            return self.api.remote and not self.quitting
        if action == "quit":
            return not self.api.remote or self.quitting
        return True

    async def action_quit(self) -> None:
        """Stop every service, showing what is still stopping; a second q kills.

        Attached to a host in another process, this detaches instead: everything keeps
        running (stopping that host is `Q`, confirmed).
        """
        if self.quitting:
            self._kill_all()
        elif self.api.remote:
            await self.action_detach()
        else:
            self._stop_everything("quit from the console")

    async def action_detach(self) -> None:
        """Let go of the host in another process: every service keeps running."""
        self._left = True  # the subscription ends with the connection: that is no loss
        await self.api.close()
        self.exit(0, message=Text(self._about("detached, every service keeps running")))

    def action_stop_host(self) -> None:
        """Stop every service and the host this console is attached to, once confirmed."""
        manifest = one_line(Path(self.api.manifest_path).name)
        self.push_screen(
            ConfirmScreen(
                f"Stop tuisup and every service of {manifest}?",
                "q only detaches this console; this stops the host for every client.",
            ),
            self._stop_confirmed,
        )

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes and not self.quitting:
            self._stop_everything("stopped from an attached console")

    def _stop_everything(self, reason: str) -> None:
        self.quitting = True
        self.push_screen(QuitScreen(self.api))
        self.run_worker(self._quit(reason), exit_on_error=False)

    def _kill_all(self) -> None:
        for name, status in self.api.snapshot().items():
            if status.state in ACTIVE:
                self.run_worker(self.api.kill(name), exit_on_error=False)

    async def _quit(self, reason: str) -> None:
        """Leave once the host has stopped, whatever became of the worker that follows it."""
        await self.api.shutdown(reason)
        self._leave(0, STOPPED)

    def _about(self, what: str) -> str:
        """A line said on leaving an attached console: `tuisup (services.toml): ...`."""
        return f"tuisup ({one_line(Path(self.api.manifest_path).name)}): {what}"

    def _leave(self, code: int, why: str | None) -> None:
        """Exit once, with `code`; attached, say `why` on the terminal once it is back."""
        if self._left:
            return
        self._left = True
        message = Text(self._about(why)) if why and self.api.remote else None
        self.exit(code, return_code=code, message=message)
