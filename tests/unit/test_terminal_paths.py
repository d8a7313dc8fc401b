"""`path_text`: a path in a message is exact, on one line, and safe on a terminal."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tuisup.terminal import path_text

PATHS = [
    "d\x1b]0;x\x07/services.toml",  # an OSC title
    "/tmp/\x1b[2J\x9b2J",  # a clear screen, and its C1 form
    os.fsdecode(b"/tmp/\xff\xfe/x"),  # bytes that are not UTF-8
    "a\\b\x1b1",  # a backslash, and a digit after an escape
    "it's\ta\nb\rc",  # a quote, a tab, line breaks
    "nb\u00a0sp\u202e\U000e0001",  # a no-break space, a bidi override, a tag
]


@pytest.mark.parametrize("path", PATHS)
def test_an_unsafe_path_is_written_in_shell_quotes_with_every_control_escaped(path: str) -> None:
    shown = path_text(path)
    assert shown.startswith("$'") and shown.endswith("'")
    assert shown.isprintable() and shown.isascii()
    assert path_text(path, shell=True) == shown


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])  # `\u` is read by the locale: not used
@pytest.mark.parametrize("path", PATHS)
def test_bash_reads_it_back_as_the_very_same_path(path: str, locale: str) -> None:
    read = subprocess.run(
        ["bash", "-c", f"printf %s {path_text(path)}"],
        capture_output=True,
        env={"LC_ALL": locale, "PATH": os.environ.get("PATH", "")},
        check=True,
    ).stdout
    assert read == os.fsencode(path)


def test_a_plain_path_is_as_it_is_and_quoted_for_a_shell_only_as_it_needs() -> None:
    assert path_text("my app/services.toml") == "my app/services.toml"
    assert path_text("my app/services.toml", shell=True) == "'my app/services.toml'"
    assert path_text("services.toml", shell=True) == "services.toml"
    assert path_text("café/ünïcode") == "café/ünïcode"
