"""The demo services that services.toml runs: scripts, and Python services for each executor."""
