"""Watch patterns: what each one matches and where it can only match, and the ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_manifest import problems, write
from tuisup.engine.service_watch import glob_regex, static_root
from tuisup.manifest import load_manifest

CWD = Path("/srv/app")


@pytest.mark.parametrize("pattern", [".", "./", "", "**", "./**", ".//"])
def test_dot_and_its_spellings_match_everything_in_cwd(pattern: str) -> None:
    regex = glob_regex(pattern)
    for path in ("app.py", "src/app.py", "src/deep/er/x.txt", ".env"):
        assert regex.fullmatch(path), (pattern, path)
    assert static_root(CWD, pattern) == CWD


@pytest.mark.parametrize("pattern", ["src", "src/", "./src/", "src/.", "./src/./", "src//"])
def test_a_folders_spellings_match_the_folder_and_below(pattern: str) -> None:
    regex = glob_regex(pattern)
    assert regex.fullmatch("src") and regex.fullmatch("src/a/b.py"), pattern
    assert not regex.fullmatch("srcx/a.py") and not regex.fullmatch("app.py"), pattern
    assert static_root(CWD, pattern) == CWD / "src"


@pytest.mark.parametrize(
    ("pattern", "root"),
    [("./src/**/*.py", "src"), ("src/./*.py", "src"), ("a//b/*.py", "a/b")],
)
def test_globs_with_dot_parts_match_as_without(pattern: str, root: str) -> None:
    assert static_root(CWD, pattern) == CWD / root
    assert glob_regex(pattern).fullmatch(f"{root}/m.py")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'watch = ["../lib"]',
            "services.toml:2:10: services.web.watch[0]: "
            'expected a path inside cwd (no ".."), got "../lib"',
        ),
        (
            'watch_ignore = ["src", "src/../../x"]',
            "services.toml:2:24: services.web.watch_ignore[1]: "
            'expected a path inside cwd (no ".."), got "src/../../x"',
        ),
        (
            'watch = [""]',
            "services.toml:2:10: services.web.watch[0]: "
            'expected a path or glob, got string "" (the whole cwd is ".")',
        ),
    ],
)
def test_watch_paths_outside_cwd_are_refused_with_their_line(
    here: Path, body: str, expected: str
) -> None:
    assert problems(f'[services.web]\n{body}\ncommand = "run"\n') == [expected]


def test_dot_loads_as_written(here: Path) -> None:
    manifest = load_manifest(write('[services.web]\ncommand = "run"\nwatch = [".", "./src/"]\n'))
    assert manifest.services["web"].watch == (".", "./src/")
