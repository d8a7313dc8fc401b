"""Provides HostAPI: the one interface front ends use, whichever host they talk to.

The in-process `Host` (tuisup.engine) and the control socket's client
(`tuisup.control.client.RemoteHost`) both implement it, so the console runs unchanged on
either: embedded, or attached to a host in another process. The printer, the socket
server and the CLI verbs use nothing else of a host either.

Reads that widgets make all the time are local: `snapshot()` is the host's own state
in-process, and a mirror kept up to date by the client's subscription remotely. What must
travel (commands, log reads, process statistics) is awaited.

Only `typing` is imported here at run time: the client and `tuisup ps` load no more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tuisup.model import Event, LogBatch, ProcessStats, ServiceView, TableView


class Subscription(Protocol):
    """Where every service stood when it was taken, then every event after it, in batches."""

    snapshot: dict[str, ServiceView]
    """Every service's view, in manifest order, as of `after`."""
    after: int
    """The sequence number of the last event the snapshot includes."""

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        """Batches of events, in order; a `missed` event if the reader fell too far behind."""
        ...


class HostAPI(Protocol):
    """What a front end can ask of a host."""

    @property
    def manifest_path(self) -> str:
        """The manifest the host runs, as it was given."""
        ...

    @property
    def remote(self) -> bool:
        """Whether the host runs in another process (quitting then detaches)."""
        ...

    @property
    def stopping(self) -> bool:
        """Whether the host's shutdown has begun."""
        ...

    def snapshot(self) -> dict[str, ServiceView]:
        """Every service's view now, in manifest order (no round trip: see the module)."""
        ...

    async def subscribe(self, *, lines: bool = False) -> Subscription:
        """The snapshot, then every event after it.

        Args:
            lines: Carry the lines an `output` event announces in the event itself.
        """
        ...

    async def start(self, name: str) -> None:
        """Start a service, and first the dependencies it needs that are not up.

        Raises:
            UnknownService: No such service.
        """
        ...

    async def stop(self, name: str) -> None:
        """Stop a service, and first the services that depend on it."""
        ...

    async def restart(self, name: str) -> None:
        """Restart a service (not counted against its restart budget)."""
        ...

    async def kill(self, name: str) -> None:
        """SIGKILL a service's process group now; its restart policy then applies."""
        ...

    async def affected(self, verb: str, name: str) -> list[str]:
        """The other services that `verb` (start, stop, restart) on `name` would move now."""
        ...

    async def tables(self) -> dict[str, TableView]:
        """Every replicated table (a service with `replicas`) now, in manifest order.

        A table scaled to zero has no service in the snapshot; it is here.
        """
        ...

    async def scale(self, name: str, count: int) -> None:
        """Run `count` replicas of a replicated table; the others keep running.

        Raises:
            UnknownService: No such table.
            CannotScale: It has no `replicas` key (or is a group, or a replica), or its
                ports would overlap another's.
        """
        ...

    async def toggle_watch(self, name: str) -> bool | None:
        """Pause or resume restarting a service for its changed files; the new state."""
        ...

    async def reload(self) -> bool:
        """Read the manifest again and apply what changed; whether it was applied.

        What changed (or why nothing did) comes as a `manifest_reloaded` or
        `manifest_invalid` event.
        """
        ...

    async def logs(self, name: str | None = None, since: int = 0) -> list[LogBatch]:
        """The kept lines numbered after `since`, of one service or of all merged.

        A replicated service's name: its replicas' lines, merged.
        """
        ...

    async def reopen_logs(self) -> None:
        """Open every log file's path again at its next line (after `logrotate` moved them)."""
        ...

    async def processes(self) -> ProcessStats:
        """Every running service's OS process tree, with CPU and memory."""
        ...

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Stop every service and the host; return once it has stopped."""
        ...

    async def close(self) -> None:
        """Let go of the host: a client detaches (everything keeps running)."""
        ...
