"""`tuisup export systemd`: units that `systemd-analyze verify` takes without a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.export.conftest import DEMO, REPO, tuisup, verify_units
from tuisup.export.common import Options, read_source
from tuisup.export.systemd import export, local_version
from tuisup.manifest import load_manifest

PREFIX = "tuisup export: "
WATCH = "files that change do not restart it"
HOOKS = "hooks run only under tuisup"
OWN = "runs in tuisup's process; here it is a process of its own"


def fake_programs(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has the every-key manifest's programs (they do nothing)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("gunicorn", "celery"):
        (folder / name).write_text("#!/bin/sh\nsleep 1000\n")
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def export_to(
    manifest: Path, out: Path, *args: str, env: dict[str, str] | None = None
) -> list[str]:
    done = tuisup("-f", str(manifest), "export", "systemd", "-o", str(out), *args, env=env)
    assert done.returncode == 0, done.stderr
    return [line.removeprefix(PREFIX) for line in done.stderr.splitlines()]


def unit(out: Path, name: str) -> list[str]:
    return (out / name).read_text().splitlines()


def test_the_demo_exports_to_units_systemd_verifies_clean(tmp_path: Path) -> None:
    project = tmp_path / "demo-project"
    project.mkdir()
    shutil.copy(DEMO, project / "services.toml")
    shutil.copytree(REPO / "demo", project / "demo")
    out = tmp_path / "units"
    export_to(project / "services.toml", out)
    assert sorted(
        path.name for path in out.iterdir() if "echo" in path.name or "chain" in path.name
    ) == [
        "demo-project-chain.target",  # the group: its members are PartOf it
        "demo-project-echo@.service",  # echo's replicas: a template, and a drop-in for each
        "demo-project-echo@0.service.d",
        "demo-project-echo@1.service.d",
    ]
    assert len(list(out.iterdir())) == 17
    assert verify_units(out) == ""
    target = unit(out, "demo-project.target")
    assert target[2].startswith("Wants=demo-project-web.service demo-project-chatty.service")
    api = unit(out, "demo-project-api.service")
    needs = "demo-project-db.service demo-project-migrate.service"
    assert f"After={needs}" in api and f"Requires={needs}" in api
    migrate = unit(out, "demo-project-migrate.service")  # api waits for it to complete
    assert "Type=oneshot" in migrate and "RemainAfterExit=yes" in migrate
    db = unit(out, "demo-project-db.service")  # api waits for it to be healthy
    assert any(line.startswith("ExecStartPost=") and "8767" in line for line in db)


def test_every_key_exports_to_units_systemd_verifies_clean(every_key: Path, tmp_path: Path) -> None:
    out = tmp_path / "units"
    losses = export_to(every_key, out, env=fake_programs(tmp_path))
    assert verify_units(out) == ""
    web = unit(out, f"{tmp_path.name}-web.service")
    assert web[web.index("[Service]") + 1 :] == [
        "Type=simple",
        f"ExecStart={tmp_path}/bin/gunicorn app:wsgi --bind 0.0.0.0:8000",
        f"WorkingDirectory={tmp_path}",
        f"User={os.environ.get('USER', 'root')}",
        "Restart=on-failure",
        "RestartSec=500ms",
        *(["RestartSteps=6", "RestartMaxDelaySec=30"] if (local_version() or 999) >= 254 else []),
        "KillMode=control-group",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=10",
    ]
    db = unit(out, f"{tmp_path.name}-db.service")
    assert 'Environment="GREETING=cost: $5 or 100%%"' in db
    assert f"EnvironmentFile={tmp_path}/app/.env" in db
    assert "StartLimitIntervalSec=30" in db and "StartLimitBurst=5" in db
    migrate = unit(out, f"{tmp_path.name}-migrate.service")
    assert 'ExecStart=/bin/sh -c "python manage.py migrate && echo done at $$(date)"' in migrate
    assert "SuccessExitStatus=3" in migrate
    target = unit(out, f"{tmp_path.name}.target")
    assert "worker" not in target[2]  # autostart = false: the target does not want it
    assert "service web: key on.started has no equivalent in systemd: " + HOOKS in losses


def test_every_key_says_each_systemd_loss_exactly(every_key: Path, tmp_path: Path) -> None:
    losses = export_to(every_key, tmp_path / "units", env=fake_programs(tmp_path))
    version = local_version()
    old = version is not None and version < 254
    steps = f"systemd {version} waits RestartSec= every time (RestartSteps= came in 254)"
    linear = "systemd's delays grow exponentially (RestartSteps=), not linearly"
    assert losses == [
        "[tuisup]: key log_dir has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key shutdown_timeout has no equivalent in systemd: "
        "each service's own stop timeout applies",
        "[tuisup]: key log_lines has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key reload has no equivalent in systemd: edit and export again",
        "[tuisup]: key socket has no equivalent in systemd: there is no running tuisup to control",
        "[tuisup]: key log_max_bytes has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key log_backups has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key log_timestamps has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key log_format has no equivalent in systemd: the target keeps the output",
        "[tuisup]: key metrics has no equivalent in systemd: "
        "tuisup's metrics exist only under tuisup",
        *([f"service db: key backoff has no equivalent in systemd: {steps}"] if old else []),
        *([f"service db: key backoff_max has no equivalent in systemd: {steps}"] if old else []),
        "service db: key jitter has no equivalent in systemd: restart delays are not spread at "
        "random",
        "service db: key start_timeout has no equivalent in systemd: "
        "a start is the program's exec: there is no import deadline",
        "service db: key restart_dependents has no equivalent in systemd: "
        "its dependents are not restarted when it starts again",
        "service db: key healthcheck has no equivalent in systemd: "
        "checked only until it first passes, which is what its dependents wait for",
        "service web: key restart_on_unhealthy has no equivalent in systemd: "
        "systemd does not watch a service's health",
        f"service web: key backoff has no equivalent in systemd: {steps if old else linear}",
        f"service web: key watch has no equivalent in systemd: {WATCH}",
        f"service web: key watch_ignore has no equivalent in systemd: {WATCH}",
        f"service web: key watch_debounce has no equivalent in systemd: {WATCH}",
        f"service web: key hook_timeout has no equivalent in systemd: {HOOKS}",
        f"service web: key on.started has no equivalent in systemd: {HOOKS}",
        f"service web: key on.failed has no equivalent in systemd: {HOOKS}",
        "service web: key healthcheck has no equivalent in systemd: systemd does not check health",
        "service worker: key healthcheck has no equivalent in systemd: "
        "systemd does not check health",
        f'service tick: key executor has no equivalent in systemd: executor "thread" {OWN}',
        f"service auto: key executor has no equivalent in systemd: with no executor, it {OWN}",
        "service watcher: key listen has no equivalent in systemd: "
        "tuisup's events exist only under tuisup: its stdin is empty",
        "service watcher: key listen_buffer has no equivalent in systemd: "
        "tuisup's events exist only under tuisup",
        "service watcher: key log_format has no equivalent in systemd: the target keeps the output",
    ]


def test_a_growing_backoff_uses_restart_steps_from_systemd_254(every_key: Path) -> None:
    source = read_source(load_manifest(every_key))
    new = export(source, Options(every_key.parent, systemd_version=256))
    old = export(source, Options(every_key.parent, systemd_version=252))
    name = f"{every_key.parent.name}-db.service"
    # 1 s doubled 4 times reaches 16 s.
    assert "RestartSec=1\nRestartSteps=4\nRestartMaxDelaySec=16\n" in new.files[name]
    assert "RestartSteps" not in old.files[name]
    assert not [loss for loss in new.losses if loss.key == "backoff_max"]


def test_user_units_are_wanted_by_the_users_default_target(tmp_path: Path) -> None:
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.web]\ncommand = "python -m http.server 0"\n')
    out = tmp_path / "units"
    assert export_to(manifest, out, "--user") == []
    assert unit(out, f"{tmp_path.name}.target")[-1] == "WantedBy=default.target"
    assert not [line for line in unit(out, f"{tmp_path.name}-web.service") if "User=" in line]
    assert verify_units(out) == ""


def test_words_with_quotes_dollars_and_percents_are_quoted_for_systemd(tmp_path: Path) -> None:
    """systemd reads `%` as a specifier and `$` as a variable: each is doubled."""
    manifest = tmp_path / "services.toml"
    manifest.write_text(
        r"[services.odd]"
        "\n"
        r"""command = ["printf", "%s|", "a \"b\" c", "it's", "$HOME", "100%", "back\\slash"]"""
    )
    out = tmp_path / "units"
    export_to(manifest, out)
    assert verify_units(out) == ""
    start = next(line for line in unit(out, f"{tmp_path.name}-odd.service") if "ExecStart" in line)
    assert start == (
        f'ExecStart={shutil.which("printf")} "%%s|" "a \\"b\\" c" "it\'s" '
        '"$$HOME" "100%%" "back\\\\slash"'
    )


def test_a_project_folder_with_a_space_and_a_percent_is_a_valid_working_directory(
    tmp_path: Path,
) -> None:
    """Paths are not quoted words: systemd reads quotes there as part of a relative path."""
    project = tmp_path / "my 100% project"
    project.mkdir()
    (project / ".env").write_text("A=1\n")
    manifest = project / "services.toml"
    manifest.write_text('[services.web]\ncommand = "python -m http.server 0"\nenv_file = ".env"\n')
    out = tmp_path / "units"
    export_to(manifest, out)
    assert verify_units(out) == ""
    lines = unit(out, "my-100-project-web.service")
    assert f"WorkingDirectory={tmp_path}/my 100%% project" in lines
    assert f"EnvironmentFile={tmp_path}/my 100%% project/.env" in lines


def test_a_target_in_a_subfolder_imports_from_the_manifests_folder_as_under_tuisup(
    tmp_path: Path,
) -> None:
    (tmp_path / "app").mkdir()
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.job]\ntarget = "jobs:run"\nexecutor = "process"\ncwd = "app"\n')
    out = tmp_path / "units"
    export_to(manifest, out)
    assert verify_units(out) == ""
    lines = unit(out, f"{tmp_path.name}-job.service")
    child = f"-m tuisup.child job jobs:run process 15 3 {tmp_path} 3>/dev/null"
    assert any(line.startswith("ExecStart=/bin/sh -c ") and child in line for line in lines)
    assert f"WorkingDirectory={tmp_path}/app" in lines


def test_the_units_start_for_real_where_a_user_systemd_runs(tmp_path: Path) -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.skip("systemctl is not installed")
    running = subprocess.run(
        [systemctl, "--user", "is-system-running"], capture_output=True, text=True, timeout=30
    )
    if running.stdout.strip() not in ("running", "degraded"):
        pytest.skip(
            f"no user systemd to start units in: {running.stderr.strip() or running.stdout}"
        )
    manifest = tmp_path / "services.toml"
    manifest.write_text('[services.hello]\ncommand = "python -c \\"print(\'up\')\\""\n')
    folder = Path.home() / ".config" / "systemd" / "user"
    export_to(manifest, folder, "--user")
    target = f"{tmp_path.name}.target"
    try:
        subprocess.run([systemctl, "--user", "daemon-reload"], check=True, timeout=60)
        subprocess.run([systemctl, "--user", "start", target], check=True, timeout=60)
        journal = subprocess.run(
            ["journalctl", "--user", "-u", f"{tmp_path.name}-hello.service", "-o", "cat"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "up" in journal.stdout.splitlines()
    finally:
        subprocess.run([systemctl, "--user", "stop", target], timeout=60)
        for name in (target, f"{tmp_path.name}-hello.service"):
            (folder / name).unlink(missing_ok=True)
