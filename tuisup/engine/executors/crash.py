"""Provides how an exception that ends a Python service is logged and recorded."""

from __future__ import annotations

from tuisup.engine.capture import ServiceOutput
from tuisup.engine.status import ExitStatus
from tuisup.service import format_crash


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
