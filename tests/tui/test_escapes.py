"""Escapes and markup from services, checks, files and manifests never reach the console's
terminal: the real app over a real Host, driven with Pilot, its screen rendered as Textual
would write it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, HostSettings, Manifest, RestartPolicy, ServiceSpec
from tuisup.tui.app import TuisupApp
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState
EVIL = "boom \x1b]0;pwned\x07\x1b[2J\u009b2J\u009d0;pwned\u009c done\nnext line"
"""An exception message: an OSC title, a clear screen, their C1 forms, a line break."""
EVIL_SH = r"\033]0;pwned\007\033[2J\302\2332J\302\2350;pwned\302\234"
"""The same escapes for `printf` in a shell: octal, with C1 controls as UTF-8."""


def controls(text: str) -> list[str]:
    """The control characters (C0 but newline, DEL, C1) in `text`, as repr."""
    return sorted({repr(c) for c in text if c != "\n" and (c < " " or "\x7f" <= c <= "\x9f")})


def on_screen(app: TuisupApp) -> str:
    """The text of every cell of the screen (and the screens under a modal one), row by row.

    This is what Textual writes to the terminal, less its own cursor moves and colours:
    segments flagged as control are Textual's; every other character came from content.
    """
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    rows = update.strips  # type: ignore[union-attr]
    return "\n".join(
        "".join(seg.text for strip in row for seg in strip if not seg.control) for row in rows
    )


@asynccontextmanager
async def console(manifest: Manifest) -> AsyncIterator[tuple[Host, TuisupApp, object]]:
    host = Host(manifest)
    async with host:
        app = TuisupApp(host)
        async with app.run_test(size=(160, 40), notifications=True) as pilot:
            yield host, app, pilot


async def until(pilot: object, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `predicate` holds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await pilot.pause(0.05)  # type: ignore[attr-defined]


def shell(tmp_path: Path, name: str, command: str, **options: object) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        argv=("/bin/sh", "-c", command),
        command=command,
        cwd=tmp_path,
        **options,  # type: ignore[arg-type]
    )


def manifest(tmp_path: Path, *specs: ServiceSpec) -> Manifest:
    settings = HostSettings(log_dir=tmp_path / "logs")
    return Manifest(
        path=tmp_path / "services.toml", settings=settings, services={s.name: s for s in specs}
    )


async def test_log_view_lines_with_c1_and_stray_controls_render_clean(tmp_path: Path) -> None:
    command = f"printf 'plain {EVIL_SH} \\033[31mRED\\033[0m nul\\000 del\\177 bel\\007 end\\n'"
    spec = shell(tmp_path, "out", command + "; exec sleep 60")
    async with console(manifest(tmp_path, spec)) as (host, app, pilot):
        await pilot.press("down")
        view = app.query_one(LogView)
        await until(pilot, lambda: len(view.visible_text()) == 1)
        assert view.visible_text() == ["plain  RED nul del bel end"]
        strip = view.render_line(0)
        assert controls("".join(seg.text for seg in strip)) == []
        assert any(seg.text == "RED" and seg.style and seg.style.color for seg in strip)
        await pilot.press("a")  # the merged view, with the name in front
        await until(pilot, lambda: view.source is None and len(view.visible_text()) == 1)
        shown = on_screen(app)
        assert controls(shown) == []
        assert "plain  RED nul del bel end" in shown


async def test_an_exception_with_escapes_shows_clean_in_the_tree_and_the_detail(
    tmp_path: Path,
) -> None:
    module = f"evil_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(f"def crash(ctx):\n    raise RuntimeError({EVIL!r})\n")
    spec = ServiceSpec(
        name="crashy",
        argv=(),
        command=f"{module}:crash",
        target=f"{module}:crash",
        executor=ExecutorKind.THREAD,
        cwd=tmp_path,
        restart=RestartPolicy.NEVER,
    )
    async with console(manifest(tmp_path, spec)) as (host, app, pilot):
        await wait_until(host, lambda s: s["crashy"].state is S.EXITED)
        tree = app.query_one(ServiceTree)
        node = tree.nodes_by_name["crashy"]
        await until(pilot, lambda: "exited" in str(node.label))
        label = str(node.label)
        assert controls(label) == []
        assert label.endswith("RuntimeError: boom  done ⏎ next line")
        assert controls(on_screen(app)) == []
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        shown = on_screen(app)
        assert controls(shown) == []
        assert "RuntimeError: boom  done ⏎ next line" in shown  # the exit history


async def test_a_changed_file_named_with_escapes_and_markup_is_notified_verbatim(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    evil = tmp_path / "src" / 'a\x1b]0;pwned\x07[b]\u009b2J[a="b]c.py'
    spec = shell(tmp_path, "web", "exec sleep 60", watch=("src/",))
    async with console(manifest(tmp_path, spec)) as (host, app, pilot):
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        with anyio.fail_after(10):
            while host.snapshot()["web"].restarts == 0:
                evil.write_text(uuid.uuid4().hex)  # until the watcher, up in a thread, sees it
                await pilot.pause(0.3)
        await until(pilot, lambda: "reloading" in on_screen(app))  # the toast's title
        assert app.is_running
        message = next(n.message for n in app._notifications if "changed" in n.message)
        assert message == 'src/a[b][a="b]c.py changed'
        shown = on_screen(app)
        assert controls(shown) == []
        assert 'src/a[b][a="b]c.py changed' in shown


async def test_the_detail_shows_env_values_and_commands_verbatim_and_clean(
    tmp_path: Path,
) -> None:
    env = {"GREETING": "[/x] hi \x1b]0;pwned\x07\u009b2Jthere [bold]", "[/y]\x1b[2J": "1"}
    spec = shell(tmp_path, "api", "exec sleep 60 # \x1b[2J[/z]", env=env)
    async with console(manifest(tmp_path, spec)) as (host, app, pilot):
        await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        assert app.is_running
        shown = on_screen(app)
        assert controls(shown) == []
        assert "[/x] hi there [bold]" in shown
        assert "[/y]" in shown and "exec sleep 60 # [/z]" in shown


async def test_an_invalid_manifest_notification_shows_its_error_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[services.one]\ncommand = "sleep 60"\n')
    from tuisup.manifest import load_manifest

    async with console(load_manifest(path)) as (host, app, pilot):
        await wait_until(host, lambda s: s["one"].state is S.RUNNING)
        path.write_text('[services.one]\ncommand = "sleep 60"\nrestart = "[/x]\\u009b2J"\n')
        await pilot.press("L")
        await until(pilot, lambda: "not applied" in on_screen(app))  # the toast's title
        assert app.is_running
        shown = on_screen(app)
        assert controls(shown) == []
        assert '"[/x]\\u009b2J"' in shown  # (the toast wraps the line)


async def test_a_health_reason_and_a_process_title_with_escapes_show_clean_in_the_tree(
    tmp_path: Path,
) -> None:
    import sys

    from tuisup.spec import HealthCheck, HealthKind

    text = f"printf 'down {EVIL_SH} now\\n'; exit 1"
    check = HealthCheck(
        kind=HealthKind.COMMAND, target=text, argv=("/bin/sh", "-c", text), interval=0.1, retries=1
    )
    # The service renames itself: its command line, read from /proc, carries the escapes.
    title = "import os; os.execv('/bin/sleep', ['sleep\\x1b]0;pwned\\x07\\u009b2J', '60'])"
    spec = ServiceSpec(
        name="db", argv=(sys.executable, "-c", title), command="db", cwd=tmp_path, healthcheck=check
    )
    async with console(manifest(tmp_path, spec)) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        node = tree.nodes_by_name["db"]
        await until(pilot, lambda: "down" in str(node.label) and bool(node.children))
        await until(pilot, lambda: "sleep" in str(node.children[0].label))
        assert controls(str(node.label)) == []
        assert "♥ exit code 1: down  now · " in str(node.label)
        assert str(node.children[0].label).endswith("sleep 60")
        shown = on_screen(app)
        assert controls(shown) == []
        assert "♥ exit code 1: down  now ·" in shown  # the tree's edge cuts the rest
