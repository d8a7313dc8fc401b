"""A refused client of another user is said by both front ends: the printer and the console."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from tuisup.engine import Host
from tuisup.headless import Printer
from tuisup.model.events import ControlRefused
from tuisup.spec import Manifest
from tuisup.tui.app import TuisupApp


async def test_the_console_notifies_a_refused_client(
    make_manifest: Callable[..., Manifest],
) -> None:
    async with Host(make_manifest(web="exec sleep 30")) as host:
        app = TuisupApp(host)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            host.bus.emit(ControlRefused, pid=4242, uid=1001)
            with anyio.fail_after(10):
                while not app._notifications:
                    await pilot.pause(0.02)
            [note] = list(app._notifications)
            assert note.title == "control connection refused"
            assert note.message == "uid 1001 (pid 4242): only this user may control tuisup"
            await pilot.press("q")


def test_the_printer_says_it_in_text_and_in_json(make_manifest: Callable[..., Manifest]) -> None:
    host = Host(make_manifest(web="exec sleep 30"))
    event = ControlRefused(seq=7, ts=1.5, pid=4242, uid=1001)
    text = Printer(host, json_mode=False, colour=False).render([event])
    assert text == (
        "tuisup: refused a control connection from uid 1001 (pid 4242): not this user\n"
    )
    line = Printer(host, json_mode=True, colour=False).render([event])
    assert line == '{"seq": 7, "ts": 1.5, "event": "control_refused", "pid": 4242, "uid": 1001}\n'
