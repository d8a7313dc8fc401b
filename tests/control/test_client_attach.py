"""`attach`: the console over a RemoteHost and a real socket, driven by Pilot.

The host is a `tuisup --no-tui` in another process; a second client watches what the
console's keys do to it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from textual.pilot import Pilot

from tests.conftest import Tuisup, tagged_pids
from tests.control.verbs import headless, write
from tests.tui.test_protocol import OnlyTheProtocol
from tuisup.control.client import RemoteHost
from tuisup.model import ServiceState
from tuisup.tui.app import TuisupApp
from tuisup.tui.screens.confirm import ConfirmScreen
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState


async def until(pilot: Pilot[int], predicate: Callable[[], bool], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await pilot.pause(0.05)


def said(capsys: pytest.CaptureFixture[str]) -> str:
    """What the console said on stderr as it left (Rich wraps it to a width: unwrapped)."""
    return " ".join(capsys.readouterr().err.split())


async def state_of(observer: RemoteHost, name: str, state: ServiceState) -> None:
    """Wait until the host (seen by another client) has `name` in `state`."""
    subscription = await observer.subscribe()
    with anyio.fail_after(10):
        if observer.snapshot()[name].state is state:
            return
        async for _ in subscription:
            if observer.snapshot()[name].state is state:
                return


async def attached(folder: Path, token: str) -> tuple[Tuisup, RemoteHost, RemoteHost]:
    write(folder, token)
    host = await anyio.to_thread.run_sync(lambda: headless(folder, "db", "web", "api"))
    socket = folder / ".tuisup" / "tuisup.sock"
    return host, await RemoteHost.connect(socket), await RemoteHost.connect(socket)


async def test_keys_act_on_the_remote_host_and_q_leaves_it_running(
    tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host, remote, observer = await attached(tmp_path, token)
    api = OnlyTheProtocol(remote)  # type: ignore[arg-type]
    app = TuisupApp(api)  # type: ignore[arg-type]
    async with app.run_test(size=(140, 40)) as pilot:
        tree = app.query_one(ServiceTree)
        view = app.query_one(LogView)
        await until(pilot, lambda: "running" in str(tree.nodes_by_name["web"].label))
        await until(pilot, lambda: any("web says hi" in t for t in view.visible_text()))
        keys = {b.binding.key: b.binding.description for b in app.active_bindings.values()}
        assert keys["q"] == "Detach"  # the footer says what q does here
        await pilot.press("down", "down", "down")  # db, api, web
        assert tree.selected_service == "web"
        await pilot.press("x")
        await state_of(observer, "web", S.STOPPED)
        await pilot.press("s")
        await state_of(observer, "web", S.RUNNING)
        before = observer.snapshot()["web"].restarts
        await pilot.press("r")
        await until(pilot, lambda: observer.snapshot()["web"].restarts > before)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0 and api.refused == []
    assert said(capsys) == "tuisup (services.toml): detached, every service keeps running"
    views = await observer.views()
    assert [views[n].state for n in ("db", "api", "web")] == [S.RUNNING] * 3
    assert host.proc.poll() is None and len(list(tagged_pids(token))) == 3
    await observer.shutdown()
    assert await anyio.to_thread.run_sync(host.finish) == 0
    await observer.close()


async def test_stopping_the_host_from_an_attached_console_is_confirmed(
    tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host, remote, observer = await attached(tmp_path, token)
    app = TuisupApp(remote)
    async with app.run_test(size=(140, 40)) as pilot:
        tree = app.query_one(ServiceTree)
        await until(pilot, lambda: "running" in str(tree.nodes_by_name["web"].label))
        await pilot.press("Q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # not stopped: asked first
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert not remote.stopping and host.proc.poll() is None
        await pilot.press("Q", "y")
        await until(pilot, lambda: not app.is_running, timeout=20)
    assert app.return_code == 0
    assert said(capsys) == "tuisup (services.toml): it stopped, and every service with it"
    assert await anyio.to_thread.run_sync(host.finish) == 0
    assert not list(tagged_pids(token))
    await observer.close()


async def test_a_host_that_dies_ends_the_attached_console_saying_so(
    tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host, remote, observer = await attached(tmp_path, token)
    app = TuisupApp(remote)
    async with app.run_test(size=(140, 40)) as pilot:
        tree = app.query_one(ServiceTree)
        await until(pilot, lambda: "running" in str(tree.nodes_by_name["web"].label))
        os.kill(host.proc.pid, signal.SIGKILL)  # its lifeline kills its services
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 1
    assert said(capsys) == "tuisup (services.toml): the connection to it was lost"
    await observer.close()
