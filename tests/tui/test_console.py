"""The console over a real Host with real processes, driven with Textual's Pilot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import psutil

from tests.conftest import tagged_pids, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import Manifest
from tuisup.tui.app import TuisupApp
from tuisup.tui.screens.detail import DetailScreen
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState


@asynccontextmanager
async def console(manifest: Manifest) -> AsyncIterator[tuple[Host, TuisupApp, object]]:
    host = Host(manifest)
    async with host:
        app = TuisupApp(host)
        async with app.run_test(size=(140, 40)) as pilot:
            yield host, app, pilot


async def until(pilot: object, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `predicate` holds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await pilot.pause(0.05)  # type: ignore[attr-defined]


def notification_titles(app: TuisupApp) -> list[str]:
    return [n.title for n in app._notifications]


def notification_text(app: TuisupApp) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def label(app: TuisupApp, name: str) -> str:
    return app.query_one(ServiceTree).nodes_by_name[name].label.plain  # type: ignore[union-attr]


def process_rows(app: TuisupApp, name: str) -> list[int]:
    """The pids of a service's process rows."""
    node = app.query_one(ServiceTree).nodes_by_name[name]
    return [int(str(child.label).split()[0]) for child in node.children]


async def test_keys_stop_start_restart_and_kill_the_selected_service(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(web="exec sleep 60", other="exec sleep 61")
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        await pilot.press("down")  # from the host to the first service
        assert app.query_one(ServiceTree).selected_service == "web"
        first = host.snapshot()["web"].pid
        assert first is not None

        await pilot.press("x")
        await wait_until(host, lambda s: s["web"].state is S.STOPPED)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
        await until(pilot, lambda: "stopped" in label(app, "web"))

        await pilot.press("s")
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        second = host.snapshot()["web"].pid
        assert second not in (None, first)
        await until(pilot, lambda: "running" in label(app, "web"))
        await until(pilot, lambda: process_rows(app, "web")[:1] == [second])

        await pilot.press("r")
        await wait_until(host, lambda s: s["web"].restarts == 1 and s["web"].state is S.RUNNING)
        third = host.snapshot()["web"].pid
        assert third not in (None, second)
        await until(pilot, lambda: "×1" in label(app, "web"))

        await pilot.press("k")
        await wait_until(host, lambda s: s["web"].history[-1].status.signal == 9)
        assert host.snapshot()["other"].state is S.RUNNING


async def test_quit_stops_everything_and_leaves_nothing_running(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(
        a="sleep 60 & sleep 61; wait", b=("trap '' TERM; sleep 62", {"stop_timeout": 0.5})
    )
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        await until(pilot, lambda: len(list(tagged_pids(token))) >= 4)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None or not app.is_running)
    assert not list(tagged_pids(token))
    assert app.return_code == 0


async def test_the_merged_view_has_every_services_lines(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(one="echo from-one; sleep 60", two="echo from-two; sleep 60")
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        assert view.source is None  # the host is selected: every service
        await until(pilot, lambda: len(view.visible_text()) >= 2)
        shown = view.visible_text()
        assert any(line.startswith("one") and line.endswith("from-one") for line in shown)
        assert any(line.startswith("two") and line.endswith("from-two") for line in shown)
        await pilot.press("down")  # one's own log has no prefix and nothing of two's
        await until(pilot, lambda: view.source == "one" and view.visible_text() == ["from-one"])
        await pilot.press("a")
        await until(pilot, lambda: view.source is None and len(view.visible_text()) == 2)


async def test_search_highlights_and_the_filter_hides_what_does_not_match(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(fruit="printf 'apple\\nbanana\\napple pie\\ncherry\\n'; sleep 60")
    async with console(manifest) as (host, app, pilot):
        await pilot.press("down")
        view = app.query_one(LogView)
        await until(pilot, lambda: len(view.visible_text()) == 4)
        await pilot.press("slash", *"apple", "enter")
        await until(pilot, lambda: view.query_ is not None)
        assert view.count_matches() == 2
        assert "2 matches" in str(app.query_one("#log-title").render())
        await pilot.press("F")
        await until(pilot, lambda: view.visible_text() == ["apple", "apple pie"])
        await pilot.press("F")
        await until(pilot, lambda: len(view.visible_text()) == 4)
        await pilot.press("slash", *"/^b.n/", "enter")
        await until(pilot, lambda: view.count_matches() == 1)


async def test_enter_opens_the_detail_with_secrets_masked(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(api=("sleep 60", {"env": {"API_TOKEN": "hunter2", "PORT": "8000"}}))
    async with console(manifest) as (host, app, pilot):
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        picture = app.export_screenshot()  # what the terminal shows, as SVG text
        assert "API_TOKEN" in picture and "8000" in picture
        assert "hunter2" not in picture
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))


async def test_progress_lines_show_their_last_state_and_colours_render(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(
        bar="printf '10%%\\r50%%\\r100%%\\n\\033[31mred\\033[0m \\033[2Jcleared\\n'; sleep 60"
    )
    async with console(manifest) as (host, app, pilot):
        await pilot.press("down")
        view = app.query_one(LogView)
        await until(pilot, lambda: len(view.visible_text()) == 2)
        assert view.visible_text() == ["100%", "red cleared"]
        strip = view.render_line(1)
        assert any(seg.text == "red" and seg.style and seg.style.color for seg in strip)


async def test_reload_key_applies_an_edit_and_the_tree_follows(
    tmp_path: object, token: str
) -> None:
    from pathlib import Path

    from tuisup.manifest import load_manifest

    path = Path(str(tmp_path)) / "services.toml"
    path.write_text('[services.one]\ncommand = "sleep 60"\n[services.two]\ncommand = "sleep 61"\n')
    async with console(load_manifest(path)) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        path.write_text(
            '[services.one]\ncommand = "sleep 60"\n[services.three]\ncommand = "sleep 62"\n'
        )
        await pilot.press("L")
        await until(pilot, lambda: set(tree.nodes_by_name) == {"one", "three"})
        await wait_until(
            host, lambda s: s.get("three") is not None and s["three"].state is S.RUNNING
        )
        await until(pilot, lambda: "running" in label(app, "three"))
        path.write_text('[services.one]\ncommand = "sleep 60"\nrestart = "yes"\n')
        await pilot.press("L")
        # The error's own notification: the reload before left one of its own.
        await until(pilot, lambda: "services.toml not applied" in notification_titles(app))
        assert set(tree.nodes_by_name) == {"one", "three"}  # nothing changed


async def test_a_second_q_kills_what_is_still_stopping(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(stubborn=("trap '' TERM; sleep 62", {"stop_timeout": 30.0}))
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: s["stubborn"].state is S.RUNNING)
        await until(pilot, lambda: len(list(tagged_pids(token))) >= 2)
        await pilot.press("q")
        await wait_until(host, lambda s: s["stubborn"].state is S.STOPPING)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=5)
    assert not list(tagged_pids(token))


def test_processes_that_left_their_group_are_marked(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    import subprocess
    import sys
    import time

    from tuisup.engine.procstats import ProcessCollector

    leader = subprocess.Popen(
        [
            "sh",
            "-c",
            f"sleep 60 & {sys.executable} -c 'import os, time; os.setsid(); time.sleep(60)' & wait",
        ],
        start_new_session=True,
    )
    try:
        stats = ProcessCollector("no-host")
        deadline = time.monotonic() + 5
        while True:
            procs = stats.collect({"svc": leader.pid}, set()).trees["svc"]
            # Until the python child has started and called setsid().
            if any(p.escaped and "setsid" in p.command for p in procs):
                break
            assert time.monotonic() < deadline, procs
            time.sleep(0.02)
        assert [p.depth for p in procs] == [0, 1, 1]
        escaped = [p for p in procs if p.escaped]
        assert len(escaped) == 1 and "setsid" in escaped[0].command
    finally:
        import os
        import signal

        for proc in psutil.Process(leader.pid).children(recursive=True):
            proc.kill()
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


async def test_a_save_shows_reloading_then_the_new_run(tmp_path: object) -> None:
    from pathlib import Path

    from tuisup.spec import HostSettings, ServiceSpec

    root = Path(str(tmp_path))
    (root / "app.py").write_text("1")
    spec = ServiceSpec(
        name="web", argv=("sleep", "60"), command="sleep 60", cwd=root, watch=("app.py",)
    )
    manifest = Manifest(
        path=root / "services.toml", settings=HostSettings(log_dir=None), services={"web": spec}
    )
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        await until(pilot, lambda: "⟳" in label(app, "web"))
        with anyio.fail_after(10):
            while host.snapshot()["web"].restarts == 0:
                (root / "app.py").write_text(str(host.bus.last_seq))  # until the watcher is up
                await pilot.pause(0.5)
        await until(pilot, lambda: "running" in label(app, "web") and "×1" in label(app, "web"))
        await pilot.press("down", "W")
        await until(pilot, lambda: host.snapshot()["web"].watching is False)


async def test_the_tree_shows_what_a_service_waits_for_and_its_health(
    make_manifest: Callable[..., Manifest], tmp_path: object
) -> None:
    from pathlib import Path

    from tuisup.spec import Condition, HealthCheck, HealthKind

    up = Path(str(tmp_path)) / "up"
    check = HealthCheck(
        kind=HealthKind.COMMAND,
        target="test -e up",
        argv=("/bin/sh", "-c", "test -e up || { echo no up file; exit 1; }"),
        interval=0.1,
        retries=1,
    )
    manifest = make_manifest(
        db=("exec sleep 60", {"healthcheck": check}),
        api=("exec sleep 60", {"depends_on": {"db": Condition.HEALTHY}}),
    )
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: "waiting" in label(app, "api"))
        assert label(app, "api").endswith("for db")
        reason = host.snapshot()["api"].reason
        assert reason is not None and reason.startswith("waiting for db to be healthy (running, ")
        await until(pilot, lambda: "no up file" in label(app, "db"))  # unhealthy, and why
        assert "♥" in label(app, "db")
        await until(pilot, lambda: "♥ 1 unhealthy" in str(app.query_one("#summary").render()))
        up.touch()
        await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        await until(pilot, lambda: label(app, "api").split()[2] == "running")
        assert "no up file" not in label(app, "db") and "♥" in label(app, "db")


async def test_keys_on_a_dependency_chain_say_what_else_they_stop_and_start(
    make_manifest: Callable[..., Manifest],
) -> None:
    from tuisup.spec import Condition

    manifest = make_manifest(
        db="exec sleep 60",
        api=("exec sleep 60", {"depends_on": {"db": Condition.STARTED}}),
    )
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        tree = app.query_one(ServiceTree)
        tree.move_cursor(tree.nodes_by_name["db"])
        await pilot.press("x")
        await wait_until(host, lambda s: s["db"].state is S.STOPPED)
        assert host.snapshot()["api"].state is S.STOPPED
        messages = [n.message for n in app._notifications]
        assert "first api, which depends on it" in messages
        tree.move_cursor(tree.nodes_by_name["api"])
        await pilot.press("s")
        await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        assert "first db, which it needs" in [n.message for n in app._notifications]


class Broken:
    """A subscription whose stream breaks at once, as a bug in following would."""

    def __aiter__(self) -> Broken:
        return self

    async def __anext__(self) -> list[object]:
        raise RuntimeError("the stream broke")


async def test_a_failed_event_follower_is_reported_and_follows_again(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: the follower died silently and the tree froze for good."""
    manifest = make_manifest(web="exec sleep 60")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: "running" in label(app, "web"))
        app.follow_events(Broken())  # type: ignore[arg-type]  # replaces the running follower
        await until(pilot, lambda: "RuntimeError: the stream broke" in notification_text(app))
        await host.stop("web")
        await until(pilot, lambda: "stopped" in label(app, "web"))  # following again


async def test_quitting_does_not_depend_on_the_event_follower(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: the app left only when the follower saw `host_stopped`; with the
    follower gone, `q` left the user on the quit screen for good."""
    manifest = make_manifest(web="exec sleep 60")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: "running" in label(app, "web"))
        app.workers.cancel_group(app, "events")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, timeout=5)
    assert not list(tagged_pids(token))


async def test_after_missed_events_the_tree_is_redrawn_from_the_snapshot(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: the console ignored `missed`; states it did not see stayed wrong."""
    manifest = make_manifest(web="exec sleep 60", chatty="exec sleep 61")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: "running" in label(app, "web"))
        behind = await host.subscribe()  # where a follower that fell behind stands
        app.workers.cancel_group(app, "events")
        await host.stop("web")
        for i in range(host.bus.capacity + 10):  # push web's state change off the ring
            host.store.add("chatty", "stdout", [f"line {i}"])
        assert "running" in label(app, "web")
        app.follow_events(behind)
        await until(pilot, lambda: "stopped" in label(app, "web"))
        view = app.query_one(LogView)
        await pilot.press("a")
        await until(
            pilot,
            lambda: any(t.endswith(f"line {host.bus.capacity + 9}") for t in view.visible_text()),
        )


async def test_export_to_a_folder_that_cannot_be_written_is_a_notification(
    tmp_path: object, make_manifest: Callable[..., Manifest], token: str
) -> None:
    """Regression: exporting (`e`) where it cannot be written took the console down."""
    from pathlib import Path

    manifest = make_manifest(web="echo hello; exec sleep 60")
    (Path(str(manifest.root)) / ".tuisup").write_text("a file where the folder would be")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: "running" in label(app, "web"))
        await pilot.press("e")
        await until(pilot, lambda: "not written" in notification_text(app))
        assert app.is_running
        await host.stop("web")
        await until(pilot, lambda: "stopped" in label(app, "web"))


async def test_export_writes_beside_tuisups_logs(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(web="echo hello; exec sleep 60")
    async with console(manifest) as (host, app, pilot):
        await until(pilot, lambda: any("hello" in t for t in app.query_one(LogView).visible_text()))
        await pilot.press("e")
        await until(pilot, lambda: "lines written to" in notification_text(app))
        exports = list((manifest.root / ".tuisup" / "exports").iterdir())
        assert len(exports) == 1 and "hello" in exports[0].read_text()


async def test_removing_a_service_that_prints_while_it_stops_keeps_the_console_up(
    tmp_path: object, token: str
) -> None:
    """Regression: reading a leaving service's lines by a name the Host no longer knew
    raised UnknownService in the console as in the printer."""
    from pathlib import Path

    from tuisup.manifest import load_manifest

    path = Path(str(tmp_path)) / "services.toml"
    keep = f'[services.keep]\ncommand = "sleep 60"\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    drop = (
        "[services.drop]\n"
        "command = \"trap 'echo bye from drop; exit 0' TERM; sleep 61 & wait\"\n"
        f'shell = true\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    )
    path.write_text(keep + drop)
    async with console(load_manifest(path)) as (host, app, pilot):
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        tree = app.query_one(ServiceTree)
        view = app.query_one(LogView)
        await pilot.press("down", "down")  # the dropping service's own log
        await until(pilot, lambda: view.source == "drop")
        await pilot.press("enter")  # its detail is open while it leaves
        path.write_text(keep)
        await pilot.press("L")
        await until(pilot, lambda: set(tree.nodes_by_name) == {"keep"})
        assert app.is_running
        await pilot.press("escape")
        await until(pilot, lambda: view.source != "drop")  # the view left it too
        if view.source is not None:
            await pilot.press("a")  # every service's lines, the leaver's last ones too
        await until(pilot, lambda: any(t.endswith("bye from drop") for t in view.visible_text()))
        await pilot.press("enter")  # nothing to detail any more: no crash either
        assert app.is_running


async def test_end_follows_the_log_again_while_the_tree_has_the_focus(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(many="seq 1 200; sleep 60")
    async with console(manifest) as (host, app, pilot):
        view = app.query_one(LogView)
        await pilot.press("down")
        await until(pilot, lambda: len(view.visible_text()) == 200)
        view.scroll_to(y=0, animate=False)
        await until(pilot, lambda: not view.follow)
        assert app.focused is app.query_one(ServiceTree)
        await pilot.press("end")  # the tree's own End would scroll the tree
        await until(pilot, lambda: view.follow and view.is_vertical_scroll_end)


async def test_the_first_frame_shows_the_keys_in_the_footer(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(web="sleep 60")
    async with console(manifest) as (host, app, pilot):
        # Right as the app is ready, before anything else ran: the first frame.
        picture = app.export_screenshot()
        assert "Restart" in picture and "Quit" in picture


CRASH_ON_CUE = (
    "import os, time\n"
    "while not os.path.exists('crash'):\n"
    "    time.sleep(0.02)\n"
    "raise SystemExit(3)\n"
)


async def test_a_service_that_leaves_running_loses_its_process_rows_at_once(
    make_manifest: Callable[..., Manifest], tmp_path: object
) -> None:
    import sys
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "crash.py").write_text(CRASH_ON_CUE)
    manifest = make_manifest(
        svc=(f"exec {sys.executable} crash.py", {"backoff_delay": 30.0, "jitter": 0.0})
    )
    async with console(manifest) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        node = tree.nodes_by_name["svc"]
        await until(pilot, lambda: bool(node.children))
        pid = host.snapshot()["svc"].pid
        assert pid is not None
        # What a stats pass that began while it ran brings back after it left.
        late = (await host.processes()).trees
        assert late["svc"]
        (root / "crash").touch()
        await until(pilot, lambda: "backoff" in label(app, "svc"))
        assert not node.children  # from the event, not a second later from the stats
        tree.show_processes("svc", late["svc"])
        assert not node.children


async def test_a_python_services_process_row_shows_its_target_and_executor(
    tmp_path: object, token: str
) -> None:
    import sys
    import uuid
    from pathlib import Path

    from tuisup.spec import ExecutorKind, HostSettings, ServiceSpec

    root = Path(str(tmp_path))
    module = f"rows_{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(
        "def work(ctx):\n    ctx.token.wait()\n"
        "async def awork(ctx):\n    await ctx.token.wait_async()\n"
    )

    def target(name: str, attribute: str, executor: ExecutorKind) -> ServiceSpec:
        what = f"{module}:{attribute}"
        return ServiceSpec(
            name=name, argv=(), command=what, target=what, executor=executor, cwd=root
        )

    specs = {
        "one": target("one", "work", ExecutorKind.PROCESS),
        "two": target("two", "awork", ExecutorKind.ASYNC_PROCESS),
        "cmd": ServiceSpec(name="cmd", argv=("sleep", "61"), command="sleep 61", cwd=root),
    }
    manifest = Manifest(
        path=root / "services.toml", settings=HostSettings(log_dir=None), services=specs
    )
    async with console(manifest) as (host, app, pilot):
        nodes = app.query_one(ServiceTree).nodes_by_name
        await until(pilot, lambda: all(nodes[name].children for name in specs))
        rows = {name: str(nodes[name].children[0].label) for name in specs}
        assert rows["one"].endswith(f" {module}:work (process)"), rows
        assert rows["two"].endswith(f" {module}:awork (async-process)"), rows
        assert rows["cmd"].endswith(" sleep 61"), rows
        assert not any("tuisup.child" in row or sys.executable in row for row in rows.values())


async def test_enter_opens_the_detail_and_folds_nothing(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(web="exec sleep 60")
    async with console(manifest) as (host, app, pilot):
        tree = app.query_one(ServiceTree)
        node = tree.nodes_by_name["web"]
        await until(pilot, lambda: bool(node.children) and node.is_expanded)
        await pilot.press("enter")  # on the host: no detail, and the services stay shown
        await pilot.pause()
        assert tree.root.is_expanded
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("slash")  # no search line over a dialog
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))
        assert node.is_expanded  # its process rows are still there
        assert not app.query_one("#search").display


async def test_keys_typed_right_after_slash_go_to_the_search_not_to_the_services(
    make_manifest: Callable[..., Manifest],
) -> None:
    from textual import events
    from textual.widgets import Input

    manifest = make_manifest(web="exec sleep 60")
    async with console(manifest) as (host, app, pilot):
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        await pilot.press("down")
        # In one read from the terminal, as a quick typist over ssh sends them.
        for key, character in (("slash", "/"), ("x", "x"), ("k", "k")):
            app.post_message(events.Key(key, character))
        search = app.query_one("#search", Input)
        await until(pilot, lambda: search.value == "xk")
        assert host.snapshot()["web"].state is S.RUNNING and not host.snapshot()["web"].history
