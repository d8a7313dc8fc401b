"""Regression: the printer said `tuisup: stopping 1 services` (a plural with one)."""

from __future__ import annotations

from typing import Any

import pytest

from tuisup.headless import Printer
from tuisup.model import events as ev


class NoServices:
    """As much of a host as the printer reads outside `missed`: its names, none."""

    def snapshot(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("count", "said"),
    [(0, "stopping 0 services"), (1, "stopping 1 service"), (2, "stopping 2 services")],
)
def test_the_stopping_line_counts_its_services(count: int, said: str) -> None:
    printer = Printer(NoServices(), json_mode=False, colour=False)  # type: ignore[arg-type]
    event = ev.HostStopping(seq=1, ts=0.0, reason="SIGTERM", count=count)
    assert printer.render([event]) == f"tuisup: {said} (SIGTERM)\n"
