"""tuisup: a process manager for Python developers, with a Textual console.

A Python service is written against three names from here::

    async def run(ctx: tuisup.Context) -> None:
        while not await ctx.token.wait_async(timeout=1.0):
            ctx.log.info("tick")
"""

from tuisup.service import CancellationToken as CancellationToken
from tuisup.service import Context as Context
from tuisup.service import Service as Service

__version__ = "0.1.0"
__all__ = ["CancellationToken", "Context", "Service"]
