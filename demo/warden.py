"""A Python observer: it follows flaky's events with `ctx.events` and acts with `ctx.restart`.

Every fifth crash of flaky it restarts flaky at once, cutting its growing backoff short (a
restart by hand resets the backoff, as `r` in the console does). It runs as a task on
tuisup's own loop, so it awaits the `_async` forms.
"""

import tuisup

EVERY = 5


async def run(ctx: tuisup.Context) -> None:
    crashes = 0
    async for ev in ctx.events(services=["flaky"], kinds=["state"]):
        if ev.kind == "snapshot":
            print(f"watching flaky ({ev.services[0].state}); every {EVERY}th crash I restart it")
        elif ev.kind == "state" and ev.state == "backoff":
            crashes += 1
            if crashes % EVERY == 0:
                print(f"flaky crashed {crashes} times: restarting it now, its backoff cut short")
                await ctx.restart_async("flaky")
