"""Whether hooks slow a restart: bench/compare.py's crash → restart, with and without hooks.

    uv run python bench/hooks.py              # 4 rounds of 20 kills each way
    uv run python bench/hooks.py --rounds 8   # more rounds, a steadier figure

Runs bench/compare.py's restart scenario (5 `sleep` services with `restart = "always"` and
`backoff = "immediate"`; one SIGKILLed every 50 ms or more, the new process seen in /proc)
with plain `tuisup`, and with `tuisup` whose services each have a hook on every event that
can happen to them there (`started`, `exited`, `restarting`, `failed`, `stopped`), each a
shell appending a line to a file, as the README's example does. The two alternate within
each round (ABBA), so that the machine's load is shared alike; the noise is the spread of
the plain runs' medians across rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402  (bench/ is not a package)

HOOKS = ("started", "exited", "restarting", "failed", "stopped")


class HookedTuisup(compare.Tuisup):
    """tuisup whose every service runs a hook on each of its events, into `record`."""

    def __init__(self, record: Path) -> None:
        super().__init__(name="tuisup+hooks")
        self.record = record

    def sleeps(self, d: Path, args: list[str], *, fast_restart: bool) -> list[str]:
        argv = super().sleeps(d, args, fast_restart=fast_restart)
        line = f'echo "$TUISUP_HOOK $TUISUP_EXIT_CODE$TUISUP_SIGNAL" >> {self.record}'
        tables = [
            f"\n[services.s{arg}.on]\n" + "".join(f"{key} = '{line}'\n" for key in HOOKS)
            for arg in args
        ]
        with open(d / "services.toml", "a") as manifest:
            manifest.write("".join(tables))
        return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    if not compare.TUISUP_COMMAND.exists():
        raise SystemExit(f"bench: {compare.TUISUP_COMMAND} is missing: run `uv sync` first")
    compare.MANAGER_ENV.clear()
    compare.MANAGER_ENV.update(compare.manager_env(cold=False))
    base = Path(tempfile.mkdtemp(prefix="tuisup-bench-hooks-"))
    record = base / "hook-runs.txt"
    plain, hooked = compare.Tuisup(), HookedTuisup(record)
    latencies: dict[str, list[float]] = {plain.name: [], hooked.name: []}
    medians: dict[str, list[float]] = {plain.name: [], hooked.name: []}
    load = os.getloadavg()
    try:
        ctx = compare.Context(base, [plain, hooked], compare.Results(), False, 0.0)
        compare.warm_up(ctx)
        for n in range(options.rounds):
            ctx.tools = [plain, hooked] if n % 2 == 0 else [hooked, plain]
            ctx.results = compare.Results()
            compare.scenario_restart(ctx)
            for name, got in latencies.items():
                samples = ctx.results.samples.get(("restart50", name), [])
                got.extend(samples)
                if samples:
                    medians[name].append(statistics.median(samples))
    finally:
        for token in list(compare.ACTIVE):
            compare.kill_tagged(token)
        runs = record.read_text().splitlines() if record.exists() else []
        shutil.rmtree(base, ignore_errors=True)
    report(latencies, medians, runs, load)


def report(
    latencies: dict[str, list[float]],
    medians: dict[str, list[float]],
    runs: list[str],
    load: tuple[float, float, float],
) -> None:
    print()
    print(f"crash → restart, ms ({os.cpu_count()} cores; load at start {load[0]:.2f})")
    for name, got in latencies.items():
        if not got:
            print(f"  {name:14} no samples")
            continue
        rounds = ", ".join(f"{m:.2f}" for m in medians[name])
        print(
            f"  {name:14} median {statistics.median(got):5.2f}  p90 {compare.p90(got):5.2f}"
            f"  ({len(got)} kills; round medians {rounds})"
        )
    plain = medians.get("tuisup", [])
    if len(plain) > 1:
        print(f"  noise: the plain rounds' medians span {max(plain) - min(plain):.2f} ms")
    counts = {key: sum(line.split()[0] == key for line in runs if line) for key in HOOKS}
    shown = ", ".join(f"{key} {count}" for key, count in counts.items() if count)
    print(f"  hook runs: {len(runs)} ({shown or 'none'})")


if __name__ == "__main__":
    main()
