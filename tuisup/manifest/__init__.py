"""Provides the services.toml loader: `load_manifest`, and the problems it reports.

The package reads a manifest in steps, a module each: `syntax` parses the TOML (`locator`
finds where each key and value starts, since parsers keep no positions), `loader` checks
the tables, `checks` the single values, `deps` dependencies and health checks, `files` reads
a manifest or env file (of at most 16 MiB), and `dotenv` an env file's variables. `problems`
holds what they report with: `Problem`, the `Checker` that collects them, and `INVALID`,
what a check returns for a value with a problem.
"""

from tuisup.manifest.dotenv import parse_dotenv
from tuisup.manifest.loader import load_manifest, parse_manifest
from tuisup.manifest.problems import ManifestError, Problem

__all__ = ["ManifestError", "Problem", "load_manifest", "parse_dotenv", "parse_manifest"]
