"""The headless printer over a real Host: what it prints when it fell behind, or a name left."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.headless import Printer
from tuisup.spec import Manifest

S = ServiceState


async def test_after_missed_events_the_printer_says_where_every_service_stands(
    make_manifest: Callable[..., Manifest],
) -> None:
    """Regression: `missed` was a bare count; the state changes it hid were never told."""
    manifest = make_manifest(web="exec sleep 60", chatty="exec sleep 61")
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        behind = await host.subscribe()
        await host.stop("web")
        for i in range(host.bus.capacity + 10):  # push web's state change off the ring
            host.store.add("chatty", "stdout", [f"line {i}"])
        events = host.lines_inline(list(host.bus.since(behind.after)))
        text = Printer(host, json_mode=False, colour=False).render(events)
        assert "events not shown: the printer fell behind; now:" in text
        assert "  web stopped\n" in text
        assert f"  chatty running (pid {host.snapshot()['chatty'].pid})\n" in text
        lines = Printer(host, json_mode=True, colour=False).render(events).splitlines()
        assert json.loads(lines[0])["event"] == "missed"
        snapshot = json.loads(lines[1])
        assert snapshot["event"] == "snapshot"
        assert [(s["service"], s["state"]) for s in snapshot["services"]] == [
            ("web", "stopped"),
            ("chatty", "running"),
        ]
        assert snapshot["services"][0]["history"][-1]["signal"] == 15


async def test_lines_that_left_the_log_before_they_were_printed_are_said_not_shown(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(web="exec sleep 60")
    async with Host(manifest) as host:
        behind = await host.subscribe()
        for i in range(host.store.max_lines + 5):  # the first lines leave the kept log
            host.store.add("web", "stdout", [f"line {i}"])
        events = host.lines_inline(list(host.bus.since(behind.after)))
        text = Printer(host, json_mode=False, colour=False).render(events)
        assert text.count("[tuisup: 1 line not shown") == 5
        assert f"web | line {host.store.max_lines + 4}\n" in text
