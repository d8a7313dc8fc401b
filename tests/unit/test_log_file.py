"""A log file that cannot be written is reported once, retried cheaply, and made again."""

from __future__ import annotations

import shutil
from pathlib import Path

from tuisup.engine.logfile import RECHECK_AFTER, FileNews
from tuisup.engine.logs import LogStore, StreamSink
from tuisup.spec import LogFormat, LogOptions

RAW = LogOptions(format=LogFormat.RAW)
"""These tests are about failures, not formats: the file gets the bytes as written."""


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def store_with_news(log_dir: Path, clock: Clock | None = None) -> tuple[LogStore, list[FileNews]]:
    news: list[FileNews] = []

    def on_file(service: str, item: FileNews) -> None:
        assert service == "svc"
        news.append(item)

    store = LogStore(100, log_dir, lambda batch: None, on_file=on_file, clock=clock or Clock())
    store.configure("svc", RAW)
    return store, news


def kept(store: LogStore) -> list[str]:
    return [line for batch in store.since("svc", 0) for line in batch.lines]


def test_a_log_dir_that_is_a_file_is_reported_once_and_the_lines_stay_in_memory(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("")
    store, news = store_with_news(blocker)
    sink = StreamSink(store, "svc", "stdout")
    for i in range(50):
        sink.write(b"line %d\n" % i)
    assert news == [FileNews(path=blocker / "svc.log", writing=False, error="Not a directory")]
    marker = (
        f"tuisup: cannot write {blocker / 'svc.log'}: Not a directory; "
        "lines are kept in memory only"
    )
    assert kept(store) == [marker] + [f"line {i}" for i in range(50)]


def test_a_failing_log_file_is_retried_at_most_once_a_second_and_says_when_it_works_again(
    tmp_path: Path,
) -> None:
    clock = Clock()
    blocker = tmp_path / "logs"
    blocker.write_text("")
    store, news = store_with_news(blocker, clock)
    sink = StreamSink(store, "svc", "stdout")
    sink.write(b"lost 1\n")
    blocker.unlink()
    clock.now += 0.9
    sink.write(b"lost 2\nlost 3\n")
    assert not blocker.exists(), "retried before a second had passed"
    clock.now += 0.1
    sink.write(b"back\n")
    log = blocker / "svc.log"
    notice = f"tuisup: writing {log} again; 3 lines are missing from it"
    assert log.read_text() == f"{notice}\nback\n"
    assert news[1:] == [FileNews(path=log, writing=True, unwritten=3)]
    assert kept(store)[-2:] == [notice, "back"]


def test_a_log_folder_deleted_while_in_use_is_made_again_and_reported_once(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    store, news = store_with_news(logs)
    sink = StreamSink(store, "svc", "stdout")
    sink.write(b"before\n")
    shutil.rmtree(logs)
    sink.write(b"after 1\n")
    sink.write(b"after 2\n")
    notice = f"tuisup: {logs / 'svc.log'} was deleted or moved away: writing a new one"
    assert (logs / "svc.log").read_text() == f"{notice}\nafter 1\nafter 2\n"
    assert news == [FileNews(path=logs / "svc.log", writing=True, deleted=True)]
    assert kept(store) == ["before", notice, "after 1", "after 2"]


def test_a_write_error_such_as_a_full_disk_is_reported_and_recovers_once_the_file_can_be_written(
    tmp_path: Path,
) -> None:
    clock = Clock()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "svc.log").symlink_to("/dev/full")  # opens fine; every write fails with ENOSPC
    store, news = store_with_news(logs, clock)
    sink = StreamSink(store, "svc", "stdout")
    sink.write(b"one\n")
    sink.write(b"two\n")
    (logs / "svc.log").unlink()
    clock.now += 1
    sink.write(b"three\n")
    assert news == [
        FileNews(path=logs / "svc.log", writing=False, error="No space left on device"),
        FileNews(path=logs / "svc.log", writing=True, unwritten=2),
    ]
    notice = f"tuisup: writing {logs / 'svc.log'} again; 2 lines are missing from it"
    assert (logs / "svc.log").read_text() == f"{notice}\nthree\n"
    assert kept(store)[1:] == ["one", "two", notice, "three"]


def test_a_deleted_log_file_is_looked_for_at_most_every_recheck_after_seconds(
    tmp_path: Path,
) -> None:
    clock = Clock()
    logs = tmp_path / "logs"
    store, news = store_with_news(logs, clock)
    sink = StreamSink(store, "svc", "stdout")
    sink.write(b"one\n")
    sink.write(b"two\n")  # looked: still there
    (logs / "svc.log").unlink()
    sink.write(b"three\n")  # not looked again yet: lands in the deleted file
    assert not (logs / "svc.log").exists()
    clock.now += RECHECK_AFTER
    sink.write(b"four\n")
    notice = f"tuisup: {logs / 'svc.log'} was deleted or moved away: writing a new one"
    assert (logs / "svc.log").read_text() == f"{notice}\nfour\n"
    assert len(news) == 1
