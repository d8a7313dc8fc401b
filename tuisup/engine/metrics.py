"""Provides Metrics: the services' numbers as Prometheus text at `/metrics` (`[tuisup] metrics`).

An observer of the host's bus, as the dependency waker and the hooks are: it counts what the
events say (states, restarts, exits, health, lines, the time from start to running) into
plain numbers, on the loop. A scrape is answered in the HTTP server's own thread from those
numbers, and never waits for the loop: process statistics (CPU, memory) come from the
console's worker (`Host.processes`), cached; a scrape that finds them older than
`STATS_MAX_AGE` asks the loop for fresh ones for the next scrape, and serves the cached ones.

The text is written here, in Prometheus's text format (see `render`), and served by
`prometheus_client`'s threading WSGI server; it is imported only here, and this module only
when metrics are on.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import anyio
from anyio.abc import TaskGroup, TaskStatus
from prometheus_client.exposition import ThreadingWSGIServer

from tuisup.engine.events import (
    HealthChanged,
    ManifestReloaded,
    Missed,
    Output,
    Scaled,
    ServiceState,
    StateChanged,
)
from tuisup.model import Health, ProcessStats

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication

    from tuisup.engine.host import Host

S = ServiceState
STATS_MAX_AGE = 1.0
"""Seconds after which a scrape asks for fresh process statistics."""
START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds, in seconds, of the start-to-running histogram's buckets."""
BOUNDS = (*map(str, START_BUCKETS), "+Inf")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus's text format."""


@dataclass
class Numbers:
    """What is counted of one service (written on the loop, read by scrapes)."""

    state: ServiceState = S.STOPPED
    checked: bool = False
    """Whether it has a health check (only then is its health a series)."""
    health: Health = Health.UNKNOWN
    restarts: int = 0
    exits: dict[tuple[str, str], int] = field(default_factory=dict)
    """Ends of runs by (exit code, signal name), one of them empty."""
    lines: dict[str, int] = field(default_factory=dict)
    starting_since: float | None = None
    starts: list[int] = field(default_factory=lambda: [0] * (len(START_BUCKETS) + 1))
    """Starts that took up to each bound (not cumulative; the last: longer)."""
    start_seconds: float = 0.0
    cpu_gone: float = 0.0
    """CPU seconds of its processes that have ended."""
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    memory: int = 0


class Metrics:
    """Serves the host's metrics over HTTP while it runs (see the module)."""

    def __init__(self, host: Host, address: tuple[str, int]) -> None:
        self._host = host
        self.address = address
        self._numbers: dict[str, Numbers] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: TaskGroup | None = None
        self._stats_at = 0.0
        self._collecting = False
        self._server: _Server | None = None

    def bind(self) -> None:
        """Listen at the address (requests wait until `run`).

        Raises:
            OSError: The address cannot be listened on (in use, not this machine's).
        """
        if self._server is None:
            self._server = _Server(self.address, self._app)

    def close(self) -> None:
        """Stop listening (and serving)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def run(
        self, tg: TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve `/metrics` and follow the bus until cancelled.

        Raises:
            OSError: The address cannot be listened on, if it was not bound before.
        """
        host = self._host
        self._loop, self._tg = asyncio.get_running_loop(), tg
        stream = host.bus.stream(host.bus.last_seq)
        self._resync()
        self.bind()
        assert self._server is not None
        self._server.start()
        self._refresh_stats()  # so that the first scrape has them
        task_status.started()
        try:
            async for batch in stream:
                for event in batch:
                    self._observe(event)
        finally:
            self.close()

    # -- on the loop ------------------------------------------------------------------------

    def _observe(self, event: object) -> None:
        if isinstance(event, Output):
            numbers = self._numbers.get(event.service)
            if numbers is not None:
                numbers.lines[event.stream] = numbers.lines.get(event.stream, 0) + event.count
        elif isinstance(event, StateChanged):
            self._state_changed(event)
        elif isinstance(event, HealthChanged):
            numbers = self._numbers.get(event.service)
            if numbers is not None:
                numbers.health = event.health
        elif isinstance(event, ManifestReloaded | Scaled | Missed):
            self._resync()

    def _state_changed(self, event: StateChanged) -> None:
        numbers = self._numbers.get(event.service)
        if numbers is None:
            return
        numbers.state = event.state
        numbers.restarts = max(numbers.restarts, event.restarts)
        if event.exit_code is not None or event.signal is not None:
            key = (
                "" if event.exit_code is None else str(event.exit_code),
                "" if event.signal is None else _signal_name(event.signal),
            )
            numbers.exits[key] = numbers.exits.get(key, 0) + 1
        if event.state is S.STARTING:
            numbers.starting_since = event.ts
        elif event.state is S.RUNNING and numbers.starting_since is not None:
            took = max(0.0, event.ts - numbers.starting_since)
            numbers.starting_since = None
            bucket = next((i for i, b in enumerate(START_BUCKETS) if took <= b), -1)
            numbers.starts[bucket] += 1
            numbers.start_seconds += took

    def _resync(self) -> None:
        """Take every service's state and health from the host.

        At start, and whenever services may have come or gone unseen: after a reload, a
        scale (a reload of one table), or events missed.
        """
        fresh: dict[str, Numbers] = {}
        for name, view in self._host.snapshot().items():
            numbers = self._numbers.get(name) or Numbers()
            numbers.state, numbers.restarts = view.state, max(numbers.restarts, view.restarts)
            numbers.checked = view.spec.healthcheck is not None
            numbers.health = view.health or Health.UNKNOWN
            fresh[name] = numbers
        self._numbers = fresh  # replaced whole: a scrape reads one or the other

    def _refresh_stats(self) -> None:
        """Collect process statistics for the next scrape (called on the loop)."""
        if self._collecting or self._tg is None:
            return
        self._collecting = True
        self._tg.start_soon(self._collect)

    async def _collect(self) -> None:
        try:
            stats = await self._host.processes()
        finally:
            self._collecting = False
        self._take_stats(stats)

    def _take_stats(self, stats: ProcessStats) -> None:
        for name, numbers in self._numbers.items():
            procs = stats.trees.get(name, ())
            now = {p.pid: p.cpu_time for p in procs}
            numbers.cpu_gone += sum(t for pid, t in numbers.cpu_by_pid.items() if pid not in now)
            numbers.cpu_by_pid = now
            # A counter never goes down, whatever the sampling missed.
            numbers.cpu_seconds = max(numbers.cpu_seconds, numbers.cpu_gone + sum(now.values()))
            numbers.memory = sum(p.rss for p in procs)
        self._stats_at = time.monotonic()

    # -- in the server's thread --------------------------------------------------------------

    def text(self) -> bytes:
        """The metrics as Prometheus text, from the numbers as they are now."""
        if time.monotonic() - self._stats_at > STATS_MAX_AGE and self._loop is not None:
            self._loop.call_soon_threadsafe(self._refresh_stats)
        return render(dict(self._numbers)).encode()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """The WSGI application: `/metrics` (and `/`), nothing else."""
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the metrics are at /metrics\n"]
        body = self.text()
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]


Series = Callable[[Numbers], Iterable[tuple[str, str, object]]]
"""A family's samples for one service: the name's suffix, the labels after `service`, the value."""


def _histogram(n: Numbers) -> Iterator[tuple[str, str, object]]:
    total = 0
    for bound, count in zip(BOUNDS, list(n.starts), strict=True):
        total += count
        yield "_bucket", f',le="{bound}"', total
    yield "_count", "", total
    yield "_sum", "", repr(n.start_seconds)


FAMILIES: tuple[tuple[str, str, str, Series], ...] = (
    (
        "tuisup_service_up",
        "gauge",
        "1 if the service is running.",
        lambda n: [("", "", int(n.state is S.RUNNING))],
    ),
    (
        "tuisup_service_state",
        "gauge",
        "1 for the state the service is in, 0 for the others.",
        lambda n: [("", f',state="{each.value}"', int(each is n.state)) for each in S],
    ),
    (
        "tuisup_service_healthy",
        "gauge",
        "1 if its health check passes (services with one).",
        lambda n: [("", "", int(n.health is Health.HEALTHY))] if n.checked else [],
    ),
    (
        "tuisup_service_restarts_total",
        "counter",
        "Runs started again after one ended.",
        lambda n: [("", "", n.restarts)],
    ),
    (
        "tuisup_service_exits_total",
        "counter",
        "Runs that ended, by exit code or signal.",
        lambda n: [("", f',code="{c}",signal="{g}"', k) for (c, g), k in dict(n.exits).items()],
    ),
    (
        "tuisup_service_log_lines_total",
        "counter",
        "Lines the service wrote, by stream.",
        lambda n: [("", f',stream="{stream}"', k) for stream, k in dict(n.lines).items()],
    ),
    (
        "tuisup_service_cpu_seconds_total",
        "counter",
        "CPU time of its processes.",
        lambda n: [("", "", repr(n.cpu_seconds))],
    ),
    (
        "tuisup_service_memory_bytes",
        "gauge",
        "Resident memory of its processes.",
        lambda n: [("", "", n.memory)],
    ),
    ("tuisup_service_start_seconds", "histogram", "Time from start to running.", _histogram),
)
"""Every family: its name, type, help and samples."""


def render(services: dict[str, Numbers]) -> str:
    """Every family in the text format, a series per service, written out directly.

    prometheus_client's own `generate_latest` took 60 ms for 500 services (it checks and
    escapes every name and label); here the names are tuisup's, and the label values
    service names (`[A-Za-z][A-Za-z0-9_-]*`), states, streams, codes and signal names,
    none of which needs escaping.
    """
    items = list(services.items())
    out: list[str] = []
    for name, kind, text, series in FAMILIES:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        for service, numbers in items:
            out.extend(
                f'{name}{suffix}{{service="{service}"{labels}}} {value}\n'
                for suffix, labels, value in series(numbers)
            )
    return "".join(out)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class _Quiet(WSGIRequestHandler):
    """Logs no request: stderr is the printer's."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Say nothing."""


class _Server6(ThreadingWSGIServer):
    """The server, on an IPv6 address."""

    address_family = socket.AF_INET6


class _Server:
    """An HTTP server in a thread of its own that sleeps until a request or `close`."""

    def __init__(self, address: tuple[str, int], app: WSGIApplication) -> None:
        host, port = address
        server_class = _Server6 if ":" in host else ThreadingWSGIServer
        self._server: WSGIServer = make_server(host, port, app, server_class, handler_class=_Quiet)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="tuisup-metrics", daemon=True)

    def start(self) -> None:
        """Answer requests, in a thread of its own."""
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:  # no timeout: an idle server wakes nobody
                for key, _ in selector.select():
                    if key.fileobj == self._wake_r:
                        return
                    self._server.handle_request()

    def close(self) -> None:
        """Stop serving; return once the thread has ended."""
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join()
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
