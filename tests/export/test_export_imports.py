"""`export` and `import` run locally: neither anyio, the engine nor Textual is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.export.conftest import DEMO

FORBIDDEN = ("anyio", "textual", "psutil", "watchfiles")


def imported(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tuisup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "| " in line]


@pytest.mark.parametrize("target", ["compose", "k8s", "systemd"])
def test_export_loads_neither_anyio_textual_nor_the_engine(tmp_path: Path, target: str) -> None:
    modules = imported("-f", str(DEMO), "export", target, "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert "tuisup.export.common" in modules
    assert "yaml" in modules or target == "systemd"
    assert not [m for m in modules if m.split(".")[0] in FORBIDDEN]
    assert not [m for m in modules if m.startswith(("tuisup.engine", "tuisup.tui"))]


@pytest.mark.parametrize("name", ["Procfile", "compose.yaml"])
def test_import_loads_neither_anyio_textual_nor_the_engine(tmp_path: Path, name: str) -> None:
    text = "web: python -m http.server\n"
    (tmp_path / name).write_text(
        text if name == "Procfile" else "services:\n  web:\n    command: x\n"
    )
    modules = imported("import", name, cwd=tmp_path)
    assert "tuisup.importers.model" in modules
    assert not [m for m in modules if m.split(".")[0] in FORBIDDEN]
    assert not [m for m in modules if m.startswith(("tuisup.engine", "tuisup.tui"))]
