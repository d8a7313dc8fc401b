"""A health check's command runs in its service's environment, the host's variables included.

Regression: check commands got the service's variables but not the host's (`Host.env`), so
one could not reach the host through `TUISUP_SOCKET`, as the service and its hooks can.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import wait_until
from tests.control.raw import serving, short_folder
from tests.integration.test_health import command
from tuisup.engine import ServiceState
from tuisup.engine.events import Health
from tuisup.spec import Manifest

S = ServiceState


async def test_a_check_command_gets_the_hosts_socket_as_the_service_does(
    make_manifest: Callable[..., Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUISUP_SOCKET", raising=False)  # tests run from a tuisup service
    check = command('test -S "$TUISUP_SOCKET"', retries=1)
    manifest = make_manifest(
        svc=('test -S "$TUISUP_SOCKET" && exec sleep 30', {"healthcheck": check})
    )
    with short_folder() as folder:
        async with serving(manifest, folder / "s.sock") as (host, _):
            judged = (Health.HEALTHY, Health.UNHEALTHY)
            views = await wait_until(host, lambda s: s["svc"].health in judged)
            assert views["svc"].state is S.RUNNING  # the service found the socket
            assert views["svc"].health is Health.HEALTHY, views["svc"].health_reason
