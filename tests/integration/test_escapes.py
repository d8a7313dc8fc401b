"""Escapes from services, checks, files and manifests never reach the terminal headless.

The printer runs over a real Host with real processes, threads and files; what it renders is
exactly what `tuisup --no-tui` writes. Manifest errors go through the real command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tuisup.engine import Host
from tuisup.headless import Printer
from tuisup.spec import ExecutorKind, HostSettings, Manifest, RestartPolicy, ServiceSpec

EVIL = "boom \x1b]0;pwned\x07\x1b[2J\u009b2J\u009d0;pwned\u009c done\nnext line"
"""An exception message: an OSC title, a clear screen, their C1 forms, a line break."""
EVIL_SH = r"\033]0;pwned\007\033[2J\302\2332J\302\2350;pwned\302\234"
"""The same escapes for `printf` in a shell: octal, with C1 controls as UTF-8."""


def controls(text: str, allowed: str = "\n") -> list[str]:
    """The control characters (C0, DEL, C1) in `text` other than `allowed`, as repr."""
    return sorted(
        {repr(c) for c in text if c not in allowed and (c < " " or "\x7f" <= c <= "\x9f")}
    )


def sgr_removed(text: str) -> str:
    """`text` without the colour sequences the printer itself writes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


async def printed(
    host: Host,
    until: Callable[[str], bool],
    *,
    colour: bool = False,
    json_mode: bool = False,
    poke: Callable[[], None] | None = None,
) -> str:
    """Run `host` and return what the printer rendered, once `until` holds for it.

    `poke`, if given, is called every 0.3 s meanwhile (to touch a file until the watcher,
    which starts in a thread after the services, sees it).
    """
    printer = Printer(host, json_mode=json_mode, colour=colour)
    subscription = await host.subscribe(lines=True)
    text = ""
    async with host, anyio.create_task_group() as tg:
        if poke is not None:
            tg.start_soon(_every, 0.3, poke)
        with anyio.fail_after(10):
            async for events in subscription:
                text += printer.render(events)
                if until(text):
                    tg.cancel_scope.cancel()
                    return text
    raise AssertionError(f"the host stopped first; printed: {text!r}")


async def _every(seconds: float, poke: Callable[[], None]) -> None:
    while True:
        poke()
        await anyio.sleep(seconds)


def shell(tmp_path: Path, name: str, command: str, **options: object) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        argv=("/bin/sh", "-c", command),
        command=command,
        cwd=tmp_path,
        restart=RestartPolicy.NEVER,
        **options,  # type: ignore[arg-type]
    )


def manifest(tmp_path: Path, *specs: ServiceSpec) -> Manifest:
    settings = HostSettings(log_dir=tmp_path / "logs")
    return Manifest(
        path=tmp_path / "services.toml", settings=settings, services={s.name: s for s in specs}
    )


@pytest.mark.parametrize("kind", [ExecutorKind.THREAD, ExecutorKind.PROCESS])
async def test_an_exception_message_with_escapes_prints_as_one_clean_line(
    tmp_path: Path, kind: ExecutorKind
) -> None:
    module = f"evil_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(f"def crash(ctx):\n    raise RuntimeError({EVIL!r})\n")
    spec = ServiceSpec(
        name="crashy",
        argv=(),
        command=f"{module}:crash",
        target=f"{module}:crash",
        executor=kind,
        cwd=tmp_path,
        restart=RestartPolicy.NEVER,
    )
    out = await printed(Host(manifest(tmp_path, spec)), lambda text: "crashy exited" in text)
    assert controls(out) == []
    line = next(line for line in out.splitlines() if line.startswith("crashy exited"))
    # In a thread the message is exact; a child sends it on one line, newlines as spaces.
    joined = " ⏎ " if kind is ExecutorKind.THREAD else " "
    assert f"crashy exited with RuntimeError: boom  done{joined}next line after " in line
    assert "crashy | RuntimeError: boom  done" in out  # the traceback in the output, cleaned


async def test_a_health_checks_last_line_with_escapes_prints_clean(tmp_path: Path) -> None:
    from tuisup.spec import HealthCheck, HealthKind

    text = f"printf 'checking\\n'; printf 'down {EVIL_SH} now\\n'; exit 1"
    check = HealthCheck(
        kind=HealthKind.COMMAND, target=text, argv=("/bin/sh", "-c", text), interval=0.1, retries=1
    )
    spec = shell(tmp_path, "db", "exec sleep 30", healthcheck=check)
    out = await printed(Host(manifest(tmp_path, spec)), lambda text: "db is unhealthy" in text)
    assert controls(out) == []
    assert "db is unhealthy: exit code 1: down  now (1 failed checks)" in out.splitlines()


async def test_a_changed_file_whose_name_holds_escapes_prints_clean(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    evil = tmp_path / "src" / "a\x1b]0;pwned\x07b\u009b2J\tc.py"
    spec = shell(tmp_path, "web", "exec sleep 30", watch=("src/",))
    out = await printed(
        Host(manifest(tmp_path, spec)),
        lambda text: "web restarting" in text,
        poke=lambda: evil.write_text(uuid.uuid4().hex),
    )
    assert controls(out) == []
    assert "web restarting: src/ab c.py changed" in out.splitlines()


@pytest.mark.parametrize("colour", [False, True])
async def test_c1_controls_in_service_output_are_removed(tmp_path: Path, colour: bool) -> None:
    command = f"printf 'plain {EVIL_SH} red \\033[31mRED\\033[0m nel\\302\\205 tab\\tend\\n'"
    spec = shell(tmp_path, "out", command)
    out = await printed(
        Host(manifest(tmp_path, spec)), lambda text: "out exited" in text, colour=colour
    )
    assert controls(sgr_removed(out), allowed="\n\t") == []
    assert "\x1b[31mRED\x1b[0m" in out if colour else "\x1b" not in out
    line = next(line for line in sgr_removed(out).splitlines() if "plain" in line)
    assert line.endswith("| plain  red RED nel tab\tend")


async def test_json_keeps_c1_controls_exact_but_escaped(tmp_path: Path) -> None:
    spec = shell(tmp_path, "out", f"printf 'plain {EVIL_SH} del\\177 end\\n'")
    out = await printed(
        Host(manifest(tmp_path, spec)), lambda text: '"exited"' in text, json_mode=True
    )
    assert controls(out) == []
    assert "\\u009b2J" in out and "\\u007f" in out
    lines = [line for e in map(json.loads, out.splitlines()) for line in e.get("lines", ())]
    assert lines == [
        "plain \x1b]0;pwned\x07\x1b[2J\u009b2J\u009d0;pwned\u009c del\x7f end"
    ]  # lossless


def test_manifest_errors_print_clean_with_the_offending_text_visible(tmp_path: Path) -> None:
    name = "svc\x1b]0;pwned\x07\u009b2J.toml"
    (tmp_path / name).write_text(
        textwrap.dedent("""\
        [services.web]
        command = "sleep 1"
        restart = "\\u009b2J\\u001b[2Jyes"
        "\\u009d0;bogus" = 1
        """)
    )
    for args in (["check"], ["--no-tui"]):
        done = subprocess.run(
            [sys.executable, "-m", "tuisup", *args, "-f", name],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 1
        err = done.stderr.decode()
        assert controls(err) == []
        assert err.splitlines() == [
            'svc.toml:3:11: services.web.restart: expected one of "always", "on-failure", '
            '"never", got "\\u009b2J\\u001b[2Jyes"',
            'svc.toml:4:1: services.web."\\u009d0;bogus": unknown key "\\u009d0;bogus"',
        ]
