"""Provides the Supervisor: one service's state machine, restart policy, backoff and budget.

A supervisor is an actor. Commands (start, stop, restart) and what happens to its service
(a run ended, a backoff delay elapsed, its dependencies changed, it turned unhealthy) arrive
as messages in one inbox and are handled one at a time, so two commands to one service
never overlap and a service never has two live incarnations.

Every start, first or again, passes the dependency gate the host gives: a service whose
dependencies do not hold is `waiting` until the host says they changed.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.backoff import Backoff
from tuisup.engine.deps import READY, Verdict
from tuisup.engine.events import (
    Bus,
    Health,
    HealthChanged,
    RestartScheduled,
    ServiceState,
    StateChanged,
)
from tuisup.engine.executors import Executor, ExitStatus, Run, StartError
from tuisup.engine.executors.base import KILL_GRACE
from tuisup.engine.health import HealthChecks
from tuisup.engine.logs import LogStore
from tuisup.engine.reaper import Reaper
from tuisup.engine.status import (
    ACTIVE,
    LIVE,
    TRANSITIONS,
    ExitRecord,
    ServiceStatus,
    TransitionError,
)
from tuisup.spec import RestartPolicy, ServiceSpec

S = ServiceState

RESET_AFTER = 10.0
"""Seconds a run must last for the next failure to start the backoff from its first delay."""

HISTORY = 20
"""Exits remembered per service."""


class Supervisor:
    """Runs one service through an executor and restarts it by its policy."""

    def __init__(
        self,
        spec: ServiceSpec,
        executor: Executor,
        bus: Bus,
        logs: LogStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        gate: Callable[[str], Verdict] | None = None,
        on_change: Callable[[Supervisor], None] | None = None,
        reaper: Reaper | None = None,
    ) -> None:
        self.spec = spec
        self.state = S.STOPPED
        self.health = Health.UNKNOWN
        """The current run's health (unknown without a health check)."""
        self.health_reason: str | None = None
        self.restarts = 0
        """Restarts made, automatic or asked for."""
        self.history: deque[ExitRecord] = deque(maxlen=HISTORY)
        self.reason: str | None = None
        self._executor = executor
        self._bus = bus
        self._logs = logs
        self._clock = clock
        self._backoff = Backoff(
            spec.backoff, spec.backoff_delay, spec.backoff_max, spec.jitter, rng
        )
        self._failures: deque[float] = deque()
        self._run: Run | None = None
        self._runs = 0
        self._started_mono = 0.0
        self._started_wall: float | None = None
        self._next_start: float | None = None
        self._timer: anyio.CancelScope | None = None
        self._starting: anyio.CancelScope | None = None
        """While a run is starting: what a stop cancels to end the pending start at once."""
        self._changed: list[Path] | None = None
        self._send, self._inbox = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        self._tg: TaskGroup | None = None
        self._gate = gate or (lambda name: READY)
        self._on_change = on_change or (lambda sup: None)
        self._checks = HealthChecks(reaper or Reaper(), clock)
        self._waiting_for: tuple[str, ...] = ()
        self.starts_queued = 0
        """Starts and restarts posted and not handled yet: a dependency that failed but is
        about to start again does not block its dependents."""
        self._waiting_restart = False
        """Whether the start a `waiting` service waits to make is a restart."""
        self._stops_queued = 0
        """Stops posted and not handled yet: nothing is started meanwhile."""

    # -- the public commands ------------------------------------------------------------

    async def start(self) -> None:
        """Start the service (a no-op if it is alive); resets its backoff and budget."""
        await self._ask("start")

    async def stop(self) -> None:
        """Stop the service, or cancel its pending restart."""
        await self._ask("stop")

    async def restart(self) -> None:
        """Stop the service if it runs, then start it again; not counted as a failure."""
        await self._ask("restart")

    async def respec(self, spec: ServiceSpec, executor: Executor) -> None:
        """Take a changed spec: a live service is stopped and started again under it."""
        await self.post("respec", spec, executor).wait()

    async def adopt(self, spec: ServiceSpec) -> None:
        """Take a spec changed only in how tuisup steers it (see `RUN_FIELDS`), in place."""
        await self.post("adopt", spec).wait()

    def files_changed(self, paths: list[Path]) -> None:
        """Restart for changed files: at most one such restart in flight, the last wins."""
        queued = self._changed is not None
        self._changed = paths
        if not queued:
            self.post("changed")

    def close(self) -> None:
        """End `serve` once the inbox is empty (the service left the manifest)."""
        self._send.close()

    def kill(self) -> None:
        """SIGKILL the current run now, bypassing the queue (the second Ctrl-C)."""
        if self._run is not None:
            self._run.kill()

    def uptime(self) -> float:
        """Seconds the current run has been running (0 when it does not run)."""
        return self._clock() - self._started_mono if self.state is S.RUNNING else 0.0

    def status(self) -> ServiceStatus:
        """Return a snapshot of this service."""
        return ServiceStatus(
            name=self.spec.name,
            state=self.state,
            pid=self._run.pid if self._run is not None and self.state in LIVE else None,
            executor=self._run.kind.value if self._run is not None else None,
            restarts=self.restarts,
            started=self._started_wall if self.state in (S.RUNNING, S.STOPPING) else None,
            next_start=self._next_start if self.state is S.BACKOFF else None,
            reason=self.reason,
            health=self.health
            if self.state is S.RUNNING and self.spec.healthcheck is not None
            else None,
            health_reason=self.health_reason if self.health is Health.UNHEALTHY else None,
            waiting_for=self._waiting_for if self.state is S.WAITING else (),
            history=tuple(self.history),
            spec=self.spec,
            log_problem=self._logs.file_problem(self.spec.name),
        )

    async def serve(self, tg: TaskGroup) -> None:
        """Handle the inbox until cancelled; runs are watched by tasks in `tg`."""
        self._tg = tg
        async with self._inbox:
            async for message in self._inbox:
                try:
                    await self._handle(*message)
                except Exception as exc:  # a bug of ours must not take the host down
                    self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        """Report an unexpected error in this service's log, and fail it if that is allowed."""
        details = "".join(traceback.format_exception(exc))
        self._logs.add(self.spec.name, "stderr", details.rstrip("\n").split("\n"))
        reason = f"tuisup internal error: {type(exc).__name__}: {exc}"
        self._logs.marker(self.spec.name, reason)
        if S.FAILED in TRANSITIONS[self.state]:
            self._transition(S.FAILED, reason=reason)

    # -- the actor ------------------------------------------------------------------------

    async def _ask(self, command: str) -> None:
        await self.post(command).wait()

    def post(self, command: str, *args: Any) -> anyio.Event:
        """Queue `start`, `stop` or `restart` without waiting; the event is set once done."""
        done = anyio.Event()
        self._send.send_nowait((command, done, *args))
        if command in ("start", "restart"):
            self.starts_queued += 1
        elif command == "stop":
            self._stops_queued += 1
            if self._starting is not None:
                self._starting.cancel()  # the actor waits for that start: end it now
        return done

    async def _handle(self, command: str, arg: Any, *more: Any) -> None:
        if command == "exited":
            await self._on_exit(arg, *more)
        elif command == "unhealthy":
            await self._on_unhealthy(arg, *more)
        elif command == "retry":
            if self.state is S.BACKOFF and arg is self._timer:
                await self._launch(restart=True)
        else:
            if command in ("start", "restart"):
                self.starts_queued -= 1
            elif command == "stop":
                self._stops_queued -= 1
            try:
                await getattr(self, f"_do_{command}")(*more)
            finally:
                arg.set()

    async def _do_start(self) -> None:
        if self.state in (S.STARTING, S.RUNNING, S.STOPPING):
            return
        self._cancel_timer()
        self._backoff.reset()
        self._failures.clear()
        await self._launch(restart=self._waiting_restart if self.state is S.WAITING else False)

    async def _do_dependencies(self) -> None:
        """Its dependencies changed: a waiting service looks again."""
        if self.state is S.WAITING:
            await self._launch(restart=self._waiting_restart)

    async def _do_stop(self) -> None:
        if self.state is S.BACKOFF:
            self._cancel_timer()
            self._transition(S.STOPPED, reason="stopped during backoff")
        elif self.state is S.WAITING:
            self._transition(S.STOPPED, reason="stopped while waiting")
        elif self.state is S.RUNNING and self._run is not None:
            run = self._run
            self._transition(S.STOPPING, pid=run.pid)
            status = await run.stop(self.spec.stop_signal, self.spec.stop_timeout)
            await self._checks.stopped()
            record = self._record(status, requested=True)
            if status.stuck:
                self._transition(S.FAILED, reason=status.error, **record.event_fields())
            else:
                self._transition(S.STOPPED, **record.event_fields())

    async def _do_respec(self, spec: ServiceSpec, executor: Executor) -> None:
        live = self.state in ACTIVE
        await self._do_stop()
        self.spec = spec
        self._executor = executor
        self._backoff = Backoff(spec.backoff, spec.backoff_delay, spec.backoff_max, spec.jitter)
        self._failures.clear()
        if live:
            await self._launch(restart=True)

    async def _do_adopt(self, spec: ServiceSpec) -> None:
        old, self.spec = self.spec, spec
        steps = (spec.backoff, spec.backoff_delay, spec.backoff_max, spec.jitter)
        if steps != (old.backoff, old.backoff_delay, old.backoff_max, old.jitter):
            self._backoff = Backoff(*steps)
        if spec.healthcheck != old.healthcheck and self.state is S.RUNNING:
            assert self._run is not None and self._tg is not None
            self._checks.cancel()
            await self._checks.stopped()
            if self.health is not Health.UNKNOWN:
                self._set_health(Health.UNKNOWN, "health check changed")
            if spec.healthcheck is not None:
                self._checks.start(spec, self._tg, partial(self._health_report, self._run))
        if self.state is S.WAITING:  # what it waits for may have changed
            await self._launch(restart=self._waiting_restart)

    async def _do_changed(self) -> None:
        paths, self._changed = self._changed or [], None
        if self.state in (S.STOPPED, S.STOPPING):
            return  # stopped on purpose: a save does not start it
        if self.state is S.WAITING:
            await self._executor.refresh(self.spec, paths)
            return  # it starts with the new files once its dependencies hold
        shown = ", ".join(p.name for p in paths[:3]) + (
            f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        )
        self._logs.marker(self.spec.name, f"── {shown} changed: restarting ──")
        await self._executor.refresh(self.spec, paths)
        if self.state is S.RUNNING:
            await self._do_stop()
        self._cancel_timer()
        if self.state is S.BACKOFF:
            self._transition(S.STOPPED, reason="restarting for changed files")
        self._backoff.reset()
        self._failures.clear()  # a fix saved is a fresh start, like a manual one
        await self._launch(restart=True)

    async def _do_restart(self) -> None:
        if self.state is S.RUNNING:
            await self._do_stop()
            await self._launch(restart=True)
        else:
            await self._do_start()

    async def _launch(self, *, restart: bool) -> None:
        """Start a run if the dependencies hold; otherwise wait for them, or fail."""
        self._cancel_timer()
        verdict = self._gate(self.spec.name)
        if verdict.refused or self._stops_queued:
            return  # shutting down, or a stop is next: starting now would be undone at once
        if verdict.blocked is not None:
            self._waiting_restart = False
            if self.state is not S.FAILED or self.reason != verdict.blocked:
                self._logs.marker(self.spec.name, f"tuisup: not started: {verdict.blocked}")
                self._transition(S.FAILED, reason=verdict.blocked)
        elif verdict.waiting is not None:
            self._waiting_restart = restart
            self._waiting_for = verdict.waiting_for
            reason = f"waiting for {verdict.waiting}"
            if self.state is not S.WAITING or self.reason != reason:
                self._transition(S.WAITING, reason=reason)
        else:
            await self._spawn(restart=restart)

    async def _spawn(self, *, restart: bool) -> None:
        self._cancel_timer()
        self._runs += 1
        if restart:
            self.restarts += 1
        self._transition(S.STARTING)
        last = self.history[-1] if self.history else None
        if last is not None:
            self._logs.marker(self.spec.name, last.marker(self._runs))
        assert self._tg is not None
        try:
            run = await self._executor.start(self.spec, self._logs, self._tg)
        except StartError as exc:
            self._cannot_start(str(exc), exc.details)
            return
        except Exception as exc:  # anything else a start raises is still this service's
            details = "".join(traceback.format_exception(exc))
            self._cannot_start(f"cannot start: {type(exc).__name__}: {exc}", details)
            return
        self._run = run
        if not await self._started(run):
            return
        self._started_mono = self._clock()
        self._started_wall = time.time()
        self._transition(S.RUNNING, pid=run.pid, executor=run.kind.value)
        self._tg.start_soon(self._watch, run)
        if self.spec.healthcheck is not None:
            self._checks.start(self.spec, self._tg, partial(self._health_report, run))

    async def _started(self, run: Run) -> bool:
        """Wait until `run` is up, within `start_timeout`; a stop meanwhile ends it.

        Returns:
            Whether the run is up; if not, the service is `failed` or `stopped`.
        """
        timeout = self.spec.start_timeout
        self._starting = anyio.CancelScope()
        if self._stops_queued:
            self._starting.cancel()
        try:
            with self._starting, anyio.move_on_after(timeout) as timer:
                await run.started()
                return True
        except StartError as exc:
            self._cannot_start(str(exc), exc.details)
            return False
        finally:
            self._starting = None
        if timer.cancelled_caught:
            run.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(KILL_GRACE):
                await run.wait()
            self._cannot_start(f"cannot start: did not start within {timeout:g}s")
        else:  # a stop was asked for while it started
            self._transition(S.STOPPING, pid=run.pid)
            await run.stop(self.spec.stop_signal, self.spec.stop_timeout)
            self._transition(S.STOPPED, reason="stopped while starting")
        return False

    def _cannot_start(self, reason: str, details: str | None = None) -> None:
        if details:
            self._logs.add(self.spec.name, "stderr", details.rstrip("\n").split("\n"))
        self._logs.marker(self.spec.name, f"tuisup: {reason}")
        self._transition(S.FAILED, reason=reason)

    def _health_report(self, run: Run, health: Health, reason: str | None, failures: int) -> None:
        if run is self._run and self.state is S.RUNNING:
            self._set_health(health, reason, failures)
            self._on_change(self)
            if health is Health.UNHEALTHY and self.spec.restart_on_unhealthy:
                self._send.send_nowait(("unhealthy", run, reason))

    def _set_health(self, health: Health, reason: str | None = None, failures: int = 0) -> None:
        old, self.health, self.health_reason = self.health, health, reason
        self._bus.emit(
            HealthChanged,
            service=self.spec.name,
            old=old,
            health=health,
            reason=reason,
            failures=failures,
        )

    async def _watch(self, run: Run) -> None:
        status = await run.wait()
        self._send.send_nowait(("exited", run, status))

    async def _on_exit(self, run: Run, status: ExitStatus) -> None:
        if run is not self._run or self.state is not S.RUNNING:
            return  # a run that was stopped on purpose; _do_stop recorded it
        record = self._record(status, requested=False)
        spec = self.spec
        success = status.succeeded(spec.success_exit_codes)
        if spec.restart is RestartPolicy.NEVER or (
            spec.restart is RestartPolicy.ON_FAILURE and success
        ):
            self._transition(S.EXITED, **record.event_fields())
            return
        await self._again(record, failed=not success)

    async def _on_unhealthy(self, run: Run, reason: str | None) -> None:
        """Restart an unhealthy run as a failure: stop it, then policy, budget and backoff."""
        if run is not self._run or self.state is not S.RUNNING:
            return
        why = f"unhealthy ({reason})" if reason else "unhealthy"
        self._logs.marker(self.spec.name, f"tuisup: {why}: restarting")
        self._transition(S.STOPPING, pid=run.pid, reason=why)
        status = await run.stop(self.spec.stop_signal, self.spec.stop_timeout)
        await self._checks.stopped()
        record = self._record(status, requested=False)
        if status.stuck:
            self._transition(S.FAILED, reason=status.error, **record.event_fields())
            return
        await self._again(record, failed=True, reason=why)

    async def _again(self, record: ExitRecord, *, failed: bool, reason: str | None = None) -> None:
        """After a run ended by itself: give up if the budget is spent, else back off."""
        fields = record.event_fields()
        spec = self.spec
        if record.runtime >= RESET_AFTER:
            self._backoff.reset()
        if failed:
            now = self._clock()
            while self._failures and now - self._failures[0] > spec.restart_window:
                self._failures.popleft()
            if len(self._failures) >= spec.max_restarts:
                plural = "" if spec.max_restarts == 1 else "s"
                reason = f"{spec.max_restarts} restart{plural} in {spec.restart_window:g}s"
                self._transition(S.FAILED, reason=reason, **fields)
                return
            self._failures.append(now)
        delay = self._backoff.next_delay()
        self._next_start = time.time() + delay
        self._transition(S.BACKOFF, reason=reason, **fields)
        self._bus.emit(
            RestartScheduled, service=spec.name, attempt=self._backoff.attempt, delay=delay
        )
        if delay <= 0:
            await self._launch(restart=True)
        else:
            assert self._tg is not None
            self._timer = anyio.CancelScope()
            self._tg.start_soon(self._wake_after, delay, self._timer)

    async def _wake_after(self, delay: float, scope: anyio.CancelScope) -> None:
        with scope:
            await anyio.sleep(delay)
            self._send.send_nowait(("retry", scope))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _record(self, status: ExitStatus, *, requested: bool) -> ExitRecord:
        record = ExitRecord(
            started=self._started_wall or time.time(),
            runtime=max(0.0, self._clock() - self._started_mono),
            status=status,
            requested=requested,
        )
        self.history.append(record)
        return record

    def _transition(self, new: ServiceState, *, reason: str | None = None, **fields: Any) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise TransitionError(f"{self.spec.name}: {old} -> {new} is not allowed")
        self.state = new
        self.reason = reason
        self._bus.emit(
            StateChanged,
            service=self.spec.name,
            old=old,
            state=new,
            reason=reason,
            restarts=self.restarts,
            **fields,
        )
        if old is S.RUNNING:
            self._checks.cancel()
            if self.health is not Health.UNKNOWN:
                self._set_health(Health.UNKNOWN, "not running")
        self._on_change(self)
