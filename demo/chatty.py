"""A chatty logger: a line every half second, a warning now and then on stderr."""

import random
import sys
import time

n = 0
while True:
    n += 1
    print(f"tick {n}: processed {random.randint(1, 500)} jobs", flush=True)
    if n % 7 == 0:
        print(f"warning: queue depth {random.randint(50, 99)}", file=sys.stderr, flush=True)
    time.sleep(0.5)
