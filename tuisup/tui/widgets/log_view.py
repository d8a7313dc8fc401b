"""Provides LogView: one service's log, or all of them merged, pulled from the Host in batches.

A Line-API widget (after toolong's LogLines): kept lines are plain strings in a bounded
deque; a line becomes a Strip only when it is on screen, through an LRU cache keyed by
its sequence number. When the Host announces output, a one-shot timer owned by the widget
pulls the new lines a tenth of a second later: batches at most ten times a second, never
one message per line, and no wake-up while nothing is written.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuisup.engine import Host
from tuisup.engine.logs import MARKER_STREAM
from tuisup.terminal import output_line

PULL_EVERY = 0.1
"""Seconds between two pulls of new lines from the Host."""
NAME_COLOURS = ("cyan", "yellow", "green", "magenta", "blue", "bright_red", "bright_cyan")


class Entry(NamedTuple):
    """One kept line as the view shows it."""

    seq: int
    service: str
    stream: str
    ts: float
    text: str


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

    def __init__(self, host: Host, max_lines: int = 10_000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.host = host
        self.max_lines = max_lines
        self.name_width = max((len(n) for n in host.supervisors), default=6)
        self.query_: Query | None = None
        self._entries: deque[Entry] = deque(maxlen=max_lines)
        self._rows: list[tuple[int, int]] | None = None
        """With wrap on: display rows as (index into the shown entries, row within the
        entry). With wrap off a row is an entry, and no such list is built per pull."""
        self._shown: list[Entry] = []
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
        """Fetch the lines kept since the last pull and show them."""
        batches = self.host.logs(self.source, self._last_seq)
        if not batches:
            return
        for batch in batches:
            for offset, line in enumerate(batch.lines):
                self._entries.append(
                    Entry(batch.first + offset, batch.service, batch.stream, batch.ts, line)
                )
        self._last_seq = batches[-1].end - 1
        self._rebuild()

    def switch(self, source: str | None) -> None:
        """Show another service, or the merged view."""
        self.source = source

    def watch_source(self) -> None:
        """A new source: start over from its first kept line."""
        self._entries.clear()
        self._last_seq = 0
        self.follow = True
        self._generation += 1
        self.pull()
        self._rebuild()

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
        at_end = self.follow
        query = self.query_
        if self.filtering and query is not None and query.regex is not None:
            self._shown = [e for e in self._entries if query.matches(e.text)]
        else:
            self._shown = list(self._entries)
        width = max(self.scrollable_content_region.width, 10)
        self._width = width
        if self.wrap:
            self._rows = [
                (i, r) for i, e in enumerate(self._shown) for r in range(len(self._strips(e)))
            ]
            longest, height = width, len(self._rows)
        else:
            self._rows = None
            longest = max((len(e.text) for e in self._shown[-2000:]), default=0) + 24
            height = len(self._shown)
        self.virtual_size = Size(longest, height)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        """Wrapped lines depend on the width."""
        if self.wrap:
            self._restyle()

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
        if row >= self.virtual_size.height:
            return Strip.blank(self.size.width, style)
        index, part = self._rows[row] if self._rows is not None else (row, 0)
        strips = self._strips(self._shown[index])
        strip = strips[part] if part < len(strips) else Strip.blank(self.size.width, style)
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, style)

    # -- scrolling and search ---------------------------------------------------------------

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Scrolling up pauses following; reaching the end resumes it."""
        super().watch_scroll_y(old, new)
        if new < old:
            self.follow = False
        elif self.is_vertical_scroll_end:
            self.follow = True

    def matches(self) -> Iterator[int]:
        """Rows of the shown lines that match the query."""
        query = self.query_
        if query is None or query.regex is None:
            return
        rows = self._rows if self._rows is not None else ((i, 0) for i in range(len(self._shown)))
        for row, (index, part) in enumerate(rows):
            if part == 0 and query.matches(self._shown[index].text):
                yield row

    def jump(self, forward: bool) -> bool:
        """Scroll to the next (or previous) match; return whether there was one."""
        here = int(self.scroll_y) + (self.size.height // 2 if forward else 0)
        rows = list(self.matches())
        if not rows:
            return False
        if forward:
            target = next((r for r in rows if r > here), rows[0])
        else:
            target = next((r for r in reversed(rows) if r < int(self.scroll_y)), rows[-1])
        self.follow = False
        self.scroll_to(y=max(0, target - self.size.height // 2), animate=False)
        return True

    def count_matches(self) -> int:
        """How many shown lines match the query."""
        return sum(1 for _ in self.matches())
