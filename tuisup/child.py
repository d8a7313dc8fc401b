"""Provides the bootstrap that runs a Python target in a fresh interpreter.

    python -m tuisup.child NAME TARGET KIND STOP_SIGNAL STATUS_FD ROOT

The host reads the status pipe: `ready` once the target is imported, `error REASON` if it
cannot be, and `exception TYPE: MESSAGE` if the service ends with an exception. The stop
signal cancels the token; a target that never asked for it also gets Python's own reaction
to the signal (see `StopSignal`). The host sends SIGKILL after the grace period. Output goes
to the inherited pipes, line-buffered, like a command's.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from tuisup.service import (
    CancellationToken,
    Context,
    TargetError,
    close_child_link,
    format_crash,
    load_target,
)

if TYPE_CHECKING:
    import asyncio

EXIT_CANNOT_LOAD = 78
"""The child's exit code when its target cannot be imported (EX_CONFIG)."""


def main(argv: list[str]) -> int:
    """Run one target; return the process's exit code."""
    name, target_spec, kind, stop_signal, status_fd, root = argv
    status = os.fdopen(int(status_fd), "w", buffering=1)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    token = CancellationToken()
    ctx = Context(name, token, Path.cwd())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    ctx.log.addHandler(handler)
    ctx.log.setLevel(logging.INFO)
    ctx.log.propagate = False
    # From here on: a stop while the target is imported or made (a stop during a start)
    # ends a plain target at once, and reaches one that asked for its token in __init__.
    stop = StopSignal(ctx, token, signal.Signals(int(stop_signal)))
    try:
        target = load_target(target_spec, [Path(root), Path.cwd()])
        if kind == "async-process" and not target.is_async:
            raise TargetError(f'executor "async-process" needs a coroutine: {target_spec}')
        call = target.bind(ctx)
    except TargetError as exc:
        sys.stderr.write(format_crash(exc.__cause__ or exc))
        _say(status, f"error {exc}")
        return EXIT_CANNOT_LOAD
    _say(status, "ready")
    try:
        if target.is_async:
            import asyncio  # only now: sync targets start 40 ms sooner without it

            asyncio.run(_run_async(call, stop))
        else:
            call()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - report any crash, then exit 1
        if stop.ended(exc):
            return stop.exit()
        sys.stderr.write(format_crash(exc))
        _say(status, f"exception {type(exc).__name__}: {exc}")
        return 1
    finally:
        close_child_link()  # the connection to the host, if `ctx` made one
    return 0


class StopSignal:
    """What the stop signal does: cancel the token, then what plain Python does.

    A target that asked for its token (`Context.cooperative`, read when the signal comes)
    is left to stop through it. One that never did gets Python's own reaction: for sync
    code, the disposition the signal had (SIGINT raises KeyboardInterrupt, SIGTERM and most
    others end the process); for a coroutine, its task is cancelled, as `asyncio.run` does
    on Ctrl-C. A run ended that way then ends the process by the signal, as an uncaught
    KeyboardInterrupt does, so the host sees what ended it.
    """

    def __init__(self, ctx: Context, token: CancellationToken, signum: signal.Signals) -> None:
        self.signum = signum
        self._ctx = ctx
        self._token = token
        self._plain = False
        previous = signal.signal(signum, self._on_signal)
        # None: a handler installed by C code, which cannot be put back.
        self._python = previous if previous is not None else signal.SIG_DFL
        self._task: asyncio.Task[Any] | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """In the main thread, between two bytecodes of a sync target."""
        if self._request_stop():
            signal.signal(signum, self._python)
            signal.raise_signal(signum)  # handled as if ours had never been there

    def watch_loop(self) -> None:
        """Take the signal in the running loop, for the task running the target."""
        import asyncio

        self._task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(self.signum, self._on_loop_signal)

    def _on_loop_signal(self) -> None:
        if self._request_stop() and self._task is not None:
            self._task.cancel()

    def _request_stop(self) -> bool:
        """Cancel the token; return True if the target never asked for it (decided now)."""
        plain = not self._ctx.cooperative
        self._token.cancel()
        self._plain = self._plain or plain
        return plain

    def ended(self, exc: BaseException) -> bool:
        """Whether `exc` is Python's reaction to the stop signal, not a crash."""
        if not self._plain:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        asyncio = sys.modules.get("asyncio")
        return asyncio is not None and isinstance(exc, asyncio.CancelledError)

    def exit(self) -> int:
        """End the process by the signal; return an exit code if it does not end it."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.signal(self.signum, signal.SIG_DFL)
        signal.raise_signal(self.signum)
        return 0  # a signal whose default is to be ignored (SIGCHLD, SIGWINCH, ...)


async def _run_async(call: Callable[[], Awaitable[Any]], stop: StopSignal) -> None:
    stop.watch_loop()
    await call()


def _say(status: TextIO, line: str) -> None:
    try:
        status.write(line.replace("\n", " ") + "\n")
    except OSError:
        pass  # the host is gone; the lifeline will end us


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
