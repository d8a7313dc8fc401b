"""A thread service that crashes now and then with an exception, to show tracebacks."""

import random

import tuisup


def run(ctx: tuisup.Context) -> None:
    """Work in steps; one step in eight raises."""
    step = 0
    while not ctx.sleep(0.7):
        step += 1
        if random.random() < 1 / 8:
            raise RuntimeError(f"moody gave up at step {step}")
        print(f"step {step} fine")
