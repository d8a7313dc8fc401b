"""An async service whose own code raises CancelledError has crashed; the host goes on.

Regression: a CancelledError that nobody sent (a coroutine awaiting a sub-task it cancelled,
or raising it) was taken for the host's own cancellation and let through: it cancelled the
host's task group, and every service with it.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tuisup.engine import Host, ServiceState
from tuisup.spec import ExecutorKind, HostSettings, Manifest, RestartPolicy, ServiceSpec

S = ServiceState

SOURCE = """
import asyncio

async def awaits_what_it_cancelled(ctx):
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0.05)
    task.cancel()
    await task

async def raises_it(ctx):
    await asyncio.sleep(0.05)
    raise asyncio.CancelledError

async def idles(ctx):
    await asyncio.sleep(60)
"""


def manifest(tmp_path: Path, attribute: str) -> Manifest:
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
        "bad": spec("bad", attribute, restart=RestartPolicy.NEVER),
        "other": spec("other", "idles"),
    }
    settings = HostSettings(log_dir=tmp_path / "logs")
    return Manifest(path=tmp_path / "services.toml", settings=settings, services=services)


@pytest.mark.parametrize("attribute", ["awaits_what_it_cancelled", "raises_it"])
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
