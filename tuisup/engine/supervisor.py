"""Provides the Supervisor: one service's state machine, restart policy, backoff and budget.

A supervisor is an actor. Commands (start, stop, restart, a new spec) and what happens to
its service (a run ended, a backoff delay elapsed, its dependencies or files changed, it
turned unhealthy) arrive as typed messages in one inbox and are handled one at a time, in
one `match`, so two commands to one service never overlap and a service never has two live
incarnations.

Every start, first or again, passes the dependency gate the host gives: a service whose
dependencies do not hold is `waiting` until the host says they changed.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.clock import SYSTEM, Clock
from tuisup.engine.deps import READY, Verdict
from tuisup.engine.events import (
    Bus,
    Health,
    RestartScheduled,
    ServiceState,
    StateChanged,
)
from tuisup.engine.executors import Executor, Run, StartError
from tuisup.engine.executors.base import KILL_GRACE
from tuisup.engine.health import HealthChecks
from tuisup.engine.logs import LogStore
from tuisup.engine.messages import (
    Adopt,
    Command,
    CommandMessage,
    DependenciesChanged,
    Exited,
    FilesSaved,
    Incarnation,
    Message,
    Respec,
    Restart,
    Retry,
    Start,
    Stop,
    Unhealthy,
)
from tuisup.engine.policy import Restarts
from tuisup.engine.ports import port_taken
from tuisup.engine.reaper import Reaper
from tuisup.engine.status import (
    ACTIVE,
    LIVE,
    TRANSITIONS,
    ExitRecord,
    ExitStatus,
    TransitionError,
    spec_view,
)
from tuisup.model.views import ServiceView, SpecView
from tuisup.spec import ServiceSpec

if TYPE_CHECKING:
    import random

S = ServiceState

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
        clock: Clock = SYSTEM,
        rng: random.Random | None = None,
        gate: Callable[[str], Verdict] | None = None,
        reaper: Reaper | None = None,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.state = S.STOPPED
        self.restarts = 0
        """Restarts made, automatic or asked for."""
        self.history: deque[ExitRecord] = deque(maxlen=HISTORY)
        self.reason: str | None = None
        self._executor = executor
        self._bus = bus
        self._logs = logs
        self._clock = clock
        self._restarts = Restarts(spec, clock, rng)
        self._now = Incarnation()
        self._send, self._inbox = anyio.create_memory_object_stream[Message](math.inf)
        self._tg: TaskGroup | None = None
        self._gate = gate or (lambda name: READY)
        # Its checks' commands get what its command gets: the host's variables (`Host.env`) too.
        self._checks = HealthChecks(spec.name, bus, reaper or Reaper(), clock, host_env)
        self._spec_view: tuple[ServiceSpec, SpecView] | None = None
        self._starts_queued = 0
        self._stops_queued = 0
        """Stops posted and not handled yet: nothing is started meanwhile."""

    # -- the public commands ------------------------------------------------------------

    async def start(self) -> None:
        """Start the service (a no-op if it is alive); resets its backoff and budget."""
        await self.post(Start()).wait()

    async def stop(self) -> None:
        """Stop the service, or cancel its pending restart."""
        await self.post(Stop()).wait()

    async def restart(self) -> None:
        """Stop the service if it runs, then start it again; not counted as a failure."""
        await self.post(Restart()).wait()

    async def respec(self, spec: ServiceSpec, executor: Executor) -> None:
        """Take a changed spec: a live service is stopped and started again under it."""
        await self.post(Respec(spec, executor)).wait()

    async def adopt(self, spec: ServiceSpec) -> None:
        """Take a spec changed only in how tuisup steers it (see `RUN_FIELDS`), in place."""
        await self.post(Adopt(spec)).wait()

    def dependencies_changed(self) -> None:
        """Its dependencies changed: if it waits for them, it looks again."""
        self._send.send_nowait(DependenciesChanged())

    def files_changed(self, paths: list[Path]) -> None:
        """Restart for changed files: at most one such restart in flight, the last wins."""
        queued = self._now.changed is not None
        self._now.changed = paths
        if not queued:
            self._send.send_nowait(FilesSaved())

    def close(self) -> None:
        """End `serve` once the inbox is empty (the service left the manifest)."""
        self._send.close()

    def kill(self) -> None:
        """SIGKILL the current run now, bypassing the queue (the second Ctrl-C)."""
        if self._now.run is not None:
            self._now.run.kill()

    @property
    def started(self) -> float | None:
        """When the current run started running, Unix time (None: it does not run)."""
        return self._now.started_wall if self.state in (S.RUNNING, S.STOPPING) else None

    def uptime(self) -> float:
        """Seconds the current run has been running (0 when it does not run)."""
        if self.state is not S.RUNNING:
            return 0.0
        return self._clock.monotonic() - self._now.started_mono

    def status(self, watching: bool | None = None, group_failed: str | None = None) -> ServiceView:
        """Return what observers see of this service now.

        Args:
            watching: Whether its changed files restart it (the host's watch knows).
            group_failed: Why its group gave up, if it did (the host's groups know).
        """
        now = self._now
        run = now.run
        if self._spec_view is None or self._spec_view[0] is not self.spec:
            self._spec_view = (self.spec, spec_view(self.spec))  # made once per spec
        return ServiceView(
            name=self.spec.name,
            state=self.state,
            spec=self._spec_view[1],
            pid=run.pid if run is not None and self.state in LIVE else None,
            executor=run.kind.value if run is not None else None,
            restarts=self.restarts,
            started=self.started,
            next_start=now.next_start if self.state is S.BACKOFF else None,
            reason=self.reason,
            health=self.health
            if self.state is S.RUNNING and self.spec.healthcheck is not None
            else None,
            health_reason=self._checks.reason if self.health is Health.UNHEALTHY else None,
            waiting_for=now.waiting_for if self.state is S.WAITING else (),
            history=tuple(self.history),
            log_problem=self._logs.file_problem(self.spec.name),
            watching=watching,
            replica=self.spec.replica,
            group=self.spec.group_name,
            group_failed=group_failed,
        )

    async def serve(self, tg: TaskGroup) -> None:
        """Handle the inbox until it is closed; runs are watched by tasks in `tg`."""
        self._tg = tg
        async with self._inbox:
            async for message in self._inbox:
                if isinstance(message, Start | Restart):
                    self._starts_queued -= 1
                elif isinstance(message, Stop):
                    self._stops_queued -= 1
                try:
                    await self._handle(message)
                except Exception as exc:  # a bug of ours must not take the host down
                    self._internal_error(exc)
                finally:
                    if isinstance(message, Command):
                        message.done.set()

    def _internal_error(self, exc: Exception) -> None:
        """Report an unexpected error in this service's log, and fail it if that is allowed."""
        details = "".join(traceback.format_exception(exc))
        self._logs.add(self.spec.name, "stderr", details.rstrip("\n").split("\n"))
        reason = f"tuisup internal error: {type(exc).__name__}: {exc}"
        self._logs.marker(self.spec.name, reason)
        if S.FAILED in TRANSITIONS[self.state]:
            self._transition(S.FAILED, reason=reason)

    # -- the actor ------------------------------------------------------------------------

    @property
    def start_pending(self) -> bool:
        """Whether a start or restart was posted and is not being handled yet.

        A dependency that failed but is about to start again must not block its dependents:
        the dependency gate (`Graph.verdict`) reads this.
        """
        return self._starts_queued > 0

    def post(self, command: CommandMessage) -> anyio.Event:
        """Queue a command without waiting for it; return the event set once it is done."""
        self._send.send_nowait(command)
        if isinstance(command, Start | Restart):
            self._starts_queued += 1
        elif isinstance(command, Stop):
            self._stops_queued += 1
            if self._now.starting is not None:
                self._now.starting.cancel()  # the actor waits for that start: end it now
        return command.done

    async def _handle(self, message: Message) -> None:
        match message:
            case Start():
                await self._do_start()
            case Stop():
                await self._do_stop()
            case Restart():
                await self._do_restart()
            case Respec(spec, executor):
                await self._do_respec(spec, executor)
            case Adopt(spec):
                await self._do_adopt(spec)
            case DependenciesChanged():
                if self.state is S.WAITING:
                    await self._launch(restart=self._now.waiting_restart)
            case FilesSaved():
                await self._do_files_saved()
            case Exited(run, status):
                await self._on_exit(run, status)
            case Unhealthy(run, reason):
                await self._on_unhealthy(run, reason)
            case Retry(timer):
                if self.state is S.BACKOFF and timer is self._now.timer:
                    await self._launch(restart=True)

    async def _do_start(self) -> None:
        if self.state in (S.STARTING, S.RUNNING, S.STOPPING):
            return
        self._cancel_timer()
        self._restarts.reset()
        await self._launch(restart=self._now.waiting_restart if self.state is S.WAITING else False)

    async def _do_stop(self) -> None:
        if self.state is S.BACKOFF:
            self._cancel_timer()
            self._transition(S.STOPPED, reason="stopped during backoff")
        elif self.state is S.WAITING:
            self._transition(S.STOPPED, reason="stopped while waiting")
        elif self.state is S.RUNNING and self._now.run is not None:
            record = await self._stop_run(self._now.run, requested=True)
            if record is not None:
                self._transition(S.STOPPED, **record.event_fields())

    async def _stop_run(
        self, run: Run, *, requested: bool, reason: str | None = None
    ) -> ExitRecord | None:
        """Stop a running run (signal, grace, kill) and record its exit.

        Returns:
            Its exit record; None when it would not die even so (the service is `failed`).
        """
        self._transition(S.STOPPING, pid=run.pid, reason=reason)
        status = await run.stop(self.spec.stop_signal, self.spec.stop_timeout)
        await self._checks.stopped()
        record = self._record(status, requested=requested)
        if status.stuck:
            self._transition(S.FAILED, reason=status.error, **record.event_fields())
            return None
        return record

    async def _do_respec(self, spec: ServiceSpec, executor: Executor) -> None:
        live = self.state in ACTIVE
        await self._do_stop()
        self.spec = spec
        self._executor = executor
        self._restarts.respec(spec, fresh=True)
        if live:
            await self._launch(restart=True)

    async def _do_adopt(self, spec: ServiceSpec) -> None:
        old, self.spec = self.spec, spec
        self._restarts.respec(spec, fresh=False)
        if spec.healthcheck != old.healthcheck and self.state is S.RUNNING:
            assert self._now.run is not None and self._tg is not None
            self._checks.cancel("health check changed")
            await self._checks.stopped()
            if spec.healthcheck is not None:
                self._checks.start(spec, self._tg, partial(self._unhealthy, self._now.run))
        if self.state is S.WAITING:  # what it waits for may have changed
            await self._launch(restart=self._now.waiting_restart)

    async def _do_files_saved(self) -> None:
        paths, self._now.changed = self._now.changed or [], None
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
        self._restarts.reset()  # a fix saved is a fresh start, like a manual one
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
            self._now.waiting_restart = False
            if self.state is not S.FAILED or self.reason != verdict.blocked:
                self._logs.marker(self.spec.name, f"tuisup: not started: {verdict.blocked}")
                self._transition(S.FAILED, reason=verdict.blocked)
        elif verdict.waiting is not None:
            self._now.waiting_restart = restart
            self._now.waiting_for = verdict.waiting_for
            reason = f"waiting for {verdict.waiting}"
            if self.state is not S.WAITING or self.reason != reason:
                self._transition(S.WAITING, reason=reason)
        else:
            await self._spawn(restart=restart)

    async def _spawn(self, *, restart: bool) -> None:
        self._cancel_timer()
        self._now.runs += 1
        if restart:
            self.restarts += 1
        self._transition(S.STARTING)
        last = self.history[-1] if self.history else None
        if last is not None:
            self._logs.marker(self.spec.name, last.marker(self._now.runs))
        assert self._tg is not None
        if self.spec.port is not None and (taken := port_taken(self.spec.port)) is not None:
            self._cannot_start(f"cannot start: port {self.spec.port} is taken ({taken})")
            return
        try:
            run = await self._executor.start(self.spec, self._logs, self._tg)
        except StartError as exc:
            self._cannot_start(str(exc), exc.details)
            return
        except Exception as exc:  # anything else a start raises is still this service's
            details = "".join(traceback.format_exception(exc))
            self._cannot_start(f"cannot start: {type(exc).__name__}: {exc}", details)
            return
        self._now.run = run
        if not await self._started(run):
            return
        self._now.started_mono = self._clock.monotonic()
        self._now.started_wall = self._clock.time()
        self._transition(S.RUNNING, pid=run.pid, executor=run.kind.value)
        run.when_ended(self._tg, partial(self._exited, run))
        if self.spec.healthcheck is not None:
            self._checks.start(self.spec, self._tg, partial(self._unhealthy, run))

    async def _started(self, run: Run) -> bool:
        """Wait until `run` is up, within `start_timeout`; a stop meanwhile ends it.

        Returns:
            Whether the run is up; if not, the service is `failed` or `stopped`.
        """
        if run.up and not self._stops_queued:
            return True  # a command: up once spawned, nothing to wait for
        timeout = self.spec.start_timeout
        starting = self._now.starting = anyio.CancelScope()
        if self._stops_queued:
            starting.cancel()
        try:
            with starting, anyio.move_on_after(timeout) as timer:
                await run.started()
                return True
        except StartError as exc:
            self._cannot_start(str(exc), exc.details)
            return False
        finally:
            self._now.starting = None
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

    @property
    def health(self) -> Health:
        """The current run's health (unknown without a health check)."""
        return self._checks.health

    def _unhealthy(self, run: Run, reason: str | None) -> None:
        if run is self._now.run and self.state is S.RUNNING and self.spec.restart_on_unhealthy:
            self._send.send_nowait(Unhealthy(run, reason))

    def _exited(self, run: Run, status: ExitStatus) -> None:
        """A run ended: its end is handled by the actor (a run that outlived `close`: not)."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(Exited(run, status))

    async def _on_exit(self, run: Run, status: ExitStatus) -> None:
        if run is not self._now.run or self.state is not S.RUNNING:
            return  # a run that was stopped on purpose; _do_stop recorded it
        record = self._record(status, requested=False)
        success = status.succeeded(self.spec.success_exit_codes)
        if not self._restarts.wanted(success):
            self._transition(S.EXITED, **record.event_fields())
            return
        await self._again(record, failed=not success)

    async def _on_unhealthy(self, run: Run, reason: str | None) -> None:
        """Restart an unhealthy run as a failure: stop it, then policy, budget and backoff."""
        if run is not self._now.run or self.state is not S.RUNNING:
            return
        why = f"unhealthy ({reason})" if reason else "unhealthy"
        self._logs.marker(self.spec.name, f"tuisup: {why}: restarting")
        record = await self._stop_run(run, requested=False, reason=why)
        if record is not None:
            await self._again(record, failed=True, reason=why)

    async def _again(self, record: ExitRecord, *, failed: bool, reason: str | None = None) -> None:
        """After a run ended by itself: give up if the budget is spent, else back off."""
        fields = record.event_fields()
        next_ = self._restarts.after(record.runtime, failed=failed)
        if next_.given_up is not None:
            self._transition(S.FAILED, reason=next_.given_up, **fields)
            return
        delay = next_.delay
        self._now.next_start = self._clock.time() + delay
        self._transition(S.BACKOFF, reason=reason, **fields)
        self._bus.emit(
            RestartScheduled,
            service=self.spec.name,
            attempt=next_.attempt,
            delay=delay,
            replica=self.spec.replica,
            group=self.spec.group_name,
        )
        if delay <= 0:
            await self._launch(restart=True)
        else:
            assert self._tg is not None
            self._now.timer = anyio.CancelScope()
            deadline = self._clock.monotonic() + delay
            self._tg.start_soon(self._wake_at, deadline, self._now.timer)

    async def _wake_at(self, deadline: float, scope: anyio.CancelScope) -> None:
        """Retry at `deadline` (counted from when the delay was decided, not from now)."""
        with scope:
            await self._clock.sleep(max(0.0, deadline - self._clock.monotonic()))
            self._send.send_nowait(Retry(scope))

    def _cancel_timer(self) -> None:
        if self._now.timer is not None:
            self._now.timer.cancel()
            self._now.timer = None

    def _record(self, status: ExitStatus, *, requested: bool) -> ExitRecord:
        record = ExitRecord(
            started=self._now.started_wall or self._clock.time(),
            runtime=max(0.0, self._clock.monotonic() - self._now.started_mono),
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
            replica=self.spec.replica,
            group=self.spec.group_name,
            **fields,
        )
        if old is S.RUNNING:
            self._checks.cancel("not running")
