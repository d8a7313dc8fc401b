"""Log files of real services rotate without losing a line, reopen on SIGUSR1, survive ENOSPC."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import RAW_LOGS, Tuisup, untimed, wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import LogFileChanged
from tuisup.spec import LogFormat, LogOptions, Manifest

S = ServiceState
FLOOD = """\
import hashlib, os, random, sys
random.seed(15)
digest = hashlib.sha256()
out = sys.stdout.buffer
for n in range(60_000):
    line = b"%d %s\\n" % (n, b"x" * random.randrange(0, 300))
    out.write(line)
    digest.update(line)
out.flush()
open("written.sha256", "w").write(digest.hexdigest())
"""
"""A child that writes 9 MB of lines of random length as fast as it can, and their sha256."""
FLOOD_COMMAND = f"{sys.executable} flood.py"


def rotated(folder: Path, name: str) -> list[Path]:
    """`NAME.log.N`, ..., `NAME.log.1`, `NAME.log`: oldest first."""
    backups = sorted(folder.glob(f"{name}.log.*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, folder / f"{name}.log"]


@pytest.mark.parametrize("form", [LogFormat.RAW, LogFormat.TEXT])
async def test_a_flood_rotates_at_the_size_and_loses_splits_or_repeats_no_line(
    make_manifest: Callable[..., Manifest], tmp_path: Path, form: LogFormat
) -> None:
    (tmp_path / "flood.py").write_text(FLOOD)
    logs = LogOptions(max_bytes=256 * 1024, backups=1000, format=form)
    manifest = make_manifest(flood=(FLOOD_COMMAND, {"restart": "never", "logs": logs}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["flood"].state is S.EXITED, timeout=60)
    files = rotated(tmp_path / "logs", "flood")
    assert len(files) > 30, "rotated many times"
    for path in files:
        content = path.read_bytes()
        assert len(content) <= 256 * 1024 and content.endswith(b"\n"), path
    together = b"".join(path.read_bytes() for path in files)
    if form is LogFormat.TEXT:  # each line as written, after its time
        lines = untimed(together.decode().split("\n")[:-1])
        together = "".join(f"{line}\n" for line in lines).encode()
    assert hashlib.sha256(together).hexdigest() == (tmp_path / "written.sha256").read_text()


async def test_log_backups_0_keeps_only_the_file_being_written(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    (tmp_path / "flood.py").write_text(FLOOD)
    logs = LogOptions(max_bytes=100_000, backups=0, format=LogFormat.RAW)
    manifest = make_manifest(flood=(FLOOD_COMMAND, {"restart": "never", "logs": logs}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["flood"].state is S.EXITED, timeout=60)
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["flood.log"]
    content = (tmp_path / "logs" / "flood.log").read_bytes()
    assert 0 < len(content) <= 100_000
    assert content.endswith(b"\n") and content.split(b"\n")[-2].startswith(b"59999 ")
    first = int(content.split(b" ", 1)[0])
    assert content.count(b"\n") == 60_000 - first, "the newest lines, whole and in order"


TICKER = """\
[tuisup]
log_dir = "logs"

[services.web]
command = "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"
shell = true
"""


def ticks(path: Path) -> list[int]:
    return [int(line.split()[-1]) for line in untimed(path.read_text().splitlines())]


def wait_for_lines(path: Path, count: int, tuisup: Tuisup) -> None:
    """Wait until `path` has `count` lines (read on each of tuisup's stdout lines)."""
    tuisup.expect(lambda _: path.exists() and len(path.read_text().splitlines()) >= count)


@pytest.mark.parametrize("how", ["SIGUSR1", "reopen-logs"])
def test_after_an_outside_rotation_a_reopen_writes_a_new_file_at_the_path(
    tmp_path: Path, how: str
) -> None:
    (tmp_path / "services.toml").write_text(TICKER)
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    log = tmp_path / "logs" / "web.log"
    wait_for_lines(log, 2, tuisup)
    os.rename(log, tmp_path / "logs" / "web.log.1")  # what logrotate does
    if how == "SIGUSR1":
        tuisup.proc.send_signal(signal.SIGUSR1)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", how], cwd=tmp_path, capture_output=True, text=True
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "log files reopened\n", "")
    wait_for_lines(log, 2, tuisup)
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    old, new = ticks(tmp_path / "logs" / "web.log.1"), ticks(log)
    # Reopened at once: the new file starts with the next line, not with a notice that the
    # file had been moved away (what a write finds out by itself, later).
    assert new[0] == old[-1] + 1 and old == list(range(1, len(old) + 1))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs at `tmp_path/logs` (skipped where mounting is not allowed)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_full_disk_is_reported_once_the_lines_stay_in_memory_and_writing_resumes(
    make_manifest: Callable[..., Manifest], tmp_path: Path, small_disk: Path
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"f" * 120 * 1024)
    command = "i=0; while :; do i=$((i+1)); echo line $i of some length; sleep 0.005; done"
    async with Host(make_manifest(web=command)) as host:
        failed = await wait_event(
            host, lambda e: isinstance(e, LogFileChanged) and not e.writing, 0, timeout=20
        )
        assert isinstance(failed, LogFileChanged) and failed.error == "No space left on device"
        kept_then = len(kept(host))
        await wait_until(host, lambda s: len(kept(host)) > kept_then + 100)
        filler.unlink()
        back = await wait_event(
            host, lambda e: isinstance(e, LogFileChanged) and e.writing, failed.seq, timeout=20
        )
        assert isinstance(back, LogFileChanged)
        news = [e for e in host.bus.since(0) if isinstance(e, LogFileChanged)]
        assert news == [failed, back], "once when it failed, once when it came back"
        assert host.snapshot()["web"].state is S.RUNNING
        lines = kept(host)
    numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert numbers == list(range(1, len(numbers) + 1)), "memory lost nothing"
    assert any(line.startswith("tuisup: cannot write") for line in lines)
    written = untimed((small_disk / "web.log").read_text().splitlines())
    # It was: the disk filled up in the middle of a line, and the notice followed on from
    # its first half (`line 1542026-11-29T17:18:48.223+00:00 tuisup: writing ...`).
    assert f"tuisup: {back.message}" in written, "the notice is a line of its own"
    assert back.message.endswith("lines are missing from it")


def kept(host: Host) -> list[str]:
    return [line for batch in host.store.since("web", 0) for line in batch.lines]


def test_the_manifest_keys_reach_the_files(tmp_path: Path) -> None:
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            """\
            [tuisup]
            log_dir = "logs"
            log_format = "json"
            log_max_bytes = 1000

            [services.web]
            command = "seq 1 400"
            restart = "never"
            log_backups = 2
            """
        )
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    assert tuisup.finish() == 0
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["web.log", "web.log.1", "web.log.2"]
    assert (tmp_path / "logs" / "web.log").read_text().count('"stream": "stdout"') > 3


def test_a_host_in_another_thread_runs_and_reopens_its_logs_on_request(
    make_manifest: Callable[..., Manifest], tmp_path: Path
) -> None:
    """It was: SIGUSR1's handler made a host outside the main thread fail to start
    (`set_wakeup_fd only works in main thread`): only the main thread takes signals."""
    manifest = make_manifest(web=("echo one; exec sleep 60", {"logs": RAW_LOGS}))
    errors: list[BaseException] = []

    async def run() -> None:
        async with Host(manifest) as host:
            await wait_until(host, lambda s: "one" in kept_of(host, "web"))
            os.rename(tmp_path / "logs" / "web.log", tmp_path / "logs" / "web.log.1")
            await host.reopen_logs()
            host.store.marker("web", "after")

    def in_thread() -> None:
        try:
            anyio.run(run)
        except BaseException as exc:  # noqa: BLE001 - said by the test below
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=30)
    assert errors == []
    assert (tmp_path / "logs" / "web.log").read_bytes() == b"after\n"


def kept_of(host: Host, service: str) -> list[str]:
    return [line for batch in host.store.since(service, 0) for line in batch.lines]
