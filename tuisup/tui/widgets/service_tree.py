"""Provides ServiceTree: the host, its services, and under each the live OS process tree."""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tuisup.model import Health, Proc, ServiceState, ServiceView, TableView
from tuisup.model.views import IN_PROCESS
from tuisup.terminal import one_line

S = ServiceState
GLYPHS: dict[ServiceState, tuple[str, str]] = {
    S.WAITING: ("◇", "cyan"),
    S.RUNNING: ("●", "green"),
    S.STARTING: ("◐", "yellow"),
    S.BACKOFF: ("◷", "yellow"),
    S.STOPPING: ("◑", "yellow"),
    S.EXITED: ("○", "bright_black"),
    S.FAILED: ("✘", "bold red"),
    S.STOPPED: ("○", "bright_black"),
}
HEALTH: dict[Health, str] = {
    Health.HEALTHY: "green",
    Health.UNHEALTHY: "bold red",
    Health.UNKNOWN: "bright_black",
}
"""The colour of the ♥ after a service with a health check, while it runs."""


def duration(seconds: float) -> str:
    """Return `45s`, `3m` or `2h05m`.

    Seconds only while they matter: a long-running service's label changes once a minute.
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def megabytes(rss: int) -> str:
    """Return an RSS in MiB, one decimal."""
    return f"{rss / 1048576:.1f}M"


def service_label(
    status: ServiceView,
    width: int,
    now: float | None = None,
    watching: bool | None = None,
    reloading: bool = False,
) -> Text:
    """Return a service's tree label: glyph, name, state, restarts, marks, then what is up.

    The columns before the last are fixed-width. The pid is not among them: it opens the
    process row right under the service, which also says what runs. The last column says
    how long it has run (and, for a service inside tuisup, as what), or its countdown to a
    restart, its last exit, or what it waits for.

    A service that watches its files shows ⟳ after its restarts (dim while paused); one
    with a health check, while it runs, a ♥: green healthy, red unhealthy, dim unknown.
    Reasons and errors come from services and checks: they are shown made safe, on one line.
    """
    glyph, colour = GLYPHS[status.state]
    last = status.last_exit
    if status.state is S.EXITED and last is not None and last.status.error is None:
        if last.status.code in status.spec.success_exit_codes:
            colour = "green"
    state = ("reloading", "cyan") if reloading else (status.state.value, colour)
    label = Text.assemble(
        (f"{glyph} ", colour),
        (f"{status.name:<{width}} ", "bold"),
        (f"{state[0]:<9} ", state[1]),
        (f"×{status.restarts:<3} ", "yellow" if status.restarts else "bright_black"),
        ("⟳ " if watching is not None else "  ", "cyan" if watching else "bright_black"),
        ("♥ " if status.health else "  ", HEALTH[status.health] if status.health else ""),
    )
    if status.health_reason:
        label.append(f"{one_line(status.health_reason)} · ", "red")
    label.append_text(_what_is_up(status, time.time() if now is None else now))
    return label


def _what_is_up(status: ServiceView, now: float) -> Text:
    """The label's last column: countdown, uptime, failure, wait, or last exit."""
    last = status.last_exit
    if status.state is S.BACKOFF and status.next_start is not None:
        # The countdown first: an exception's message after it may run past the edge.
        countdown = Text(f"restart in {max(0.0, status.next_start - now):.1f}s", "yellow")
        return (
            countdown + Text(f" · {one_line(last.status.describe())}", "red") if last else countdown
        )
    if status.started is not None:
        up = f"up {duration(now - status.started)}"
        if status.executor in IN_PROCESS:
            up += f" · {status.executor}"  # no process row of its own says so
        return Text(up, "bright_black")
    if status.reason and status.state is S.FAILED:
        return Text(one_line(status.reason), "red")
    if status.waiting_for:
        return Text(f"for {', '.join(status.waiting_for)}", "cyan")
    if last is not None:
        style = "red" if status.state is not S.STOPPED and last.status.code != 0 else "bright_black"
        return Text("stopped" if last.requested else one_line(last.status.describe()), style)
    return Text(one_line(what_runs(status)), "bright_black")  # never ran: what it would run


def runs(status: ServiceView) -> str | None:
    """Return what a Python service's process runs as written: `demo.echo:serve (process)`.

    Its command line would be the interpreter's absolute path and `-m tuisup.child ...`.
    None for a command: its own command line says it best.
    """
    if status.spec.target is None:
        return None
    return what_runs(status)


def what_runs(status: ServiceView) -> str:
    """Return the command, or the target and its executor when known, as written."""
    spec = status.spec
    executor = status.executor or spec.executor
    if spec.target is None or executor is None:
        return spec.command
    return f"{spec.target} ({executor})"


def proc_label(proc: Proc, what: str | None = None) -> Text:
    """Return a process row: pid, CPU, RSS, `what` it runs or else its command line.

    Escapees are marked. A process sets its own command line (its argv, read from
    /proc): it is made safe.
    """
    label = Text.assemble(
        (f"{proc.pid:>7} ", "bright_black"),
        (f"{proc.cpu:5.1f}% ", "cyan"),
        (f"{megabytes(proc.rss):>7} ", "magenta"),
        (one_line(proc.command if what is None else what)[:60], ""),
    )
    if proc.escaped:
        label.append("  escaped its group", "bold yellow")
    return label


class ServiceTree(Tree[str | int]):
    """The host at the root, a node per service, the service's processes under it."""

    BINDINGS = [
        # A Tree scrolls itself to its end on End; here End is the log's: follow it again.
        Binding("end", "app.follow_end", "Follow from the end", show=False),
    ]
    DEFAULT_CSS = """
    ServiceTree {
        width: 66;
        overflow-x: hidden;
        border-right: vkey $panel;
        background: $surface;
    }
    """

    def __init__(self, title: str, views: list[ServiceView], *, id: str | None = None) -> None:
        super().__init__(Text(title, "bold"), id=id)
        self.show_root = True
        # Enter opens a service's detail; folding on Enter too hid every service (on the
        # host) or a service's processes behind its detail. Space still folds.
        self.auto_expand = False
        self.guide_depth = 2
        self.width_of_names = 8
        self.nodes_by_name: dict[str, TreeNode[str | int]] = {}
        self.parents: dict[str, TreeNode[str | int]] = {}
        """The nodes above services: groups, and replicated tables (by the name they
        stand for: `s`, `x`, `r` and `k` act on all of theirs)."""
        self._above: dict[str, tuple[str, ...]] = {}
        """Each service's parents, outermost first."""
        self._members: dict[str, list[str]] = {}
        """Each parent's services (made from `_above` at each sync): a summary reads only
        its own members, not every service."""
        self._views: dict[str, ServiceView] = {}
        """Each service's latest view: its parents' summaries are made of them."""
        self._procs: dict[str, tuple[Proc, ...]] = {}
        self._pids: dict[str, int | None] = {}
        """Each service's main pid as its last status said: process rows must be its."""
        self._runs: dict[str, str | None] = {}
        """What each service's main process runs, shown instead of its command line."""
        self.tables: dict[str, TableView] = {}
        """The replicated tables, as the host last said: each keeps its node while it has
        no replica (scaled to 0), for `+`."""
        self.sync(views)
        self.root.expand()

    def sync(self, views: list[ServiceView], tables: dict[str, TableView] | None = None) -> None:
        """Follow a reloaded (or scaled) manifest: drop removed services' nodes, add new ones.

        A service sits under its group's node and its replicated table's. A replicated
        table (`tables`; None: those known so far) keeps its node with no replica, which
        `+` scales up again.
        """
        if tables is not None:
            self.tables = tables
        wanted = {view.name: parents_of(view) for view in views}
        selected = self.selected_service
        left = self._above.get(selected, ()) if selected in self.nodes_by_name else ()
        for name in list(self.nodes_by_name):
            if wanted.get(name) != self._above.get(name):
                self.nodes_by_name.pop(name).remove()
                for kept in (self._above, self._views, self._procs, self._pids, self._runs):
                    kept.pop(name, None)
        self._prune_parents(wanted)
        for view in views:
            if view.name not in self.nodes_by_name:
                parent = self._node_above(wanted[view.name])
                parent.allow_expand = True  # an empty table's had no ▼
                node = parent.add(Text(view.name), data=view.name, allow_expand=False)
                self.nodes_by_name[view.name] = node
                self._above[view.name] = wanted[view.name]
        known = self.tables.items()
        empty = {t: chain_of(t, table) for t, table in known if t not in self._members}
        widths = [len(v.name) + 2 * len(wanted[v.name]) for v in views]
        widths += [len(table) + 2 * (len(chain) - 1) for table, chain in empty.items()]
        self.width_of_names = max(widths, default=8)
        self._place_empty(empty)
        if selected not in self.nodes_by_name:
            self._cursor_above(left)

    def _prune_parents(self, wanted: dict[str, tuple[str, ...]]) -> None:
        """Count each group's and table's services; drop the nodes that stand for nothing.

        A replicated table keeps its node, and its place, with no replica; so does its group.
        """
        self._members = {}
        for name, chain in wanted.items():
            for key in chain:
                self._members.setdefault(key, []).append(name)
        kept = set(self._members)
        for name, table in self.tables.items():
            kept.update(chain_of(name, table))
        for key in reversed(list(self.parents)):  # the innermost first: they were made last
            if key not in kept:
                self.parents.pop(key).remove()

    def _place_empty(self, empty: dict[str, tuple[str, ...]]) -> None:
        """Give each table with no replica a node (a new one last in its group, or the host)."""
        for chain in empty.values():
            self._node_above(chain).allow_expand = False  # nothing under it to fold
            for depth, key in enumerate(chain):
                self._summarise(key, self.width_of_names - 2 * depth)

    def _cursor_above(self, chain: tuple[str, ...]) -> None:
        """The service under the cursor went (scaled away): its table or group takes it.

        Not whatever row slid up under the cursor, which `-` pressed again would scale.
        """
        _ = self.last_line  # lines laid out again: a node's own line is read from them
        for key in reversed(chain):
            if key in self.parents:
                self.move_cursor(self.parents[key])
                return

    def _node_above(self, chain: tuple[str, ...]) -> TreeNode[str | int]:
        node = self.root
        for key in chain:
            if key not in self.parents:
                self.parents[key] = node.add(Text(key), data=key, expand=True)
            node = self.parents[key]
        return node

    def show(
        self, status: ServiceView, watching: bool | None = None, reloading: bool = False
    ) -> None:
        """Redraw one service's label, and its parents' summaries, if they changed."""
        node = self.nodes_by_name.get(status.name)
        if node is None:
            return
        self._views[status.name] = status
        width = self.width_of_names - 2 * len(self._above.get(status.name, ()))
        label = service_label(status, width, watching=watching, reloading=reloading)
        _relabel(node, label)
        for depth, key in enumerate(self._above.get(status.name, ())):
            self._summarise(key, self.width_of_names - 2 * depth)
        self._runs[status.name] = runs(status)
        if self._pids.get(status.name) != status.pid:
            # Its processes went with its run (backoff, exited, stopped): their rows go
            # now, not when the next stats pass (up to a second away) sees them gone.
            self._pids[status.name] = status.pid
            self._set_rows(node, status.name, ())

    def _summarise(self, key: str, width: int) -> None:
        members = [self._views[n] for n in self._members.get(key, ()) if n in self._views]
        _relabel(self.parents[key], summary_label(key, members, width))

    def show_processes(self, service: str, procs: tuple[Proc, ...]) -> None:
        """Replace a service's process rows (in place when the pids did not change).

        Rows from a stats pass that began before the service's run changed (a pass runs
        in a thread, off the events) are not the current run's: they are left out.
        """
        node = self.nodes_by_name.get(service)
        if node is None or (procs and procs[0].pid != self._pids.get(service)):
            return
        self._set_rows(node, service, procs)

    def _set_rows(self, node: TreeNode[str | int], service: str, procs: tuple[Proc, ...]) -> None:
        old = self._procs.get(service, ())
        self._procs[service] = procs
        main, what = self._pids.get(service), self._runs.get(service)
        labels = [_indent(proc, what if proc.pid == main else None) for proc in procs]
        if [p.pid for p in old] == [p.pid for p in procs]:
            for child, label in zip(node.children, labels, strict=False):
                _relabel(child, label)
            return
        node.remove_children()
        for proc, label in zip(procs, labels, strict=True):
            node.add_leaf(label, data=proc.pid)
        node.allow_expand = bool(procs)
        if procs and not old:
            node.expand()

    def render_label(self, node: TreeNode[str | int], base_style: Style, style: Style) -> Text:
        """Draw a label; a service without process rows (no ▼) is indented as if it had.

        Otherwise its columns start two cells left of its neighbours' that have them.
        """
        label = super().render_label(node, base_style, style)
        if isinstance(node.data, str) and not node.allow_expand:
            label = Text("  ", base_style) + label
        return label

    @property
    def selected_service(self) -> str | None:
        """The service under the cursor (or whose process is), None on the root.

        On a group or a replicated table: its name, which commands take for all of theirs.
        """
        node = self.cursor_node
        while node is not None and not isinstance(node.data, str):
            node = node.parent
        return node.data if node is not None and isinstance(node.data, str) else None


def chain_of(name: str, table: TableView) -> tuple[str, ...]:
    """The nodes of a replicated table with no replica: its group's, then its own."""
    return (table.group, name) if table.group is not None else (name,)


def parents_of(view: ServiceView) -> tuple[str, ...]:
    """The nodes a service sits under: its group's, then its replicated table's."""
    group = (view.group,) if view.group is not None else ()
    return (*group, view.declared) if view.replica is not None else group


def summary_label(key: str, members: list[ServiceView], width: int) -> Text:
    """A group's or a replicated table's label: `3/3 running`, restarts summed.

    Its glyph is the worst of its members': failed, then on its way (starting, backoff,
    stopping, waiting), then all running (a one-shot member that ran to its end, `exited`,
    is done, not missing: `2/3 running · 1 done`), else none running. A group's says its
    strategy, and, once it gave up, why; a table scaled to zero, how to run one again.
    """
    running = sum(v.state is S.RUNNING for v in members)
    done = sum(v.state is S.EXITED for v in members)
    restarts = sum(v.restarts for v in members)
    states = {v.state for v in members}
    group = next((v.spec.group for v in members if v.spec.group and v.spec.group.name == key), None)
    failed = next((v.group_failed for v in members if v.group_failed), None) if group else None
    if S.FAILED in states or failed:
        glyph, colour = GLYPHS[S.FAILED]
    elif states & {S.STARTING, S.BACKOFF, S.STOPPING, S.WAITING}:
        glyph, colour = GLYPHS[S.STARTING]
    elif running and running + done == len(members):
        glyph, colour = GLYPHS[S.RUNNING]
    else:
        glyph, colour = GLYPHS[S.STOPPED]
    label = Text.assemble(
        (f"{glyph} ", colour),
        (f"{key:<{width}} ", "bold"),
        (f"{running}/{len(members)} running ", colour if running else "bright_black"),
        (f"· {done} done " if done else "", "bright_black"),
        (f"×{restarts}", "yellow" if restarts else "bright_black"),
    )
    if group is not None:
        label.append(f"  {group.strategy}", "cyan")
    if not members:
        label.append("  + runs one", "bright_black")
    if failed:
        label.append(f" · {one_line(failed)}", "red")
    return label


def _relabel(node: TreeNode[str | int], label: Text) -> None:
    """Set a label only when it changed: an unchanged tree costs no repaint."""
    old = node.label
    if not isinstance(old, Text) or old.plain != label.plain or old.spans != label.spans:
        node.set_label(label)


def _indent(proc: Proc, what: str | None) -> Text:
    return Text("  " * proc.depth) + proc_label(proc, what)
