"""Provides the fixtures the manifest tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path so that problems name `services.toml` as a user would type it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()
