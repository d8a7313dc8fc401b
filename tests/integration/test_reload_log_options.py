"""A reload that changes only a service's `log_*` keys applies them to its file at once.

Regression: a service's log options reached its file only when the service was added, so a
kept service went on writing (and rotating) its file as the manifest first said.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.conftest import wait_event, wait_until
from tuisup.engine import Host, ServiceState
from tuisup.engine.events import Event, ManifestReloaded, Output
from tuisup.manifest import load_manifest

S = ServiceState

MANIFEST = """
[tuisup]
log_dir = "logs"

[services.svc]
shell = true
command = "i=0; while :; do i=$((i+1)); echo line $i of a service that talks; sleep 0.01; done"
env = {{ TUISUP_TEST_TOKEN = "{token}" }}
{options}
"""
LIMIT = 400


def lines_after(seq: int, count: int) -> Callable[[Event], bool]:
    """A predicate: true at the `output` event that brings svc's lines since `seq` to `count`."""
    seen = [0]

    def enough(event: Event) -> bool:
        if isinstance(event, Output) and event.service == "svc" and event.seq > seq:
            seen[0] += event.count
        return seen[0] >= count

    return enough


async def test_a_reload_of_only_log_options_rotates_and_formats_a_kept_services_file_by_them(
    tmp_path: Path, token: str
) -> None:
    path = tmp_path / "services.toml"
    path.write_text(textwrap.dedent(MANIFEST).format(token=token, options=""))
    logs = tmp_path / "logs"
    async with Host(load_manifest(path), watch=False) as host:
        before = await wait_until(host, lambda s: s["svc"].state is S.RUNNING)
        await wait_event(host, lines_after(0, 5), 0)
        options = f'log_max_bytes = {LIMIT}\nlog_backups = 1\nlog_format = "json"'
        path.write_text(textwrap.dedent(MANIFEST).format(token=token, options=options))
        assert await host.reload()
        reloaded = [e for e in host.bus.since(0) if isinstance(e, ManifestReloaded)]
        assert [(e.changed, e.updated) for e in reloaded] == [((), ("svc",))]
        # Lines enough to fill the file three times over: it has been rotated since.
        await wait_event(host, lines_after(reloaded[0].seq, 3 * LIMIT // 30), reloaded[0].seq)
        assert host.snapshot()["svc"].pid == before["svc"].pid  # not restarted
        assert (logs / "svc.log.1").exists()
        assert not (logs / "svc.log.2").exists()  # one backup kept
        assert (logs / "svc.log").stat().st_size <= LIMIT
        written = (logs / "svc.log").read_text().splitlines()
    assert written and all(json.loads(line)["stream"] == "stdout" for line in written)
