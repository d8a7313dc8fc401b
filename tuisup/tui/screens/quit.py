"""Provides QuitScreen: what is still stopping while the console quits."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tuisup.api import HostAPI
from tuisup.model import ACTIVE


class QuitScreen(ModalScreen[None]):
    """Lists the services not yet stopped; q again kills them at once."""

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical {
        width: 64; height: auto; max-height: 80%;
        border: thick $warning; background: $panel; padding: 1 2;
    }
    """
    BINDINGS = [("q", "app.quit", "Kill now")]

    def __init__(self, host: HostAPI) -> None:
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        """A title and the list."""
        with Vertical():
            yield Static(Text("Stopping every service…", "bold"))
            yield Static(id="stopping")
            yield Static(Text("press q again to kill them now", "dim"))

    def on_mount(self) -> None:
        """Refresh the list until the app exits."""
        self.refresh_list()
        self.set_interval(0.1, self.refresh_list)

    def refresh_list(self) -> None:
        """Show which services are still alive, and how."""
        left = [s for s in self.host.snapshot().values() if s.state in ACTIVE]
        text = Text()
        for status in left:
            timeout = status.spec.stop_timeout
            text.append(
                f"  ◑ {status.name}  {status.state.value}  (stop timeout {timeout:g}s)\n", "yellow"
            )
        self.query_one("#stopping", Static).update(text or Text("  all stopped", "green"))
