"""ShownLines: rows estimated, then counted exactly on screen; lines added and aged out."""

from __future__ import annotations

from tuisup.tui.log_rows import COMPACT_AFTER, Entry, ShownLines


def entry(seq: int) -> Entry:
    return Entry(seq, "svc", "stdout", 0.0, f"line {seq}")


def rows_of(lines: ShownLines) -> list[tuple[int, int]]:
    """Every row as (line index, row within the line), the slow and obvious way."""
    return [(i, part) for i in range(len(lines)) for part in range(lines.rows(i))]


def test_rows_are_located_by_their_line_and_part() -> None:
    lines = ShownLines()
    lines.extend([entry(1), entry(2), entry(3)], [1, 3, 2])
    assert lines.height == 6
    assert [lines.locate(r) for r in range(6)] == rows_of(lines)
    assert [lines.start(i) for i in range(3)] == [0, 1, 4]


def test_settling_the_last_screen_measures_only_what_it_shows() -> None:
    lines = ShownLines()
    lines.extend([entry(seq) for seq in range(1, 1001)], [1] * 1000)  # estimates
    measured: list[int] = []

    def measure(e: Entry) -> int:
        measured.append(e.seq)
        return 2

    assert lines.settle(None, 10, measure)
    assert measured == list(range(1000, 995, -1))  # 5 lines of 2 rows fill 10
    assert lines.height == 1005
    assert lines.locate(1004) == (999, 1)
    measured.clear()
    assert not lines.settle(None, 10, measure)  # counted once
    assert measured == []


def test_settling_a_screen_in_the_middle_keeps_its_top_row_where_it_was() -> None:
    lines = ShownLines()
    lines.extend([entry(seq) for seq in range(100)], [1] * 100)
    top = lines.locate(50)
    lines.settle(50, 8, lambda e: 3)
    assert lines.locate(50) == top
    assert [lines.rows(i) for i in range(49, 54)] == [1, 3, 3, 3, 1]
    assert lines.height == 100 + 3 * 2
    assert [lines.locate(r) for r in range(lines.height)] == rows_of(lines)


def test_lines_aged_out_at_the_front_leave_the_rows_of_the_rest() -> None:
    lines = ShownLines()
    total = COMPACT_AFTER * 3
    for seq in range(total):
        lines.extend([entry(seq)], [1 + seq % 3])
        lines.drop_before(seq - 99)  # a window of 100 lines
    assert len(lines) == 100
    assert lines[0].seq == total - 100
    assert [lines.locate(r) for r in range(lines.height)] == rows_of(lines)
    assert lines.start(0) == 0
    assert len(lines._entries) < 2 * COMPACT_AFTER  # the dropped ones are let go


def test_lines_added_while_counts_are_being_fixed_get_their_rows() -> None:
    lines = ShownLines()
    lines.extend([entry(seq) for seq in range(10)], [1] * 10)
    lines.settle(0, 3, lambda e: 2)  # lines 0 and 1 now take 2 rows: starts are stale
    lines.extend([entry(10), entry(11)], [3, 1])
    assert lines.height == 12 + 4
    assert [lines.locate(r) for r in range(lines.height)] == rows_of(lines)
