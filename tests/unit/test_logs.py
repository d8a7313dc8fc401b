from pathlib import Path

from tuisup.engine.logs import CONTINUATION, LineFramer, LogBatch, LogRing, LogStore, StreamSink
from tuisup.spec import LogFormat, LogOptions


def feed_all(chunks: list[bytes], line_max: int = 16_384) -> list[str]:
    framer = LineFramer(line_max)
    lines: list[str] = []
    for chunk in chunks:
        lines += framer.feed(chunk)
    return lines + framer.flush()


def test_lines_split_across_chunks_are_joined() -> None:
    assert feed_all([b"hel", b"lo\nwor", b"ld\n"]) == ["hello", "world"]


def test_partial_last_line_is_flushed_at_end_of_stream() -> None:
    framer = LineFramer()
    assert framer.feed(b"one\nno-newline-at-exit") == ["one"]
    assert framer.flush() == ["no-newline-at-exit"]
    assert framer.flush() == []


def test_crlf_endings_lose_their_carriage_return_but_progress_returns_stay() -> None:
    assert feed_all([b"a\r\nb\r\n10%\r20%\r\n"]) == ["a", "b", "10%\r20%"]


def test_invalid_utf8_is_replaced_and_the_valid_lines_around_it_survive() -> None:
    assert feed_all([b"ok\n\xff\xfe bad\nfine\n"]) == ["ok", "\ufffd\ufffd bad", "fine"]


def test_multibyte_characters_written_one_byte_at_a_time_stay_whole() -> None:
    data = "é€😀\n".encode()
    assert feed_all([bytes([b]) for b in data]) == ["é€😀"]


def test_a_one_megabyte_line_is_split_with_marks_and_nothing_is_lost() -> None:
    line = b"x" * 1_000_000 + b"tail"
    chunks = [line[i : i + 65536] for i in range(0, len(line), 65536)] + [b"\nnext\n"]
    lines = feed_all(chunks, line_max=16_384)
    assert lines[-1] == "next"
    pieces = lines[:-1]
    assert all(p.endswith(CONTINUATION) for p in pieces[:-1])
    assert not pieces[-1].endswith(CONTINUATION)
    assert all(len(p.removesuffix(CONTINUATION)) <= 16_384 for p in pieces)
    assert "".join(p.removesuffix(CONTINUATION) for p in pieces) == line.decode()


def test_a_long_line_without_newline_does_not_grow_the_buffer_unbounded() -> None:
    framer = LineFramer(line_max=100)
    out = framer.feed(b"y" * 1050)
    assert len(out) == 10 and all(p == "y" * 100 + CONTINUATION for p in out)
    assert framer.flush() == ["y" * 50]


def test_empty_lines_are_kept() -> None:
    assert feed_all([b"\n\na\n\n"]) == ["", "", "a", ""]


def batch(service: str, first: int, n: int) -> LogBatch:
    lines = [f"{service}{i}" for i in range(first, first + n)]
    return LogBatch(service=service, stream="stdout", first=first, ts=0.0, lines=lines)


def test_ring_keeps_at_most_max_lines_and_counts_what_it_dropped() -> None:
    ring = LogRing(max_lines=10)
    ring.append(batch("a", 1, 4))
    ring.append(batch("a", 5, 4))
    ring.append(batch("a", 9, 5))
    assert len(ring) == 10 and ring.dropped == 3
    kept = [line for b in ring.since(0) for line in b.lines]
    assert kept == [f"a{i}" for i in range(4, 14)]


def test_ring_since_returns_only_newer_lines_with_their_numbers() -> None:
    ring = LogRing(max_lines=100)
    ring.append(batch("a", 1, 5))
    ring.append(batch("a", 6, 5))
    (first, second) = ring.since(3)
    assert (first.first, first.lines) == (4, ["a4", "a5"])
    assert second.first == 6
    assert ring.since(10) == []


def test_store_numbers_lines_globally_and_merges_services(tmp_path: Path) -> None:
    announced: list[LogBatch] = []
    store = LogStore(100, tmp_path, announced.append)
    store.add("a", "stdout", ["1", "2"])
    store.add("b", "stderr", ["3"])
    store.add("a", "stdout", ["4"])
    assert [(b.service, b.first) for b in store.since(None, 0)] == [("a", 1), ("b", 3), ("a", 4)]
    assert [line for b in store.since("a", 1) for line in b.lines] == ["2", "4"]
    assert len(announced) == 3 and store.last_seq == 4


def test_sink_writes_raw_bytes_to_the_file_at_line_boundaries(tmp_path: Path) -> None:
    store = LogStore(100, tmp_path, lambda b: None)
    store.configure("svc", LogOptions(format=LogFormat.RAW))
    out = StreamSink(store, "svc", "stdout")
    err = StreamSink(store, "svc", "stderr")
    out.write(b"half a ")
    err.write(b"error line\n")
    out.write(b"line\xff\nlast")
    out.close()
    err.close()
    store.close()
    assert (tmp_path / "svc.log").read_bytes() == b"error line\nhalf a line\xff\nlast\n"
    assert [line for b in store.since("svc", 0) for line in b.lines] == [
        "error line",
        "half a line\ufffd",
        "last",
    ]


def test_a_failing_log_file_never_stops_the_kept_lines(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = LogStore(100, blocker, lambda b: None)
    sink = StreamSink(store, "svc", "stdout")
    sink.write(b"still kept\n")
    assert store.file("svc") is not None and store.file("svc").error  # type: ignore[union-attr]
    kept = [line for b in store.since("svc", 0) for line in b.lines]
    assert kept[0].startswith("tuisup: cannot write ") and kept[1:] == ["still kept"]


def test_last_state_is_what_a_terminal_shows_of_a_progress_line() -> None:
    from tuisup.terminal import last_state

    assert last_state("plain") == "plain"
    assert last_state("10%\r50%\r100%") == "100%"
    assert last_state("done\r") == "done"
