"""What `tuisup --no-tui` imports, and what each import costs: medians of `-X importtime`.

    uv run python bench/imports.py                 # one `true` command service, 15 runs
    uv run python bench/imports.py -f services.toml --runs 30 --min-ms 0.5

Each run is `python -X importtime -m tuisup --no-tui -f MANIFEST` to its end (the default
manifest's one service exits at once), so imports made while running count too, with a
warm bytecode cache (bench/.peers/pycache) as an installed tuisup would have. It prints the
median total, the median wall time of a whole run, and the import tree (median cumulative
and self time) of every module whose cumulative median reaches --min-ms.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
MANIFEST = '[services.a]\ncommand = ["true"]\nrestart = "never"\n'


def one_run(manifest: Path, env: dict[str, str]) -> tuple[list[tuple[str, int, int, int]], float]:
    """Return [(module, depth, self us, cumulative us)] in import order, and the wall time."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-m", "tuisup", "--no-tui", "-f", str(manifest)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    rows = []
    for line in done.stderr.splitlines():
        m = LINE.match(line)
        if m:
            rows.append((m[4], len(m[3]) // 2, int(m[1]), int(m[2])))
    return rows, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--file", type=Path, help="a manifest (default: one `true`)")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--min-ms", type=float, default=1.0, help="show modules from this cost")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "bench" / ".peers" / "pycache")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = options.file
        if manifest is None:
            manifest = Path(tmp) / "services.toml"
            manifest.write_text(MANIFEST)
        one_run(manifest, env)  # fills the bytecode cache
        runs = [one_run(manifest, env) for _ in range(options.runs)]
    selfs: dict[str, list[int]] = defaultdict(list)
    cumul: dict[str, list[int]] = defaultdict(list)
    for rows, _ in runs:
        for name, _, own, total in rows:
            selfs[name].append(own)
            cumul[name].append(total)
    totals = [sum(own for _, _, own, _ in rows) for rows, _ in runs]
    walls = [wall for _, wall in runs]
    imports, wall = statistics.median(totals) / 1e3, statistics.median(walls) * 1e3
    print(
        f"{len(runs)} runs: {len(runs[-1][0])} modules, imports {imports:.1f} ms (median; min"
        f" {min(totals) / 1e3:.1f}), whole run {wall:.0f} ms (median; min {min(walls) * 1e3:.0f})"
    )
    print(f"{'cumulative':>10} {'self':>6}  module (medians, ms; from {options.min_ms:g} ms)")
    for name, depth, _, _ in runs[-1][0][::-1]:  # importtime prints children first
        total = statistics.median(cumul[name]) / 1e3
        if total >= options.min_ms:
            own = statistics.median(selfs[name]) / 1e3
            print(f"{total:10.1f} {own:6.1f}  {'  ' * depth}{name}")


if __name__ == "__main__":
    main()
