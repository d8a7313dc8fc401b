"""Events: frozen keyword-only records, and a module that costs little to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuisup.engine.events import Missed, ServiceState, StateChanged

EVENTS = Path(__file__).resolve().parents[2] / "tuisup" / "model" / "events.py"


def test_importing_the_events_compiles_no_code() -> None:
    """Regression: each event was a frozen dataclass, and `dataclass` compiles six methods
    from source per class as the module is imported: 72 compilations, 7.5 ms of every
    start, the costliest of tuisup's own imports."""
    code = (
        "import enum, sys, time, collections, typing, anyio, importlib.util\n"
        "import tuisup.model.states, tuisup.model.views, tuisup.model.record\n"
        "compiled = []\n"
        "sys.addaudithook(lambda event, args: event in ('compile', 'exec')"
        " and compiled.append(event))\n"
        f"spec = importlib.util.spec_from_file_location('events_alone', {str(EVENTS)!r})\n"
        "module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(compiled.count('exec') - 1)\n"  # the module's own code is executed once
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", f"{done.stdout.strip()} code objects compiled and run"


def test_events_are_frozen_keyword_only_records_with_defaults() -> None:
    event = StateChanged(seq=1, ts=2.0, service="web", old=ServiceState.STOPPED, state="running")
    assert event.pid is None and event.restarts == 0  # defaults
    assert repr(Missed(seq=3, ts=4.0, count=5)) == "Missed(seq=3, ts=4.0, count=5)"
    with pytest.raises(AttributeError):
        event.pid = 4  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 'count'"):
        Missed(seq=1, ts=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no field colour"):
        Missed(seq=1, ts=1.0, count=1, colour="red")  # type: ignore[call-arg]
    assert not hasattr(event, "__dict__")  # slots: a ring of 65,536 events stays small
    assert event.to_json()["state"] == "running" and "pid" not in event.to_json()
