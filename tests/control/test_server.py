"""The control server answers a hello and every operation, over a real socket to a real host."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import tuisup
from tests.conftest import tagged_pids, wait_until
from tests.control.raw import Raw, serving, short_folder
from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlServer, Limits
from tuisup.engine import Host, ServiceState
from tuisup.manifest import load_manifest
from tuisup.spec import Condition, Manifest

S = ServiceState


@pytest.fixture
def folder() -> Any:
    with short_folder() as path:
        yield path


def running(*names: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: all(s[n].state is S.RUNNING for n in names)


async def test_hello_says_who_answers(make_manifest: Callable[..., Manifest], folder: Path) -> None:
    manifest = make_manifest(web="exec sleep 30")
    async with serving(manifest, folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        answer = await raw.ask({"id": 0, "op": "hello", "version": 1})
        assert answer == {
            "id": 0,
            "ok": True,
            "result": {
                "version": 1,
                "tuisup": tuisup.__version__,
                "pid": os.getpid(),
                "manifest": str(manifest.path),
                "socket": str(folder / "s.sock"),
            },
        }
        # The version may come in `args` too, as every other request's arguments do.
        again = await raw.ask({"id": 5, "op": "hello", "args": {"version": 1}})
        assert again["ok"] and again["result"]["pid"] == os.getpid()
        await raw.aclose()


async def test_another_version_is_refused_and_closed(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        answer = await raw.ask({"id": 0, "op": "hello", "version": 2})
        assert answer["error"]["code"] == "version"
        assert "version 2" in answer["error"]["message"]
        await raw.closed()


async def test_anything_before_the_hello_is_refused_and_closed(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock", hello=False)
        answer = await raw.ask({"id": 1, "op": "snapshot"})
        assert answer == {
            "id": 1,
            "ok": False,
            "error": {"code": "bad_request", "message": "hello first"},
        }
        await raw.closed()


async def test_snapshot_of_all_of_some_and_of_a_misspelt_service(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        raw = await Raw.connect(folder / "s.sock")
        every = (await raw.result("snapshot"))["services"]
        assert [v["service"] for v in every] == ["web", "db"]
        assert every == [view.to_json() for view in host.snapshot().values()]
        assert every[0]["spec"]["command"] == "exec sleep 30"
        some = await raw.result("snapshot", services=["db"])
        assert [v["service"] for v in some["services"]] == ["db"]
        wrong = await raw.call("snapshot", services=["wbe"])
        assert wrong["error"] == {
            "code": "unknown_service",
            "message": 'unknown service "wbe" (did you mean "web"?)',
        }
        await raw.aclose()


async def test_commands_answer_once_done_with_what_else_moved(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    manifest = make_manifest(
        db="exec sleep 30",
        api=("exec sleep 31", {"depends_on": {"db": Condition.STARTED}}),
    )
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("db", "api"))
        raw = await Raw.connect(folder / "s.sock")
        assert await raw.result("affected", verb="stop", name="db") == {"services": ["api"]}
        assert await raw.result("stop", name="db") == {"moved": ["api"]}
        assert {v.name: v.state for v in host.snapshot().values()} == {
            "db": S.STOPPED,
            "api": S.STOPPED,
        }
        assert await raw.result("start", name="api") == {"moved": ["db"]}
        states = {v.name: v.state for v in host.snapshot().values()}
        assert states["db"] is S.RUNNING and states["api"] in (S.RUNNING, S.WAITING), states
        await wait_until(host, running("db", "api"))
        pid = host.snapshot()["db"].pid
        assert await raw.result("restart", name="db") == {"moved": []}
        assert host.snapshot()["db"].state is S.RUNNING and host.snapshot()["db"].pid != pid
        assert await raw.result("kill", name="api") == {"moved": []}
        await wait_until(host, lambda s: s["api"].restarts >= 1 and s["api"].state is S.RUNNING)
        for op in ("start", "stop", "restart", "kill", "toggle_watch"):
            wrong = await raw.call(op, name="dbb")
            assert wrong["error"]["code"] == "unknown_service", (op, wrong)
            assert 'did you mean "db"' in wrong["error"]["message"]
        bad_verb = await raw.call("affected", verb="kill", name="db")
        assert bad_verb["error"]["code"] == "bad_request"
        assert await raw.result("toggle_watch", name="db") == {"watching": None}
        await raw.aclose()
    assert not list(tagged_pids(token))


async def test_logs_since_and_the_last_n_lines(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(
        web=("for i in 1 2 3 4 5; do echo line $i; done; exec sleep 30", {}),
    )
    async with serving(manifest, folder / "s.sock") as (host, _):
        raw = await Raw.connect(folder / "s.sock")
        with anyio.fail_after(10):
            while sum(len(b.lines) for b in await host.logs("web")) < 5:
                await anyio.sleep(0.02)
        lines = [b["lines"] for b in (await raw.result("logs", name="web"))["batches"]]
        assert sum(lines, []) == [f"line {i}" for i in range(1, 6)]
        last = (await raw.result("logs", name="web", limit=2))["batches"]
        assert sum((b["lines"] for b in last), []) == ["line 4", "line 5"]
        assert last[0]["first"] == 4
        after = (await raw.result("logs", name="web", since=3))["batches"]
        assert sum((b["lines"] for b in after), []) == ["line 4", "line 5"]
        merged = (await raw.result("logs"))["batches"]
        assert {b["service"] for b in merged} == {"web"}
        wrong = await raw.call("logs", name="wbe")
        assert wrong["error"]["code"] == "unknown_service"
        await raw.aclose()


async def test_processes(make_manifest: Callable[..., Manifest], folder: Path) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock") as (host, _):
        await wait_until(host, running("web"))
        raw = await Raw.connect(folder / "s.sock")
        stats = await raw.result("processes")
        pid = host.snapshot()["web"].pid
        assert [row[0] for row in stats["trees"]["web"]] == [pid]
        assert stats["rss"] > 0
        await raw.aclose()


async def test_reload_answers_with_the_summary_or_the_error(tmp_path: Path, token: str) -> None:
    path = tmp_path / "services.toml"
    service = f'command = "sleep 60"\nenv = {{ TUISUP_TEST_TOKEN = "{token}" }}\n'
    path.write_text(f"[services.web]\n{service}")
    with short_folder() as folder:
        async with serving(load_manifest(path), folder / "s.sock") as (host, _):
            raw = await Raw.connect(folder / "s.sock")
            before = (await raw.result("snapshot"))["services"]
            assert before[0]["spec"]["command"] == "sleep 60"
            changed = service.replace("sleep 60", "sleep 61")
            path.write_text(f"[services.web]\n{changed}[services.more]\n{service}")
            result = await raw.result("reload")
            assert result == {"applied": True, "summary": "added more; restarted web"}
            after = (await raw.result("snapshot"))["services"]  # its new spec, not the old
            assert [v["spec"]["command"] for v in after] == ["sleep 61", "sleep 60"]
            assert after == [view.to_json() for view in host.snapshot().values()]
            path.write_text("[services.web]\ncommand = 5\n")
            result = await raw.result("reload")
            assert result["applied"] is False
            assert "services.web.command: expected" in result["error"]
            assert list(host.snapshot()) == ["web", "more"]
            await raw.aclose()
    assert not list(tagged_pids(token))


async def test_shutdown_answers_once_the_host_has_stopped(
    make_manifest: Callable[..., Manifest], folder: Path, token: str
) -> None:
    manifest = make_manifest(web="exec sleep 30", db="exec sleep 31")
    async with serving(manifest, folder / "s.sock") as (host, _):
        await wait_until(host, running("web", "db"))
        raw = await Raw.connect(folder / "s.sock")
        events = await raw.result("subscribe")
        assert await raw.result("shutdown", reason="tuisup down") == {}
        assert host.stopping
        assert all(v.state is S.STOPPED for v in host.snapshot().values())
        assert not list(tagged_pids(token))
        said = await raw.events(1, lambda e: e["event"] == "host_stopped")
        assert {"event": "host_stopping", "reason": "tuisup down"}.items() <= said[0].items()
        del events


async def test_requests_of_one_connection_run_at_once(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """A `stop` that takes seconds (its service ignores SIGTERM) holds up no `snapshot`."""
    slow = ("trap '' TERM; echo up; while true; do sleep 0.1; done", {"stop_timeout": 3.0})
    async with serving(make_manifest(slow=slow), folder / "s.sock") as (host, _):
        await wait_until(host, lambda s: s["slow"].state is S.RUNNING)
        with anyio.fail_after(10):
            while not await host.logs("slow"):  # its trap is set
                await anyio.sleep(0.02)
        raw = await Raw.connect(folder / "s.sock")
        await raw.send({"id": 1, "op": "stop", "args": {"name": "slow"}})
        await wait_until(host, lambda s: s["slow"].state is S.STOPPING)
        await raw.send({"id": 2, "op": "snapshot"})
        first = await raw.line()
        assert first["id"] == 2
        assert first["result"]["services"][0]["state"] == "stopping"
        assert (await raw.answer(1))["ok"]
        await raw.aclose()


async def test_unknown_ops_and_bad_arguments_are_bad_requests(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock")
        cases = [
            ({"op": "restrat", "args": {"name": "web"}}, 'unknown op "restrat" (did you mean'),
            ({"op": "start"}, "start: name must be a string"),
            ({"op": "start", "args": {"name": 5}}, "start: name must be a string"),
            ({"op": "start", "args": {"name": "web", "x": 1}}, 'start: unknown argument "x"'),
            ({"op": "start", "args": ["web"]}, "start: args must be an object"),
            ({"op": "logs", "args": {"limit": -1}}, "logs: limit must be an integer >= 0"),
            ({"op": "subscribe", "args": {"lines": "yes"}}, "subscribe: lines must be true"),
            ({"op": "unsubscribe", "args": {"stream": 9}}, "unsubscribe: no stream 9"),
            ({"op": 7}, "op must be a string"),
        ]
        for number, (message, expected) in enumerate(cases, start=1):
            answer = await raw.ask({"id": number, **message})
            assert answer["ok"] is False and answer["id"] == number, answer
            assert answer["error"]["code"] == "bad_request"
            assert answer["error"]["message"].startswith(expected), answer
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()


class Failing:
    """A host whose `processes` fails with a bug (as a broken collector would)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def processes(self) -> Any:
        raise RuntimeError("boom")


async def test_an_unexpected_error_is_an_internal_answer_and_the_host_keeps_going(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with Host(make_manifest(web="exec sleep 30")) as host:
        server = ControlServer(Failing(host), SocketPath(path=folder / "s.sock"))  # type: ignore[arg-type]
        server.bind()
        async with server:
            raw = await Raw.connect(folder / "s.sock")
            answer = await raw.call("processes")
            assert answer["error"] == {"code": "internal", "message": "RuntimeError: boom"}
            assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
            await raw.aclose()


class FailingViews:
    """A host whose `snapshot` fails once a stream has begun (a bug in making views)."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def snapshot(self) -> Any:
        if self.broken:
            raise RuntimeError("no views")
        return self._host.snapshot()


async def fail_a_stream(
    manifest: Manifest, folder: Path, restarts: int, limits: Limits | None = None, **subscribe: Any
) -> None:
    """Break the views under a stream that `restarts` of web feed: the stream ends with an
    internal error, and the connection still answers once the views work again."""
    async with Host(manifest) as host:
        api = FailingViews(host)
        server = ControlServer(api, SocketPath(path=folder / "s.sock"), limits=limits)  # type: ignore[arg-type]
        server.bind()
        async with server:
            raw = await Raw.connect(folder / "s.sock")
            await raw.result("subscribe", **subscribe)
            api.broken = True
            for _ in range(restarts):
                await host.restart("web")  # its events want views
            assert await raw.answer(1) == {
                "id": 1,
                "ok": False,
                "error": {"code": "internal", "message": "RuntimeError: no views"},
            }
            api.broken = False
            assert (await raw.result("snapshot"))["services"][0]["state"] == "running"
            await raw.aclose()


async def test_a_stream_that_fails_ends_with_an_internal_error_and_nothing_else_does(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    await fail_a_stream(make_manifest(web="exec sleep 30"), folder, restarts=1, views=True)


async def test_a_catch_up_that_fails_ends_its_stream_and_not_the_connection(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """Regression: once a client had taken what waited, the writer told its streams to
    catch up (a `missed`, a `snapshot`) with no guard: a snapshot that failed there closed
    the whole connection, other answers and streams with it."""
    limits = Limits(outbox=1)  # a line goes only into an empty outbox: most are dropped
    await fail_a_stream(make_manifest(web="exec sleep 30"), folder, restarts=3, limits=limits)


async def test_a_command_not_waited_for_is_answered_at_once_and_done_after_the_client_left(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    """`no_wait`: the answer says it is asked (and what else moves), the host does it."""
    slow = ("trap '' TERM; echo up; while true; do sleep 0.1; done", {"stop_timeout": 1.0})
    async with serving(make_manifest(slow=slow), folder / "s.sock") as (host, _):
        await wait_until(host, lambda s: s["slow"].state is S.RUNNING)
        with anyio.fail_after(10):
            while not await host.logs("slow"):  # its trap is set
                await anyio.sleep(0.02)
        raw = await Raw.connect(folder / "s.sock")
        answer = await raw.call("stop", name="slow", no_wait=True)
        assert answer["ok"] and answer["result"] == {"moved": []}
        assert host.snapshot()["slow"].state is S.STOPPING  # answered before it was done
        await raw.aclose()
        await wait_until(host, lambda s: s["slow"].state is S.STOPPED)  # done all the same


async def test_a_snapshot_without_specs_leaves_the_manifest_tables_out(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 60"), folder / "s.sock") as (host, _):
        await wait_until(host, lambda s: s["web"].state is S.RUNNING)
        raw = await Raw.connect(folder / "s.sock")
        [bare] = (await raw.result("snapshot", spec=False))["services"]
        [whole] = (await raw.result("snapshot"))["services"]
        assert "spec" not in bare and whole["spec"]["command"] == "exec sleep 60"
        assert bare == {key: value for key, value in whole.items() if key != "spec"}
        await raw.aclose()
