"""Log files rotate at their size on a line end, keep their backups, and come back when moved."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from tuisup.engine.logfile import LogFile
from tuisup.engine.logs import LogStore, StreamSink
from tuisup.logfiles import LineEncoder, parse_stamp
from tuisup.spec import LogFormat, LogOptions

RAW = LogOptions(format=LogFormat.RAW)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_file_rotates_at_its_size_on_a_line_end_keeping_backups_newest_first(
    tmp_path: Path,
) -> None:
    log = LogFile(
        tmp_path / "svc.log", options=LogOptions(max_bytes=100, backups=2, format=LogFormat.RAW)
    )
    lines = [f"line {n:03d} {'x' * (n % 17)}\n".encode() for n in range(60)]
    for line in lines:
        log.write(line)
    log.close()
    assert files(tmp_path) == ["svc.log", "svc.log.1", "svc.log.2"]
    kept = [(tmp_path / name).read_bytes() for name in ("svc.log.2", "svc.log.1", "svc.log")]
    for content in kept:
        assert len(content) <= 100 and content.endswith(b"\n")
    together = b"".join(kept)
    assert b"".join(lines).endswith(together), "the newest lines, in order, none split"
    assert len(kept[0]) + len(kept[1]) > 150, "each backup was filled up to its size"


def test_a_write_of_many_lines_is_cut_at_the_last_line_that_fits(tmp_path: Path) -> None:
    log = LogFile(
        tmp_path / "svc.log", options=LogOptions(max_bytes=25, backups=3, format=LogFormat.RAW)
    )
    log.write(b"aaaaaaaaa\nbbbbbbbbb\nccccccccc\nddddddddd\n")
    log.close()
    assert (tmp_path / "svc.log.1").read_bytes() == b"aaaaaaaaa\nbbbbbbbbb\n"
    assert (tmp_path / "svc.log").read_bytes() == b"ccccccccc\nddddddddd\n"


def test_a_line_longer_than_the_size_overshoots_whole(tmp_path: Path) -> None:
    log = LogFile(
        tmp_path / "svc.log", options=LogOptions(max_bytes=10, backups=3, format=LogFormat.RAW)
    )
    log.write(b"short\n", b"x" * 30 + b"\n", b"after\n")
    log.close()
    assert (tmp_path / "svc.log.2").read_bytes() == b"short\n"
    assert (tmp_path / "svc.log.1").read_bytes() == b"x" * 30 + b"\n"
    assert (tmp_path / "svc.log").read_bytes() == b"after\n"


def test_log_backups_0_cuts_the_file_and_keeps_nothing(tmp_path: Path) -> None:
    log = LogFile(
        tmp_path / "svc.log", options=LogOptions(max_bytes=20, backups=0, format=LogFormat.RAW)
    )
    for n in range(10):
        log.write(f"line {n}\n".encode())
    log.close()
    assert files(tmp_path) == ["svc.log"]
    assert (tmp_path / "svc.log").read_bytes() == b"line 8\nline 9\n"


def test_the_size_of_a_file_already_there_counts(tmp_path: Path) -> None:
    (tmp_path / "svc.log").write_bytes(b"y" * 15 + b"\n")
    log = LogFile(
        tmp_path / "svc.log", options=LogOptions(max_bytes=20, backups=1, format=LogFormat.RAW)
    )
    log.write(b"new line\n")
    log.close()
    assert (tmp_path / "svc.log.1").read_bytes() == b"y" * 15 + b"\n"
    assert (tmp_path / "svc.log").read_bytes() == b"new line\n"


def test_a_file_moved_away_while_in_use_is_made_again_at_its_path(tmp_path: Path) -> None:
    """It was: the path was checked with `fstat().st_nlink`, and a moved file has its link."""
    now = [0.0]
    log = LogFile(tmp_path / "svc.log", clock=lambda: now[0])
    log.write(b"before\n")
    os.rename(tmp_path / "svc.log", tmp_path / "moved.log")
    now[0] += 1.0
    log.write(b"after\n")
    log.close()
    assert (tmp_path / "moved.log").read_bytes() == b"before\n"
    assert (tmp_path / "svc.log").read_text().endswith("moved away: writing a new one\nafter\n")


def test_reopen_writes_the_path_again_at_once(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "svc.log", options=RAW)
    log.write(b"before\n")
    os.rename(tmp_path / "svc.log", tmp_path / "svc.log.1")
    log.reopen()
    log.write(b"after\n")
    log.close()
    assert (tmp_path / "svc.log.1").read_bytes() == b"before\n"
    assert (tmp_path / "svc.log").read_bytes() == b"after\n"


def test_text_lines_carry_the_rfc_3339_time_they_were_read_as_the_kept_lines_do(
    tmp_path: Path,
) -> None:
    store = LogStore(100, tmp_path, lambda b: None)
    sink = StreamSink(store, "svc", "stdout")
    before = time.time()
    sink.write(b"one\ntwo\n")
    sink.close()
    store.close()
    written = (tmp_path / "svc.log").read_text().splitlines()
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")
    assert [line.split(" ", 1)[1] for line in written] == ["one", "two"]
    (batch,) = store.since("svc", 0)
    for line in written:
        head = line.split(" ", 1)[0]
        assert stamp.fullmatch(head), head
        assert parse_stamp(head) == int(batch.ts * 1000) / 1000
    assert before <= batch.ts <= time.time()


def test_json_lines_keep_bytes_that_are_not_utf8_losslessly(tmp_path: Path) -> None:
    store = LogStore(100, tmp_path, lambda b: None)
    store.configure("svc", LogOptions(format=LogFormat.JSON))
    out = StreamSink(store, "svc", "stdout")
    err = StreamSink(store, "svc", "stderr")
    written = [b"caf\xc3\xa9 \xff\xfe end", b'quote " and \\ and \x1b[31m']
    out.write(written[0] + b"\n")
    err.write(written[1] + b"\n")
    store.close()
    records = [json.loads(line) for line in (tmp_path / "svc.log").read_text().splitlines()]
    assert [r["stream"] for r in records] == ["stdout", "stderr"]
    assert [r["line"].encode("utf-8", "surrogateescape") for r in records] == written
    assert all(parse_stamp(r["ts"]) for r in records)


def test_raw_and_untimed_text_are_the_bytes_as_written() -> None:
    data = b"a\r\nb\xff\nc"
    for options in (RAW, LogOptions(timestamps=False)):
        encoder = LineEncoder(options)
        parts = encoder.encode(data, 0.0, "stdout", head=b"x", end=len(data) - 1)
        assert encoder.raw and b"".join(parts) == b"xa\r\nb\xff\n"


def test_a_head_read_before_and_an_end_cut_the_lines_whole_in_every_format() -> None:
    data = b"st line\nsecond\nthe start of the next"
    end = data.rfind(b"\n") + 1
    timed = b"".join(LineEncoder(LogOptions()).encode(data, 0.0, "stdout", head=b"fir", end=end))
    assert [line.split(b" ", 1)[1] for line in timed.splitlines()] == [b"first line", b"second"]
    json_options = LogOptions(format=LogFormat.JSON)
    written = LineEncoder(json_options).encode(data, 0.0, "stdout", head=b"fir", end=end)
    lines = [json.loads(line)["line"] for line in b"".join(written).splitlines()]
    assert lines == ["first line", "second"]
