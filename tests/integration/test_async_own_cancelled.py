"""An async service whose own code raises CancelledError has crashed; the host goes on.

Regression: a CancelledError that nobody sent (a coroutine awaiting a sub-task it cancelled,
or raising it) was taken for the host's own cancellation and let through: it cancelled the
host's task group, and every service with it.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import anyio
import pytest

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, HostSettings, Manifest, RestartPolicy, ServiceSpec

S = ServiceState

SOURCE = """
import asyncio
import os

async def awaits_what_it_cancelled(ctx):
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0.05)
    task.cancel()
    await task

async def raises_it(ctx):
    await asyncio.sleep(0.05)
    raise asyncio.CancelledError

async def cancels_itself(ctx):
    await asyncio.sleep(0.05)
    asyncio.current_task().cancel()
    await asyncio.sleep(10)

async def swallows_one(ctx):
    asyncio.current_task().cancel()  # the pre-3.11 way to time out, its request never undone
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        pass
    print("carrying on", flush=True)
    await asyncio.sleep(60)

async def names_a_file_not_utf8(ctx):
    await asyncio.sleep(0.05)
    raise RuntimeError("bad file " + os.fsdecode(b"x\\xff"))

async def idles(ctx):
    await asyncio.sleep(60)
"""


def manifest(tmp_path: Path, attribute: str, **options: object) -> Manifest:
    module = f"svc_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(SOURCE))

    def spec(name: str, attribute: str, **options: object) -> ServiceSpec:
        target = f"{module}:{attribute}"
        return ServiceSpec(
            name=name,
            argv=(),
            command=target,
            target=target,
            executor=ExecutorKind.ASYNC,
            cwd=tmp_path,
            **options,  # type: ignore[arg-type]
        )

    services = {
        "bad": spec("bad", attribute, **({"restart": RestartPolicy.NEVER} | options)),
        "other": spec("other", "idles"),
    }
    settings = HostSettings(log_dir=tmp_path / "logs")
    return Manifest(path=tmp_path / "services.toml", settings=settings, services=services)


@pytest.mark.parametrize("attribute", ["awaits_what_it_cancelled", "raises_it", "cancels_itself"])
async def test_its_own_cancelled_error_is_a_crash_of_that_service_alone(
    tmp_path: Path, attribute: str
) -> None:
    async with Host(manifest(tmp_path, attribute)) as host:
        views = await wait_until(host, lambda s: s["bad"].state is S.EXITED)
        assert views["bad"].last_exit is not None
        assert views["bad"].last_exit.status.error == "CancelledError: "
        assert views["other"].state is S.RUNNING
        await host.restart("other")  # the host still answers
        assert host.snapshot()["other"].state is S.RUNNING


async def test_one_that_swallowed_a_cancellation_is_stopped_as_any_other(tmp_path: Path) -> None:
    """Its task still counts the request it swallowed: a stop is not taken for the host's."""
    async with Host(manifest(tmp_path, "swallows_one")) as host:
        await wait_until(host, lambda s: s["bad"].state is S.RUNNING)
        lines = lambda: [line for b in host.store.since("bad", 0) for line in b.lines]  # noqa: E731
        with anyio.fail_after(10):
            while "carrying on" not in lines():
                await anyio.sleep(0.01)
        await host.stop("bad")
        views = host.snapshot()
        assert views["bad"].state is S.STOPPED
        assert views["other"].state is S.RUNNING


async def test_a_crash_whose_message_names_a_file_not_utf8_is_a_crash_like_any_other(
    tmp_path: Path,
) -> None:
    """Its message reached the log file's encoder with a lone surrogate: an internal error
    that failed the service at once, whatever its restart policy said."""
    again = {"restart": RestartPolicy.ON_FAILURE, "backoff_delay": 0.01, "max_restarts": 2}
    async with Host(manifest(tmp_path, "names_a_file_not_utf8", **again)) as host:
        views = await wait_until(host, lambda s: s["bad"].state is S.FAILED)
        assert views["bad"].restarts == 2, views["bad"].reason  # its budget, spent
        errors = [record.status.error for record in views["bad"].history]
        assert errors == ["RuntimeError: bad file x\udcff"] * 3
