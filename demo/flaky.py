"""A service that crashes every few seconds, so that backoff is visible."""

import random
import sys
import time

lifetime = random.uniform(2.0, 5.0)
print(f"flaky: up, will crash in {lifetime:.1f}s", flush=True)
time.sleep(lifetime)
print("flaky: something went wrong", file=sys.stderr, flush=True)
sys.exit(3)
