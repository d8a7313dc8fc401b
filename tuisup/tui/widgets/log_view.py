"""Provides LogView: one service's log, or all of them merged, pulled from the Host in batches.

A Line-API widget (after toolong's LogLines): kept lines are plain strings in a bounded
deque; a line becomes a Strip only when it is on screen, through an LRU cache keyed by
its sequence number. When the Host announces output, a one-shot timer owned by the widget
pulls the new lines a tenth of a second later: batches at most ten times a second, never
one message per line, and no wake-up while nothing is written.

With wrap on, a line's rows are estimated from its length and counted exactly only when
it comes on screen (`ShownLines`): a pull costs what its new lines cost, and a resize or a
toggle what a screenful costs, however many lines are kept.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator

from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuisup.api import HostAPI
from tuisup.model import UnknownService
from tuisup.model.logs import MARKER_STREAM
from tuisup.terminal import output_line
from tuisup.tui.log_rows import Entry, ShownLines

PULL_EVERY = 0.1
"""Seconds between two pulls of new lines from the Host."""
NAME_COLOURS = ("cyan", "yellow", "green", "magenta", "blue", "bright_red", "bright_cyan")
STAMP_WIDTH = 9
"""Cells of a line's time and the space after it."""


def name_colour(name: str) -> str:
    """A stable colour for a service's name."""
    return NAME_COLOURS[zlib.crc32(name.encode()) % len(NAME_COLOURS)]


class Query:
    """What the user searches for: plain text (smart case), or /regex/."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > 2 and text.startswith("/") and text.endswith("/"):
            pattern = text[1:-1]
        else:
            pattern = re.escape(text)
        flags = 0 if any(c.isupper() for c in text) else re.IGNORECASE
        try:
            self.regex: re.Pattern[str] | None = re.compile(pattern, flags)
            self.error: str | None = None
        except re.error as exc:
            self.regex, self.error = None, str(exc)

    def matches(self, line: str) -> bool:
        """Whether the line has a match."""
        return bool(self.regex and self.regex.search(line))


class LogView(ScrollView, can_focus=True):
    """Shows kept log lines, following the end until the user scrolls up."""

    DEFAULT_CSS = """
    LogView {
        overflow-y: scroll;
        overflow-x: auto;
        background: $surface;
    }
    """

    source: reactive[str | None] = reactive(None, init=False)
    """The service shown, or None for every service merged."""
    follow: reactive[bool] = reactive(True)
    """Whether new lines scroll the view to the end."""
    timestamps: reactive[bool] = reactive(False, init=False)
    """Whether each line shows when it was kept."""
    wrap: reactive[bool] = reactive(False, init=False)
    """Whether long lines wrap instead of scrolling sideways."""
    filtering: reactive[bool] = reactive(False, init=False)
    """Whether lines that do not match the query are hidden."""

    def __init__(
        self, api: HostAPI, names: list[str], max_lines: int = 10_000, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.api = api
        self.max_lines = max_lines
        self.name_width = max((len(n) for n in names), default=6)
        self.query_: Query | None = None
        self._entries: deque[Entry] = deque(maxlen=max_lines)
        self._shown = ShownLines()
        """The kept lines that are shown (all, or the matching ones), and their rows."""
        self._longest = 0
        """The longest shown line's length, for scrolling sideways with wrap off."""
        self._last_seq = 0
        self._pull_due = False
        self._cache: LRUCache[tuple[int, int, int], list[Strip]] = LRUCache(2048)
        self._generation = 0
        """Bumped whenever the way lines are drawn changes, so cached strips go stale."""
        self._width = 0

    def on_mount(self) -> None:
        """Pull what is kept so far."""
        self.pull()

    def lines_arrived(self, service: str) -> None:
        """The Host kept new lines of `service`: pull them soon, batched.

        At most one pull per PULL_EVERY, and none at all while nothing is written: a quiet
        console has no timer ticking for its log.
        """
        if self._pull_due or (self.source is not None and service != self.source):
            return
        self._pull_due = True
        self.set_timer(PULL_EVERY, self._due)

    def _due(self) -> None:
        self._pull_due = False
        self.pull()

    # -- data -------------------------------------------------------------------------------

    def pull(self) -> None:
        """Fetch the lines kept since the last pull and show them.

        In a worker: it awaits the host, which may be in another process.
        """
        self.run_worker(self._pull(), group="pull", exclusive=True, exit_on_error=False)

    async def _pull(self) -> None:
        source, since = self.source, self._last_seq
        try:
            batches = await self.api.logs(source, since)
        except UnknownService:  # it left, lines and all
            if self.source == source and source is not None:
                self.switch(None)
            return
        if not batches or self.source != source or self._last_seq != since:
            return  # nothing new, or the view moved on meanwhile
        new = [
            Entry(batch.first + offset, batch.service, batch.stream, batch.ts, line)
            for batch in batches
            for offset, line in enumerate(batch.lines)
        ]
        self._last_seq = batches[-1].end - 1
        # Only the last max_lines of them can be kept: the rest are not even estimated.
        new = new[-self.max_lines :]
        self._entries.extend(new)
        self._show_lines(new)
        self._shown.drop_before(self._entries[0].seq)
        self._refit()

    def switch(self, source: str | None) -> None:
        """Show another service, or the merged view."""
        self.source = source

    def watch_source(self) -> None:
        """A new source: start over from its first kept line."""
        self._entries.clear()
        self._last_seq = 0
        self.follow = True
        self._restyle()
        self.pull()

    def clear_view(self) -> None:
        """Hide what is shown so far (the kept log is not touched)."""
        self._entries.clear()
        self._rebuild()

    def watch_timestamps(self) -> None:
        """Redraw with or without times."""
        self._restyle()

    def watch_wrap(self) -> None:
        """Redraw wrapped or not."""
        self._restyle()

    def watch_filtering(self) -> None:
        """Show all lines, or only the matching ones."""
        self._rebuild()

    def set_query(self, query: Query | None) -> None:
        """Highlight (and, when filtering, keep only) lines matching `query`."""
        self.query_ = query
        self._restyle()

    def visible_text(self) -> list[str]:
        """The shown lines as plain text (what export writes)."""
        return [self._prefix_plain(e) + output_line(e.text, keep_colour=False) for e in self._shown]

    def _filter(self) -> Query | None:
        """The query that lines must match to be shown, if the filter is on."""
        query = self.query_
        if self.filtering and query is not None and query.regex is not None:
            return query
        return None

    def _prefix_plain(self, entry: Entry) -> str:
        parts = []
        if self.timestamps:
            parts.append(time.strftime("%H:%M:%S", time.localtime(entry.ts)) + " ")
        if self.source is None:
            parts.append(f"{entry.service:<{self.name_width}} | ")
        return "".join(parts)

    # -- layout -----------------------------------------------------------------------------

    def _restyle(self) -> None:
        self._generation += 1
        self._rebuild()

    def _rebuild(self) -> None:
        """Show the kept lines again from the first (filter, width or source changed)."""
        self._width = max(self.scrollable_content_region.width, 10)
        self._shown.clear()
        self._longest = 0
        self._show_lines(self._entries)
        self._refit()

    def _show_lines(self, entries: Iterable[Entry]) -> None:
        """Add lines at the end of what is shown, each with an estimate of its rows."""
        query = self._filter()
        shown = [e for e in entries if query is None or query.matches(e.text)]
        if not shown:
            return
        # Cells, nearly: a tab takes up to 8 (colour codes take none, but count here).
        lengths = [len(e.text) + 7 * e.text.count("\t") for e in shown]
        self._longest = max(self._longest, max(lengths))
        self._shown.extend(shown, self._estimates(lengths))

    def _estimates(self, lengths: list[int]) -> list[int]:
        """Lines' rows from their lengths: exact unless words wrap early or colours count."""
        if not self.wrap:
            return [1] * len(lengths)
        prefix, width = self._prefix_width(), self._width
        return [max(1, -(-(prefix + length) // width)) for length in lengths]

    def _prefix_width(self) -> int:
        """Cells before each line's own text: its time, its service's name."""
        stamp = STAMP_WIDTH if self.timestamps else 0
        return stamp + (self.name_width + 3 if self.source is None else 0)

    def _measure(self, entry: Entry) -> int:
        """A line's rows, exactly: it is rendered (and the strips kept for drawing)."""
        return len(self._strips(entry))

    def _refit(self) -> None:
        """Count the rows on screen exactly, size the view, and follow the end."""
        at_end = self.follow
        top = None if at_end else int(self.scroll_y)
        if self.wrap:
            self._shown.settle(top, self.size.height, self._measure)
            longest = self._width
        else:
            longest = self._longest + self._prefix_width()
        self.virtual_size = Size(longest, self._shown.height)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        """Wrapped lines depend on the width (their strips are cached by width)."""
        if self.wrap:
            self._rebuild()

    def _render_text(self, entry: Entry) -> Text:
        # Rich's ANSI decoder lets C1 controls, a lone ESC, NUL and DEL through to the
        # terminal: only colours may reach it.
        shown = output_line(entry.text, keep_colour=True)
        text = Text.from_ansi(shown.expandtabs(), no_wrap=not self.wrap)
        if entry.stream == MARKER_STREAM:
            text.stylize("bold " + ("red" if "exited" in entry.text else "bright_black"))
        elif entry.stream == "stderr":
            text.stylize_before("italic")
        query = self.query_
        if query is not None and query.regex is not None:
            for match in query.regex.finditer(text.plain):
                text.stylize("reverse bold", match.start(), match.end())
        prefix = Text()
        if self.timestamps:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.ts))
            prefix.append(stamp + " ", style="bright_black")
        if self.source is None:
            name = f"{entry.service:<{self.name_width}} │ "
            prefix.append(name, style=name_colour(entry.service))
        line = prefix + text if prefix else text
        line.stylize_before(self.rich_style)  # the pane's own background under the text
        return line

    def _strips(self, entry: Entry) -> list[Strip]:
        key = (entry.seq, self._generation, self._width if self.wrap else 0)
        strips = self._cache.get(key)
        if strips is None:
            text = self._render_text(entry)
            console = self.app.console
            if self.wrap:
                lines = text.wrap(console, self._width) or [Text("")]
            else:
                lines = [text]
            strips = [Strip(list(line.render(console)), line.cell_len) for line in lines]
            self._cache[key] = strips
        return strips

    def render_line(self, y: int) -> Strip:
        """Draw one row of the view."""
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        style = self.rich_style
        if row >= self._shown.height:
            return Strip.blank(self.size.width, style)
        index, part = self._shown.locate(row)
        strips = self._strips(self._shown[index])
        strip = strips[part] if part < len(strips) else Strip.blank(self.size.width, style)
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, style)

    # -- scrolling and search ---------------------------------------------------------------

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Scrolling up pauses following; reaching the end resumes it.

        A layout that trims the scroll to a shorter view is not the user scrolling up:
        it leaves the view at its end, still following. With wrap on, the lines now on
        screen are counted exactly.
        """
        super().watch_scroll_y(old, new)
        if self.wrap and self._shown.settle(int(new), self.size.height, self._measure):
            self.virtual_size = Size(self._width, self._shown.height)
        if self.is_vertical_scroll_end:
            self.follow = True
        elif new < old:
            self.follow = False

    def _matching(self) -> list[int]:
        """The shown lines that match the query (their indices)."""
        query = self.query_
        if query is None or query.regex is None:
            return []
        return [i for i, entry in enumerate(self._shown) if query.matches(entry.text)]

    def matches(self) -> Iterator[int]:
        """Rows where the shown lines that match the query start."""
        return (self._shown.start(i) for i in self._matching())

    def jump(self, forward: bool) -> bool:
        """Scroll to the next (or previous) match; return whether there was one."""
        found = self._matching()
        if not found:
            return False
        start, half = self._shown.start, self.size.height // 2
        top = int(self.scroll_y)
        if forward:
            target = next((i for i in found if start(i) > top + half), found[0])
        else:
            target = next((i for i in reversed(found) if start(i) < top), found[-1])
        self.follow = False
        if self.wrap:  # count the rows around it: the match lands where it is aimed
            self._shown.settle(max(0, start(target) - half), self.size.height, self._measure)
            self.virtual_size = Size(self._width, self._shown.height)
        self.scroll_to(y=max(0, start(target) - half), animate=False)
        return True

    def count_matches(self) -> int:
        """How many shown lines match the query."""
        return len(self._matching())
