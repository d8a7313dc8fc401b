"""Provides the services.toml loader: `load_manifest`, and the problems it reports."""

from tuisup.manifest.checks import ManifestError, Problem
from tuisup.manifest.dotenv import parse_dotenv
from tuisup.manifest.loader import load_manifest, parse_manifest

__all__ = ["ManifestError", "Problem", "load_manifest", "parse_dotenv", "parse_manifest"]
