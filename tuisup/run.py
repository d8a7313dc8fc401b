"""Provides the runners: a Host with a front end on top (the console, or the printer).

They are the one place that builds a Host and hands it, as a HostAPI, to a front end; the
front ends themselves know only the Protocol (`tuisup.api`). Each also serves the host on
its control socket (`tuisup.control.server`): bound before any service starts, so that a
second host for the same manifest is refused before it runs anything, and closed after
the host has stopped.
"""

from __future__ import annotations

import signal
import sys
from typing import TextIO

import anyio
from anyio.abc import TaskGroup

from tuisup.control.server import ControlError, ControlServer
from tuisup.engine import Host
from tuisup.model.events import ControlRefused
from tuisup.spec import Manifest
from tuisup.terminal import path_text


async def run_console(manifest: Manifest) -> int:
    """Run the manifest's services with the console on top; return the exit status."""
    from tuisup.engine.capture import install
    from tuisup.tui.app import TuisupApp  # Textual is imported only here

    host = Host(manifest)
    server = await _bound(host)
    if server is None:
        return 1
    # Textual captures stdout for itself once it runs; in-process services' prints must
    # still reach their own logs, so the router goes back on top once the app is mounted.
    app = TuisupApp(host, log_lines=manifest.settings.log_lines, on_mount=install)
    async with server, host, anyio.create_task_group() as tg:
        tg.start_soon(_quit_on_signals, app)
        await app.run_async()
        tg.cancel_scope.cancel()
    return app.return_code or 0


async def _quit_on_signals(app: object) -> None:
    """SIGTERM or SIGHUP quits the console as `q` does."""
    from tuisup.tui.app import TuisupApp

    assert isinstance(app, TuisupApp)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async for _ in signals:
            await app.action_quit()


async def run_headless(manifest: Manifest, *, json_mode: bool, out: TextIO | None = None) -> int:
    """Run the manifest's services, printing; return the exit status.

    Returns:
        0 after a shutdown on SIGINT/SIGTERM, or when every service ended with success;
        1 when every service ended and one of them failed.
    """
    from tuisup.headless import Printer, follow, use_colour

    stream = out or sys.stdout
    host = Host(manifest)
    server = await _bound(host)
    if server is None:
        return 1
    if server.path.fallback:  # on stderr: stdout may be JSON
        shown = path_text(server.path.path)
        sys.stderr.write(f"tuisup: control socket {shown} ({_too_long(server)})\n")
    printer = Printer(host, json_mode=json_mode, colour=not json_mode and use_colour(stream))
    subscription = await host.subscribe(lines=True)
    async with server, anyio.create_task_group() as tg:
        tg.start_soon(_on_signals, host, tg)
        async with host:
            status = await follow(host, printer, subscription, stream)
        tg.cancel_scope.cancel()
    return status or 0


async def _on_signals(host: Host, tg: TaskGroup) -> None:
    """SIGINT or SIGTERM stops every service; a second SIGINT kills them at once.

    SIGHUP reads the manifest again and applies what changed.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                tg.start_soon(host.reload)
            elif not host.stopping:
                name = signal.Signals(signum).name
                tg.start_soon(host.shutdown, f"{name}; Ctrl-C again to kill")
            elif signum == signal.SIGINT:
                host.kill_all()


async def _bound(host: Host) -> ControlServer | None:
    """The host's control server, its socket bound; None when it cannot be (said on stderr).

    A refused client of another user becomes a `control_refused` event on the host's bus,
    so that every front end says it (the server itself knows the host only as a HostAPI).
    """
    from tuisup.control.paths import SOCKET_ENV, socket_path

    manifest = host.manifest
    where = socket_path(manifest.path, manifest.settings.socket)

    def refused(pid: int, uid: int) -> None:
        host.bus.emit(ControlRefused, pid=pid, uid=uid)

    server = ControlServer(host, where, refused=refused)
    metrics = host.metrics
    try:
        if metrics is not None:  # before any service starts, as the socket is
            metrics.bind()
        # On the loop, which runs nothing else yet: a live host's probe is answered at once
        # (one too busy to accept is waited for 1 s), and a worker thread is 1 ms to start.
        server.bind()
    except OSError as exc:
        assert metrics is not None
        address = ":".join(map(str, metrics.address))
        sys.stderr.write(f"tuisup: metrics: cannot listen on {address}: {exc.strerror or exc}\n")
        return None
    except ControlError as exc:
        if metrics is not None:
            metrics.close()
        sys.stderr.write(f"{exc}\n")
        return None
    host.env[SOCKET_ENV] = str(server.path.path)  # services observe and act through it
    return server


def _too_long(server: ControlServer) -> str:
    return f"{path_text(server.path.wanted or server.path.path)} is too long for a socket address"
