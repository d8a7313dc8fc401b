"""Provides a service's log file: appended, rotated by size, and never failing in silence.

Lines are written in the service's `log_format` (`tuisup.logfiles`). When a write would
take the file past `log_max_bytes`, the file is rotated at the last line end that fits:
`NAME.log` becomes `NAME.log.1`, `.1` becomes `.2`, and so on up to `log_backups`. Below
the size, a write costs one comparison more.

A write that fails (the folder is a file, no permission, a full disk, no file descriptor
left) is reported once, and the next writes are skipped, not queued: the lines are kept in
memory anyway. A retry at most once a second creates the folder and the file again, and
a file deleted or moved away while in use is noticed and created again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from tuisup.logfiles import LineEncoder
from tuisup.model.record import Record
from tuisup.spec import LogOptions

RETRY_AFTER = 1.0
"""Seconds between attempts to write a failing log file: one try a second, not one per line."""
RECHECK_AFTER = 0.05
"""Seconds between checks that an open log file is still at its path (not deleted, not
moved away by `logrotate`).

A check is a `stat` of the path, 2 µs here: half of what a one-line write costs in all. So
a line-by-line writer checks at most 20 times a second, and a write after a pause always does.
"""


class FileNews(Record):
    """A change in whether a service's log file is written: it failed, works again, or was remade.

    Reported once per episode: a failure, then the first write that works again.
    """

    path: Path
    writing: bool
    """Whether lines reach the file from now on."""
    error: str | None = None
    """Why they do not (`writing` false), e.g. `Not a directory`."""
    deleted: bool = False
    """The file (or its folder) was deleted or moved away while in use, and has been
    created again."""
    unwritten: int = 0
    """Lines that did not reach the file while it failed (`writing` true again)."""

    def describe(self) -> str:
        """Return what happened, e.g. `cannot write .tuisup/logs/web.log: Not a directory; ...`."""
        shown = _shown(self.path)
        if not self.writing:
            return f"cannot write {shown}: {self.error}; lines are kept in memory only"
        if self.deleted:
            return f"{shown} was deleted or moved away: writing a new one"
        missing = f"; {self.unwritten} lines are missing from it" if self.unwritten else ""
        return f"writing {shown} again{missing}"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder, unless outside it."""
    try:
        shown = os.path.relpath(path)
    except (OSError, ValueError):  # the working folder itself is gone
        return str(path)
    return str(path) if shown.startswith("..") else shown


def _lines_in(views: list[memoryview]) -> int:
    return sum(view.tobytes().count(b"\n") for view in views)


class LogFile:
    """Appends a service's output to `NAME.log`, rotating it, never raising on a failed write.

    A failure (the folder is a file, no permission, a full disk, no file descriptor left)
    is reported once through `report`, and the bytes are skipped, not queued: the lines stay
    in memory. The next write after `RETRY_AFTER` seconds tries again, creating the folder
    and the file if needed. A file deleted or moved away while open is noticed (within
    `RECHECK_AFTER` seconds of writes) and created again, rather than written where no one
    looks for it.
    """

    def __init__(
        self,
        path: Path,
        report: Callable[[FileNews], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        options: LogOptions | None = None,
    ) -> None:
        self.path = path
        self.error: str | None = None
        """Why writes are failing, if they are."""
        self.encoder = LineEncoder(options or LogOptions())
        self._report = report
        self._clock = clock
        self._fd: int | None = None
        self._identity = (0, 0)
        """The open file's device and inode: the path names another file once it moved."""
        self._size = 0
        self._retry_at = 0.0
        self._recheck_at = 0.0
        self._unwritten = 0
        self._cut = False
        """A failed write left half a line in the file: the next line must not follow on."""

    @property
    def options(self) -> LogOptions:
        """How the file is written and rotated."""
        return self.encoder.options

    @options.setter
    def options(self, options: LogOptions) -> None:
        self.encoder.options = options

    def write_lines(
        self, data: bytes, ts: float, stream: str, *, head: bytes = b"", end: int | None = None
    ) -> None:
        """Append whole lines read at `ts` from `stream`, in the file's format.

        Args:
            data: The lines (see `LineEncoder.encode`).
            ts: When they were read.
            stream: Where they were read from.
            head: The start of the first line, read before.
            end: Where the lines end in `data`; None: its end.
        """
        self.write(*self.encoder.encode(data, ts, stream, head=head, end=end))

    def write(self, *parts: bytes | memoryview) -> None:
        """Append `parts` as they are; while failing, skip them until a retry is due."""
        views = [memoryview(p) for p in parts if p]
        if self.error is not None and self._clock() < self._retry_at:
            self._unwritten += _lines_in(views)
            return
        news: FileNews | None = None
        try:
            deleted = self._open()
            if self.error is not None or deleted:
                news = FileNews(
                    path=self.path, writing=True, deleted=deleted, unwritten=self._unwritten
                )
                # The notice goes first, in the same write: the file says where its gap is.
                notice = f"tuisup: {news.describe()}\n".encode()
                encoded = self.encoder.encode(notice, time.time(), "tuisup")
                # After half a line (a disk that filled up), the notice starts a line of its own.
                views[:0] = [memoryview(p) for p in ([b"\n", *encoded] if self._cut else encoded)]
            self._put(views)
        except OSError as exc:
            self._failed(exc.strerror or str(exc), views)
            return
        if news is not None:
            self.error, self._unwritten, self._cut = None, 0, False
            self._tell(news)

    def _open(self) -> bool:
        """Open the file unless open; return whether it was deleted and has been made again."""
        deleted = False
        if self._fd is not None:
            now = self._clock()
            if now < self._recheck_at:
                return False
            self._recheck_at = now + RECHECK_AFTER
            if self._in_place():
                return False
            self.close()  # gone from its path: lines written to it would be seen by no one
            deleted = True
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(self.path.parent, exist_ok=True)
            self._fd = os.open(self.path, flags, 0o644)
        found = os.fstat(self._fd)
        self._identity, self._size = (found.st_dev, found.st_ino), found.st_size
        return deleted

    def _in_place(self) -> bool:
        """Whether the path still names the open file (not deleted, not moved away)."""
        try:
            found = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):  # or its folder was replaced by a file
            return False
        return (found.st_dev, found.st_ino) == self._identity

    def _put(self, views: list[memoryview]) -> None:
        """Write `views`, rotating first wherever the next line would not fit."""
        limit = self.options.max_bytes
        size = sum(len(view) for view in views)
        if not limit or self._size + size <= limit:
            self._write(views)  # the usual case: one comparison more than no rotation
            self._size += size
            return
        data = b"".join(views)  # once; then written in slices, never copied again
        start, end = 0, len(data)
        while start < end:
            room = limit - self._size
            if end - start <= room:
                cut = end
            elif room > 0:
                cut = data.rfind(b"\n", start, start + room) + 1
            else:
                cut = 0
            if not cut and not self._size:  # a line longer than the limit: it overshoots
                cut = data.find(b"\n", start) + 1 or end
            if cut:
                self._write([memoryview(data)[start:cut]])
                self._size += cut - start
                start = cut
            if start < end:
                self._rotate()

    def _rotate(self) -> None:
        """Shift `NAME.log` to `NAME.log.1` (and each backup one up), and start a new one."""
        assert self._fd is not None
        backups = self.options.backups
        if not backups:
            os.ftruncate(self._fd, 0)  # cut, keeping nothing (and the same file)
            self._size = 0
            return
        self.close()
        path = str(self.path)
        # Shift the run of backups there is (.1, .2, ... up to a gap): not every number up to
        # log_backups, most of which are not there yet.
        run = 1
        while run < backups and os.path.exists(f"{path}.{run}"):
            run += 1
        if run == backups:
            # The oldest goes first, so that no rename lands on a file: ext4 writes out a
            # renamed file's data at once when it replaces another (auto_da_alloc), which
            # made each rotation wait for the disk.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}.{backups}")
        for number in range(run - 1, 0, -1):
            os.replace(f"{path}.{number}", f"{path}.{number + 1}")
        try:
            os.replace(path, f"{path}.1")
        except FileNotFoundError:
            pass  # moved away meanwhile: nothing to shift
        self._open()

    def _write(self, views: list[memoryview]) -> None:
        """Write every view, gathered; on an error, `views` holds what was not written."""
        assert self._fd is not None
        cut = False
        while views:
            # One gathered write, without joining the parts into a new buffer first.
            try:
                written = os.writev(self._fd, views)
            except OSError:
                self._cut = self._cut or cut  # half a line is in the file
                raise
            done: memoryview | None = None
            while views and written >= len(views[0]):
                written -= len(views[0])
                done = views.pop(0)
            if views:
                # The last byte written: in the part cut short, or the last whole part's.
                last = views[0][written - 1 : written] if written else done[-1:] if done else b""
                views[0] = views[0][written:]
                # A short write (a disk filling up): if the rest fails, a line is cut.
                cut = last not in (b"", b"\n")

    def _failed(self, error: str, unwritten: list[memoryview]) -> None:
        self.close()
        self._retry_at = self._clock() + RETRY_AFTER
        self._unwritten += _lines_in(unwritten)
        if self.error is None:
            self.error = error
            self._tell(FileNews(path=self.path, writing=False, error=error))

    def _tell(self, news: FileNews) -> None:
        if self._report is not None:
            self._report(news)

    def reopen(self) -> None:
        """Close the file, so that the next write opens the path again (after `logrotate`)."""
        self.close()

    def close(self) -> None:
        """Close the file; the next write opens it again (so a deleted file is recreated)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
