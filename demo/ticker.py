"""An async service on tuisup's own event loop: a tick a second until asked to stop."""

import tuisup


async def run(ctx: tuisup.Context) -> None:
    """Tick once a second; `wait_async` returns True as soon as a stop is requested."""
    ticks = 0
    while not await ctx.token.wait_async(timeout=1.0):
        ticks += 1
        print(f"tick {ticks}")
    ctx.log.info("stopped after %d ticks", ticks)
