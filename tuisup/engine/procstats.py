"""Provides ProcessCollector: the OS process tree under each service, with CPU and memory.

Runs in a worker thread, when a front end asks (the console: once a second). Each
service's tree is walked down from its main pid through /proc/PID/task/*/children, so only
the services' own processes are read, not every process on the machine. Processes that
escaped their group and were adopted by tuisup (the subreaper) are found among tuisup's
children by their TUISUP_SERVICE tag.
"""

from __future__ import annotations

import os

import psutil

from tuisup.engine.reaper import children, service_of
from tuisup.model.processes import Proc, ProcessStats


class ProcessCollector:
    """Collects process trees; keeps psutil handles so CPU% is measured between calls."""

    def __init__(self, host_tag: str) -> None:
        self.host_tag = host_tag
        self._handles: dict[int, psutil.Process] = {}
        self._commands: dict[int, str] = {}
        """A process's command line, read once: it rarely changes, and reading it is a
        third of the cost of a refresh."""

    def collect(self, roots: dict[str, int], ignore: set[int]) -> ProcessStats:
        """Return each service's processes, and the total CPU% and RSS of all of them.

        Args:
            roots: Each running service's main pid.
            ignore: Pids that are tuisup's own helpers (the lifeline).
        """
        trees: dict[str, list[Proc]] = {name: [] for name in roots}
        for name, pid in roots.items():
            self._walk(pid, pid, 0, trees[name])
        managed = set(roots.values()) | ignore
        for pid in sorted(children()):
            if pid in managed:
                continue
            tag, service = service_of(pid)
            if tag == self.host_tag and service in trees:
                self._walk(pid, -1, 1, trees[service])
        seen = {p.pid for procs in trees.values() for p in procs}
        for gone in set(self._handles) - seen:
            del self._handles[gone]
            self._commands.pop(gone, None)
        cpu = sum(p.cpu for procs in trees.values() for p in procs)
        rss = sum(p.rss for procs in trees.values() for p in procs)
        return ProcessStats(trees={n: tuple(p) for n, p in trees.items()}, cpu=cpu, rss=rss)

    def _walk(self, pid: int, group: int, depth: int, out: list[Proc]) -> None:
        info = self._info(pid, group, depth)
        if info is None:
            return
        out.append(info)
        for child in sorted(children(pid)):
            self._walk(child, group, depth + 1, out)

    def _info(self, pid: int, group: int, depth: int) -> Proc | None:
        try:
            handle = self._handles.get(pid)
            if handle is None:
                handle = self._handles[pid] = psutil.Process(pid)
            with handle.oneshot():
                cpu = handle.cpu_percent(None)
                times = handle.cpu_times()
                rss = handle.memory_info().rss
                command = self._commands.get(pid)
                if command is None:
                    command = self._commands[pid] = " ".join(handle.cmdline()) or handle.name()
            escaped = group < 0 or os.getpgid(pid) != group
        except (psutil.Error, OSError):
            return None
        return Proc(
            pid=pid,
            depth=depth,
            command=command,
            cpu=cpu,
            rss=rss,
            escaped=escaped,
            cpu_time=times.user + times.system,
        )
