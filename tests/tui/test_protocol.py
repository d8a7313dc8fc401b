"""Front ends know a host only through the HostAPI Protocol: by their imports, and in use."""

from __future__ import annotations

import ast
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

import tuisup
from tests.conftest import tagged_pids, wait_until
from tuisup.api import HostAPI
from tuisup.engine import Host, ServiceState
from tuisup.headless import Printer, follow
from tuisup.spec import Manifest, RestartPolicy
from tuisup.tui.app import TuisupApp
from tuisup.tui.widgets.log_view import LogView
from tuisup.tui.widgets.service_tree import ServiceTree

S = ServiceState
PACKAGE = Path(tuisup.__file__).parent
PROTOCOL = frozenset(name for name in dir(HostAPI) if not name.startswith("_"))
FRONT_ENDS = [PACKAGE / "headless.py", *sorted((PACKAGE / "tui").rglob("*.py"))]


class OnlyTheProtocol:
    """A real Host seen through the Protocol alone: anything else is an AttributeError."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.used: set[str] = set()
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in PROTOCOL:
            self.refused.append(name)
            raise AttributeError(f"{name} is not part of HostAPI")
        self.used.add(name)
        return getattr(self._host, name)


def test_front_ends_import_nothing_of_the_engine() -> None:
    for path in FRONT_ENDS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tuisup.engine"), (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("tuisup.engine"), (path.name, alias.name)


async def test_the_console_runs_on_the_protocol_alone(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(web="echo hello; exec sleep 60", other="exec sleep 61")
    async with Host(manifest) as host:
        api = OnlyTheProtocol(host)
        app = TuisupApp(api)  # type: ignore[arg-type]
        async with app.run_test(size=(140, 40)) as pilot:

            async def until(predicate: Callable[[], bool]) -> None:
                with anyio.fail_after(10):
                    while not predicate():
                        await pilot.pause(0.05)

            tree = app.query_one(ServiceTree)
            view = app.query_one(LogView)
            await until(lambda: "running" in str(tree.nodes_by_name["web"].label))
            await until(lambda: any("hello" in t for t in view.visible_text()))
            await pilot.press("down")  # web
            for key, state in (("x", S.STOPPED), ("s", S.RUNNING), ("r", S.RUNNING)):
                await pilot.press(key)
                await wait_until(host, lambda s, state=state: s["web"].state is state)
            await pilot.press("k")
            await wait_until(host, lambda s: s["web"].restarts >= 2)
            await pilot.press("W", "enter")  # the watch toggle, and the detail screen
            await pilot.press("escape", "L")  # and a reload
            await until(lambda: {"processes", "logs", "subscribe"} <= api.used)
            await pilot.press("q")
            await until(lambda: not app.is_running)
        assert api.refused == []
    assert not list(tagged_pids(token))


async def test_the_printer_runs_on_the_protocol_alone(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(web=("echo hello", {"restart": RestartPolicy.NEVER}))
    out = io.StringIO()
    host = Host(manifest)
    api: Any = OnlyTheProtocol(host)
    printer = Printer(api, json_mode=False, colour=False)
    subscription = await api.subscribe(lines=True)
    async with host:
        status = await follow(api, printer, subscription, out)
    assert status == 0 and api.refused == []
    assert "web | hello" in out.getvalue()
    assert out.getvalue().rstrip().endswith("tuisup: every service stopped")
