"""The process executor with real process trees: stopping, escapees, exits, output."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable

import anyio

from tests.conftest import RAW_LOGS, tagged_pids, wait_gone, wait_until, zombie_children
from tuisup.engine import Host, ServiceState
from tuisup.engine.executors.base import KILL_GRACE
from tuisup.engine.reaper import stat
from tuisup.spec import Manifest, RestartPolicy

S = ServiceState
NEVER = {"restart": RestartPolicy.NEVER}

DAEMON = (
    f"{sys.executable} -c 'import os,time\n"
    "if os.fork(): os._exit(0)\n"
    "os.setsid()\n"
    "if os.fork(): os._exit(0)\n"
    "time.sleep(60)'"
)


async def running(host: Host, name: str, count: int, token: str) -> None:
    """Wait for the service to run and for `count` tagged processes to exist."""
    await wait_until(host, lambda s: s[name].state is S.RUNNING)
    with anyio.fail_after(5):
        while len(list(tagged_pids(token))) < count:
            await anyio.sleep(0.01)


async def test_stop_escalates_to_sigkill_for_a_child_that_ignores_sigterm(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(
        stubborn=("trap '' TERM; sleep 60 & sleep 61; wait", {"stop_timeout": 0.3})
    )
    async with Host(manifest) as host:
        await running(host, "stubborn", 3, token)
        began = time.monotonic()
        await host.stop("stubborn")
        took = time.monotonic() - began
        snap = host.snapshot()["stubborn"]
        assert not list(tagged_pids(token))
    assert 0.3 <= took < 0.3 + KILL_GRACE
    assert snap.state is S.STOPPED
    assert snap.history[-1].status.signal == 9 and snap.history[-1].requested


async def test_stop_honours_the_stop_signal_and_sends_sigcont(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    import signal

    manifest = make_manifest(
        polite=(
            "trap 'echo got INT; exit 0' INT; kill -STOP $$; sleep 60 & wait",
            {"stop_signal": signal.SIGINT},
        )
    )
    async with Host(manifest) as host:
        await running(host, "polite", 1, token)
        with anyio.fail_after(5):  # until the shell has stopped itself (state T)
            while not any(stat(pid)[0] == "T" for pid in tagged_pids(token) if stat(pid)):  # type: ignore[index]
                await anyio.sleep(0.01)
        began = time.monotonic()
        await host.stop("polite")
        assert time.monotonic() - began < 2
        lines = [line for b in host.store.since("polite", 0) for line in b.lines]
        status = host.snapshot()["polite"].history[-1].status
    assert "got INT" in lines and status.code == 0


async def test_grandchildren_in_the_group_are_stopped_with_it(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(tree="sleep 60 & sleep 61 & (sleep 62 & wait) & wait")
    async with Host(manifest) as host:
        await running(host, "tree", 5, token)
        await host.stop("tree")
        assert not list(tagged_pids(token))
        assert zombie_children() == []


async def test_escapees_that_left_the_group_are_found_killed_and_reaped(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(escapes=f"setsid sleep 60 & {DAEMON}; sleep 61")
    async with Host(manifest) as host:
        await running(host, "escapes", 4, token)
        await host.stop("escapes")
        assert not list(tagged_pids(token)), "an escapee survived the stop"
        assert zombie_children() == []


async def test_exit_is_seen_at_once_while_a_grandchild_holds_the_pipe(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(leaves=("sleep 30 & echo bye; exit 5", NEVER))
    async with Host(manifest) as host:
        began = time.monotonic()
        snap = await wait_until(host, lambda s: s["leaves"].state is S.EXITED, timeout=5)
        took = time.monotonic() - began
        # The leftover grandchild dies with its service: no second incarnation overlaps.
        await wait_gone(token)
        lines = [line for b in host.store.since("leaves", 0) for line in b.lines]
    assert took < 1.0
    assert snap["leaves"].history[-1].status.code == 5
    assert lines == ["bye"]


async def test_an_escapee_left_after_a_crash_is_killed_before_the_restart(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(crashy=(f"{DAEMON}; exit 1", {**NEVER}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["crashy"].state is S.EXITED)
        await wait_gone(token, timeout=3)
        assert zombie_children() == []


async def test_output_edge_cases_arrive_whole(
    make_manifest: Callable[..., Manifest], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "emit.py"
    script.write_text(
        "import os, sys\n"
        "w = sys.stdout.buffer\n"
        "w.write(b'crlf\\r\\n'); w.write(b'bad \\xff\\n'); w.flush()\n"
        "for b in '\\u00e9\\u20ac\\U0001f600\\n'.encode(): w.write(bytes([b])); w.flush()\n"
        "w.write(b'z' * 1_000_000 + b'\\n'); w.flush()\n"
        "sys.stderr.write('on stderr\\n'); sys.stderr.flush()\n"
        "w.write(b'no newline at exit'); w.flush()\n"
    )
    manifest = make_manifest(emit=(f"{sys.executable} {script}", {**NEVER, "logs": RAW_LOGS}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["emit"].state is S.EXITED)
        batches = host.store.since("emit", 0)
    lines = [line for b in batches for line in b.lines if b.stream == "stdout"]
    assert lines[:3] == ["crlf", "bad \ufffd", "é€😀"]
    assert lines[-1] == "no newline at exit"
    assert "".join(p.removesuffix(" ⏎") for p in lines[3:-1]) == "z" * 1_000_000
    assert [line for b in batches if b.stream == "stderr" for line in b.lines] == ["on stderr"]
    raw = (tmp_path / "logs" / "emit.log").read_bytes()
    # The two pipes are read independently, so only each stream's own order is fixed.
    assert b"bad \xff\n" in raw and b"\nno newline at exit\n" in raw and b"on stderr\n" in raw


async def test_a_chatty_service_is_drained_while_it_stops(
    make_manifest: Callable[..., Manifest], token: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # The child logs 300 KB in its SIGTERM handler: far more than a pipe holds. Without
    # draining during the stop it would block in write() until SIGKILL.
    script = tmp_path / "chatty.py"
    script.write_text(
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    for i in range(3000): print('x' * 99)\n"
        "    print('clean exit'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    manifest = make_manifest(chatty=(f"exec {sys.executable} -u {script}", {"stop_timeout": 5.0}))
    async with Host(manifest) as host:
        await wait_until(
            host, lambda s: any("ready" in b.lines for b in host.store.since("chatty", 0))
        )
        began = time.monotonic()
        await host.stop("chatty")
        assert time.monotonic() - began < 2
        status = host.snapshot()["chatty"].history[-1].status
        lines = [line for b in host.store.since("chatty", 0) for line in b.lines]
    assert status.code == 0
    assert lines[-1] == "clean exit" and len(lines) == 3002


async def test_host_shutdown_leaves_nothing_behind(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(
        a="sleep 60",
        b="sleep 60 & sleep 61; wait",
        c=f"{DAEMON}; sleep 62",
        d=("trap '' TERM; sleep 63", {"stop_timeout": 0.2}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        with anyio.fail_after(5):
            while len(list(tagged_pids(token))) < 8:
                await anyio.sleep(0.01)
    assert not list(tagged_pids(token))
    assert zombie_children() == []


async def test_a_killed_lifeline_is_replaced(make_manifest: Callable[..., Manifest]) -> None:
    import os
    import signal

    async with Host(make_manifest(a="sleep 60")) as host:
        first = host.lifeline.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with anyio.fail_after(5):
            while host.lifeline.pid in (first, None):
                await anyio.sleep(0.01)
    assert zombie_children() == []


async def test_an_adopted_escapee_that_exits_by_itself_is_reaped_at_once(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    short_daemon = DAEMON.replace("time.sleep(60)", "time.sleep(0.3)")
    manifest = make_manifest(svc=f"{short_daemon}; sleep 60")
    async with Host(manifest) as host:
        await running(host, "svc", 2, token)
        # The daemon was adopted by tuisup (the subreaper); when it exits, SIGCHLD reaps it.
        with anyio.fail_after(5):
            while len(list(tagged_pids(token))) > 2 or zombie_children():
                await anyio.sleep(0.02)
        assert zombie_children() == []


LATE_DAEMON = (
    # An untagged go-between (not this host's, so no sweep touches it) leaves the group,
    # outlives the exit's sweep, then forks a tagged daemon and exits: the daemon becomes
    # tuisup's child only then.
    "env -u TUISUP_SERVICE -u TUISUP_HOST "
    f"{sys.executable} -c 'import os,sys,time\n"
    "r, w = os.pipe()\n"
    "if os.fork(): os.close(w); os.read(r, 1); os._exit(0)\n"  # once it left the group
    "os.setsid(); os.write(w, bytes(1)); time.sleep(1.5)\n"
    "if os.fork(): os._exit(0)\n"
    'os.execve("/bin/sleep", ["sleep", "61"],'
    " dict(os.environ, TUISUP_SERVICE=sys.argv[1], TUISUP_HOST=sys.argv[2]))' "
    '"$TUISUP_SERVICE" "$TUISUP_HOST"'
)


async def test_an_escapee_that_turns_up_after_its_services_sweep_is_killed(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: the sweep after an exit lasts a second; a tagged process that became
    tuisup's child later lived on until tuisup stopped."""
    manifest = make_manifest(late=(f"{LATE_DAEMON}; exit 1", {**NEVER}))
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["late"].state is S.EXITED)
        with anyio.fail_after(5):  # the go-between, alive past the exit's sweep
            while not any(b"setsid" in _cmdline(p) for p in tagged_pids(token)):
                await anyio.sleep(0.02)
        # It forks the daemon as it leaves: gone too (and reaped), or tuisup let it live on.
        await wait_gone(token, timeout=5)
        with anyio.fail_after(2):
            while zombie_children():
                await anyio.sleep(0.02)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


async def test_the_host_takes_the_spare_lifeline_started_before_the_engine(
    make_manifest: Callable[..., Manifest],
) -> None:
    from tuisup import lifeline_process

    spare = lifeline_process.start_spare()
    assert spare is not None
    async with Host(make_manifest(a="sleep 60")) as host:
        assert host.lifeline.pid == spare
        async with Host(make_manifest(b="sleep 60")) as second:  # no spare left: its own
            assert second.lifeline.pid not in (None, spare)
    assert stat(spare) is None  # released, and reaped by the host
    assert zombie_children() == []


async def test_a_spare_lifeline_killed_before_it_is_taken_is_replaced(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    import os
    import signal

    from tuisup import lifeline_process

    spare = lifeline_process.start_spare()
    assert spare is not None
    os.kill(spare, signal.SIGKILL)
    with anyio.fail_after(5):  # dead before the host looks: a zombie it will reap
        while (info := stat(spare)) is None or info[0] != "Z":
            await anyio.sleep(0.01)
    async with Host(make_manifest(a="sleep 60")) as host:
        await running(host, "a", 1, token)
        assert host.lifeline.pid not in (None, spare)
    assert stat(spare) is None
    assert not list(tagged_pids(token))
    assert zombie_children() == []


def test_a_spare_lifeline_never_told_its_tag_exits_having_killed_nothing() -> None:
    import os

    from tuisup import lifeline_process

    popen, write_end = lifeline_process.start()
    os.close(write_end)  # as when tuisup exits before any host took it
    assert popen.wait(timeout=10) == 0


def test_the_descriptor_table_is_grown_before_the_first_spawn_and_nothing_is_left_open() -> None:
    """Grown later, with threads running, each doubling stalls the loop for milliseconds."""
    import subprocess

    script = """
import os
from tuisup.engine.spawn import reserve_descriptors
def size():
    for line in open("/proc/self/status"):
        if line.startswith("FDSize:"):
            return int(line.split()[1])
open_before = sorted(os.listdir("/proc/self/fd"))
before = size()
keep = os.open(os.devnull, os.O_RDONLY)
os.dup2(keep, 300)  # an open descriptor where the reservation may look: never replaced
reserve_descriptors(100)
after = size()
os.fstat(300)
os.close(300), os.close(keep)
print(before, after, sorted(os.listdir("/proc/self/fd")) == open_before)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    before, after, same = done.stdout.split()
    assert int(before) < 664 <= int(after)  # 64 + 6 a service: room for 100 services
    assert same == "True"


def _pipe_size(pid: int, fd: int) -> int:
    """The capacity of the pipe a process holds as `fd` (opened anew through /proc)."""
    import fcntl
    import os

    opened = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return fcntl.fcntl(opened, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(opened)


async def test_only_a_flooding_services_pipe_is_grown(
    make_manifest: Callable[..., Manifest],
) -> None:
    from tuisup.engine.executors.process import FULL_PIPE, PIPE_SIZE

    manifest = make_manifest(
        quiet="exec sleep 60",
        flood="head -c 3000000 /dev/zero | tr '\\0' x; exec sleep 60",
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        flood, quiet = host.snapshot()["flood"].pid, host.snapshot()["quiet"].pid
        assert flood is not None and quiet is not None
        with anyio.fail_after(10):
            while _pipe_size(flood, 1) < PIPE_SIZE:
                await anyio.sleep(0.02)
        assert _pipe_size(quiet, 1) == FULL_PIPE  # as made: growing every pipe cost 28 µs
        assert _pipe_size(flood, 2) == FULL_PIPE  # its stderr never filled


def pids_running(argv: list[str]) -> list[int]:
    """Live (non-zombie) processes whose command line is `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() != wanted:
                    continue
        except (OSError, ValueError):
            continue
        if (info := stat(int(entry))) is not None and info[0] != "Z":
            found.append(int(entry))
    return found


async def test_an_escapee_that_cleared_its_environment_dies_with_the_host(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """No tag tells its service, but only a descendant of tuisup's is re-parented to it."""
    argv = ["sleep", f"4201.{os.getpid()}{uuid.uuid4().int % 10**6}"]
    manifest = make_manifest(clears=f"env -i setsid {' '.join(argv)} & exec sleep 61")
    async with Host(manifest) as host:
        await running(host, "clears", 1, token)
        with anyio.fail_after(5):
            while not pids_running(argv):
                await anyio.sleep(0.01)
        await host.stop("clears")  # its group goes; the escapee is tuisup's child now
    assert pids_running(argv) == [], "an escapee with no tag outlived the host"
    assert zombie_children() == []


async def test_a_host_ending_sweeps_only_its_own_escapees_not_another_hosts_processes(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Two hosts in one process share its children: the inner one's end kills its own only."""
    argv = ["sleep", f"4202.{os.getpid()}{uuid.uuid4().int % 10**6}"]
    async with Host(make_manifest(a="sleep 60")) as outer:
        await running(outer, "a", 1, token)
        inner_manifest = make_manifest(clears=f"env -i setsid {' '.join(argv)} & exec sleep 61")
        async with Host(inner_manifest) as inner:
            await outer.restart("a")  # its process is younger than the inner host
            mine = (outer.snapshot()["a"].pid, outer.lifeline.pid)
            await wait_until(inner, lambda s: s["clears"].state is S.RUNNING)
            with anyio.fail_after(5):
                while not pids_running(argv):
                    await anyio.sleep(0.01)
            await inner.stop("clears")
        assert pids_running(argv) == []
        view = outer.snapshot()["a"]
        assert (view.pid, outer.lifeline.pid) == mine and view.restarts == 1
        assert view.pid is not None and (info := stat(view.pid)) is not None and info[0] != "Z"
