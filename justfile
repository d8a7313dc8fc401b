# List the recipes.
default:
    @just --list

# Open the console on ./services.toml (or FILE).
run file="services.toml":
    uv run tuisup -f {{file}}

# Run ./services.toml headless.
headless file="services.toml":
    uv run tuisup --no-tui -f {{file}}

# Run the test suite.
test *args:
    uv run pytest {{args}}

# Lint, check formatting and type-check.
lint:
    uv run ruff check tuisup tests bench screenshots
    uv run ruff format --check tuisup tests bench screenshots
    uv run mypy

# Reformat the code.
fmt:
    uv run ruff format tuisup tests bench screenshots
    uv run ruff check --fix tuisup tests bench screenshots

# Benchmark tuisup against supervisord, honcho, circus, PM2 and mprocs (installs them in bench/.peers).
bench *args:
    uv run python bench/compare.py {{args}}

# Dependency gating latency and the cost of health checks.
bench-deps:
    uv run python bench/deps.py

# Listener services: event → line latency, and the cost of one that never reads.
bench-observers:
    uv run python bench/observers.py

# Start and restart latency of each executor kind.
bench-executors:
    uv run python bench/executors.py

# The console under load: key latency, idle CPU, view switching, memory.
bench-console:
    uv run python bench/console.py

# Regenerate screenshots/*.svg (and .png) from the real console on the demo manifest.
screenshots:
    uv run python screenshots/take.py --png

# Rewrite the snapshot tests' pictures after a deliberate UI change.
snapshot-update:
    uv run pytest tests/tui/test_snapshots.py --snapshot-update

# Validate a manifest.
check file="services.toml":
    uv run tuisup check -f {{file}}
