"""Provides the command palette's service commands: start, stop, restart and kill by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tuisup.tui.app import TuisupApp

VERBS = ("start", "stop", "restart", "kill")


class ServiceCommands(Provider):
    """`restart web`, `stop db`, … for every service, and `restart all`."""

    def _commands(self) -> list[tuple[str, Callable[[], None], str]]:
        app: TuisupApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], None], str]] = [
            (f"{verb} {name}", partial(app.command, verb, name), f"{verb.capitalize()} {name}")
            for name in app.api.snapshot()
            for verb in VERBS
        ]
        commands.append(("restart all", app.action_restart_all, "Restart every service"))
        return commands

    async def discover(self) -> Hits:
        """Offer every command before anything is typed."""
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Match commands against what was typed."""
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
