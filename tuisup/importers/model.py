"""Provides what the importers make: `Imported`, and `ImportFailure` for input they can't read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tuisup.export.common import Loss

TARGET = "tuisup"
"""How losses name the target of an import."""


class ImportFailure(Exception):
    """The input cannot be read: the message names the file and line."""


@dataclass
class Imported:
    """A manifest to write, in the words of services.toml."""

    origin: str
    """The input as the user named it, as messages show it (`path_text`)."""
    header: list[str] = field(default_factory=list)
    """Comment lines at the top."""
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each service's keys and values, in order."""
    intro: dict[str, list[str]] = field(default_factory=dict)
    """Comment lines at the top of a service's table."""
    notes: dict[str, dict[str, str]] = field(default_factory=dict)
    """A comment after a service's key: service → key → text."""
    left_out: list[str] = field(default_factory=list)
    """Comment lines for the services left out, and why."""
    losses: list[Loss] = field(default_factory=list)
    """What tuisup cannot express, one warning each."""

    def note(self, service: str, key: str, text: str) -> None:
        """Explain a key's value with a comment after it."""
        self.notes.setdefault(service, {})[key] = text

    def lose(self, service: str | None, key: str, why: str) -> None:
        """Record a setting that tuisup cannot express."""
        self.losses.append(Loss(service, key, TARGET, why))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}


def seconds(value: object) -> float | None:
    """A compose duration (`1m30s`, `500ms`, or a number of seconds) in seconds, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if not _DURATION.sub("", text) == "" or not text:
        return None
    total = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    return int(total) if total == int(total) else round(total, 3)


def service_name(name: str) -> str:
    """A name tuisup takes: letters, digits, `-` and `_`, starting with a letter."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"s-{cleaned}" if cleaned else "service"
    return cleaned[:64]
