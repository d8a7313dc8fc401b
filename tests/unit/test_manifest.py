"""Tests for tuisup.manifest: loading services.toml into specs, and every problem it reports."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tuisup.manifest import (
    ManifestError,
    Problem,
    load_manifest,
    parse_dotenv,
    parse_manifest,
)
from tuisup.spec import BackoffKind, HostSettings, Manifest, RestartPolicy, ServiceSpec


def write(text: str, name: str = "services.toml") -> str:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(text, encoding="utf-8")
    return name


def problems(text: str, name: str = "services.toml") -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(write(text, name))
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


FULL = """\
# Every key, none left at its default.
[tuisup]
log_dir = "var/logs"
shutdown_timeout = 12.5
log_lines = 500

[services.web]
command = "python -m http.server 'port 8000'"
cwd = "app"
env = {PORT = "8000", SHARED = "from-env"}
env_file = ".env"
autostart = false
restart = "always"
backoff = "linear"
backoff_delay = 2
backoff_max = 20.5
jitter = 0
max_restarts = 0
restart_window = 120
success_exit_codes = [0, 3]
stop_signal = "INT"
stop_timeout = 2.5
executor = "process"

[services.worker]
command = "sleep 1 && echo done"
shell = true
"""


def test_full_manifest_round_trip(here: Path) -> None:
    (here / "app").mkdir()
    write("SHARED=from-file\nexport ONLY_FILE='x'\n", ".env")
    manifest = load_manifest(write(FULL))
    assert manifest.path == here.resolve() / "services.toml"
    assert manifest.root == here.resolve()
    assert manifest.settings == HostSettings(
        log_dir=here.resolve() / "var/logs", shutdown_timeout=12.5, log_lines=500
    )
    assert list(manifest.services) == ["web", "worker"]
    assert manifest.services["web"] == ServiceSpec(
        name="web",
        argv=("python", "-m", "http.server", "port 8000"),
        command="python -m http.server 'port 8000'",
        cwd=here.resolve() / "app",
        env={"SHARED": "from-env", "ONLY_FILE": "x", "PORT": "8000"},
        shell=False,
        env_file=here.resolve() / ".env",
        autostart=False,
        restart=RestartPolicy.ALWAYS,
        backoff=BackoffKind.LINEAR,
        backoff_delay=2.0,
        backoff_max=20.5,
        jitter=0.0,
        max_restarts=0,
        restart_window=120.0,
        success_exit_codes=frozenset({0, 3}),
        stop_signal=signal.SIGINT,
        stop_timeout=2.5,
        line=7,
    )
    worker = manifest.services["worker"]
    assert worker.argv == ("/bin/sh", "-c", "sleep 1 && echo done")
    assert worker.command == "sleep 1 && echo done"
    assert worker.shell is True
    assert worker.line == 25


def test_defaults(here: Path) -> None:
    manifest = load_manifest(write('[services.web]\ncommand = ["run", "a b"]\n'))
    assert manifest.settings == HostSettings(log_dir=here.resolve() / ".tuisup/logs")
    assert manifest.services["web"] == ServiceSpec(
        name="web", argv=("run", "a b"), command="run 'a b'", cwd=here.resolve(), line=1
    )


def test_log_dir_false_writes_no_logs(here: Path) -> None:
    manifest = load_manifest(write('[tuisup]\nlog_dir = false\n[services.a]\ncommand = "x"\n'))
    assert manifest.settings.log_dir is None


def test_parse_manifest_without_a_file(tmp_path: Path) -> None:
    manifest = parse_manifest('[services.a]\ncommand = "x"\n', tmp_path / "m.toml")
    assert isinstance(manifest, Manifest)
    assert manifest.services["a"].cwd == tmp_path.resolve()
    with pytest.raises(ManifestError) as info:
        parse_manifest("[services.a]\ncommand = 1\n", tmp_path / "m.toml", "shown.toml")
    assert str(info.value).startswith("shown.toml:2:11: services.a.command: ")


def test_services_keep_file_order_across_styles(here: Path) -> None:
    text = """\
[services.b]
command = "b"
[tuisup]
log_lines = 100
[services]
a.command = "a"
c = {command = "c"}
[services.d.env]
X = "1"
[services.d]
command = "d"
"""
    manifest = load_manifest(write(text))
    assert [(s.name, s.line) for s in manifest.services.values()] == [
        ("b", 1),
        ("a", 6),
        ("c", 7),
        ("d", 10),
    ]
    assert manifest.services["d"].env == {"X": "1"}


def test_bom_is_ignored(here: Path) -> None:
    assert "a" in load_manifest(write('\ufeff[services.a]\ncommand = "x"\n')).services


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"TERM"', signal.SIGTERM),
        ('"SIGTERM"', signal.SIGTERM),
        ('"INT"', signal.SIGINT),
        ('"sigint"', signal.SIGINT),
        ('"KILL"', signal.SIGKILL),
        ("1", signal.SIGHUP),
    ],
)
def test_stop_signal_forms(here: Path, written: str, expected: signal.Signals) -> None:
    manifest = load_manifest(write(f'[services.a]\ncommand = "x"\nstop_signal = {written}\n'))
    assert manifest.services["a"].stop_signal is expected


# One problem each: the body sits on line 2, under `[services.web]`, above `command = "run"`.
SERVICE_PROBLEMS = [
    (
        'restart = "yes"',
        '2:11: services.web.restart: expected one of "always", "on-failure", "never", got "yes"',
    ),
    (
        'restart = "on_failure"',
        '2:11: services.web.restart: expected one of "always", "on-failure", "never", '
        'got "on_failure" (did you mean "on-failure"?)',
    ),
    (
        "backoff = 2",
        '2:11: services.web.backoff: expected one of "immediate", "fixed", "linear", '
        '"exponential", got integer 2',
    ),
    ('autostart = "yes"', '2:13: services.web.autostart: expected a boolean, got string "yes"'),
    ("shell = 1", "2:9: services.web.shell: expected a boolean, got integer 1"),
    ("cwd = 5", "2:7: services.web.cwd: expected a string, got integer 5"),
    ('cwd = ""', '2:7: services.web.cwd: expected a path, got string ""'),
    ("backoff_delay = -1", "2:17: services.web.backoff_delay: expected a number >= 0, got -1"),
    ('backoff_delay = "1"', '2:17: services.web.backoff_delay: expected a number, got string "1"'),
    (
        "backoff_delay = true",
        "2:17: services.web.backoff_delay: expected a number, got boolean true",
    ),
    (
        "backoff_max = 0.1",
        "2:15: services.web.backoff_max: expected backoff_max >= backoff_delay, got 0.1 < 0.5",
    ),
    (
        "backoff_delay = 60",
        "2:17: services.web.backoff_delay: expected backoff_max >= backoff_delay, got 30 < 60",
    ),
    ("restart_window = 0", "2:18: services.web.restart_window: expected a number > 0, got 0"),
    ("stop_timeout = -2.5", "2:16: services.web.stop_timeout: expected a number > 0, got -2.5"),
    ("stop_timeout = inf", "2:16: services.web.stop_timeout: expected a number > 0, got inf"),
    ("stop_timeout = nan", "2:16: services.web.stop_timeout: expected a number > 0, got nan"),
    ("jitter = 1.5", "2:10: services.web.jitter: expected a number from 0 to 1, got 1.5"),
    ("max_restarts = -1", "2:16: services.web.max_restarts: expected an integer >= 0, got -1"),
    ("max_restarts = 2.0", "2:16: services.web.max_restarts: expected an integer, got float 2.0"),
    (
        "success_exit_codes = []",
        "2:22: services.web.success_exit_codes: expected at least one exit code",
    ),
    (
        "success_exit_codes = 0",
        "2:22: services.web.success_exit_codes: expected an array of exit codes, got integer 0",
    ),
    (
        "success_exit_codes = [0, 256]",
        "2:26: services.web.success_exit_codes[1]: expected an exit code from 0 to 255, "
        "got integer 256",
    ),
    (
        'stop_signal = "TREM"',
        '2:15: services.web.stop_signal: unknown signal "TREM" (did you mean "TERM"?)',
    ),
    (
        'stop_signal = "SIGSTOP"',
        "2:15: services.web.stop_signal: SIGSTOP pauses a process instead of stopping it",
    ),
    ("stop_signal = 999", "2:15: services.web.stop_signal: unknown signal number 999"),
    (
        "stop_signal = 1.5",
        "2:15: services.web.stop_signal: expected a signal name or number, got float 1.5",
    ),
    (
        "env = {PORT = 8000}",
        '2:15: services.web.env.PORT: expected a string, got integer 8000 (quote it: "8000")',
    ),
    (
        "env.DEBUG = true",
        '2:13: services.web.env.DEBUG: expected a string, got boolean true (quote it: "true")',
    ),
    ('env = "A=1"', '2:7: services.web.env: expected a table, got string "A=1"'),
    ('env = {"A=B" = "1"}', '2:8: services.web.env."A=B": invalid variable name "A=B"'),
    (
        'restrat = "always"',
        '2:1: services.web.restrat: unknown key "restrat" (did you mean "restart"?)',
    ),
    ("colour = 1", '2:1: services.web.colour: unknown key "colour"'),
    (
        'executor = "thread"',
        '2:12: services.web.executor: a command always runs as "process", got "thread"',
    ),
    (
        'executor = "green"',
        '2:12: services.web.executor: expected one of "process", "thread", "async", '
        '"async-process", got "green"',
    ),
    ('target = "app:main"', "2:1: services.web.target: command and target are mutually exclusive"),
]


@pytest.mark.parametrize(("body", "expected"), SERVICE_PROBLEMS)
def test_service_problem(here: Path, body: str, expected: str) -> None:
    text = f'[services.web]\n{body}\ncommand = "run"\n'
    assert problems(text) == [f"services.toml:{expected}"]


# One problem each: the body, on line 2, is the whole service.
COMMAND_PROBLEMS = [
    ('command = ""', "2:11: services.web.command: expected a command, got an empty string"),
    ('command = "  "', "2:11: services.web.command: expected a command, got an empty string"),
    ("command = []", "2:11: services.web.command: expected a command, got an empty array"),
    ('command = ["a", 5]', "2:17: services.web.command[1]: expected a string, got integer 5"),
    (
        "command = 5",
        "2:11: services.web.command: expected a string or an array of strings, got integer 5",
    ),
    ('command = "a \'b"', "2:11: services.web.command: cannot split command: No closing quotation"),
    ("command = \"''\"", "2:11: services.web.command: the program name is empty"),
    (
        'command = ["a"]\nshell = true',
        "2:11: services.web.command: expected a string with shell = true, got array",
    ),
    ("autostart = false", '1:1: services.web: missing required key "command" (or "target")'),
]


@pytest.mark.parametrize(("body", "expected"), COMMAND_PROBLEMS)
def test_command_problem(here: Path, body: str, expected: str) -> None:
    assert problems(f"[services.web]\n{body}\n") == [f"services.toml:{expected}"]


HOST_PROBLEMS = [
    ("shutdown_timeout = 0", "2:20: tuisup.shutdown_timeout: expected a number > 0, got 0"),
    ("log_lines = 50", "2:13: tuisup.log_lines: expected an integer >= 100, got 50"),
    ('log_lines = "many"', '2:13: tuisup.log_lines: expected an integer, got string "many"'),
    ("log_dir = true", "2:11: tuisup.log_dir: expected a path or false, got boolean true"),
    (
        "log_lnes = 100",
        '2:1: tuisup.log_lnes: unknown key "log_lnes" (did you mean "log_lines"?)',
    ),
]


@pytest.mark.parametrize(("body", "expected"), HOST_PROBLEMS)
def test_host_problem(here: Path, body: str, expected: str) -> None:
    text = f'[tuisup]\n{body}\n[services.web]\ncommand = "run"\n'
    assert problems(text) == [f"services.toml:{expected}"]


def test_missing_directory(here: Path) -> None:
    text = '[services.web]\ncommand = "run"\ncwd = "nope"\n'
    missing = here.resolve() / "nope"
    assert problems(text) == [f"services.toml:3:7: services.web.cwd: no such directory: {missing}"]


def test_missing_env_file(here: Path) -> None:
    text = '[services.web]\ncommand = "run"\nenv_file = ".env"\n'
    missing = here.resolve() / ".env"
    assert problems(text) == [f"services.toml:3:12: services.web.env_file: no such file: {missing}"]


def test_service_names(here: Path) -> None:
    rule = 'use letters, digits, "-" and "_", starting with a letter, at most 64 characters'
    text = f'[services.1web]\ncommand = "x"\n[services.{"a" * 65}]\ncommand = "x"\n'
    assert problems(text) == [
        f'services.toml:1:1: services.1web: invalid service name "1web": {rule}',
        f'services.toml:3:1: services.{"a" * 65}: invalid service name "{"a" * 59}…": {rule}',
    ]
    text = '[services."my web"]\ncommand = "x"\n[services.ok_name-2]\ncommand = "x"\n'
    assert problems(text) == [
        f'services.toml:1:1: services."my web": invalid service name "my web": {rule}'
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[services.web]\ncommand = "a"\n\n[services.web]\ncommand = "b"\n', "4:1: services.web"),
        ('[services.web]\ncommand = "a"\ncommand = "b"\n', "3:1: services.web.command"),
        ('services.web = {command = "a"}\n[services.web]\n', "2:1: services.web"),
        ('[services]\nweb.command = "a"\n[services.web]\n', "3:1: services.web"),
    ],
)
def test_defined_twice(here: Path, text: str, expected: str) -> None:
    assert problems(text) == [f"services.toml:{expected}: defined twice"]


def test_inline_and_dotted_positions(here: Path) -> None:
    text = """\
[services]
web = {command = "x", restart = "yes"}
api.command = 5
"db" = {command = "x", env = {A = 1}, stop_timeout = 0}
"""
    assert problems(text) == [
        'services.toml:2:33: services.web.restart: expected one of "always", "on-failure", '
        '"never", got "yes"',
        "services.toml:3:15: services.api.command: expected a string or an array of strings, "
        "got integer 5",
        'services.toml:4:35: services.db.env.A: expected a string, got integer 1 (quote it: "1")',
        "services.toml:4:54: services.db.stop_timeout: expected a number > 0, got 0",
    ]
    text = 'services.web = {command = "x", autostart = 1}\n'
    assert problems(text) == [
        "services.toml:1:44: services.web.autostart: expected a boolean, got integer 1"
    ]


def test_top_level_problems(here: Path) -> None:
    assert problems("") == ["services.toml:1:1: services: no services defined"]
    assert problems("# nothing\n[services]\n") == [
        "services.toml:2:1: services: no services defined"
    ]
    assert problems("[servces.web]\ncommand = 'x'\n") == [
        "services.toml:1:1: services: no services defined",
        'services.toml:1:2: servces: unknown key "servces" (did you mean "services"?)',
    ]
    assert problems("services = 5\ntuisup = []\n") == [
        "services.toml:1:12: services: expected a table, got integer 5",
        "services.toml:2:10: tuisup: expected a table, got array",
    ]
    assert problems("[services]\nweb = 'run'\n") == [
        'services.toml:2:7: services.web: expected a table, got string "run"'
    ]


def test_every_problem_in_one_pass_sorted_by_line(here: Path) -> None:
    text = """\
[services.web]
command = "run"
restrat = "always"
max_restarts = -1

[tuisup]
log_lines = 5

[services.api]
autostart = "no"
"""
    assert problems(text) == [
        'services.toml:3:1: services.web.restrat: unknown key "restrat" (did you mean "restart"?)',
        "services.toml:4:16: services.web.max_restarts: expected an integer >= 0, got -1",
        "services.toml:7:13: tuisup.log_lines: expected an integer >= 100, got 5",
        'services.toml:9:1: services.api: missing required key "command" (or "target")',
        'services.toml:10:13: services.api.autostart: expected a boolean, got string "no"',
    ]


def test_syntax_error_is_one_problem(here: Path) -> None:
    text = "[services.web\ncommand = 1\n\n[tuisup]\nlog_lines = 1\n"
    assert problems(text) == ["services.toml:1:14: Unexpected character: '\\n'"]


def test_missing_file(here: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest("nope.toml")
    assert str(info.value) == "nope.toml: cannot read: No such file or directory"
    assert info.value.problems == [
        Problem(
            file="nope.toml",
            line=0,
            col=0,
            key="",
            message="cannot read: No such file or directory",
        )
    ]


def test_file_is_named_as_given(here: Path) -> None:
    assert problems("[services.a]\ncommand = 1\n", "examples/other.toml") == [
        "examples/other.toml:2:11: services.a.command: expected a string or an array of "
        "strings, got integer 1"
    ]


def test_problem_str() -> None:
    assert (
        str(Problem(file="f.toml", line=3, col=4, key="k", message="bad")) == "f.toml:3:4: k: bad"
    )
    assert str(Problem(file="f.toml", line=3, col=4, key="", message="bad")) == "f.toml:3:4: bad"
    assert str(Problem(file="f.toml", line=0, col=0, key="", message="bad")) == "f.toml: bad"


# --- env files -----------------------------------------------------------------------------


def test_parse_dotenv() -> None:
    text = (
        "# comment\n"
        "\n"
        "A=1\n"
        "export B = two words  # trailing comment\n"
        "C='single # kept \\n'\n"
        'D="line\\nbreak \\"quoted\\" back\\\\slash \\t"  # comment\n'
        "E=\n"
        "F=a#b\r\n"
        "A=override\n"
    )
    values, errors = parse_dotenv(text)
    assert errors == []
    assert values == {
        "A": "override",
        "B": "two words",
        "C": "single # kept \\n",
        "D": 'line\nbreak "quoted" back\\slash \\t',
        "E": "",
        "F": "a#b",
    }


def test_parse_dotenv_errors() -> None:
    text = "A=1\nnot a pair\n1X=2\nB=\"open\nC='x' y\n"
    assert parse_dotenv(text) == (
        {"A": "1"},
        [
            (2, 1, 'expected KEY=VALUE, got "not a pair"'),
            (3, 1, 'expected KEY=VALUE, got "1X=2"'),
            (4, 3, 'missing closing " quote'),
            (5, 7, 'unexpected text after the closing quote: "y"'),
        ],
    )


def test_parse_dotenv_errors_show_c1_and_del_controls_escaped_as_manifest_problems_do() -> None:
    """dotenv quoted text with its own json.dumps, which keeps C1 controls and DEL as they
    are: printed, they were dropped (with what they start), so `"<CSI>2J <DEL>"` read `" "`."""
    assert parse_dotenv("\x9b2J \x7f\nA='x' \x9b1m\n") == (
        {},
        [
            (1, 1, 'expected KEY=VALUE, got "\\u009b2J \\u007f"'),
            (2, 7, 'unexpected text after the closing quote: "\\u009b1m"'),
        ],
    )


def test_env_file_problems_name_the_env_file(here: Path) -> None:
    write("A=1\n\nbad line\n", "examples/.env")
    text = '[services.web]\ncommand = "run"\nenv_file = ".env"\n[services.api]\ncommand = 5\n'
    assert problems(text, "examples/other.toml") == [
        "examples/other.toml:5:11: services.api.command: expected a string or an array of "
        "strings, got integer 5",
        'examples/.env:3:1: env_file: expected KEY=VALUE, got "bad line"',
    ]


def test_env_file_shared_by_services_is_read_once(here: Path) -> None:
    write("bad\n", ".env")
    text = '[services.a]\ncommand = "x"\nenv_file = ".env"\n[services.b]\ncommand = "x"\n'
    text += 'env_file = ".env"\n'
    assert problems(text) == ['.env:1:1: env_file: expected KEY=VALUE, got "bad"']


# --- robustness ----------------------------------------------------------------------------


def test_odd_inputs_only_raise_manifest_error(tmp_path: Path) -> None:
    odd = [
        "a = " + "[" * 5000,
        "a = " + "{b = " * 500 + "1" + "}" * 500,
        "\x00",
        "[services.a]\ncommand = 'x'\nstop_timeout = " + "9" * 500,
        "[services.a]\ncommand = 'x'\nstop_signal = " + "9" * 5000,
        '[services.a]\ncommand = "x\\u0000"\ncwd = "a\\u0000b"\nenv_file = "\\u0000"',
        '[services.a]\ncommand = "x"\nenv = {"A" = "\\u0000"}',
        "[[services.a]]\ncommand = 'x'\n[[services.a]]\ncommand = 'y'\n",
        "[services.a]\ncommand = 'x'\nd = 1979-05-27T07:32:00Z\nstop_signal = 07:32:00",
    ]
    for text in odd:
        with pytest.raises(ManifestError):
            parse_manifest(text, tmp_path / "services.toml")


def test_fuzzed_manifests_only_raise_manifest_error(tmp_path: Path) -> None:
    rng = random.Random(1234)
    tokens = ["[", "]", '"', "'", "=", "\n", "{", "}", ",", ".", "#", " ", "x", "-1", "[[", "\\"]
    for _ in range(300):
        chars = list(FULL)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(chars) + 1)
            if rng.random() < 0.3:
                del chars[at : at + rng.randint(1, 3)]
            else:
                chars.insert(at, rng.choice(tokens))
        try:
            parse_manifest("".join(chars), tmp_path / "services.toml")
        except ManifestError as exc:
            assert exc.problems


def test_positions_survive_tricky_toml(here: Path) -> None:
    text = (
        "# a [services.x] comment = 1\r\n"
        '[ services . "web" ]  # comment ]\r\n'
        'command = "echo \\" # ] = x\\""\r\n'
        "env . A = '''has ''quotes'' \r\n"
        "and lines'''\r\n"
        'env."B" = 2\r\n'
        '\tstop_signal = """a""""  # tab-indented\r\n'
    )
    assert problems(text) == [
        'services.toml:6:11: services.web.env.B: expected a string, got integer 2 (quote it: "2")',
        'services.toml:7:16: services.web.stop_signal: unknown signal "a\\""',
    ]


def test_directory_name_too_long(here: Path) -> None:
    text = f'[services.web]\ncommand = "run"\ncwd = "{"d" * 300}"\n'
    [problem] = problems(text)
    assert problem.startswith("services.toml:3:7: services.web.cwd: cannot use ")
    assert problem.endswith(": File name too long")


# Python targets: one problem each, the body on lines 2 and on.
TARGET_PROBLEMS = [
    ('target = "app"', '2:10: services.py.target: expected "module:attribute", got "app"'),
    ('target = "app:"', '2:10: services.py.target: expected "module:attribute", got "app:"'),
    (
        'target = "1app:run"',
        '2:10: services.py.target: expected "module:attribute", got "1app:run"',
    ),
    ("target = 5", "2:10: services.py.target: expected a string, got integer 5"),
    (
        'target = "app:run"\nexecutor = "fiber"',
        '3:12: services.py.executor: expected one of "process", "thread", "async", '
        '"async-process", got "fiber"',
    ),
    (
        'target = "app:run"\nshell = true',
        "3:1: services.py.shell: shell applies to a command, not to a target",
    ),
    (
        'target = "app:run"\nenv = { A = "1" }',
        "3:1: services.py.env: env cannot apply to an in-process service: it shares tuisup's "
        'process; use executor = "process" or "async-process"',
    ),
    (
        'target = "app:run"\nexecutor = "thread"\nstop_signal = "INT"',
        '4:1: services.py.stop_signal: stop_signal cannot apply to executor = "thread": it '
        'shares tuisup\'s process; use executor = "process" or "async-process"',
    ),
]


@pytest.mark.parametrize(("body", "expected"), TARGET_PROBLEMS)
def test_target_problem(here: Path, body: str, expected: str) -> None:
    assert problems(f"[services.py]\n{body}\n") == [f"services.toml:{expected}"]


def test_targets_load_with_their_executor(here: Path) -> None:
    from tuisup.spec import ExecutorKind

    manifest = load_manifest(
        write(
            "[services.auto]\n"
            'target = "demo.ticker:run"\n'
            "[services.child]\n"
            'target = "pkg.mod:Worker.main"\n'
            'executor = "async-process"\n'
            'env = { A = "1" }\n'
            'stop_signal = "INT"\n'
            "[services.cmd]\n"
            'command = "true"\n'
            'executor = "process"\n'
        )
    )
    auto, child, cmd = manifest.services.values()
    assert (auto.target, auto.executor, auto.argv, auto.command) == (
        "demo.ticker:run",
        None,
        (),
        "demo.ticker:run",
    )
    assert child.executor is ExecutorKind.ASYNC_PROCESS and child.env["A"] == "1"
    assert child.stop_signal == signal.SIGINT
    assert (cmd.target, cmd.executor) == (None, ExecutorKind.PROCESS)


def test_importing_the_manifest_loads_only_what_a_valid_file_needs() -> None:
    """`tuisup check` and the headless path import it: tomlkit (40 ms) and difflib are for
    problems only, and the engine, anyio and Textual are not its business."""
    code = (
        "import sys, tuisup.manifest; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('anyio', 'textual', 'rich', 'tomlkit', 'difflib') or m.startswith('tuisup.engine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
