"""Listener services over a real Host: real processes reading the host's events on their stdin."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from tests.conftest import Tuisup, wait_event, wait_gone, wait_until
from tests.integration.test_cli import sigkill_leaves_nothing
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, Output
from tuisup.manifest import load_manifest, parse_manifest
from tuisup.spec import (
    BackoffKind,
    ExecutorKind,
    HealthCheck,
    HealthKind,
    HostSettings,
    Listen,
    Manifest,
    ServiceSpec,
)
from tuisup.terminal import json_text

S = ServiceState
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def received(host: Host, name: str) -> list[dict[str, Any]]:
    """What a listener that copies its stdin to its stdout (`cat`) has read, parsed."""
    lines = [
        line
        for batch in host.store.since(name, 0)
        if batch.stream == "stdout"
        for line in batch.lines
    ]
    return [json.loads(line) for line in lines]


def logged(host: Host, name: str) -> list[str]:
    """Every line a service's log keeps."""
    return [line for batch in host.store.since(name, 0) for line in batch.lines]


async def until_logged(host: Host, name: str, line: str) -> None:
    """Wait, output event by output event, until a service's log has `line`."""
    after = 0
    while line not in logged(host, name):
        event = await wait_event(host, lambda e: isinstance(e, Output) and e.service == name, after)
        after = event.seq


async def until_received(
    host: Host, name: str, predicate: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Wait, output event by output event, until what `name` read satisfies `predicate`."""
    after = host.bus.last_seq
    while not predicate(got := received(host, name)):
        event = await wait_event(host, lambda e: isinstance(e, Output) and e.service == name, after)
        after = event.seq
    return got


def bus_json(host: Host, seqs: set[int]) -> dict[int, dict[str, Any]]:
    """The bus's own events of these numbers, as `--json` writes them."""
    events: list[Event] = [e for e in host.bus.since(0) if e.seq in seqs]
    return {e.seq: json.loads(json_text(e.to_json())) for e in host.lines_inline(events)}


async def test_a_listener_reads_a_snapshot_then_each_event_it_asks_for_as_json_lines(
    make_manifest: Callable[..., Manifest],
) -> None:
    listen = Listen(kinds=("state",), services=("db",))
    manifest = make_manifest(
        db="exec sleep 60",
        web="exec sleep 61",
        alerts=("exec cat", {"listen": listen}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        await host.restart("web")  # not listened to
        await host.restart("db")
        got = await until_received(
            host, "alerts", lambda got: any(e.get("state") == "running" for e in got[1:])
        )
        first, *events = got
        assert first["event"] == "snapshot"
        assert [view["service"] for view in first["services"]] == ["db"]
        assert first["services"][0]["spec"]["command"] == "exec sleep 60"
        assert [(e["event"], e["service"], e["state"]) for e in events] == [
            ("state", "db", "stopping"),
            ("state", "db", "stopped"),
            ("state", "db", "starting"),
            ("state", "db", "running"),
        ]
        # Exactly the lines `--no-tui --json` prints for the same events.
        assert bus_json(host, {e["seq"] for e in events}) == {e["seq"]: e for e in events}


async def test_output_reaches_a_listener_with_its_lines_but_never_its_own_output(
    make_manifest: Callable[..., Manifest],
) -> None:
    """A `cat` listener of every kind would feed on what it printed, without end."""
    manifest = make_manifest(
        chatty="echo one; echo two; exec sleep 60",
        alerts=("exec cat", {"listen": Listen()}),
    )
    async with Host(manifest) as host:
        await until_received(
            host, "alerts", lambda got: any("two" in e.get("lines", ()) for e in got)
        )
        await host.stop("chatty")
        got = await until_received(
            host, "alerts", lambda got: any(e.get("state") == "stopped" for e in got)
        )
        outputs = [e for e in got if e["event"] == "output"]
        assert {e["service"] for e in outputs} == {"chatty"}
        assert [line for e in outputs for line in e["lines"]] == ["one", "two"]


async def test_a_listener_that_closes_its_stdin_is_left_running_and_fed_no_more(
    make_manifest: Callable[..., Manifest],
) -> None:
    """Its feeder meets EPIPE: it ends quietly, the host and the listener carry on."""
    manifest = make_manifest(
        web="exec sleep 60",
        deaf=("exec 0<&-; echo closed; exec sleep 61", {"listen": Listen()}),
    )
    async with Host(manifest) as host:
        await until_logged(host, "deaf", "closed")
        for _ in range(3):
            await host.restart("web")
        with anyio.fail_after(5):
            while host.listeners.live:
                await anyio.sleep(0.01)
        await host.restart("web")
        assert host.snapshot()["deaf"].state is S.RUNNING
        assert host.snapshot()["web"].restarts == 4


async def test_a_restarted_listener_starts_again_from_a_fresh_snapshot(
    make_manifest: Callable[..., Manifest],
) -> None:
    """It reads two lines and crashes; each of its runs begins with where things stand."""
    listen = Listen(kinds=("state",), services=("flaky",))
    manifest = make_manifest(
        flaky=("sleep 0.2; exit 3", {"backoff": BackoffKind.FIXED, "backoff_delay": 0.1}),
        alerts=(
            'read -r a; printf "%s\\n" "$a"; read -r b; printf "%s\\n" "$b"; exit 1',
            {"listen": listen, "backoff": BackoffKind.FIXED, "backoff_delay": 0.1},
        ),
    )
    async with Host(manifest) as host:
        got = await until_received(
            host, "alerts", lambda got: sum(e["event"] == "snapshot" for e in got) >= 3
        )
        snapshots = [e for e in got if e["event"] == "snapshot"]
        seqs = [s["seq"] for s in snapshots]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # Each is fresh: it holds flaky's restarts as they were when that run began.
        restarts = [s["services"][0]["restarts"] for s in snapshots]
        assert restarts[-1] > restarts[0]
        assert host.snapshot()["alerts"].restarts >= 2
    assert not host.listeners.live


async def test_a_python_target_listens_as_a_process_and_as_an_async_process(
    tmp_path: Path, token: str
) -> None:
    (tmp_path / "listening.py").write_text(
        textwrap.dedent(
            """
            import asyncio, json, sys

            def sync(ctx):
                for line in sys.stdin:
                    print("sync got", json.loads(line)["event"], flush=True)

            async def run(ctx):
                loop = asyncio.get_running_loop()
                line = await loop.run_in_executor(None, sys.stdin.readline)
                print("async got", json.loads(line)["event"], flush=True)
                await ctx.token.wait_async()
            """
        )
    )

    def target(name: str, executor: ExecutorKind) -> ServiceSpec:
        return ServiceSpec(
            name=name,
            argv=(),
            command=f"listening:{name}",
            target=f"listening:{name}",
            executor=executor,
            cwd=tmp_path,
            env={"TUISUP_TEST_TOKEN": token},
            listen=Listen(),
        )

    specs = {
        "sync": target("sync", ExecutorKind.PROCESS),
        "run": target("run", ExecutorKind.ASYNC_PROCESS),
    }
    manifest = Manifest(
        path=tmp_path / "services.toml", settings=HostSettings(log_dir=None), services=specs
    )
    async with Host(manifest) as host:
        await until_logged(host, "sync", "sync got snapshot")
        await until_logged(host, "run", "async got snapshot")
    await wait_gone(token, timeout=2)


async def test_a_change_to_listen_restarts_the_listener_under_it(
    tmp_path: Path, token: str
) -> None:
    path = tmp_path / "services.toml"
    text = """
        [services.db]
        command = "sleep 60"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
        [services.alerts]
        command = "cat"
        env = {{ TUISUP_TEST_TOKEN = "{token}" }}
        listen = {{ services = ["{listened}"] }}
    """
    path.write_text(textwrap.dedent(text.format(token=token, listened="db")))
    async with Host(load_manifest(path), watch=False) as host:
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        pid = host.snapshot()["alerts"].pid
        path.write_text(textwrap.dedent(text.format(token=token, listened="alerts")))
        assert await host.reload()
        view = host.snapshot()["alerts"]
        assert view.state is S.RUNNING and view.pid != pid
        assert view.spec.listen is not None and view.spec.listen.services == ("alerts",)
        got = await until_received(
            host, "alerts", lambda got: sum(e["event"] == "snapshot" for e in got) == 2
        )
        snapshots = [e for e in got if e["event"] == "snapshot"]
        assert [v["service"] for v in snapshots[-1]["services"]] == ["alerts"]


async def test_listeners_leave_no_process_and_no_feeder_after_a_shutdown(
    make_manifest: Callable[..., Manifest], token: str
) -> None:
    manifest = make_manifest(
        reads=("exec cat", {"listen": Listen()}),
        never=("exec sleep 60", {"listen": Listen(), "listen_buffer": 1}),
        spawns=("sleep 62 & cat", {"listen": Listen()}),
    )
    async with Host(manifest) as host:
        await wait_until(host, lambda s: all(v.state is S.RUNNING for v in s.values()))
        assert len(host.listeners.live) == 3
    assert not host.listeners.live
    await wait_gone(token, timeout=2)


def test_sigkill_of_tuisup_leaves_no_listener(tmp_path: Path, token: str) -> None:
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            f"""
            [services.alerts]
            command = "sleep 63 & cat"
            shell = true
            env = {{ TUISUP_TEST_TOKEN = "{token}" }}
            listen = {{ kinds = ["state"] }}
            """
        )
    )
    tuisup = Tuisup("--no-tui", cwd=tmp_path)
    tuisup.expect(lambda line: line.startswith("alerts | ") and '"snapshot"' in line)
    sigkill_leaves_nothing(tuisup, token, 3)  # sh, sleep, cat


async def test_a_listener_spec_is_seen_by_observers_and_survives_json(
    make_manifest: Callable[..., Manifest],
) -> None:
    from tuisup.model.views import ServiceView

    listen = Listen(kinds=("state", "health"), services=("alerts",))
    manifest = make_manifest(alerts=("exec cat", {"listen": listen, "listen_buffer": 7}))
    async with Host(manifest) as host:
        view = host.snapshot()["alerts"]
        assert view.spec.listen is not None
        assert view.spec.listen.kinds == ("state", "health")
        assert view.spec.listen.services == ("alerts",)
        assert view.spec.listen.buffer == 7
        data = view.to_json()
        assert data["spec"]["listen"] == {
            "kinds": ["state", "health"],
            "services": ["alerts"],
            "buffer": 7,
        }
        assert ServiceView.from_json(json.loads(json.dumps(data))) == view


async def test_a_service_that_is_no_listener_still_has_dev_null_for_stdin(
    make_manifest: Callable[..., Manifest],
) -> None:
    manifest = make_manifest(plain="readlink /proc/self/fd/0; exec sleep 60")
    async with Host(manifest) as host:
        await wait_until(host, lambda s: s["plain"].state is S.RUNNING)
        await until_logged(host, "plain", "/dev/null")
        assert not host.listeners.live


async def test_the_readme_listener_reads_what_tuisup_writes(
    tmp_path: Path, make_manifest: Callable[..., Manifest]
) -> None:
    section = README.split("### Listener services", 1)[1]
    toml = section.split("```toml", 1)[1].split("```")[0]
    python = section.split("```python", 1)[1].split("```")[0]
    others = '[services.api]\ncommand = "api"\n[services.db]\ncommand = "db"\n'
    listen = parse_manifest(toml + others, tmp_path / "services.toml").services["alerts"].listen
    assert listen == Listen(kinds=("state", "health"), services=("api", "db"))
    (tmp_path / "alerts.py").write_text(python)
    check = HealthCheck(kind=HealthKind.COMMAND, target="true", argv=("true",))
    manifest = make_manifest(
        db=("exec sleep 60", {"healthcheck": check}),
        api="exec sleep 61",
        alerts=(f"exec {sys.executable} alerts.py", {"listen": listen}),
    )
    async with Host(manifest) as host:
        await until_logged(host, "alerts", "db is up")


async def test_a_feeder_that_fell_off_the_bus_ring_says_missed_then_where_things_stand(
    make_manifest: Callable[..., Manifest],
) -> None:
    """The loop was held up while more events than the bus keeps went by (here: added
    without a pause): the listener is told how many it lost, then where things stand."""
    listen = Listen(kinds=("output",), services=("src",))
    manifest = make_manifest(src="exec sleep 60", alerts=("exec cat", {"listen": listen}))
    async with Host(manifest) as host:
        await until_received(host, "alerts", lambda got: len(got) == 1)
        lost = host.bus.capacity + 10
        for i in range(lost):
            host.store.add("src", "stdout", [f"line {i}"])
        added = host.bus.last_seq
        got = await until_received(host, "alerts", lambda got: len(got) == 3)
        assert [e["event"] for e in got] == ["snapshot", "missed", "snapshot"]
        # Which of those that left the ring it asked for is unknown: they all count.
        assert lost <= got[1]["count"] <= lost + 2
        assert got[2]["seq"] >= added  # it holds them all
        host.store.add("src", "stdout", ["after"])
        got = await until_received(host, "alerts", lambda got: len(got) == 4)
        assert got[3]["lines"] == ["after"] and got[3]["seq"] > got[2]["seq"]
