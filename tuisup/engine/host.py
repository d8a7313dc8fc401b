"""Provides the Host: one supervisor per service, the event bus and the logs, behind one API.

Front-ends (the console, the headless printer, later a remote client) use only this API:
`start`, `stop`, `restart`, `kill`, `reload`, `shutdown`, `snapshot`, `subscribe`, `logs`,
`affected` and the watch toggle. The Host owns the services' lifetime and the manifest in
force; what reacts to the services' changes is an observer of its bus (`DependencyWaker`),
and what a reload changes is worked out apart (`engine.reload`).

    async with Host(manifest) as host:
        async for batch in host.subscribe():
            ...
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from tuisup.engine.clock import SYSTEM, Clock
from tuisup.engine.deps import REFUSED, Graph, Verdict
from tuisup.engine.events import (
    Bus,
    Event,
    FilesChanged,
    HostStarted,
    HostStopped,
    HostStopping,
    LogFileChanged,
    ManifestInvalid,
    ManifestReloaded,
    Output,
    Scaled,
    WatchToggled,
)
from tuisup.engine.executors import Executor, ProcessExecutor
from tuisup.engine.executors.base import KILL_GRACE
from tuisup.engine.groups import Groups
from tuisup.engine.hooks import HookRunner
from tuisup.engine.lifeline import Lifeline
from tuisup.engine.listeners import Listeners
from tuisup.engine.logfile import FileNews
from tuisup.engine.logs import LogBatch, LogStore
from tuisup.engine.messages import CommandMessage, Start
from tuisup.engine.reaper import Reaper, become_subreaper
from tuisup.engine.reload import ReloadPlan, Scales, plan_reload, reread
from tuisup.engine.spawn import reserve_descriptors
from tuisup.engine.status import ACTIVE, LIVE
from tuisup.engine.supervisor import Supervisor
from tuisup.engine.waker import DependencyWaker
from tuisup.engine.watch import FileWatcher
from tuisup.model import ProcessStats, ServiceView, TableView, UnknownService, errors
from tuisup.model.record import replace
from tuisup.spec import Manifest, ServiceSpec, selects

if TYPE_CHECKING:
    from tuisup.engine.metrics import Metrics
    from tuisup.engine.procstats import ProcessCollector
    from tuisup.engine.service_watch import ServiceWatch

EXIT_GRACE = 2.0
"""Seconds the Host's exit waits, beyond a whole shutdown's bound, before it gives up on the
shutdown and lets the lifeline kill what is left."""
STATS_FRESH = 0.25
"""Seconds for which collected process statistics are fresh enough for another reader."""
DEPARTED_KEPT = 1024
"""Names of services that left the manifest remembered, so that their logs stay readable."""


class Subscription:
    """What `Host.subscribe` returns: the state when it was taken, then every later event.

    With `lines`, each `output` event carries the lines it announced (read from the kept
    log once per service and batch), so that a subscriber needs no log reads of its own.
    """

    def __init__(self, host: Host, *, lines: bool) -> None:
        self.snapshot = host.snapshot()
        self.after = host.bus.last_seq
        """The sequence number of the last event the snapshot includes."""
        self._host = host
        self._lines = lines

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Event]]:
        async for batch in self._host.bus.stream(self.after):
            yield self._host.lines_inline(batch) if self._lines else batch


class Host:
    """Runs a manifest's services, each under its own supervisor."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        clock: Clock = SYSTEM,
        watch: bool | None = None,
    ) -> None:
        self.manifest = manifest
        self.watch = manifest.settings.reload if watch is None else watch
        """Whether saving the manifest applies it (`[tuisup] reload`, `--no-reload`)."""
        self._watcher: FileWatcher | None = None
        self._service_watch: ServiceWatch | None = None
        self.bus = Bus()
        settings = manifest.settings
        self.store = LogStore(
            settings.log_lines, settings.log_dir, self._announce, self._log_file_changed
        )
        self.reaper = Reaper()
        self.reaper.ended = self._ended
        self.lifeline = Lifeline(self.reaper.tag, self.reaper.managed)
        self.listeners = Listeners(self)
        """The feeders of listener services' stdin."""
        self.env: dict[str, str] = {}
        """What the host tells every service's processes and hooks: `TUISUP_SOCKET` once
        its control socket is bound (`tuisup.link`)."""
        self._process = ProcessExecutor(
            self.reaper, manifest.root, self.listeners.feed, host_env=self.env
        )
        self._in_process: Executor | None = None
        self.clock = clock
        """Where the engine's time comes from (a fake one in tests)."""
        self.graph = Graph(manifest.services)
        self.supervisors = {name: self._supervise(spec) for name, spec in manifest.services.items()}
        self._tg: TaskGroup | None = None
        self._stopped: anyio.Event | None = None
        """Set once the shutdown has ended (None until one began)."""
        self._reloading = anyio.Lock()
        self._stats: ProcessCollector | None = None
        self._stats_lock = anyio.Lock()
        self._last_stats: tuple[float, ProcessStats] | None = None
        """When the last statistics were collected, and them: shared by their readers."""
        self._departed: dict[str, None] = {}
        """Services that left the manifest, newest last: their kept lines stay readable."""
        self._hooks = HookRunner(self)
        """Runs each service's `on` hooks on its events (an observer of the bus)."""
        self.groups = Groups(self)
        """Restarts groups' members together (an observer of the bus)."""
        self._scales = Scales(manifest)
        """Replicated tables scaled while running, kept across reloads."""
        self.metrics: Metrics | None = None
        """Serves Prometheus metrics (`[tuisup] metrics`); None when they are off."""
        if settings.metrics is not None:
            from tuisup.engine.metrics import Metrics  # prometheus_client, only when on

            self.metrics = Metrics(self, settings.metrics)

    def _supervise(self, spec: ServiceSpec) -> Supervisor:
        self.store.configure(spec.name, spec.logs)
        return Supervisor(
            spec,
            self._executor(spec),
            self.bus,
            self.store,
            clock=self.clock,
            gate=self._gate,
            reaper=self.reaper,
            host_env=self.env,  # the dict itself: `TUISUP_SOCKET` goes in once the socket is bound
        )

    def _executor(self, spec: ServiceSpec) -> Executor:
        if not spec.in_process:
            return self._process
        if self._in_process is None:
            # Imported only for in-process services: commands alone start sooner.
            from tuisup.engine.executors.inprocess import InProcessExecutor

            self._in_process = InProcessExecutor(self.manifest.root, self)
        return self._in_process

    # -- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> Host:
        become_subreaper()
        # Before the process's first thread (the runners start none before entering it).
        reserve_descriptors(len(self.supervisors))
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self.reaper.listen()
        self._on_sigusr1(install=True)
        await self._tg.start(self.lifeline.run)
        await self._tg.start(DependencyWaker(self, self._tg).run)
        await self._tg.start(self._hooks.run, self._tg)
        await self._tg.start(self.groups.run, self._tg)
        if self.metrics is not None:
            await self._tg.start(self.metrics.run, self._tg)
        if self.watch:
            self._watcher = FileWatcher(self.manifest.path, self._saved)
            self._watcher.start()
        self._watch_services()
        for sup in self.supervisors.values():
            self._tg.start_soon(sup.serve, self._tg)
        self.bus.emit(
            HostStarted, manifest=str(self.manifest.path), services=tuple(self.supervisors)
        )
        autostart = [name for name, sup in self.supervisors.items() if sup.spec.autostart]
        # Posted, not awaited: a start that takes long (a slow import) must not keep the
        # front end from showing it, or from stopping it.
        for name in self.graph.to_start(autostart, self.supervisors):
            self.post(name, Start())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._watcher is not None:
            self._watcher.close()
        if self._service_watch is not None:
            self._service_watch.close()
        with anyio.CancelScope(shield=True):
            settings = self.manifest.settings
            with anyio.move_on_after(settings.shutdown_timeout + KILL_GRACE + EXIT_GRACE):
                await self.shutdown()
            # What escaped and was re-parented here dies now, tagged or not; whatever else
            # is left dies with the lifeline, which SIGKILLs every process tagged with this
            # host once it is released (it is still ours: the sweep does not touch it).
            await self.reaper.sweep_all()
            await self.lifeline.aclose()
        self._on_sigusr1(install=False)
        self.reaper.close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    @property
    def stopping(self) -> bool:
        """Whether a shutdown has begun; from then on, no service is started."""
        return self._stopped is not None

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Stop every service, dependents first, bounded by `[tuisup] shutdown_timeout`.

        Each service stops as soon as the services that depend on it have stopped, so
        independent branches stop in parallel. The shutdown runs once, in a task of the
        host's own: calling it again, or while it runs, waits for the same shutdown, and a
        caller that is cancelled stops waiting without stopping the shutdown.
        """
        if self._stopped is None:
            self._stopped = anyio.Event()
            alive = sum(sup.state in ACTIVE for sup in self.supervisors.values())
            self.bus.emit(HostStopping, reason=reason, count=alive)
            if self._tg is None:  # never entered: nothing runs
                await self._shut_down(self._stopped)
            else:
                self._tg.start_soon(self._shut_down, self._stopped)
        await self._stopped.wait()

    async def _shut_down(self, stopped: anyio.Event) -> None:
        """Stop everything; `host_stopped` is announced and `stopped` set, however it ends."""
        try:
            with anyio.move_on_after(self.manifest.settings.shutdown_timeout) as scope:
                await self.graph.stop(self.supervisors)
                await self._hooks.settle()  # the hooks of its own events (`stopped`) too
            # Escapees of services that ended by themselves are swept at their exit; one
            # that slipped through (re-parented only after that sweep) is caught here.
            now = time.monotonic()  # one look, after every service stopped, serves them all
            for name in self.supervisors:
                self.reaper.sweep(name, signal.SIGKILL, since=now)
            if scope.cancelled_caught:
                self.kill_all()
                with anyio.move_on_after(KILL_GRACE):
                    while any(s.state in ACTIVE for s in self.supervisors.values()):
                        await anyio.sleep(0.01)
                    await self._hooks.settle()
        finally:
            self.store.close()
            self.bus.emit(HostStopped)
            stopped.set()

    def kill_all(self) -> None:
        """SIGKILL every running service and hook now (a second Ctrl-C); no hook runs after."""
        self._hooks.halt()
        for sup in self.supervisors.values():
            sup.kill()

    # -- commands -------------------------------------------------------------------------

    def _supervisor(self, name: str) -> Supervisor:
        try:
            return self.supervisors[name]
        except KeyError:
            raise self._unknown(name) from None

    def _unknown(self, name: str) -> UnknownService:
        known = [*self.supervisors, *self.manifest.templates, *self.manifest.groups]
        return UnknownService.named(name, known)

    def names(self, name: str) -> list[str]:
        """The services a name stands for, in order.

        A service's own name, a replicated table's (its replicas), a group's (its members).

        Raises:
            UnknownService: It names none of these.
        """
        if name in self.supervisors:
            return [name]
        group = self.manifest.groups.get(name)
        if group is not None:
            return self.manifest.members(group)
        if name in self.manifest.templates:
            return self.manifest.instances(name)
        raise self._unknown(name)

    async def start(self, name: str) -> None:
        """Start a service, and first the dependencies it needs that are not up.

        Resets its backoff and restart budget. It waits for its dependencies, if they do
        not hold yet. A replicated table's name starts each replica, a group's each member.
        """
        if (group := self.groups.groups.get(name)) is not None:
            await group.start()  # in order, each once the one before is handled
            return
        await self._start_all(self.graph.to_start(self.names(name), self.supervisors))

    async def _start_all(self, names: list[str]) -> None:
        """Start `names` at once, in order (dependencies first: see `Graph.to_start`)."""
        posted = [self.post(name, Start()) for name in names]
        for done in posted:
            await done.wait()

    def post(self, name: str, command: CommandMessage) -> anyio.Event:
        """Queue a command for one service (engine components: the waker, the reload).

        Returns:
            The event set once the command has been handled.
        """
        return self.supervisors[name].post(command)

    async def stop(self, name: str) -> None:
        """Stop a service (signal, grace, kill), or cancel its pending restart.

        The services that depend on it, directly or not, are stopped first, dependents
        before their dependencies (as compose does); they are not started again with it.
        """
        if (group := self.groups.groups.get(name)) is not None:
            await group.stop()  # in reverse order
            return
        names: dict[str, None] = {}
        for one in self.names(name):
            names.update(dict.fromkeys(self.graph.with_dependents(one)))
        await self.graph.stop({n: self.supervisors[n] for n in names})

    async def kill(self, name: str) -> None:
        """SIGKILL a service's process group now; its restart policy then applies."""
        for one in self.names(name):
            self.supervisors[one].kill()

    async def restart(self, name: str) -> None:
        """Restart a service; not counted against its restart budget.

        Its dependencies that are not up are started first, as for `start`.
        """
        if (group := self.groups.groups.get(name)) is not None:
            await group.restart()
            return
        names = self.names(name)
        needed = self.graph.to_start(names, self.supervisors)
        await self._start_all([n for n in needed if n not in names])
        async with anyio.create_task_group() as tg:
            for one in names:
                tg.start_soon(self.supervisors[one].restart)

    async def affected(self, verb: str, name: str) -> list[str]:
        """The other services that `verb` (start, stop, restart) on `name` would move now.

        A stop stops the running or waiting dependents first; a start or restart starts
        the dependencies that are neither up nor completed.
        """
        names = self.names(name)
        if verb == "stop":
            found = {d: None for n in names for d in self.graph.with_dependents(n)}
            return [d for d in found if d not in names and self.supervisors[d].state in ACTIVE]
        return [n for n in self.graph.to_start(names, self.supervisors) if n not in names]

    def _ended(self, name: str) -> bool:
        """Whether a service has no run (its escapees have no business living on)."""
        sup = self.supervisors.get(name)
        return sup is None or sup.state not in LIVE

    def _gate(self, name: str) -> Verdict:
        if self.stopping:
            return REFUSED
        return self.graph.verdict(name, self.supervisors)

    async def reload(self) -> bool:
        """Read the manifest again and apply what changed; return whether it was applied.

        Services added are started (if autostart), removed ones are stopped and dropped,
        changed ones restarted under the new spec (or, for how tuisup steers them, changed
        in place), and the others are not touched at all. An invalid manifest changes
        nothing: the error is announced as a `manifest_invalid` event. `[tuisup]` settings
        apply at next start, but for its `log_*` defaults: every file takes them in place.
        """
        from tuisup.manifest import ManifestError

        async with self._reloading:
            try:
                # Off the loop: it reads files and checks folders.
                new = await anyio.to_thread.run_sync(reread, self.manifest.path)
            except ManifestError as exc:
                self.bus.emit(ManifestInvalid, manifest=str(self.manifest.path), error=str(exc))
                return False
            if self.stopping:
                return False
            new = self._scales.keep(new)
            await self._apply(new, plan_reload(self.manifest.services, new.services))
            return True

    async def tables(self) -> dict[str, TableView]:
        """Every replicated table now, in manifest order (`HostAPI.tables`)."""
        groups = {m: g.name for g in self.manifest.groups.values() for m in g.services}
        counts = self.manifest.replicated.items()
        return {name: TableView(replicas=n, group=groups.get(name)) for name, n in counts}

    async def scale(self, name: str, count: int) -> None:
        """Run `count` replicas of a replicated table; the others keep running, untouched.

        The missing ones are made (and started, with autostart), the highest stopped.

        Raises:
            UnknownService: No table of that name.
            CannotScale: It has no `replicas` key (or is a group, or a replica), or its
                ports would overlap another's.
            HostStopping: The host is shutting down.
        """
        from tuisup.manifest.scale import scaled

        async with self._reloading:
            if self.stopping:
                raise errors.HostStopping("tuisup is stopping: nothing is scaled")
            try:
                new = scaled(self.manifest, name, count)
            except LookupError:
                raise self._unknown(name) from None
            except ValueError as exc:
                raise errors.CannotScale(f"cannot scale {name}: {exc}") from None
            self._scales.counts[name] = count
            await self._apply(new, plan_reload(self.manifest.services, new.services), name)

    def _watch_services(self) -> None:
        """(Re)start the one watcher of every service's `watch` paths, keeping its pauses.

        When no service watches anything, there is no watcher at all, and the watching code
        is not even imported: a start waits for every import.
        """
        old = self._service_watch
        if old is not None:
            old.close()
            self._service_watch = None
        specs = [sup.spec for sup in self.supervisors.values()]
        if not any(spec.watch for spec in specs):
            return  # nor is the watching code imported: a start waits for every import
        from tuisup.engine.service_watch import ServiceWatch

        log_dir = self.manifest.settings.log_dir
        # Nothing tuisup writes counts: its home beside the manifest, and its logs.
        ignore = [self.manifest.root / ".tuisup", *([log_dir] if log_dir is not None else [])]
        self._service_watch = ServiceWatch(specs, ignore, self._files_changed, after=old)
        if self._tg is not None:
            self._service_watch.start(self._tg)

    def _files_changed(self, service: str, paths: list[str]) -> None:
        """Restart a service for its changed files, unless it is restarting itself in a loop."""
        sup = self.supervisors.get(service)
        watch = self._service_watch
        if sup is None or watch is None or self.stopping:
            return
        from tuisup.engine.service_watch import LOOP_RESTARTS

        key = tuple(paths)
        count = watch.repeats(service, paths, sup.started)
        if count >= LOOP_RESTARTS:
            watch.pause(service)
            reason = (
                f"{', '.join(paths)} changed after each of its last {count} restarts: "
                "watching paused (add it to watch_ignore)"
            )
            self.store.marker(service, f"tuisup: {reason}")
            self.bus.emit(FilesChanged, service=service, paths=key, paused=reason)
            return
        self.bus.emit(FilesChanged, service=service, paths=key)
        sup.files_changed([sup.spec.cwd / p for p in paths])

    def _watching(self, name: str) -> bool | None:
        """Whether saving a service's files restarts it (None: it watches nothing)."""
        return self._service_watch.watching(name) if self._service_watch else None

    async def toggle_watch(self, name: str) -> bool | None:
        """Pause or resume restarting a service for its changed files; return the new state."""
        self._supervisor(name)
        watching = self._service_watch.toggle(name) if self._service_watch else None
        if watching is not None:  # every observer's view of it changed
            self.bus.emit(WatchToggled, service=name, watching=watching)
        return watching

    def _saved(self) -> None:
        """The manifest file changed and has been quiet since: apply it."""
        if self._tg is not None and not self.stopping:
            self._tg.start_soon(self.reload)

    async def _apply(self, new: Manifest, plan: ReloadPlan, scaled: str | None = None) -> None:
        old, old_graph = self.supervisors, self.graph
        removed = {name: old[name] for name in plan.removed}
        # The new graph and supervisors first: a changed service may now need an added one.
        fresh = {name: self._supervise(new.services[name]) for name in plan.added}
        self.supervisors = {name: old.get(name) or fresh[name] for name in new.services}
        for name, spec in new.services.items():
            if name not in fresh:  # kept: its file is written by its new `log_*` keys from now
                self.store.configure(name, spec.logs)
        for name in removed:
            self._departed.pop(name, None)
            self._departed[name] = None
            while len(self._departed) > DEPARTED_KEPT:
                del self._departed[next(iter(self._departed))]
        for name in plan.added:
            self._departed.pop(name, None)
        self.graph = Graph(new.services)
        self.manifest = replace(new, settings=self.manifest.settings)
        self.groups.take(new.groups)
        assert self._tg is not None
        for sup in fresh.values():
            self._tg.start_soon(sup.serve, self._tg)
        async with anyio.create_task_group() as tg:
            tg.start_soon(old_graph.stop, removed)
            for name in plan.changed:
                spec = new.services[name]
                tg.start_soon(old[name].respec, spec, self._executor(spec))
            for name in plan.updated:
                tg.start_soon(old[name].adopt, new.services[name])
        for name, sup in removed.items():
            sup.close()
            self.store.forget(name)
        if scaled is not None:
            count = len(new.instances(scaled))
            self.bus.emit(
                Scaled, service=scaled, replicas=count, added=plan.added, removed=plan.removed
            )
        else:
            self.bus.emit(
                ManifestReloaded,
                manifest=str(new.path),
                added=plan.added,
                removed=plan.removed,
                changed=plan.changed,
                updated=plan.updated,
            )
        self._watch_services()
        autostart = [name for name in plan.added if fresh[name].spec.autostart]
        await self._start_all(self.graph.to_start(autostart, self.supervisors))

    def _on_sigusr1(self, *, install: bool) -> None:
        """Reopen the log files on SIGUSR1 (`logrotate` moved them away), while it runs.

        Only a loop in the main thread can take signals: a host run in another thread
        reopens its files on `reopen_logs` alone.
        """
        loop = asyncio.get_running_loop()
        try:
            if install:
                loop.add_signal_handler(signal.SIGUSR1, self.store.reopen)
            else:
                loop.remove_signal_handler(signal.SIGUSR1)
        except (ValueError, RuntimeError):
            pass  # not the main thread

    async def reopen_logs(self) -> None:
        """Open every log file's path again at its next line (`reopen-logs`, SIGUSR1)."""
        self.store.reopen()

    # -- observing ------------------------------------------------------------------------

    @property
    def manifest_path(self) -> str:
        """The manifest this host runs."""
        return str(self.manifest.path)

    @property
    def remote(self) -> bool:
        """False: this host runs in this process."""
        return False

    def snapshot(self) -> dict[str, ServiceView]:
        """Return every service's current view, in manifest order."""
        failed = self.groups.failed
        return {
            name: sup.status(self._watching(name), failed.get(sup.spec.group_name or ""))
            for name, sup in list(self.supervisors.items())
        }

    async def subscribe(self, *, lines: bool = False) -> Subscription:
        """Return the current snapshot and an iterator over every event after it.

        Args:
            lines: Carry the lines an `output` event announces in the event itself.
        """
        return Subscription(self, lines=lines)

    async def logs(self, name: str | None = None, since: int = 0) -> list[LogBatch]:
        """Return the kept lines numbered after `since`, of one service or of all merged.

        A replicated service's name: its replicas' lines, merged.

        A service that left the manifest stays readable (while it stops, and after it
        until its lines age out of the merged log).

        Raises:
            UnknownService: `name` is not a service, and never was one.
        """
        if name is not None and name in self.manifest.templates and name not in self.supervisors:
            replicas = [n for n in self.supervisors if selects((name,), n)]  # each one's own
            return sorted((b for n in replicas for b in self.store.since(n, since)), key=_first)
        if name is not None and name not in self.supervisors and name not in self._departed:
            raise UnknownService.named(name, list(self.supervisors))
        return self.store.since(name, since)

    def lines_inline(self, batch: list[Event]) -> list[Event]:
        """`batch` with each `output` event carrying the lines it announced, if still kept."""
        first: dict[str, int] = {}
        for event in batch:
            if isinstance(event, Output) and event.service not in first:
                first[event.service] = event.first_line
        if not first:
            return batch
        kept: dict[str, dict[int, LogBatch]] = {}
        for service, line in first.items():
            kept[service] = {b.end: b for b in self.store.since(service, line - 1)}
        return [
            _with_lines(event, kept[event.service]) if isinstance(event, Output) else event
            for event in batch
        ]

    async def processes(self) -> ProcessStats:
        """Every running service's OS process tree, read off the loop.

        One collection at a time, and one younger than `STATS_FRESH` seconds is shared: the
        console and the metrics ask the same worker.
        """
        async with self._stats_lock:
            last = self._last_stats
            if last is not None and time.monotonic() - last[0] < STATS_FRESH:
                return last[1]
            if self._stats is None:
                from tuisup.engine.procstats import ProcessCollector  # psutil, only when asked

                self._stats = ProcessCollector(self.reaper.tag)
            roots = {name: view.pid for name, view in self.snapshot().items() if view.pid}
            lifeline = self.lifeline.pid
            ignore = {lifeline} if lifeline is not None else set()
            stats = await anyio.to_thread.run_sync(self._stats.collect, roots, ignore)
            self._last_stats = (time.monotonic(), stats)
            return stats

    async def close(self) -> None:
        """Nothing to let go of: the host's lifetime is its `async with`."""

    # -- internals ------------------------------------------------------------------------

    def _announce(self, batch: LogBatch) -> None:
        self.bus.emit(
            Output,
            service=batch.service,
            stream=batch.stream,
            first_line=batch.first,
            count=len(batch.lines),
        )

    def _log_file_changed(self, service: str, news: FileNews) -> None:
        self.bus.emit(
            LogFileChanged,
            service=service,
            path=str(news.path),
            writing=news.writing,
            error=news.error,
            message=news.describe(),
        )


def _with_lines(event: Output, kept: dict[int, LogBatch]) -> Output:
    """The event with its lines, those still kept (a batch of them ends where it did)."""
    batch = kept.get(event.first_line + event.count)
    if batch is None:
        return event.with_lines((), event.count)
    dropped = max(0, batch.first - event.first_line)
    lines = batch.lines[-(event.count - dropped) :] if event.count > dropped else []
    return event.with_lines(tuple(lines), dropped)


def _first(batch: LogBatch) -> int:
    return batch.first
