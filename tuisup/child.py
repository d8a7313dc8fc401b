"""Provides the bootstrap that runs a Python target in a fresh interpreter.

    python -m tuisup.child NAME TARGET KIND STOP_SIGNAL STATUS_FD ROOT

The host reads the status pipe: `ready` once the target is imported, `error REASON` if it
cannot be, and `exception TYPE: MESSAGE` if the service ends with an exception. The stop
signal requests cancellation through the token; the host sends SIGKILL after the grace
period. Output goes to the inherited pipes, line-buffered, like a command's.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from tuisup.service import Context, TargetError, format_crash, load_target

EXIT_CANNOT_LOAD = 78
"""The child's exit code when its target cannot be imported (EX_CONFIG)."""


def main(argv: list[str]) -> int:
    """Run one target; return the process's exit code."""
    name, target_spec, kind, stop_signal, status_fd, root = argv
    status = os.fdopen(int(status_fd), "w", buffering=1)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ctx = Context(name, cwd=Path.cwd())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    ctx.log.addHandler(handler)
    ctx.log.setLevel(logging.INFO)
    ctx.log.propagate = False
    try:
        target = load_target(target_spec, [Path(root), Path.cwd()])
        if kind == "async-process" and not target.is_async:
            raise TargetError(f'executor "async-process" needs a coroutine: {target_spec}')
        call = target.bind(ctx)
    except TargetError as exc:
        sys.stderr.write(format_crash(exc.__cause__ or exc))
        _say(status, f"error {exc}")
        return EXIT_CANNOT_LOAD
    signum = signal.Signals(int(stop_signal))
    signal.signal(signum, lambda *_: ctx.token.cancel())
    _say(status, "ready")
    try:
        if target.is_async:
            import asyncio  # only now: sync targets start 40 ms sooner without it

            asyncio.run(_run_async(call, ctx, signum))
        else:
            call()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - report any crash, then exit 1
        sys.stderr.write(format_crash(exc))
        _say(status, f"exception {type(exc).__name__}: {exc}")
        return 1
    return 0


async def _run_async(call: Callable[[], Awaitable[Any]], ctx: Context, signum: int) -> None:
    import asyncio

    asyncio.get_running_loop().add_signal_handler(signum, ctx.token.cancel)
    await call()


def _say(status: TextIO, line: str) -> None:
    try:
        status.write(line.replace("\n", " ") + "\n")
    except OSError:
        pass  # the host is gone; the lifeline will end us


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
