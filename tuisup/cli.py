"""Provides the `tuisup` command: the console by default, `--no-tui` headless, `check`, and verbs.

    tuisup [-f FILE] [--socket PATH] [VERB ...]

With no verb it runs the manifest's services with the console (`--no-tui`: headless, the
same as `up`). The other verbs talk to a tuisup that is already running, through its
control socket (`tuisup.control.verbs`).

A user waits for this to start, so it imports only what the command needs, when it needs
it: the manifest reader after the arguments are read, Textual only for the console, and
for a verb such as `ps` neither the engine, anyio nor Textual.
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
VERBS = {
    "up": ("[-d] [--json]", "run the services headless (-d: in the background, once up)"),
    "ps": ("[--json] [NAME...]", "where the running tuisup's services stand"),
    "start": ("NAME...|--all [--no-wait] [--json]", "start services (and what they need)"),
    "stop": ("NAME...|--all [--no-wait] [--json]", "stop services (and their dependents)"),
    "restart": ("NAME...|--all [--no-wait] [--json]", "restart services"),
    "kill": ("NAME...|--all [--json]", "SIGKILL services' process groups"),
    "logs": (
        "[-f] [-n N] [--since T] [--grep RE] [--timestamps] [--no-color] [--json] [NAME...]",
        "services' output: kept, or from the log files (-f: and what comes)",
    ),
    "events": ("[--json] [NAME...]", "the running tuisup's events as they happen"),
    "reload": ("[--json]", "read the manifest again and apply what changed"),
    "scale": ("NAME=N... [--json]", "run N replicas of a replicated service"),
    "reopen-logs": ("[--json]", "open the log files again (after logrotate moved them)"),
    "down": ("[--json]", "stop every service and the running tuisup"),
    "attach": ("", "the console, on the running tuisup (q detaches)"),
    "check": ("", "validate the manifest without starting anything"),
    "export": (
        "compose|k8s|systemd [-o PATH] [--strict] [--user]",
        "write the services for Docker Compose, Kubernetes or systemd",
    ),
    "import": (
        "PROCFILE|COMPOSE_FILE [-o services.toml] [--force]",
        "write a manifest from a Procfile or a compose file",
    ),
}
"""Every verb: its arguments, and what it does."""
_VALUED = frozenset({"-f", "--file", "--socket"})
"""The options before a verb that take a value (the next argument)."""


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


def _where(parser: argparse.ArgumentParser, *, after_verb: bool, short: bool = True) -> None:
    """-f and --socket: before the verb, or after it (then they override).

    Args:
        parser: The main parser, or a verb's.
        after_verb: For a verb's parser: given there, they override those before it.
        short: Whether `-f` names the file (for `logs`, `-f` follows).
    """
    default = argparse.SUPPRESS if after_verb else None
    parser.add_argument(
        *(("-f", "--file") if short else ("--file",)),
        dest="file",
        default=argparse.SUPPRESS if after_verb else DEFAULT_MANIFEST,
        help="the manifest (default: services.toml)",
    )
    parser.add_argument(
        "--socket",
        default=default,
        metavar="PATH",
        help="the control socket (default: .tuisup/tuisup.sock beside the manifest)",
    )


def _parser() -> argparse.ArgumentParser:
    verbs = "\n".join(
        f"  {verb} {args}".rstrip() + f"\n      {text}" for verb, (args, text) in VERBS.items()
    )
    parser = argparse.ArgumentParser(
        prog="tuisup",
        usage="tuisup [-f FILE] [--socket PATH] [--no-tui [--json]] [--no-reload] [VERB ...]",
        description="Run the services of a services.toml, with a console or headless; "
        "or control the tuisup that runs them.",
        epilog=f"verbs (`tuisup VERB -h` for each):\n{verbs}\n\n"
        "exit status: 0 done, 1 a command failed (or an invalid manifest), 2 usage, "
        "3 no tuisup running",
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=100),
    )
    _where(parser, after_verb=False)
    parser.add_argument(
        "--no-tui", action="store_true", help="run headless: print output and lifecycle lines"
    )
    parser.add_argument(
        "--json", action="store_true", help="with --no-tui: print one JSON event per line"
    )
    _no_reload(parser)
    return parser


def _no_reload(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="do not apply edits to the manifest when it is saved (SIGHUP and L still do)",
    )


def _verb_parser(verb: str) -> argparse.ArgumentParser:
    """The parser of one verb's own arguments (only that one is built: it is quicker)."""
    text = VERBS[verb][1]
    parser = argparse.ArgumentParser(
        prog=f"tuisup {verb}", description=text[0].upper() + text[1:] + ".", formatter_class=_help
    )
    if verb != "import":  # import reads the file it is given, and needs no socket
        _where(parser, after_verb=True, short=verb != "logs")
    if verb == "up":
        parser.add_argument(
            "-d", "--detach", action="store_true", help="in the background; return once up"
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        _no_reload(parser)
    elif verb in ("start", "stop", "restart", "kill"):
        parser.add_argument("names", nargs="*", metavar="NAME", help="the services")
        parser.add_argument("--all", action="store_true", help="every service")
        parser.add_argument("--no-wait", action="store_true", help="return without waiting")
    elif verb == "scale":
        parser.add_argument("counts", nargs="+", metavar="NAME=N", help="a table and its count")
    elif verb in ("ps", "logs", "events"):
        parser.add_argument("names", nargs="*", metavar="NAME", help="only these services")
    if verb == "logs":
        parser.add_argument("-f", "--follow", action="store_true", help="follow new lines")
        parser.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
        parser.add_argument(
            "--since", metavar="T", help="only lines from T on: 90s, 10m, 2h, 1d ago, or a time"
        )
        parser.add_argument("--grep", metavar="RE", help="only lines this regex is found in")
        parser.add_argument("--timestamps", action="store_true", help="show when lines came")
        parser.add_argument("--no-color", action="store_true", help="never colour")
    if verb in ("export", "import"):
        _file_verb(parser, verb)
    elif verb not in ("attach", "check", "up"):
        parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _file_verb(parser: argparse.ArgumentParser, verb: str) -> None:
    """The arguments of `export` and `import`, which read and write files (no socket)."""
    if verb == "export":
        from tuisup.export.command import TARGETS  # export loads the manifest: no cost here

        parser.add_argument("target", choices=TARGETS)
        parser.add_argument(
            "-o", "--output", metavar="PATH", help="a file (compose) or folder (default: stdout)"
        )
        parser.add_argument(
            "--strict", action="store_true", help="fail on any setting the target cannot express"
        )
        parser.add_argument("--user", action="store_true", help="systemd: user units")
    else:
        parser.add_argument("source", metavar="FILE", help="a Procfile or a compose file")
        parser.add_argument(
            "-o", "--output", metavar="PATH", default="services.toml", help="the manifest to write"
        )
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _split(args: list[str]) -> tuple[str | None, list[str], list[str]]:
    """The verb, the arguments before it and those after it (None: no verb).

    Raises:
        SystemExit: 2, for a word that is not a verb.
    """
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            if arg not in VERBS:
                import difflib

                close = difflib.get_close_matches(arg, list(VERBS), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                _parser().error(f'unknown verb "{arg}"{hint}')
            return arg, args[:index], args[index + 1 :]
    return None, args, []


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
    verb, before, after = _split(list(sys.argv[1:] if argv is None else argv))
    parser = _parser()
    options = parser.parse_args(before)
    if verb is None:
        if options.json and not options.no_tui:
            parser.error("--json needs --no-tui")
        return _run_host(options)
    if options.no_tui:
        parser.error(f"--no-tui runs the services (it is `up`): not with {verb}")
    options = _verb_parser(verb).parse_args(after, namespace=options)
    options.verb = verb
    if verb == "check":
        return _check(options.file)
    if verb in ("export", "import"):
        return _file_verb_run(options)
    if verb == "up":
        if not options.detach:
            options.no_tui = True
            return _run_host(options)
        if _load(options.file) is None or _no_socket_folder(options):
            return 1  # said before anything starts (the manifest's errors as `check` says)
    elif verb in ("start", "stop", "restart", "kill") and bool(options.names) == options.all:
        _verb_parser(verb).error("name the services, or give --all")
    from tuisup.control.verbs import run

    return run(options)


def _check(path: str) -> int:
    manifest = _load(path)
    if manifest is None:
        return 1
    count = len(manifest.services)
    print(f"ok: {count} service{'s' if count != 1 else ''}")  # noqa: T201
    return 0


def _file_verb_run(options: argparse.Namespace) -> int:
    """`export` and `import`: local files only, no control socket, no engine."""
    if options.verb == "import":
        from tuisup.importers.command import run_import

        return run_import(options.source, options.output, force=options.force)
    manifest = _load(options.file)
    if manifest is None:
        return 1
    from tuisup.export.command import run_export

    return run_export(
        manifest, options.target, options.output, strict=options.strict, user=options.user
    )


def _run_host(options: argparse.Namespace) -> int:
    """Run the manifest's services: with the console, or headless."""
    if _no_socket_folder(options):
        return 1
    from tuisup import lifeline_process

    lifeline_process.start_spare()  # its interpreter starts while ours imports the engine
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


def _no_socket_folder(options: argparse.Namespace) -> bool:
    """Whether `--socket` names a folder that is not there; if so, say it.

    A path typed on the command line names a place that exists, as a socket path given to
    any server does: a folder missing is most likely a typo, and making it (and leaving it
    behind) would only hide that. A manifest's `[tuisup] socket` is the project's own
    layout: its folder is made, as `.tuisup` is, and removed with the socket.
    """
    if options.socket is None:
        return False
    from tuisup.control.paths import SUN_PATH_MAX

    wanted = os.path.abspath(options.socket)
    if len(os.fsencode(wanted)) > SUN_PATH_MAX:  # not used: the short fallback is, in its own
        return False
    if os.path.lexists(os.path.dirname(wanted)):
        return False
    from tuisup.terminal import path_text

    where, shown = path_text(options.socket), path_text(os.path.dirname(options.socket))
    why = f"its folder {shown} does not exist"
    print(f"tuisup: cannot serve the control socket {where}: {why}", file=sys.stderr)  # noqa: T201
    return True


def _overridden(manifest: Manifest, options: argparse.Namespace) -> Manifest:
    """The manifest with the command line's `--no-reload` and `--socket` applied."""
    from tuisup.model.record import replace

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
