"""Provides the CLI verbs that talk to a running tuisup: ps, start/stop/restart/kill, reload.

`logs` (`control.follow`), `down` and `up -d` (`control.up`) and `attach` (`control.attach`)
are in modules of their own; `run` dispatches to each.

Each finds the host's socket from the manifest (`-f`) or `--socket`, connects with a
`RemoteHost`, asks, prints (text, or `--json`) and returns the exit status: 0 done, 1 a
command failed, 3 no tuisup running. Neither anyio, Textual nor the engine is imported:
`tuisup ps` is a Python start, asyncio, a connection and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tuisup.control.client import RemoteHost
from tuisup.control.paths import SOCKET_ENV, SocketPath, socket_path
from tuisup.model import ApiError, ServiceState, ServiceView
from tuisup.model import events as ev
from tuisup.terminal import json_text, one_line, path_text

S = ServiceState
OK, FAILED, USAGE, NO_HOST = 0, 1, 2, 3
"""The exit statuses."""
DEFAULT_MANIFEST = "services.toml"
PAST_TENSE = {"start": "started", "stop": "stopped", "restart": "restarted", "kill": "killed"}


class NoHost(Exception):
    """Nothing answers at the socket: no tuisup runs this manifest."""


class Failed(Exception):
    """A verb could not do its work: its one line for stderr (exit status 1)."""


def run(options: argparse.Namespace) -> int:
    """Run one verb (`options.verb`); return the exit status."""
    return _exit_status(_verb(options.verb), options)


def _verb(name: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    """The coroutine function of a verb; only its own module is imported."""
    if name in ("up", "down"):
        from tuisup.control import up

        return up.up_detached if name == "up" else up.down
    if name == "attach":
        from tuisup.control.attach import attach

        return attach
    if name == "logs":
        from tuisup.control.follow import logs

        return logs
    verbs: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "ps": ps,
        "start": command,
        "stop": command,
        "restart": command,
        "kill": command,
        "events": events,
        "reload": reload,
        "scale": scale,
        "reopen-logs": reopen_logs,
    }
    return verbs[name]


def _exit_status(
    verb: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], options: argparse.Namespace
) -> int:
    try:
        return asyncio.run(verb(options))
    except NoHost as exc:
        say(str(exc))
        return NO_HOST
    except Failed as exc:
        say(str(exc))
        return FAILED
    except ApiError as exc:  # its message is the host's: made safe, as all it sends
        say(f"tuisup: {one_line(str(exc))}")
        return FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Our reader went away (`| head`): nothing more to say, and nothing to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


# -- finding the host ------------------------------------------------------------------------


def locate(options: argparse.Namespace) -> SocketPath:
    """The socket of the host that runs `options.file` (or `options.socket`).

    With neither given and no manifest here, a process that a tuisup started (a service, a
    hook) finds that host through `TUISUP_SOCKET`, wherever its folder is.
    """
    manifest = Path(options.file).resolve()
    configured = options.socket and os.path.abspath(options.socket)
    if not configured and options.file == DEFAULT_MANIFEST and not manifest.exists():
        configured = os.environ.get(SOCKET_ENV) or None
    return socket_path(manifest, configured or _configured(manifest))


def _configured(manifest: Path) -> str | None:
    """`[tuisup] socket` of the manifest, as the host reads it (None if absent or unreadable)."""
    import tomllib

    try:
        with manifest.open("rb") as file:
            settings = tomllib.load(file).get("tuisup")
    except (OSError, ValueError):
        return None  # a host cannot run it either: the default is as good a guess as any
    value = settings.get("socket") if isinstance(settings, dict) else None
    if not isinstance(value, str) or not value:
        return None
    return os.path.abspath(manifest.parent / os.path.expanduser(value))


def no_host_message(options: argparse.Namespace) -> str:
    """`no tuisup is running for ./services.toml (start one with: tuisup up -d)`."""
    shown = options.file if os.sep in options.file else f".{os.sep}{options.file}"
    command = "tuisup"
    if options.file != DEFAULT_MANIFEST:
        command += f" -f {path_text(options.file, shell=True)}"
    if options.socket:
        command += f" --socket {path_text(options.socket, shell=True)}"
    return f"no tuisup is running for {path_text(shown)} (start one with: {command} up -d)"


async def connect(options: argparse.Namespace, *, mirror: bool = False) -> RemoteHost:
    """Connect to the host of `options`.

    Raises:
        NoHost: Nothing answers at its socket.
    """
    where = locate(options)
    try:
        return await RemoteHost.connect(where.path, mirror=mirror)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise NoHost(no_host_message(options)) from None
    except TimeoutError:
        from tuisup.control import client

        waited = f"{client.CONNECT_TIMEOUT:g} s"
        raise Failed(f"tuisup: no answer from {path_text(where.path)} in {waited}") from None
    except OSError as exc:  # another user's socket, a path it cannot reach, ...
        why = one_line(exc.strerror or str(exc))
        raise Failed(f"tuisup: cannot connect to {path_text(where.path)}: {why}") from None


# -- printing --------------------------------------------------------------------------------


def out(text: str) -> None:
    """Print to stdout now (a follower's lines must not wait in a buffer)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def say(text: str) -> None:
    """Print one of tuisup's own lines to stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def dump(data: Any) -> None:
    """Print one JSON document (a line)."""
    out(json_text(data) + "\n")


def duration(seconds: float) -> str:
    """`12s`, `3m05s`, `2h10m`, `4d03h`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def state_line(view: ServiceView) -> str:
    """`web running (pid 42)`, `api waiting for db to be healthy (...)`: one line, safe."""
    if view.state is S.WAITING and view.reason:
        return one_line(f"{view.name} {view.reason}")
    from tuisup.headless import now_line  # not for `ps`: it prints a table

    return one_line(now_line(view))


# -- ps ----------------------------------------------------------------------------------------

COLUMNS = ("NAME", "STATE", "PID", "RESTARTS", "UPTIME", "HEALTH", "LAST EXIT", "WAITING FOR")


def row(view: ServiceView, now: float) -> tuple[str, ...]:
    """One service's cells in the `ps` table."""
    uptime = duration(now - view.started) if view.started and view.state is S.RUNNING else "-"
    last = view.last_exit
    ended = "-"
    if last is not None:
        how = "stopped" if last.requested else last.status.describe()
        ended = f"{how} ({duration(now - last.started - last.runtime)} ago)"
    if view.state is S.FAILED and view.reason and view.reason not in ended:
        ended = f"{ended}: {view.reason}" if last is not None else view.reason
    waits = "-"
    if view.state is S.WAITING:
        reason = view.reason or ", ".join(view.waiting_for)
        waits = reason.removeprefix("waiting for ")
    elif view.state is S.BACKOFF and view.next_start is not None:
        waits = f"restart in {max(0.0, view.next_start - now):.1f}s"
    cells = (
        view.name,
        view.state.value,
        str(view.pid) if view.pid else "-",
        str(view.restarts),
        uptime,
        view.health.value if view.health is not None else "-",
        ended,
        waits,
    )
    return tuple(one_line(cell) for cell in cells)


def table(views: list[ServiceView], now: float) -> str:
    """The `ps` table: a header and a row per service, in columns."""
    rows = [COLUMNS, *(row(view, now) for view in views)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


async def ps(options: argparse.Namespace) -> int:
    """`tuisup ps [--json] [NAME...]`: where every service (or those named) stands."""
    host = await connect(options)
    try:  # the table shows nothing of the manifest's tables: only --json wants them
        views = await host.views(options.names or None, spec=options.json)
    finally:
        await host.close()
    if options.json:
        dump([view.to_json() for view in views.values()])
        return OK
    text = table(list(views.values()), time.time())
    where = locate(options)
    if where.fallback:
        wanted = path_text(where.wanted or where.path)
        text += (
            f"(socket: {path_text(where.path)}, the short fallback: {wanted} would not fit "
            "in a socket address)\n"
        )
    out(text)
    return OK


# -- start, stop, restart, kill ------------------------------------------------------------


async def command(options: argparse.Namespace) -> int:
    """`tuisup start|stop|restart|kill NAME...|--all [--no-wait] [--json]`."""
    verb = options.verb
    host = await connect(options)
    try:
        names = list(await host.views()) if options.all else options.names
        if options.no_wait:
            return await _post(host, verb, names, options)
        results = await asyncio.gather(
            *(host.command(verb, name) for name in names), return_exceptions=True
        )
        views = await host.views()
    finally:
        await host.close()
    report = [
        _outcome(verb, name, result, views.get(name))
        for name, result in zip(names, results, strict=True)
    ]
    if options.json:
        dump(report)
    else:
        for entry in report:
            _print_outcome(verb, entry, views.get(entry["service"]))
    return OK if all(entry["ok"] for entry in report) else FAILED


def _outcome(
    verb: str, name: str, result: list[str] | BaseException, view: ServiceView | None
) -> dict[str, Any]:
    """What became of one command: ok, what else moved, and where the service stands."""
    if isinstance(result, ApiError):
        error = {"code": result.code, "message": str(result)}
        return {"service": name, "ok": False, "error": error}
    if isinstance(result, BaseException):
        raise result
    entry: dict[str, Any] = {"service": name, "ok": True, "moved": result}
    if view is not None:
        entry.update(view.to_json(spec=False))
        entry["ok"] = not (verb in ("start", "restart") and has_failed(view))
    return entry


def has_failed(view: ServiceView) -> bool:
    """Whether a service failed, or its last run ended with a code that is not a success.

    What `start` and `restart` report of a service just started, and `up -d` of each one.
    """
    if view.state is S.FAILED:
        return True
    last = view.last_exit
    return (
        view.state is S.EXITED
        and last is not None
        and not last.status.succeeded(view.spec.success_exit_codes)
    )


def _print_outcome(verb: str, entry: dict[str, Any], view: ServiceView | None) -> None:
    name = entry["service"]
    if "error" in entry:
        say(f"tuisup: {one_line(entry['error']['message'])}")
        return
    moved = entry.get("moved") or []
    if moved and verb == "stop":
        depend = "depends" if len(moved) == 1 else "depend"
        out(f"{name}: stopped first {', '.join(moved)}, which {depend} on it\n")
    elif moved:
        out(f"{name}: started first {', '.join(moved)}, which it needs\n")
    if view is None:  # a group or a replicated table (no view of its own), or gone
        out(f"{name} {PAST_TENSE[verb]}\n")
        return
    if verb == "kill":
        out(f"{name} killed (SIGKILL to its process group); now {view.state.value}\n")
    else:
        out(state_line(view) + "\n")


async def _post(host: RemoteHost, verb: str, names: list[str], options: argparse.Namespace) -> int:
    """Ask for the commands without waiting for them to be done: the host does them.

    The names are checked first, so that a wrong one is said (with the closest) and the
    exit status is 1.
    """
    await host.views(names)
    moved: dict[str, list[str]] = {name: [] for name in names}
    if verb != "kill":
        found = await asyncio.gather(*(host.affected(verb, name) for name in names))
        moved = dict(zip(names, found, strict=True))
    # Answered at once; the host does them whatever becomes of this client.
    await asyncio.gather(*(host.request(verb, name=name, no_wait=True) for name in names))
    if options.json:
        dump([{"service": name, "ok": True, "moved": moved[name]} for name in names])
        return OK
    for name in names:
        also = f" (and {', '.join(moved[name])})" if moved[name] else ""
        out(f"{name}: {verb} asked{also}\n")
    return OK


# -- logs and events -------------------------------------------------------------------------


async def events(options: argparse.Namespace) -> int:
    """`tuisup events [--json] [NAME...]`: the host's events as they happen, until it stops."""
    host = await connect(options)
    try:
        subscription = await host.subscribe(services=options.names or None)
        from tuisup.headless import Printer, use_colour

        colour = not options.json and use_colour(sys.stdout)
        printer = Printer(host, json_mode=options.json, colour=colour)
        views = tuple(subscription.snapshot.values())
        if options.json:
            dump(ev.Snapshot(seq=subscription.after, ts=time.time(), services=views).to_json())
        else:
            out("".join(f"{state_line(view)}\n" for view in views))
        async for batch in subscription:
            out(printer.render(batch))
            if any(isinstance(event, ev.HostStopped) for event in batch):
                return OK
        say(f"tuisup: {one_line(str(host.lost))}")
        return FAILED
    finally:
        await host.close()


# -- reopen-logs ------------------------------------------------------------------------------


async def reopen_logs(options: argparse.Namespace) -> int:
    """`tuisup reopen-logs [--json]`: the host writes its log files at their paths again."""
    host = await connect(options)
    try:
        await host.reopen_logs()
    finally:
        await host.close()
    if options.json:
        dump({"reopened": True})
    else:
        out("log files reopened\n")
    return OK


# -- reload ------------------------------------------------------------------------------------


async def reload(options: argparse.Namespace) -> int:
    """`tuisup reload [--json]`: read the manifest again; print the summary, or the errors."""
    host = await connect(options)
    try:
        result = await host.reload_result()
    finally:
        await host.close()
    applied = bool(result.get("applied"))
    if options.json:
        dump(result)
    elif applied:
        out(f"manifest reloaded: {one_line(result.get('summary') or 'applied')}\n")
    else:
        say("tuisup: manifest not applied, every service left as it was:")
        for line in str(result.get("error") or "the host is stopping").splitlines():
            say(f"  {one_line(line)}")
    return OK if applied else FAILED


# -- scale -----------------------------------------------------------------------------------


async def scale(options: argparse.Namespace) -> int:
    """`tuisup scale NAME=N... [--json]`: run N replicas of each replicated table named."""
    wanted = _counts(options.counts)
    host = await connect(options)
    report: list[dict[str, Any]] = []
    try:
        for name, count in wanted:  # one after another: each moves the manifest in force
            try:
                await host.scale(name, count)
            except ApiError as exc:
                error = {"code": exc.code, "message": str(exc)}
                report.append({"service": name, "ok": False, "error": error})
            else:
                report.append({"service": name, "ok": True, "replicas": count})
        views = await host.views()
    finally:
        await host.close()
    if options.json:
        dump(report)
    else:
        for entry in report:
            if not entry["ok"]:
                say(f"tuisup: {one_line(entry['error']['message'])}")
                continue
            name = entry["service"]
            running = sum(v.declared == name and v.state is S.RUNNING for v in views.values())
            out(f"{name} scaled to {entry['replicas']} ({running} running)\n")
    return OK if all(entry["ok"] for entry in report) else FAILED


def _counts(args: list[str]) -> list[tuple[str, int]]:
    """Each `NAME=N` as a name and its count, in order.

    Raises:
        Failed: One is not NAME=N, or a name comes twice (which count would be meant?).
    """
    wanted: dict[str, int] = {}
    for arg in args:
        name, _, text = arg.partition("=")
        count = _count(text)
        if not name or count is None:
            raise Failed(f'tuisup: expected NAME=N (such as worker=3), got "{one_line(arg)}"')
        if name in wanted:
            raise Failed(f"tuisup: {one_line(name)} is named twice: give each one count")
        wanted[name] = count
    return list(wanted.items())


def _count(text: str) -> int | None:
    """`text` as a count, in ASCII digits only (`isdigit` takes `٣` and `³` too); else None."""
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return int(text)
    except ValueError:  # more than the 4300 digits int() reads
        return None
