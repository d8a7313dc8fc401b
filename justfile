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
    uv run ruff check tuisup tests bench
    uv run ruff format --check tuisup tests bench
    uv run mypy

# Reformat the code.
fmt:
    uv run ruff format tuisup tests bench
    uv run ruff check --fix tuisup tests bench

# Benchmark tuisup against supervisord and honcho (installs them in bench/.peers).
bench *args:
    uv run python bench/compare.py {{args}}

# Validate a manifest.
check file="services.toml":
    uv run tuisup check -f {{file}}
