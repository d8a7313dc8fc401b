"""`tuisup import`: Procfiles and compose files into manifests that `tuisup check` accepts."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.export.conftest import DEMO, REPO, tuisup
from tuisup.manifest import load_manifest
from tuisup.spec import ServiceSpec

PREFIX = "tuisup import: "

DJANGO_PROCFILE = """\
# Django on Heroku, the usual three
release: python manage.py migrate --noinput
web: gunicorn shop.wsgi --bind 0.0.0.0:$PORT --workers 3
worker: celery -A shop worker --loglevel=info

beat: celery -A shop beat --scheduler django_celery_beat.schedulers:DatabaseScheduler
"""

POSTGRES_COMPOSE = """\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: example
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 5s
      timeout: 3s
      retries: 5
      start_period: 1m30s
    ports: ["5432:5432"]
  web:
    build: .
    command: python manage.py runserver 0.0.0.0:8000
    environment:
      - DATABASE_URL=postgres://postgres:example@localhost/postgres
      - DEBUG
    depends_on:
      db:
        condition: service_healthy
    restart: unless-stopped
    stop_signal: SIGINT
    stop_grace_period: 1m
    ports: ["8000:8000"]
"""

ANCHORS_COMPOSE = """\
x-app: &app
  environment: &env
    APP_ENV: production
    PRICE: "$$5"
  restart: on-failure:3
  stop_grace_period: 20s
  x-owner: team-a

services:
  api:
    <<: *app
    entrypoint: ["python", "-m"]
    command: ["uvicorn", "api:app"]
    healthcheck:
      test: python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000')"
  jobs:
    <<: *app
    environment:
      <<: *env
      QUEUE: default
    command: python -m jobs --queue ${QUEUE:-default}
    depends_on: [api]
    profiles: [workers]
"""


def run_import(folder: Path, name: str, *args: str) -> tuple[int, list[str], str]:
    """Import `name` in `folder`; return the status, warning lines and stdout."""
    done = tuisup("import", name, *args, cwd=folder)
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [line.removeprefix(PREFIX) for line in lines], done.stdout


def checked(path: Path) -> dict[str, ServiceSpec]:
    done = tuisup("-f", str(path), "check")
    assert done.returncode == 0, done.stderr
    return dict(load_manifest(path).services)


def test_a_django_procfile_becomes_a_manifest_with_honchos_ports(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(DJANGO_PROCFILE)
    (tmp_path / ".env").write_text("SECRET_KEY=dev\n")
    status, losses, out = run_import(tmp_path, "Procfile")
    assert (status, losses, out) == (0, [], "wrote services.toml: 4 services\n")
    services = checked(tmp_path / "services.toml")
    assert list(services) == ["release", "web", "worker", "beat"]
    assert [s.env["PORT"] for s in services.values()] == ["5000", "5100", "5200", "5300"]
    web = services["web"]
    assert web.shell and web.argv[:2] == ("/bin/sh", "-c")  # $PORT needs the shell
    assert web.env["SECRET_KEY"] == "dev" and web.env_file == tmp_path / ".env"
    worker = services["worker"]
    assert not worker.shell and worker.argv == ("celery", "-A", "shop", "worker", "--loglevel=info")
    text = (tmp_path / "services.toml").read_text()
    assert text.startswith("# Imported from Procfile by `tuisup import`.\n")
    assert 'env = {PORT = "5100"} # honcho\'s PORT for process type 2\n' in text


def test_a_procfile_elsewhere_runs_its_commands_in_its_folder(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Procfile").write_text("web: python -m http.server\n")
    status, _, _ = run_import(tmp_path, "app/Procfile")
    assert status == 0
    assert checked(tmp_path / "services.toml")["web"].cwd == tmp_path / "app"


def test_compose_with_postgres_leaves_the_image_out_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(POSTGRES_COMPOSE)
    status, losses, _ = run_import(tmp_path, "compose.yaml")
    assert status == 0
    assert losses == [
        "service db: key image has no equivalent in tuisup: it has no command to run",
        "service web: key build has no equivalent in tuisup: "
        "nothing is built: the command runs on this machine",
        "service web: key ports has no equivalent in tuisup: "
        "the service listens on this machine's ports",
        "service web: key depends_on.db has no equivalent in tuisup: "
        "db is left out: nothing to wait for",
    ]
    text = (tmp_path / "services.toml").read_text()
    assert (
        "# db: image 'postgres:16' with no command runs only in a container runtime: left out."
        in (text)
    )
    (web,) = checked(tmp_path / "services.toml").values()
    assert web.argv == ("python", "manage.py", "runserver", "0.0.0.0:8000")
    assert web.env == {"DATABASE_URL": "postgres://postgres:example@localhost/postgres"}
    assert (web.restart, web.stop_signal.name, web.stop_timeout) == ("always", "SIGINT", 60)
    assert web.cwd == tmp_path and not web.depends_on


def test_a_compose_healthcheck_with_its_timings_is_kept(tmp_path: Path) -> None:
    text = POSTGRES_COMPOSE.replace("image: postgres:16", "command: postgres -D data")
    (tmp_path / "compose.yaml").write_text(text)
    assert run_import(tmp_path, "compose.yaml")[0] == 0
    services = checked(tmp_path / "services.toml")
    check = services["db"].healthcheck
    assert check is not None
    assert check.argv == ("/bin/sh", "-c", "pg_isready -U postgres")
    assert (check.interval, check.timeout, check.retries, check.start_period) == (5, 3, 5, 90)
    assert services["web"].depends_on == {"db": "healthy"}


def test_yaml_anchors_merge_keys_and_extensions(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(ANCHORS_COMPOSE)
    status, losses, _ = run_import(tmp_path, "docker-compose.yml")
    assert status == 0
    assert losses == [
        "service jobs: key command has no equivalent in tuisup: "
        "compose fills ${QUEUE:-default} in from its environment; tuisup runs it as written"
    ]
    services = checked(tmp_path / "services.toml")
    api, jobs = services["api"], services["jobs"]
    assert api.argv == ("python", "-m", "uvicorn", "api:app")
    assert api.env == {"APP_ENV": "production", "PRICE": "$5"}  # compose's $$ is one $
    assert (api.restart, api.max_restarts, api.stop_timeout) == ("on-failure", 3, 20)
    assert api.healthcheck is not None and api.healthcheck.argv[:2] == ("/bin/sh", "-c")
    assert jobs.env == {"APP_ENV": "production", "PRICE": "$5", "QUEUE": "default"}
    assert jobs.depends_on == {"api": "started"} and not jobs.autostart


def test_broken_yaml_is_one_error_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    command: [python\n  db: {}\n")
    status, lines, _ = run_import(tmp_path, "compose.yaml")
    assert status == 1
    assert lines == ["compose.yaml:4:5: invalid YAML: expected ',' or ']', but got ':'"]
    assert not (tmp_path / "services.toml").exists()


def test_a_yaml_file_without_services_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("- just\n- a list\n")
    assert run_import(tmp_path, "compose.yaml")[:2] == (
        1,
        ["compose.yaml:1: expected a compose file with a `services` mapping"],
    )


def test_a_service_that_is_not_a_mapping_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    command: x\n  db: postgres\n")
    assert run_import(tmp_path, "compose.yaml")[:2] == (
        1,
        ["compose.yaml:4: services.db: expected a mapping"],
    )


def test_a_value_of_the_wrong_shape_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    command: x\n    env_file: 5\n    depends_on: {db: up}\n"
    )
    assert run_import(tmp_path, "compose.yaml")[:2] == (
        1,
        ["compose.yaml:4: services.web.env_file: expected a path, or a list of paths"],
    )


def test_a_value_tuisup_rejects_is_reported_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    command: x\n    stop_signal: SIGFOO\n"
    )
    assert run_import(tmp_path, "compose.yaml")[:2] == (
        1,
        [
            "the manifest made from compose.yaml would have problems; nothing written:",
            'services.toml:7:15: services.web.stop_signal: unknown signal "FOO"',
        ],
    )
    assert not (tmp_path / "services.toml").exists()


def test_a_broken_procfile_line_is_one_error_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn app\n\nthis is not an entry\n")
    status, lines, _ = run_import(tmp_path, "Procfile")
    assert (status, lines) == (
        1,
        ["Procfile:3: expected `name: command`, got 'this is not an entry'"],
    )
    (tmp_path / "Procfile").write_text("web: a\nweb: b\n")
    assert run_import(tmp_path, "Procfile")[1] == ["Procfile:2: web is already on line 1"]


def test_an_existing_manifest_is_kept_without_force(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: python -m http.server\n")
    (tmp_path / "services.toml").write_text("# mine\n")
    assert run_import(tmp_path, "Procfile")[:2] == (
        1,
        ["services.toml exists: --force overwrites it"],
    )
    assert (tmp_path / "services.toml").read_text() == "# mine\n"
    assert run_import(tmp_path, "Procfile", "--force")[0] == 0
    assert "web" in checked(tmp_path / "services.toml")


def test_a_missing_input_is_one_error(tmp_path: Path) -> None:
    assert run_import(tmp_path, "Procfile")[:2] == (
        1,
        ["Procfile: cannot read: No such file or directory"],
    )


ROUND_TRIP_FIELDS = (
    *("argv", "command", "shell", "cwd", "env", "env_file", "restart", "stop_signal"),
    *("stop_timeout", "depends_on", "healthcheck", "autostart", "target"),
)


def round_trip(manifest: Path) -> tuple[dict[str, ServiceSpec], dict[str, ServiceSpec]]:
    """Export `manifest` to compose and import it back beside it."""
    folder = manifest.parent
    done = tuisup("-f", str(manifest), "export", "compose", "-o", str(folder / "compose.yaml"))
    assert done.returncode == 0, done.stderr
    status, _, _ = run_import(folder, "compose.yaml", "-o", "again.toml")
    assert status == 0
    return dict(load_manifest(manifest).services), checked(folder / "again.toml")


def test_importing_an_exported_compose_file_gives_the_manifest_back(every_key: Path) -> None:
    before, after = round_trip(every_key)
    assert list(after) == list(before)
    for name, spec in before.items():
        for field in ROUND_TRIP_FIELDS:
            assert getattr(after[name], field) == getattr(spec, field), (name, field)
        if spec.restart == "on-failure":
            assert after[name].max_restarts == spec.max_restarts, name
        if spec.executor in ("process", "async-process"):
            assert after[name].executor == spec.executor, name


def test_the_demo_survives_the_round_trip(tmp_path: Path) -> None:
    shutil.copy(DEMO, tmp_path / "services.toml")
    shutil.copytree(REPO / "demo", tmp_path / "demo")
    before, after = round_trip(tmp_path / "services.toml")
    for name, spec in before.items():
        for field in ROUND_TRIP_FIELDS:
            if (
                field == "env"
                and spec.target is not None
                and spec.executor in (None, "async", "thread")
            ):
                # In tuisup's process it had no variables of its own; as the process it is
                # exported as, it gets the other services' ports, as every process does.
                assert after[name].env == {"TUISUP_PORT_ECHO": "8770"}, name
                continue
            assert getattr(after[name], field) == getattr(spec, field), (name, field)


SCALED_COMPOSE = """\
services:
  worker:
    command: python -m worker
    deploy:
      replicas: 3
      resources: {limits: {cpus: "0.5"}}
  web:
    command: python -m web
    scale: 2
    ports: ["8000-8001:8000-8001"]
  api:
    command: python -m api
    deploy: {replicas: 2}
    ports: ["9000:80"]
  one:
    command: python -m one
    ports: ["7000:7000"]
"""


def test_compose_replicas_and_scale_become_replicas_and_one_to_one_ports_a_port(
    tmp_path: Path,
) -> None:
    """Before: deploy and scale were settings tuisup has not, and ports always a loss."""
    (tmp_path / "compose.yaml").write_text(SCALED_COMPOSE)
    status, losses, _ = run_import(tmp_path, "compose.yaml")
    assert status == 0
    assert losses == [
        "service worker: key deploy.resources has no equivalent in tuisup: "
        "tuisup has no such setting",
        "service api: key ports has no equivalent in tuisup: "
        "the service listens on this machine's ports",
        "service one: key ports has no equivalent in tuisup: "
        "the service listens on this machine's ports",
    ]
    manifest = load_manifest(tmp_path / "services.toml")
    assert tuisup("-f", str(tmp_path / "services.toml"), "check").returncode == 0
    assert {n: t.replicas for n, t in manifest.templates.items()} == {
        "worker": 3,
        "web": 2,
        "api": 2,
    }
    assert [manifest.services[f"web.{i}"].port for i in range(2)] == [8000, 8001]
    assert manifest.services["api.0"].port is None and manifest.services["one"].port is None


REPLICAS_ROUND_TRIP = """\
[services.broker]
command = "python -m http.server {port}"
port = 5672

[services.worker]
command = "python -m worker"
replicas = 3
depends_on = ["broker"]
env = { MODE = "fast" }

[services.web]
command = "python -m web"
replicas = 2
port = 8000

[services.spare]
command = "python -m spare"
replicas = 0
"""


def test_replicas_and_ports_survive_the_round_trip(tmp_path: Path) -> None:
    """Before: the replicas came back as services named worker-0, worker-1 ..."""
    manifest = tmp_path / "services.toml"
    manifest.write_text(REPLICAS_ROUND_TRIP)
    before, after = round_trip(manifest)
    assert list(after) == list(before)
    for name, spec in before.items():
        for field in (*ROUND_TRIP_FIELDS, "replica", "port"):
            assert getattr(after[name], field) == getattr(spec, field), (name, field)
    again = load_manifest(tmp_path / "again.toml")
    assert {n: (t.replicas, t.port) for n, t in again.templates.items()} == {
        "broker": (None, 5672),
        "worker": (3, None),
        "web": (2, 8000),
        "spare": (0, None),
    }
    text = (tmp_path / "again.toml").read_text()
    assert "TUISUP_" not in text and "PORT =" not in text  # tuisup sets them itself


def test_an_input_past_16_mib_is_refused_not_read_to_its_end(tmp_path: Path) -> None:
    """Regression: it was read whole (a Procfile named /dev/zero would fill the memory)."""
    with (tmp_path / "Procfile").open("wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)
    code, said, _ = run_import(tmp_path, "Procfile")
    assert (code, said) == (1, ["Procfile: cannot read: larger than 16 MiB"])
    assert not (tmp_path / "services.toml").exists()
