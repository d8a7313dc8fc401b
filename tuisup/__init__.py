"""tuisup: a process manager for Python developers, with a Textual console.

A Python service is written against three names from here::

    async def run(ctx: tuisup.Context) -> None:
        while not await ctx.token.wait_async(timeout=1.0):
            ctx.log.info("tick")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuisup.service import CancellationToken, Context, Service

__version__ = "0.1.0"
__all__ = ["CancellationToken", "Context", "Service"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `tuisup --no-tui` running only commands never needs them, and
    # importing them (logging, inspect) is a tenth of its start-up.
    if name in __all__:
        from tuisup import service

        return getattr(service, name)
    raise AttributeError(f"module 'tuisup' has no attribute {name!r}")
