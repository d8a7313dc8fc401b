"""Provides `tuisup attach`: the console, on a host that already runs in another process.

The console is the same app as ever, over a `RemoteHost`: `q` detaches and leaves every
service running; `Q` (confirmed) stops the host. SIGTERM and SIGHUP detach as `q` does.
Textual is imported here only, once the host has answered.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tuisup.control.verbs import connect


async def attach(options: argparse.Namespace) -> int:
    """`tuisup attach`: open the console on the running host; return its exit status."""
    host = await connect(options, mirror=True)
    try:
        from tuisup.tui.app import TuisupApp

        app = TuisupApp(host)
        loop = asyncio.get_running_loop()
        leaving: set[asyncio.Task[None]] = set()

        def detach() -> None:
            task = loop.create_task(app.action_quit())
            leaving.add(task)  # held: a task nobody refers to may be collected mid-way
            task.add_done_callback(leaving.discard)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, detach)
        await app.run_async()
    finally:
        await host.close()
    return app.return_code or 0
