"""Provides `tuisup up -d` (a host in the background, once it is up) and `tuisup down`.

`up -d` starts `python -m tuisup up` (the headless host) in a session of its own, its
output appended to `.tuisup/tuisup.log` beside the manifest, waits until its socket
answers, then until every autostart service is running, waiting, exited or failed, and
says where each one stands. `down` asks the host to shut down, prints what stops, and
waits until the host's process and its socket are gone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tuisup.control.client import RemoteHost, RemoteSubscription
from tuisup.control.paths import private_folder
from tuisup.control.verbs import (
    FAILED,
    OK,
    Failed,
    connect,
    dump,
    has_failed,
    locate,
    out,
    say,
    state_line,
)
from tuisup.headless import Printer, use_colour
from tuisup.model import ServiceState, ServiceView
from tuisup.model import events as ev
from tuisup.terminal import one_line, path_text

S = ServiceState
SETTLED = frozenset({S.RUNNING, S.WAITING, S.EXITED, S.FAILED})
"""Where an autostart service has got to once `up -d` returns."""
POLL = 0.02
"""Seconds between looks at a socket that does not answer yet (nothing announces it)."""
ANSWER_WITHIN = 30.0
"""Seconds the new host has to answer on its socket."""
GONE_WITHIN = 10.0
"""Seconds `down` waits for the host's process and socket to go, once it has stopped."""
TAIL = 20
"""Lines of the host's log shown when it could not start."""


async def up_detached(options: argparse.Namespace) -> int:
    """`tuisup up -d [--json]` (the manifest was checked already)."""
    manifest, log, where = _paths(options)
    running = await _running(where)
    already = running is not None
    if running is None:
        child = _spawn(options, manifest, log)
        running = await _answering(child, where, log)
        if running is None:
            return FAILED
    host = running
    try:
        views = await _settled(host)
    finally:
        await host.close()
    if views is None:
        say("tuisup: the host stopped before its services were up")
        _tail(log)
        return FAILED
    _report(host, views, log, already=already, json_mode=options.json)
    return FAILED if any(has_failed(view) for view in views) else OK


async def _running(where: Path) -> RemoteHost | None:
    """The host already running there, if one answers.

    Raises:
        Failed: Something is there that does not answer as a host does.
    """
    try:
        return await RemoteHost.connect(where)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except (TimeoutError, OSError) as exc:
        why = one_line(str(exc) or type(exc).__name__)
        raise Failed(f"tuisup: {path_text(where)} does not answer as a tuisup: {why}") from None


def _paths(options: argparse.Namespace) -> tuple[Path, Path, Path]:
    """The manifest, the host's log beside it, and the socket."""
    manifest = Path(options.file).resolve()
    return manifest, manifest.parent / ".tuisup" / "tuisup.log", locate(options).path


def _spawn(options: argparse.Namespace, manifest: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the headless host in its own session, its output appended to `log`."""
    private_folder(log.parent)
    argv = [sys.executable, "-m", "tuisup", "-f", str(manifest)]
    if options.socket:
        argv += ["--socket", os.path.abspath(options.socket)]
    argv.append("up")
    if options.no_reload:
        argv.append("--no-reload")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        # Shown as every path is (a name that is not UTF-8 could not even be encoded).
        os.write(fd, f"-- {stamp} tuisup up -d: {path_text(manifest)}\n".encode())
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd=manifest.parent,
            start_new_session=True,  # no terminal's signals: it outlives this shell
        )
    finally:
        os.close(fd)


async def _answering(child: subprocess.Popen[bytes], where: Path, log: Path) -> RemoteHost | None:
    """The new host, once its socket answers; None (said) if it exited first or never did."""
    deadline = time.monotonic() + ANSWER_WITHIN
    while child.poll() is None:
        try:
            host = await RemoteHost.connect(where)
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
            if time.monotonic() > deadline:
                say(f"tuisup: the host (pid {child.pid}) did not answer in {ANSWER_WITHIN:g} s")
                _tail(log)
                return None
            await asyncio.sleep(POLL)
            continue
        if host.pid == child.pid:
            return host
        await host.close()  # another host answered: ours will say why it gave up
        await asyncio.to_thread(child.wait)
    say(f"tuisup: the host exited with status {child.returncode} before it was up")
    _tail(log)
    return None


async def _settled(host: RemoteHost) -> list[ServiceView] | None:
    """Every view, once each autostart service has been running, waiting, exited or failed.

    Returns:
        None if the host stopped (or went) first.
    """
    subscription = await host.subscribe()
    snapshot = subscription.snapshot
    waiting = {n for n, v in snapshot.items() if v.spec.autostart and v.state not in SETTLED}
    if waiting:
        async for batch in subscription:
            for event in batch:
                if isinstance(event, ev.StateChanged) and event.state in SETTLED:
                    waiting.discard(event.service)
                elif isinstance(event, ev.HostStopped):
                    return None
            if not waiting:
                break
        else:
            return None
    return list(host.snapshot().values())


def _report(
    host: RemoteHost, views: list[ServiceView], log: Path, *, already: bool, json_mode: bool
) -> None:
    shown = path_text(os.path.relpath(log) if log.is_relative_to(Path.cwd()) else log)
    if json_mode:
        dump(
            {
                "pid": host.pid,
                "manifest": host.manifest_path,
                "socket": host.hello.get("socket"),
                "log": str(log),
                "already": already,
                "services": [view.to_json(spec=False) for view in views],
            }
        )
        return
    width = max((len(view.name) for view in views), default=0)
    for view in views:
        line = state_line(view)
        out(f"{view.name:<{width}} {line[len(view.name) + 1 :]}\n")
    name = path_text(Path(host.manifest_path).name)  # the host's word: said safe
    if already:
        out(f"tuisup was already running {name} (pid {host.pid})\n")
    else:
        out(f"tuisup runs {name} in the background (pid {host.pid}); its output: {shown}\n")


def _tail(log: Path) -> None:
    """Show the last lines of the host's log (why it did not start)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-TAIL:]
    except OSError:
        return
    say(f"the end of {path_text(log)}:")
    for line in lines:
        say(f"  {one_line(line)}")


async def down(options: argparse.Namespace) -> int:
    """`tuisup down [--json]`: stop every service and the host; exit once it is gone."""
    host = await connect(options)
    pid, where = host.pid, locate(options).path
    try:
        printing = None
        if not options.json:
            subscription = await host.subscribe()
            colour = use_colour(sys.stdout)
            printer = Printer(host, json_mode=False, colour=colour)
            printing = asyncio.create_task(_print(printer, subscription))
        await host.shutdown(f"tuisup down (pid {os.getpid()})")
        if printing is not None:
            await asyncio.wait([printing], timeout=GONE_WITHIN)
    finally:
        await host.close()
    gone = pid is None or await _exited(pid, GONE_WITHIN)
    left = _there(where)
    if options.json:
        dump({"stopped": gone and not left, "pid": pid})
    elif not gone:
        say(f"tuisup: the host (pid {pid}) has not exited {GONE_WITHIN:g} s after stopping")
    elif left:
        say(f"tuisup: the host (pid {pid}) exited, but left its socket at {path_text(where)}")
    return OK if gone and not left else FAILED


def _there(path: Path) -> bool:
    return os.path.lexists(path)


async def _print(printer: Printer, subscription: RemoteSubscription) -> None:
    """Print what happens while the host stops, until it has."""
    async for batch in subscription:
        out(printer.render(batch))
        if any(isinstance(event, ev.HostStopped) for event in batch):
            return


async def _exited(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has exited (told by a pidfd: no polling); whether it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(exited, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
