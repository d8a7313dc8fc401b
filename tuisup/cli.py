"""Provides the `tuisup` command: the console by default, `--no-tui` headless, and `check`.

A user waits for this to start, so it imports only what the command needs, when it needs
it: the manifest reader after the arguments are read, Textual only for the console.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuisup.spec import Manifest

DEFAULT_MANIFEST = "services.toml"


def _help(prog: str) -> argparse.HelpFormatter:
    """The help formatter, told the terminal's width.

    argparse makes one for every argument added and would import `shutil` (2 ms) for the
    width each time.
    """
    try:
        columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
    except (ValueError, OSError):
        columns = 80
    return argparse.HelpFormatter(prog, width=max(columns - 2, 11))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuisup",
        description="Run the services of a services.toml, with a console or headless.",
        epilog="`tuisup check [-f FILE]` validates a manifest without starting anything.",
        formatter_class=_help,
    )
    parser.add_argument(
        "-f", "--file", default=DEFAULT_MANIFEST, help="the manifest (default: services.toml)"
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="the control socket (default: .tuisup/tuisup.sock beside the manifest)",
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
        prog="tuisup check",
        description="Validate a manifest; exit 0 if it is valid, 1 if not.",
        formatter_class=_help,
    )
    parser.add_argument(
        "-f", "--file", default=DEFAULT_MANIFEST, help="the manifest (default: services.toml)"
    )
    return parser


def _load(path: str) -> Manifest | None:
    from tuisup.manifest import ManifestError, load_manifest
    from tuisup.terminal import text_lines

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
    with _collector_paused():
        manifest = _load(options.file)
        if manifest is None:
            return 1
        manifest = _overridden(manifest, options)
        # The engine, asyncio and anyio; Textual only once the console runs.
        from tuisup.run import run_console, run_headless

        if options.no_tui:
            task = partial(run_headless, manifest, json_mode=options.json)
        else:
            task = partial(run_console, manifest)
        import anyio
    if not options.no_tui:
        return anyio.run(task)
    try:
        return anyio.run(task)
    except KeyboardInterrupt:
        return 130


def _overridden(manifest: Manifest, options: argparse.Namespace) -> Manifest:
    """The manifest with the command line's `--no-reload` and `--socket` applied."""
    from dataclasses import replace

    settings = manifest.settings
    if options.no_reload:
        settings = replace(settings, reload=False)
    if options.socket is not None:  # relative to where the command runs, as paths typed are
        settings = replace(settings, socket=Path(os.path.abspath(options.socket)))
    return replace(manifest, settings=settings)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while modules are imported; then what they made is frozen.

    Imports make tens of thousands of objects that live as long as the process: the
    collector would walk them over and over for nothing (5 ms of a start), and once they
    are frozen no later collection walks them again either.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


if __name__ == "__main__":
    sys.exit(main())
