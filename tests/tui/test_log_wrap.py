"""The log view with wrap on: what a pull costs, and follow, scroll, search, filter, resize.

Every service here writes long lines of words, so most lines take several rows, and a
word-wrapped line often takes more rows than its length divided by the width.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.test_console import console, until
from tuisup.spec import Manifest
from tuisup.tui.widgets.log_view import LogView

WORDS = """
import os, sys, time
count, after = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    words = " ".join(f"w{i}x{j}" for j in range(3 + i * 7 % 37))
    print(f"{i:05d} {words}" + (" NEEDLE" if i == count // 2 else ""))
sys.stdout.flush()
while after and not os.path.exists(after):
    time.sleep(0.02)
print("the last line", flush=True)
time.sleep(60)
"""


def expected_lines(count: int) -> list[str]:
    """What WORDS prints, as the view shows it."""
    lines = []
    for i in range(count):
        words = " ".join(f"w{i}x{j}" for j in range(3 + i * 7 % 37))
        lines.append(f"{i:05d} {words}" + (" NEEDLE" if i == count // 2 else ""))
    return [*lines, "the last line"]


def writer(tmp_path: Path, count: int, after: str = "") -> str:
    (tmp_path / "words.py").write_text(WORDS)
    return f"exec {sys.executable} -u words.py {count} '{after}'"


def rows_on_screen(view: LogView) -> list[str]:
    return ["".join(s.text for s in view.render_line(y)) for y in range(view.size.height)]


def squeezed(text: str) -> str:
    return "".join(text.split())


def assert_a_stretch_of(view: LogView, lines: list[str], *, at_end: bool = False) -> None:
    """The screen shows consecutive text of `lines`: nothing cut out, nothing twice."""
    shown = squeezed("".join(rows_on_screen(view)))
    whole = squeezed("".join(lines))
    assert shown and shown in whole, rows_on_screen(view)
    if at_end:
        assert whole.endswith(shown), rows_on_screen(view)


async def test_with_wrap_on_a_pull_renders_the_new_lines_not_every_kept_one(
    make_manifest: Callable[..., Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[int] = []
    render = LogView._render_text

    def counted(self: LogView, entry: object) -> object:
        rendered.append(entry.seq)  # type: ignore[attr-defined]
        return render(self, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(LogView, "_render_text", counted)
    manifest = make_manifest(words=writer(tmp_path, 9_999, after="go"))
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down", "w")
        await until(pilot, lambda: len(view.visible_text()) == 9_999, timeout=30)
        await pilot.pause()
        rendered.clear()
        (tmp_path / "go").touch()
        await until(pilot, lambda: view.visible_text()[-1] == "the last line", timeout=30)
        await pilot.pause()
        # The new line, and what is on screen: not 10,000 lines rendered again.
        assert len(rendered) <= view.size.height + 1, len(rendered)
        assert view.follow
        assert_a_stretch_of(view, expected_lines(9_999), at_end=True)


async def test_with_wrap_on_the_view_follows_the_end_and_scrolls_through_every_row(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    manifest = make_manifest(words=writer(tmp_path, 600))
    lines = expected_lines(600)
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down", "w")
        await until(pilot, lambda: view.visible_text()[-1:] == ["the last line"])
        await pilot.pause()
        assert view.follow and rows_on_screen(view)[-1].rstrip() == "the last line"
        assert_a_stretch_of(view, lines, at_end=True)
        view.focus()
        app.animation_level = "none"  # a page at a time, not a glide to it
        while view.scroll_y > 0:  # page up to the first line: every row once
            await pilot.press("pageup")
            await pilot.pause()
            assert_a_stretch_of(view, lines)
            assert not view.follow
        assert rows_on_screen(view)[0].startswith("00000 w0x0 w0x1 w0x2")
        while not view.is_vertical_scroll_end:  # and down again, to the end
            await pilot.press("pagedown")
            await pilot.pause()
            assert_a_stretch_of(view, lines)
        assert rows_on_screen(view)[-1].rstrip() == "the last line"
        assert view.follow


async def test_with_wrap_on_search_jumps_to_the_match_and_the_filter_keeps_it(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    manifest = make_manifest(words=writer(tmp_path, 2_000))
    lines = expected_lines(2_000)
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down", "w")
        await until(pilot, lambda: view.visible_text()[-1:] == ["the last line"])
        await pilot.press("slash", *"NEEDLE", "enter")
        await until(pilot, lambda: any("NEEDLE" in row for row in rows_on_screen(view)))
        assert not view.follow
        assert_a_stretch_of(view, lines)
        await pilot.press("end")  # away from it, then back with n and N
        await until(pilot, lambda: "the last line" in rows_on_screen(view)[-1])
        await pilot.press("n")
        await until(pilot, lambda: any("NEEDLE" in row for row in rows_on_screen(view)))
        await pilot.press("end", "N")
        await until(pilot, lambda: any("NEEDLE" in row for row in rows_on_screen(view)))
        assert_a_stretch_of(view, lines)
        await pilot.press("F")
        await until(pilot, lambda: len(view.visible_text()) == 1)
        assert view.visible_text() == [lines[1_000]]
        shown = [row.rstrip() for row in rows_on_screen(view) if row.strip()]
        assert squeezed("".join(shown)) == squeezed(lines[1_000])
        await pilot.press("F")
        await until(pilot, lambda: len(view.visible_text()) == 2_001)


async def test_with_wrap_on_a_resize_rewraps_and_keeps_following(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    manifest = make_manifest(words=writer(tmp_path, 3_000))
    lines = expected_lines(3_000)
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down", "w")
        await until(pilot, lambda: view.visible_text()[-1:] == ["the last line"])
        for width in (110, 180, 140):
            await pilot.resize_terminal(width, 40)
            await pilot.pause()
            assert max(len(row.rstrip()) for row in rows_on_screen(view)) <= view.size.width
            assert rows_on_screen(view)[-1].rstrip() == "the last line"
            assert_a_stretch_of(view, lines, at_end=True)
        await pilot.press("t")  # times make every line longer: rewrapped too
        await pilot.pause()
        assert rows_on_screen(view)[-1].rstrip().endswith("the last line")
        await pilot.press("w")  # and off again: one row a line, cut at the edge
        await pilot.pause()
        assert rows_on_screen(view)[-1].rstrip().endswith("the last line")
        assert rows_on_screen(view)[-2][9:].startswith(lines[-2][: view.size.width - 9])
