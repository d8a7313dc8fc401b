"""Regression tests for hostile manifests: values that crashed the loader, or passed check and
crashed the host later, each of which must be one located problem instead."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.manifest import ManifestError, load_manifest

pytestmark = pytest.mark.usefixtures("here")

URL_EXAMPLE = 'expected a URL such as "http://127.0.0.1:8000/health"'
TCP_EXPECTED = 'expected a port or "host:port"'
METRICS_EXPECTED = 'expected "HOST:PORT" with a port from 1 to 65535'
MANY_DIGITS = "9" * 5000  # int() refuses more than 4300 digits


# --- addresses: brackets, digits that are not ASCII ----------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://[::1", '"http://[::1"'),
        ("http://[zz]/", '"http://[zz]/"'),
        ("http://h:²/", '"http://h:²/"'),
        ("http://h:0/", '"http://h:0/"'),
    ],
)
def test_an_http_check_that_urlsplit_refuses_is_a_problem(url: str, shown: str) -> None:
    text = f'[services.a]\ncommand = "x"\nhealthcheck = {{ http = "{url}" }}\n'
    assert problems(text) == [
        f"services.toml:3:24: services.a.healthcheck.http: {URL_EXAMPLE}, got {shown}"
    ]


@pytest.mark.parametrize(
    "address",
    ["h:²", "h:٣", pytest.param(f"h:{MANY_DIGITS}", id="h:9x5000"), "[::1", "::1]:80", "[::1]x:80"],
)
def test_a_tcp_check_port_is_ascii_digits_and_its_brackets_balance(address: str) -> None:
    text = f'[services.a]\ncommand = "x"\nhealthcheck = {{ tcp = "{address}" }}\n'
    [problem] = problems(text)
    assert problem.startswith(
        f"services.toml:3:23: services.a.healthcheck.tcp: {TCP_EXPECTED}, got string "
    )


@pytest.mark.parametrize(
    "address",
    ["h:²", "h:٣", pytest.param(MANY_DIGITS, id="9x5000"), "[::1", "::1]:80", "[::1]x:80"],
)
def test_a_metrics_port_is_ascii_digits_and_its_brackets_balance(address: str) -> None:
    text = f'[tuisup]\nmetrics = "{address}"\n[services.a]\ncommand = "x"\n'
    [problem] = problems(text)
    assert problem.startswith(f"services.toml:2:11: tuisup.metrics: {METRICS_EXPECTED}, got ")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"[::1]:9000"', ("::1", 9000)),
        ('"0.0.0.0:9000"', ("0.0.0.0", 9000)),
        ('":9000"', ("127.0.0.1", 9000)),
        ("9000", ("127.0.0.1", 9000)),
    ],
)
def test_metrics_addresses_that_still_load(written: str, expected: tuple[str, int]) -> None:
    text = f'[tuisup]\nmetrics = {written}\n[services.a]\ncommand = "x"\n'
    assert load_manifest(write(text)).settings.metrics == expected


# --- NUL characters ------------------------------------------------------------------------

NUL_PROBLEM = "a string cannot contain NUL characters"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('watch = ["a\\u0000b"]', "3:10: services.a.watch[0]"),
        ('watch = ["a\\U00000000b"]', "3:10: services.a.watch[0]"),
        ('watch = ["."]\nwatch_ignore = ["a\\u0000b"]', "4:17: services.a.watch_ignore[0]"),
        ('on = { exited = "echo\\u0000x" }', "3:17: services.a.on.exited"),
        ('on = { exited = ["echo", "\\u0000"] }', "3:17: services.a.on.exited"),
        ('healthcheck = { command = "true\\u0000" }', "3:27: services.a.healthcheck.command"),
        ('healthcheck = { tcp = "h\\u0000:80" }', "3:23: services.a.healthcheck.tcp"),
        ('healthcheck = { http = "http://a\\u0000b/" }', "3:24: services.a.healthcheck.http"),
        ('env_file = "\\u0000"', "3:12: services.a.env_file"),
    ],
)
def test_a_nul_in_any_string_is_a_problem(here: Path, body: str, where: str) -> None:
    text = f'[services.a]\ncommand = "x"\n{body}\n'
    [problem] = problems(text)
    assert problem.startswith(f"services.toml:{where}: ")
    assert "NUL" in problem


def test_a_nul_in_a_shell_command_is_a_problem() -> None:
    text = '[services.a]\ncommand = "echo\\u0000x"\nshell = true\n'
    assert problems(text) == [f"services.toml:2:11: services.a.command: {NUL_PROBLEM}"]


def test_a_nul_in_the_metrics_address_is_a_problem() -> None:
    text = '[tuisup]\nmetrics = "h\\u0000:9000"\n[services.a]\ncommand = "x"\n'
    assert problems(text) == [f"services.toml:2:11: tuisup.metrics: {NUL_PROBLEM}"]


def test_a_nul_in_a_replicated_table_is_reported_once() -> None:
    text = '[services.a]\ncommand = "x"\nreplicas = 3\nwatch = ["a\\u0000b"]\n'
    assert problems(text) == [f"services.toml:4:10: services.a.watch[0]: {NUL_PROBLEM}"]


def test_a_value_with_a_nul_is_reported_once_in_its_own_words() -> None:
    """The checks that already refused a NUL (cwd, command, env) keep their message, and the
    rule for every other string does not say it a second time."""
    text = (
        '[services.a]\ncommand = ["x", "\\u0000"]\ncwd = "a\\u0000"\nenv = { A = "\\u0000" }\n'
        'watch = ["\\u0000"]\n'
    )
    assert problems(text) == [
        "services.toml:2:11: services.a.command: a command cannot contain NUL characters",
        "services.toml:3:7: services.a.cwd: a path cannot contain NUL characters",
        "services.toml:4:13: services.a.env.A: a variable cannot contain NUL characters",
        f"services.toml:5:10: services.a.watch[0]: {NUL_PROBLEM}",
    ]


def test_a_nul_in_an_env_file_is_a_problem() -> None:
    write("A=1\nB=x\0y\n", ".env")
    text = '[services.a]\ncommand = "x"\nenv_file = ".env"\n'
    assert problems(text) == [".env:2:4: env_file: a variable cannot contain NUL characters"]


# --- TUISUP_PORT_<NAME> --------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("a-b", "a_b"), ("web", "WEB")])
def test_two_tables_with_one_port_variable_are_a_problem(first: str, second: str) -> None:
    text = (
        f'[services.{first}]\ncommand = "x"\nport = 8000\n\n'
        f'[services.{second}]\ncommand = "x"\nport = 9000\n'
    )
    variable = f"TUISUP_PORT_{first.upper().replace('-', '_')}"
    assert problems(text) == [
        f"services.toml:7:8: services.{second}.port: its variable {variable} is {first}'s too "
        "(line 3): rename one of them"
    ]


def test_a_table_without_a_port_takes_no_variable() -> None:
    text = '[services.a-b]\ncommand = "x"\nport = 8000\n[services.a_b]\ncommand = "x"\n'
    assert load_manifest(write(text)).services["a_b"].env["TUISUP_PORT_A_B"] == "8000"


# --- size ----------------------------------------------------------------------------------

MiB = 1024 * 1024


def _large(name: str) -> str:
    """A file of 16 MiB and one byte: a comment, valid TOML and dotenv but for its size."""
    Path(name).write_bytes(b"#" + b"x" * (16 * MiB))
    return name


def test_a_manifest_larger_than_16_mib_is_a_problem() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(_large("services.toml"))
    assert str(info.value) == "services.toml: larger than 16 MiB"


def test_an_env_file_larger_than_16_mib_is_a_problem(here: Path) -> None:
    _large(".env")
    text = '[services.a]\ncommand = "x"\nenv_file = ".env"\n'
    assert problems(text) == [
        f"services.toml:3:12: services.a.env_file: cannot read {here / '.env'}: larger than 16 MiB"
    ]


def _limit_memory() -> None:
    limit = 1024 * MiB  # reading /dev/zero to the end passes this in a second
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_check_reads_at_most_16_mib_of_an_endless_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuisup", "check", "-f", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert (done.returncode, done.stderr) == (1, "/dev/zero: larger than 16 MiB\n")
