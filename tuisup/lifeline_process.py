"""Provides the lifeline's process: what kills a host's processes once tuisup is gone.

`tuisup.engine.lifeline.Lifeline` keeps one alive for each host.

It reads one line from its stdin, `TUISUP_HOST=TAG`, then blocks reading until end of file.
tuisup holds the only write end of that pipe, so however tuisup ends (even by SIGKILL) the
read returns, and the lifeline SIGKILLs every process whose environment holds that line,
again and again until none is left.

Its interpreter takes about 10 ms of a core to start. `tuisup` starts a spare one
(`start_spare`) before it imports its engine, so that this overlaps its own imports on
another core instead of the first spawns; the host's lifeline then takes it (`take`) and
sends it the host's tag. A spare never given its tag reads end of file when tuisup exits,
and exits having killed nothing.

This module imports nothing of tuisup's, nor anything that tuisup's engine would not.
"""

from __future__ import annotations

import os
import subprocess
import sys

_SCRIPT = """
import os, signal, sys, time
needle = b""
while not needle.endswith(b"\\n"):
    chunk = os.read(0, 1)
    if not chunk:
        sys.exit(0)
    needle += chunk
needle = needle[:-1]
while os.read(0, 4096):
    pass
me = os.getpid()
for _ in range(500):
    found = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/" + entry + "/environ", "rb") as f:
                if needle not in f.read().split(b"\\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            found = True
        except OSError:
            pass
    if not found:
        break
    time.sleep(0.01)
"""

_spare: tuple[subprocess.Popen[bytes], int] | None = None


def start() -> tuple[subprocess.Popen[bytes], int]:
    """Start a lifeline process that has not been told its tag yet.

    It leads a session of its own (a Ctrl-C in the terminal must not reach it) and carries
    none of tuisup's variables: it is nobody's service.

    Returns:
        The process, and the write end of its stdin (close-on-exec), which only tuisup holds.

    Raises:
        OSError: It could not be started (no descriptors left); nothing is left open.
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUISUP_")}
    try:
        popen = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SCRIPT],
            env=env,
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return popen, write_end


def start_spare() -> int | None:
    """Start a lifeline process now, for the first host's lifeline to take.

    Returns:
        Its pid; None if it could not be started (the host's lifeline then starts its own,
        and keeps trying if that fails too).
    """
    global _spare
    if _spare is None:
        try:
            _spare = start()
        except OSError:
            return None
    return _spare[0].pid


def take(needle: str) -> tuple[subprocess.Popen[bytes], int]:
    """A lifeline process told to look for `needle` (`TUISUP_HOST=TAG`): the spare, or a new one.

    Raises:
        OSError: No spare was left and none could be started.
    """
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        try:
            return _told(spare, needle)
        except OSError:
            pass  # it was killed meanwhile: start another
    return _told(start(), needle)


def _told(
    started: tuple[subprocess.Popen[bytes], int], needle: str
) -> tuple[subprocess.Popen[bytes], int]:
    popen, write_end = started
    try:
        os.write(write_end, needle.encode() + b"\n")  # a few bytes: the pipe takes them
    except OSError:
        os.close(write_end)
        popen.kill()
        popen.wait()
        raise
    return started
