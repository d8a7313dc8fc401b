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
        behind = host.subscribe()
        await host.stop("web")
        for i in range(host.bus.capacity + 10):  # push web's state change off the ring
            host.store.add("chatty", "stdout", [f"line {i}"])
        events = list(host.bus.since(behind.after))
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
        assert snapshot["services"][0]["last_exit"]["signal"] == 15


async def test_lines_of_a_service_that_is_gone_print_as_not_shown(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(web="exec sleep 60")
    async with Host(manifest) as host:
        behind = host.subscribe()
        host.store.add("ghost", "stdout", ["never a service"])
        text = Printer(host, json_mode=False, colour=False).render(
            list(host.bus.since(behind.after))
        )
        assert "[tuisup: 1 line not shown" in text
