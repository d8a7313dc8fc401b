"""Provides health checks: the three probes and the monitor that turns their results into a flag.

Every probe is bounded by the check's timeout and never blocks the event loop: TCP and
HTTP use the loop's sockets, a command is spawned (vfork + exec, as a service is) into a
session of its own and watched through a pidfd. Whatever way a command probe ends (passed,
failed, timed out, or the monitor cancelled with its service), its whole process group is
SIGKILLed and the leader reaped before the probe returns.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping

import anyio
import anyio.abc
from anyio.abc import TaskGroup

from tuisup.engine.clock import SYSTEM, Clock
from tuisup.engine.events import Bus, Health, HealthChanged
from tuisup.engine.executors.process import await_command, service_env, spawn_command
from tuisup.engine.reaper import Reaper
from tuisup.spec import HealthCheck, HealthKind, ServiceSpec

EAGER_INTERVAL = 0.1
"""Seconds between checks until the first pass, for EAGER_FOR seconds after the start..."""
EAGER_FOR = 2.0
FAST_INTERVAL = 0.5
"""...and after that, until the first pass: dependents start soon after their dependency
is ready, and a slow starter is not probed ten times a second for long."""
OUTPUT_KEPT = 400
"""Characters of a failed command's output kept for the reason."""

Report = Callable[[Health, str | None, int], None]
"""Called with the new flag, the last failure and the failures counted in a row."""


class HealthChecks:
    """One service's health: the flag, and a monitor checking each run, ended with the run.

    Every change of the flag is announced on the bus (`HealthChanged`).
    """

    def __init__(
        self,
        service: str,
        bus: Bus,
        reaper: Reaper,
        clock: Clock = SYSTEM,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        self.health = Health.UNKNOWN
        """The current run's health (unknown without a health check, or between runs)."""
        self.reason: str | None = None
        """The last failed check's reason, while unhealthy."""
        self._bus = bus
        self._reaper = reaper
        self._clock = clock
        self._host_env = host_env if host_env is not None else {}
        """What the host tells its commands, as it tells the service's (`Host.env`)."""
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None

    def start(
        self, spec: ServiceSpec, tg: TaskGroup, on_unhealthy: Callable[[str | None], None]
    ) -> None:
        """Start checking a run that just started; `on_unhealthy` hears it turn unhealthy."""
        self._scope, self._done = scope, done = anyio.CancelScope(), anyio.Event()

        def report(health: Health, reason: str | None, failures: int) -> None:
            if scope is not self._scope:
                return  # a monitor of an earlier run, cancelled meanwhile
            self._set(health, reason, failures)
            if health is Health.UNHEALTHY:
                on_unhealthy(reason)

        monitor = HealthMonitor(spec, self._reaper, report, self._clock, self._host_env)

        async def run() -> None:
            try:
                with scope:
                    await monitor.run()
            finally:
                done.set()

        tg.start_soon(run)

    def cancel(self, reason: str) -> None:
        """Stop checking (the run ended, or its check changed): health is unknown again."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        if self.health is not Health.UNKNOWN:
            self._set(Health.UNKNOWN, reason)

    async def stopped(self) -> None:
        """Wait until the last run's checks ended (a check command killed and reaped)."""
        if self._done is not None:
            with anyio.CancelScope(shield=True):
                await self._done.wait()

    def _set(self, health: Health, reason: str | None, failures: int = 0) -> None:
        old, self.health, self.reason = self.health, health, reason
        self._bus.emit(
            HealthChanged,
            service=self.service,
            old=old,
            health=health,
            reason=reason,
            failures=failures,
        )


class HealthMonitor:
    """Checks one run of a service until cancelled, and reports each change of its health."""

    def __init__(
        self,
        spec: ServiceSpec,
        reaper: Reaper,
        report: Report,
        clock: Clock = SYSTEM,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        assert spec.healthcheck is not None
        self.spec = spec
        self.check: HealthCheck = spec.healthcheck
        self.health = Health.UNKNOWN
        self.failures = 0
        self._reaper = reaper
        self._report = report
        self._clock = clock
        self._host_env = host_env if host_env is not None else {}

    async def run(self) -> None:
        """Check until cancelled: at once, then often until the first pass, then by `interval`.

        Until the first pass, checks come every 0.1 s for 2 s, then every 0.5 s. Failures
        in the first `start_period` seconds do not count; before the first pass at most one
        failure counts per `interval`, so the quick early checks can make a service healthy
        sooner but never unhealthy sooner.
        """
        check = self.check
        started = self._clock.monotonic()
        counted_at = -math.inf
        while True:
            began = self._clock.monotonic()
            failure = await probe(check, self.spec, self._reaper, self._host_env)
            now = self._clock.monotonic()
            if failure is None:
                self.failures = 0
                self._set(Health.HEALTHY, None)
            else:
                settled = now - started >= check.start_period
                spaced = self.health is not Health.UNKNOWN or now - counted_at >= check.interval
                if settled and spaced:
                    self.failures += 1
                    counted_at = now
                if self.failures >= check.retries:
                    self._set(Health.UNHEALTHY, failure)
            every = check.interval
            if self.health is Health.UNKNOWN:
                every = EAGER_INTERVAL if now - started < EAGER_FOR else FAST_INTERVAL
            elapsed = self._clock.monotonic() - began
            await self._clock.sleep(max(0.0, min(every, check.interval) - elapsed))

    def _set(self, health: Health, reason: str | None) -> None:
        if health is not self.health:
            self.health = health
            self._report(health, reason, self.failures)


async def probe(
    check: HealthCheck, spec: ServiceSpec, reaper: Reaper, host_env: Mapping[str, str]
) -> str | None:
    """Run one check; return None if it passed, or what went wrong.

    A command runs in the environment the service's own command gets: `host_env` too.
    """
    try:
        with anyio.fail_after(check.timeout):
            match check.kind:
                case HealthKind.TCP:
                    return await _tcp(check)
                case HealthKind.HTTP:
                    return await _http(check)
                case HealthKind.COMMAND:
                    return await _command(check, spec, reaper, host_env)
    except TimeoutError:
        return f"timed out after {check.timeout:g}s"
    except OSError as exc:
        # anyio wraps the attempts' errors in one "All connection attempts failed".
        return _describe(exc.__cause__ if isinstance(exc.__cause__, OSError) else exc)
    except (anyio.BrokenResourceError, anyio.EndOfStream):
        return "connection closed"
    except Exception as exc:  # a check that breaks is a failed check, never a host crash
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError(check.kind)


def _describe(error: OSError) -> str:
    """`Connection refused`, `Name or service not known`, `TLS: CERTIFICATE_VERIFY_FAILED`."""
    import ssl

    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error)
    return os.strerror(error.errno)  # not asyncio's "Connect call failed (…)"


async def _tcp(check: HealthCheck) -> str | None:
    stream = await anyio.connect_tcp(check.host, check.port)
    await stream.aclose()
    return None


async def _http(check: HealthCheck) -> str | None:
    """GET the URL over HTTP/1.1 and judge the status line; the body is not read."""
    host = f"[{check.host}]" if ":" in check.host else check.host
    request = (
        f"GET {check.path} HTTP/1.1\r\nHost: {host}:{check.port}\r\n"
        "User-Agent: tuisup-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    stream: anyio.abc.ByteStream
    if check.tls:
        stream = await anyio.connect_tcp(check.host, check.port, tls=True)
    else:
        stream = await anyio.connect_tcp(check.host, check.port)
    async with stream:
        await stream.send(request.encode("latin-1"))
        head = b""
        while b"\n" not in head and len(head) < 8192:
            try:
                head += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    parts = head.split(b"\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return "no HTTP response" if not head else "not an HTTP response"
    status = int(parts[1])
    passed = status == check.status if check.status is not None else 200 <= status < 300
    return None if passed else f"HTTP {status}"


async def _command(
    check: HealthCheck, spec: ServiceSpec, reaper: Reaper, host_env: Mapping[str, str]
) -> str | None:
    """Run the command in its own session; kill its group and reap it, however this ends."""
    env = service_env(spec, reaper, host_env)
    try:
        leader, read_fd = spawn_command(check.argv, spec, env, reaper)
    except OSError as exc:
        return f"cannot run: {exc.strerror or exc}"
    output = bytearray()

    def keep(data: bytes) -> None:  # only the last OUTPUT_KEPT bytes
        output.extend(data)
        del output[:-OUTPUT_KEPT]

    code, _ = await await_command(leader, read_fd, keep)  # bounded by the check's timeout
    if code == 0:
        return None
    how = f"exit code {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"
    text = output.decode("utf-8", "replace").strip()
    text = text[-OUTPUT_KEPT:].splitlines()[-1] if text else ""
    return f"{how}: {text}" if text else how
