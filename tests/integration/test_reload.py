"""Manifest edits applied live: added, removed, changed, untouched; invalid ones change nothing."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import anyio
import pytest

from tests.conftest import Tuisup, tagged_pids, wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import ManifestInvalid, ManifestReloaded
from tuisup.engine.watch import FileWatcher
from tuisup.manifest import load_manifest

S = ServiceState


def write(path: Path, text: str, token: str) -> None:
    path.write_text(textwrap.dedent(text).replace("@TOKEN@", token))


BEFORE = """
[services.keep]
command = "sleep 60"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.change]
command = "sleep 61"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.drop]
command = "sleep 62"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""

AFTER = """
# a comment that moves every line down: not a change
[services.keep]
command = "sleep 60"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.change]
command = "sleep 71"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }

[services.new]
command = "sleep 63"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""


async def test_a_valid_edit_touches_only_what_changed(tmp_path: Path, token: str) -> None:
    path = tmp_path / "services.toml"
    write(path, BEFORE, token)
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        write(path, AFTER, token)
        after_seq = host.bus.last_seq
        assert await host.reload()
        now = host.snapshot()
        events = [e for e in host.bus.since(after_seq) if isinstance(e, ManifestReloaded)]
        assert [(e.added, e.removed, e.changed) for e in events] == [
            (("new",), ("drop",), ("change",))
        ]
        assert list(now) == ["keep", "change", "new"]
        # Untouched: same process, same start, same counter.
        assert now["keep"].pid == before["keep"].pid
        assert now["keep"].started == before["keep"].started and now["keep"].restarts == 0
        # Changed: a new process under the new spec.
        assert now["change"].state is S.RUNNING and now["change"].pid != before["change"].pid
        assert now["change"].spec.command == "sleep 71"
        assert now["new"].state is S.RUNNING
        drop_pid = before["drop"].pid
        assert drop_pid not in tagged_pids(token)
        assert sorted(tagged_pids(token)) == sorted(p.pid for p in now.values())  # type: ignore[type-var]


async def test_an_invalid_edit_changes_nothing_and_the_next_valid_one_applies(
    tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # problems name the file as the user would: services.toml
    path = tmp_path / "services.toml"
    write(path, BEFORE, token)
    async with Host(load_manifest(path)) as host:
        before = await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        path.write_text(
            path.read_text().replace(
                'command = "sleep 61"', 'command = "sleep 61"\nrestart = "yes"'
            )
        )
        after_seq = host.bus.last_seq
        assert not await host.reload()
        invalid = [e for e in host.bus.since(after_seq) if isinstance(e, ManifestInvalid)]
        assert len(invalid) == 1 and "services.change.restart: expected one of" in invalid[0].error
        assert invalid[0].error.startswith("services.toml:8:11: services.change.restart"), invalid[
            0
        ].error
        assert {n: s.pid for n, s in host.snapshot().items()} == {
            n: s.pid for n, s in before.items()
        }
        path.unlink()
        assert not await host.reload()  # deleted: keep running
        assert all(s.state is S.RUNNING for s in host.snapshot().values())
        write(path, AFTER, token)
        assert await host.reload()
        assert list(host.snapshot()) == ["keep", "change", "new"]


def test_sighup_reloads_the_manifest_in_headless_mode(tmp_path: Path, token: str) -> None:
    path = tmp_path / "services.toml"
    write(path, BEFORE, token)
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    for name in ("keep", "change", "drop"):
        tuisup.expect(lambda line, name=name: line.startswith(f"{name} started"))  # type: ignore[misc]
    write(path, AFTER, token)
    tuisup.proc.send_signal(signal.SIGHUP)
    tuisup.expect(
        lambda line: line == "tuisup: manifest reloaded: added new; removed drop; restarted change"
    )
    tuisup.expect(lambda line: line.startswith("new started"))
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0
    assert not list(tagged_pids(token))


async def test_saving_the_manifest_applies_it_and_a_burst_of_saves_applies_once(
    tmp_path: Path, token: str
) -> None:
    path = tmp_path / "services.toml"
    write(path, BEFORE, token)
    async with Host(load_manifest(path)) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        after_seq = host.bus.last_seq
        # An editor's save: write a temporary file, rename it over the manifest; three times.
        for _ in range(3):
            temporary = tmp_path / ".services.toml.swp"
            write(temporary, AFTER, token)
            temporary.rename(path)
        await wait_until(host, lambda s: "new" in s and s["new"].state is S.RUNNING)
        (tmp_path / "unrelated.txt").write_text("not the manifest")
        path.write_text(path.read_text() + '\n[services.extra]\ncommand = "sleep 64"\n')
        with anyio.fail_after(5):
            async for _ in host.bus.stream(after_seq):
                reloads = [e for e in host.bus.since(after_seq) if isinstance(e, ManifestReloaded)]
                if len(reloads) == 2:
                    break
        assert [(e.added, e.removed, e.changed) for e in reloads] == [
            (("new",), ("drop",), ("change",)),
            (("extra",), (), ()),  # a second reload for the burst would stand here
        ]


async def test_no_reload_leaves_a_saved_manifest_alone(tmp_path: Path, token: str) -> None:
    path = tmp_path / "services.toml"
    write(path, BEFORE, token)
    async with Host(load_manifest(path), watch=False) as host:
        await wait_until(host, lambda s: all(x.state is S.RUNNING for x in s.values()))
        seen = anyio.Event()
        watcher = FileWatcher(path, seen.set)  # what a watching host would act on
        assert watcher.start()
        after_seq = host.bus.last_seq
        write(path, AFTER, token)
        with anyio.fail_after(5):
            await seen.wait()  # the save settled: a watching host would reload now
        # Then give a reload (a thread read and an apply) ample time to show up, and see none.
        with anyio.move_on_after(1.0):
            await wait_event(host, lambda e: isinstance(e, ManifestReloaded), after_seq)
        watcher.close()
        assert not [e for e in host.bus.since(after_seq) if isinstance(e, ManifestReloaded)]
        assert list(host.snapshot()) == ["keep", "change", "drop"]


async def test_an_edit_to_how_tuisup_steers_a_service_applies_in_place(
    tmp_path: Path, token: str
) -> None:
    path = tmp_path / "services.toml"
    before = """
    [services.db]
    command = "sleep 60"
    env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
    healthcheck = { command = "true" }

    [services.job]
    command = "sleep 60"
    restart = "never"

    [services.api]
    command = "sleep 61"
    depends_on = { job = "completed" }
    """
    write(path, before, token)
    async with Host(load_manifest(path)) as host:
        first = await wait_until(
            host, lambda s: s["db"].health is not None and s["api"].state is S.WAITING
        )
        after = (
            before.replace(
                '{ command = "true" }', '{ command = "exit 1", interval = 0.1, retries = 1 }'
            )
            .replace('depends_on = { job = "completed" }', "depends_on = []")
            .replace('restart = "never"', 'restart = "never"\n    stop_timeout = 3')
        )
        write(path, after, token)
        seq = host.bus.last_seq
        assert await host.reload()
        reloaded = [e for e in host.bus.since(seq) if isinstance(e, ManifestReloaded)]
        assert [(e.changed, e.updated) for e in reloaded] == [((), ("db", "job", "api"))]
        assert reloaded[0].summary() == "updated db, job, api"
        # db keeps its run, and its new check now finds it unhealthy.
        now = await wait_until(host, lambda s: s["db"].health_reason == "exit code 1")
        assert now["db"].pid == first["db"].pid and now["db"].restarts == 0
        # api no longer waits for job.
        now = await wait_until(host, lambda s: s["api"].state is S.RUNNING)
        assert now["job"].pid == first["job"].pid and now["job"].spec.stop_timeout == 3


def test_removing_a_service_that_prints_while_it_stops_keeps_tuisup_running(
    tmp_path: Path, token: str
) -> None:
    """Regression: the printer fetched the leaving service's lines by a name the Host no
    longer knew, and headless tuisup died with `UnknownService: 'drop'`."""
    path = tmp_path / "services.toml"
    loud_drop = BEFORE.replace(
        'command = "sleep 62"',
        "command = \"trap 'echo bye from drop; exit 0' TERM; echo trap set; sleep 62 & wait\"\n"
        "shell = true",
    )
    write(path, loud_drop, token)
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    for name in ("keep", "change", "drop"):
        tuisup.expect(lambda line, name=name: line.startswith(f"{name} started"))  # type: ignore[misc]
    tuisup.expect(lambda line: line.endswith("| trap set"))  # a SIGTERM before it would be quiet
    write(path, BEFORE.replace("[services.drop]", "[services.other]"), token)
    tuisup.proc.send_signal(signal.SIGHUP)
    tuisup.expect(lambda line: line.endswith("| bye from drop"))
    tuisup.expect(lambda line: line.startswith("tuisup: manifest reloaded: added other"))
    tuisup.expect(lambda line: line.startswith("other started"))
    tuisup.proc.send_signal(signal.SIGINT)
    assert tuisup.finish() == 0, tuisup.proc.stderr.read() if tuisup.proc.stderr else ""
    assert not list(tagged_pids(token))
