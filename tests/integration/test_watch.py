"""Services restart when their own files change: real files, the real watcher, real processes."""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.conftest import wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, FilesChanged, ManifestReloaded
from tuisup.manifest import load_manifest
from tuisup.model.record import replace
from tuisup.spec import ExecutorKind, HostSettings, Manifest, ServiceSpec

S = ServiceState


def spec(tmp_path: Path, name: str, command: str, **options: object) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        argv=("/bin/sh", "-c", command),
        command=command,
        cwd=tmp_path,
        **options,  # type: ignore[arg-type]
    )


def manifest(tmp_path: Path, *specs: ServiceSpec) -> Manifest:
    settings = HostSettings(log_dir=tmp_path / "logs")  # inside the watched tree, on purpose
    return Manifest(
        path=tmp_path / "services.toml", settings=settings, services={s.name: s for s in specs}
    )


def changes(host: Host, service: str) -> list[FilesChanged]:
    return [e for e in host.bus.since(0) if isinstance(e, FilesChanged) and e.service == service]


async def settle(host: Host, tmp_path: Path) -> None:
    """Touch the sentinel service's file and wait for its restart: every change made before
    it has been dispatched by then (same watcher, same debounce)."""
    before = len(changes(host, "sentinel"))
    (tmp_path / "sentinel.txt").write_text(str(before))
    await wait_until(host, lambda s: len(changes(host, "sentinel")) > before)


def sentinel(tmp_path: Path) -> ServiceSpec:
    """A service watching only `sentinel.txt`, which exists before the host starts (so that
    only its folder, not a whole tree, is watched for it)."""
    (tmp_path / "sentinel.txt").write_text("")
    return spec(tmp_path, "sentinel", "sleep 60", watch=("sentinel.txt",))


async def armed(host: Host, tmp_path: Path) -> None:
    """Wait until the watcher sees changes: it starts in a thread, after the services (and
    again after a reload)."""
    before = len(changes(host, "sentinel"))
    with anyio.fail_after(10):
        while len(changes(host, "sentinel")) == before:
            (tmp_path / "sentinel.txt").write_text(f"armed? {host.bus.last_seq}")
            with anyio.move_on_after(1.0):
                await wait_until(host, lambda s: len(changes(host, "sentinel")) > before)


async def test_an_edit_restarts_only_the_service_that_watches_it(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("v = 1\n")
    web = spec(tmp_path, "web", "sleep 60", watch=("src/**/*.py",))
    other = spec(tmp_path, "other", "sleep 61", watch=("docs/",))
    async with Host(manifest(tmp_path, web, other, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        before = await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        (tmp_path / "src" / "app.py").write_text("v = 2\n")
        after = await wait_until(
            host, lambda s: s["web"].restarts == 1 and s["web"].state is S.RUNNING
        )
        await settle(host, tmp_path)
        assert [e.paths for e in changes(host, "web")] == [("src/app.py",)]
        assert after["web"].pid != before["web"].pid
        assert host.snapshot()["other"].pid == before["other"].pid
        assert host.snapshot()["web"].restarts == 1
        lines = [line for b in host.store.since("web", 0) for line in b.lines]
        assert "── app.py changed: restarting ──" in lines


async def test_ignored_paths_and_tuisups_own_logs_never_restart_anything(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    chatty = replace(
        spec(tmp_path, "chatty", "while :; do echo tick; sleep 0.01; done"),
        cwd=app,
        watch=(".",),
        watch_ignore=("build/", "*.tmp"),
    )
    settings = HostSettings(log_dir=app / "logs")  # its own log file is inside what it watches
    services = {"chatty": chatty, "sentinel": sentinel(tmp_path)}
    async with Host(
        Manifest(path=tmp_path / "services.toml", settings=settings, services=services)
    ) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        await wait_until(host, lambda s: (app / "logs" / "chatty.log").exists())
        await armed(host, tmp_path)
        (app / "build").mkdir()
        (app / "build" / "out.o").write_text("x")
        (app / "scratch.tmp").write_text("x")
        (app / "__pycache__").mkdir()
        (app / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
        (app / ".git").mkdir()
        (app / ".git" / "index").write_text("x")
        await settle(host, tmp_path)
        assert changes(host, "chatty") == []
        assert host.snapshot()["chatty"].restarts == 0


async def test_a_chmod_is_not_a_change(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    script = tmp_path / "src" / "run.sh"
    script.write_text("echo hi\n")
    web = spec(tmp_path, "web", "sleep 60", watch=("src/",))
    async with Host(manifest(tmp_path, web, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        script.chmod(0o755)
        await settle(host, tmp_path)
        assert changes(host, "web") == []
        script.write_text("echo bye\n")
        await wait_until(host, lambda s: s["web"].restarts == 1)


async def test_an_editors_save_and_a_burst_are_one_restart_each(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    web = spec(tmp_path, "web", "sleep 60", watch=("src/",))
    async with Host(manifest(tmp_path, web, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        swap = tmp_path / "src" / ".app.py.swp"
        swap.write_text("v = 3\n")
        swap.rename(tmp_path / "src" / "app.py")  # an editor's write-temp-and-rename
        await wait_until(host, lambda s: s["web"].restarts == 1 and s["web"].state is S.RUNNING)
        for i in range(300):  # a git checkout
            (tmp_path / "src" / f"m{i}.py").write_text(str(i))
        await wait_until(host, lambda s: s["web"].restarts == 2 and s["web"].state is S.RUNNING)
        await settle(host, tmp_path)
        assert host.snapshot()["web"].restarts == 2
        burst = changes(host, "web")[1]
        assert len(burst.paths) == 300


async def test_each_kind_of_python_service_runs_the_new_code_after_an_edit(tmp_path: Path) -> None:
    sync = "VERSION = 1\n\ndef run(ctx):\n    print('version', VERSION)\n    ctx.token.wait()\n"
    coroutine = (
        "VERSION = 1\n\nasync def run(ctx):\n    print('version', VERSION)\n"
        "    await ctx.token.wait_async()\n"
    )
    for kind in (ExecutorKind.THREAD, ExecutorKind.ASYNC, ExecutorKind.PROCESS):
        name = f"py-{kind.value}"
        module = (
            tmp_path / f"svc_{kind.value}.py"
        )  # one module per kind: in-process ones stay imported
        module.write_text(coroutine if kind is ExecutorKind.ASYNC else sync)
        service = replace(
            spec(tmp_path, name, ""),
            argv=(),
            target=f"{module.stem}:run",
            executor=kind,
            watch=(module.name,),
        )
        async with Host(manifest(tmp_path, service, sentinel(tmp_path))) as host:
            await armed(host, tmp_path)
            await wait_until(
                host, lambda s, n=name: any("version 1" in b.lines for b in host.store.since(n, 0))
            )
            module.write_text(module.read_text().replace("VERSION = 1", "VERSION = 2"))
            await wait_until(
                host, lambda s, n=name: any("version 2" in b.lines for b in host.store.since(n, 0))
            )


async def test_a_service_that_writes_into_its_own_watched_tree_is_paused_not_looped(
    tmp_path: Path,
) -> None:
    looper = spec(
        tmp_path,
        "looper",
        "sleep 0.2; date +%s%N > state.txt; sleep 60",
        watch=("state.txt",),
        watch_debounce=50,
    )
    async with Host(manifest(tmp_path, looper, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        (tmp_path / "state.txt").write_text("a first change, by hand")
        with anyio.fail_after(20):
            async for _ in host.bus.stream(0):
                if any(e.paused for e in changes(host, "looper")):
                    break
        paused = [e for e in changes(host, "looper") if e.paused]
        assert len(paused) == 1 and "state.txt" in (paused[0].paused or "")
        restarts = host.snapshot()["looper"].restarts
        (tmp_path / "state.txt").write_text("by hand, while paused")
        await settle(host, tmp_path)
        assert host.snapshot()["looper"].restarts == restarts
        assert await host.toggle_watch("looper") is True  # W resumes it


WATCHERS = """
[services.web]
command = "sleep 60"
watch = ["app.py"]
watch_debounce = 50

[services.looper]
command = "sleep 0.2; date +%s%N > state.txt; sleep 60"
shell = true
watch = ["state.txt"]
watch_debounce = 50

[services.sentinel]
command = "sleep 60"
watch = ["sentinel.txt"]
"""


async def saved(host: Host, path: Path, text: str) -> None:
    """Save the manifest and wait until the host has applied it."""
    after = host.bus.last_seq
    await anyio.Path(path).write_text(text)
    await wait_event(host, lambda e: isinstance(e, ManifestReloaded), after)


def paused_by_loop(event: Event) -> bool:
    return isinstance(event, FilesChanged) and event.service == "looper" and bool(event.paused)


async def test_a_reload_keeps_watching_paused_by_hand_and_by_the_loop_guard(
    tmp_path: Path,
) -> None:
    path = tmp_path / "services.toml"
    path.write_text(WATCHERS)
    (tmp_path / "sentinel.txt").write_text("")
    async with Host(load_manifest(path)) as host:
        await armed(host, tmp_path)
        (tmp_path / "state.txt").write_text("a first change, by hand")
        await wait_event(host, paused_by_loop, 0, timeout=20)
        assert await host.toggle_watch("web") is False  # W
        restarts = {name: s.restarts for name, s in host.snapshot().items()}
        await saved(host, path, WATCHERS + '\n[services.extra]\ncommand = "sleep 60"\n')
        assert (
            host.snapshot()["web"].watching is False and host.snapshot()["looper"].watching is False
        )
        await armed(host, tmp_path)  # the rebuilt watcher sees changes
        (tmp_path / "app.py").write_text("saved while paused")
        (tmp_path / "state.txt").write_text("saved while paused")
        await settle(host, tmp_path)
        assert host.snapshot()["web"].restarts == restarts["web"]
        assert host.snapshot()["looper"].restarts == restarts["looper"]
        assert await host.toggle_watch("looper") is True  # W resumes it, with a fresh loop count


async def test_a_service_removed_by_a_reload_forgets_its_pause(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text(WATCHERS)
    (tmp_path / "sentinel.txt").write_text("")
    async with Host(load_manifest(path)) as host:
        await armed(host, tmp_path)
        assert await host.toggle_watch("web") is False
        await saved(host, path, WATCHERS.replace('watch = ["app.py"]', ""))
        assert host.snapshot()["web"].watching is None  # it watches nothing now
        await saved(host, path, WATCHERS.replace("[services.web]", "[services.gone]"))
        await saved(host, path, WATCHERS)
        assert host.snapshot()["web"].watching is True
        await armed(host, tmp_path)
        (tmp_path / "app.py").write_text("watched again")
        await wait_until(host, lambda s: s["web"].restarts == 1)
