"""Provides the `tuisup` command: the console by default, `--no-tui` headless, and `check`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from tuisup.manifest import ManifestError, load_manifest
from tuisup.spec import Manifest
from tuisup.terminal import text_lines

DEFAULT_MANIFEST = "services.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuisup",
        description="Run the services of a services.toml, with a console or headless.",
        epilog="`tuisup check [-f FILE]` validates a manifest without starting anything.",
    )
    parser.add_argument(
        "-f", "--file", default=DEFAULT_MANIFEST, help="the manifest (default: services.toml)"
    )
    parser.add_argument(
        "--no-tui", action="store_true", help="run headless: print output and lifecycle lines"
    )
    parser.add_argument(
        "--json", action="store_true", help="with --no-tui: print one JSON event per line"
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="do not apply edits to the manifest when it is saved (SIGHUP and L still do)",
    )
    return parser


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuisup check", description="Validate a manifest; exit 0 if it is valid, 1 if not."
    )
    parser.add_argument(
        "-f", "--file", default=DEFAULT_MANIFEST, help="the manifest (default: services.toml)"
    )
    return parser


def _load(path: str) -> Manifest | None:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        # Problems quote the file's keys and values, and name the file: make them safe.
        print("\n".join(text_lines(str(exc))), file=sys.stderr)  # noqa: T201
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process's exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["check"]:
        options = _check_parser().parse_args(args[1:])
        manifest = _load(options.file)
        if manifest is None:
            return 1
        count = len(manifest.services)
        print(f"ok: {count} service{'s' if count != 1 else ''}")  # noqa: T201
        return 0
    parser = _parser()
    options = parser.parse_args(args)
    if options.json and not options.no_tui:
        parser.error("--json needs --no-tui")
    manifest = _load(options.file)
    if manifest is None:
        return 1
    if options.no_reload:
        manifest = replace(manifest, settings=replace(manifest.settings, reload=False))
    if not options.no_tui:
        return _console(manifest)
    return _headless(manifest, json_mode=options.json)


def _console(manifest: Manifest) -> int:
    import anyio

    from tuisup.run import run_console

    return anyio.run(run_console, manifest)


def _headless(manifest: Manifest, *, json_mode: bool) -> int:
    import anyio

    from tuisup.run import run_headless

    try:
        return anyio.run(lambda: run_headless(manifest, json_mode=json_mode))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
