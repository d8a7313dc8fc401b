"""Provides what the runs of a Python target inside tuisup share (a thread, or a task).

`TargetRun` holds the target's callable, its context and token and its output;
`crash_status` says how an exception that ends it is logged and recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuisup.engine.capture import ServiceOutput
from tuisup.engine.executors.base import Run
from tuisup.engine.status import ExitStatus
from tuisup.service import CancellationToken, Context, format_crash
from tuisup.spec import ExecutorKind


class TargetRun(Run):
    """One run of a Python target in tuisup's own process."""

    def __init__(
        self,
        name: str,
        kind: ExecutorKind,
        call: Callable[[], Any],
        ctx: Context,
        token: CancellationToken,
        output: ServiceOutput,
    ) -> None:
        super().__init__()
        self.name = name
        self.kind = kind
        self.ctx = ctx
        """What the target was given; `ctx.cooperative` says if it asked for its token."""
        self.output = output
        """Its stdout and stderr (the thread or task sets it as the current output)."""
        self._call = call
        self._token = token


def crash_status(exc: BaseException, output: ServiceOutput) -> ExitStatus:
    """Write the traceback to the service's stderr; return the exit it means.

    `SystemExit(n)` is an exit with code `n`, like in a process; any other exception is
    a crash, recorded as its type and message.
    """
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or isinstance(code, int):
            return ExitStatus(code=code or 0)
        output.write("stderr", f"{code}\n".encode())
        return ExitStatus(code=1)
    text = format_crash(exc)
    output.write("stderr", text.encode("utf-8", "replace"))
    return ExitStatus(code=1, error=f"{type(exc).__name__}: {exc}")
