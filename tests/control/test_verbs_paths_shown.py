"""Regressions: paths in the verbs' messages reached the terminal with their escapes.

A folder named with an OSC sequence (`d ESC ]0;x BEL`) set the terminal's title from `tuisup
ps`, `up -d`, a second `--no-tui` and `tuisup import`; `shlex.quote` does not neutralise an
escape. A path that holds one is now written as a shell writes it, `$'d\\x1b]0;x\\x07'`:
exact, pasteable into bash or zsh, and without a control character. `tuisup import` also wrote
the path raw into a TOML comment, which TOML forbids: it could not import at all.
"""

from __future__ import annotations

import os
import re
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Tuisup, write_manifest
from tests.control.verbs import tuisup

WEB = """
[services.web]
command = "sleep 300"
env = { TUISUP_TEST_TOKEN = "@TOKEN@" }
"""
EVIL = "d\x1b]0;x\x07"
"""A folder whose name sets the terminal's title (OSC 0, ended by BEL)."""
SHOWN = r"$'d\x1b]0;x\x07'"
"""The same as every message must show it: `$'...'`, with its controls escaped."""


def controls(text: str) -> list[str]:
    """The control characters (C0, DEL, C1) in `text` but line breaks, as repr."""
    return sorted({repr(c) for c in text if c != "\n" and (c < " " or "\x7f" <= c <= "\x9f")})


@pytest.fixture
def evil(tmp_path: Path, token: str) -> Path:
    """A folder named with an escape, holding a manifest that runs `web`."""
    folder = tmp_path / EVIL
    folder.mkdir()
    write_manifest(folder, WEB, token)
    return folder


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of hosts started in the background: killed if the test left them."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ps_with_no_host_shows_the_manifest_and_the_socket_without_escapes(
    tmp_path: Path, evil: Path
) -> None:
    done = tuisup("ps", "-f", f"{EVIL}/services.toml", cwd=tmp_path)
    assert done.returncode == 3 and controls(done.stderr) == []
    assert done.stderr == (
        r"no tuisup is running for $'d\x1b]0;x\x07/services.toml' (start one with: "
        r"tuisup -f $'d\x1b]0;x\x07/services.toml' up -d)" + "\n"
    )
    socket = "/tmp/\x1b]0;pwn\x07x"
    done = tuisup("ps", "--socket", socket, cwd=tmp_path)
    assert done.returncode == 3 and controls(done.stderr) == []
    assert done.stderr == (
        "no tuisup is running for ./services.toml (start one with: "
        r"tuisup --socket $'/tmp/\x1b]0;pwn\x07x' up -d)" + "\n"
    )
    # A plain path is as it was: a shell's quotes only where it needs them.
    done = tuisup("ps", "-f", "my app/services.toml", cwd=tmp_path)
    assert "(start one with: tuisup -f 'my app/services.toml' up -d)" in done.stderr


def test_up_d_and_a_second_host_show_the_paths_without_escapes(
    tmp_path: Path, evil: Path, daemons: list[int]
) -> None:
    manifest = f"{EVIL}/services.toml"
    done = tuisup("-f", manifest, "up", "-d", cwd=tmp_path, timeout=60)
    found = re.search(r"\(pid (\d+)\)", done.stdout)
    if found:
        daemons.append(int(found.group(1)))
    assert done.returncode == 0, done.stderr
    assert controls(done.stdout + done.stderr) == []
    assert done.stdout.splitlines()[-1].endswith(f"its output: {SHOWN[:-1]}/.tuisup/tuisup.log'")
    second = Tuisup("-f", manifest, "--no-tui", cwd=tmp_path)
    assert second.finish() == 1
    assert second.proc.stderr is not None
    said = second.proc.stderr.read()
    assert controls(said) == []
    assert said.startswith(r"tuisup is already running $'d\x1b]0;x\x07/services.toml' (pid ")
    done = tuisup("-f", manifest, "down", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert controls(done.stdout + done.stderr) == []


def test_import_of_a_procfile_in_a_folder_named_with_an_escape(tmp_path: Path, evil: Path) -> None:
    (evil / "Procfile").write_text("web: sleep 300\n")
    done = tuisup("import", f"{EVIL}/Procfile", "-o", "out.toml", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "wrote out.toml: 1 service\n"
    written = (tmp_path / "out.toml").read_text()
    assert controls(written) == []
    assert f"# Imported from {SHOWN[:-1]}/Procfile' by `tuisup import`." in written
    # The values stay exact: the service runs in that very folder.
    assert tomllib.loads(written)["services"]["web"]["cwd"] == EVIL
    again = tuisup("import", f"{EVIL}/Procfile", "-o", f"{EVIL}/out.toml", cwd=tmp_path)
    assert again.returncode == 0 and controls(again.stdout + again.stderr) == []
    assert again.stdout == f"wrote {SHOWN[:-1]}/out.toml': 1 service\n"
    refused = tuisup("import", f"{EVIL}/Procfile", "-o", f"{EVIL}/out.toml", cwd=tmp_path)
    assert refused.returncode == 1 and controls(refused.stderr) == []
    exists = f"{SHOWN[:-1]}/out.toml' exists: --force overwrites it"
    assert refused.stderr == f"tuisup import: {exists}\n"
    missing = tuisup("import", f"{EVIL}/nothing", cwd=tmp_path)
    assert missing.returncode == 1 and controls(missing.stderr) == []
    assert missing.stderr.startswith(f"tuisup import: {SHOWN[:-1]}/nothing': cannot read: ")


def test_import_from_a_folder_whose_name_is_not_utf8_says_so(tmp_path: Path) -> None:
    """It was a UnicodeEncodeError traceback: TOML holds UTF-8 only, and `cwd` could not."""
    folder = os.fsencode(tmp_path) + b"/n\xffx"
    os.mkdir(folder)
    with open(folder + b"/Procfile", "w") as procfile:
        procfile.write("web: sleep 300\n")
    done = tuisup("import", os.fsdecode(b"n\xffx/Procfile"), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        r"tuisup import: a path of $'n\xffx/Procfile' is not UTF-8, which TOML cannot hold; "
        "nothing written\n"
    )
    assert not (tmp_path / "services.toml").exists()
