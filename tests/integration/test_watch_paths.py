"""What a `watch` path covers: the whole cwd, folders that go and come back, never tuisup's files.

Real files, the real inotify watcher, real processes.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.test_watch import armed, changes, manifest, sentinel, settle, spec
from tuisup.engine import Host
from tuisup.manifest import load_manifest


@asynccontextmanager
async def watching(
    tmp_path: Path, pattern: str, file: str, text: str
) -> AsyncIterator[tuple[Path, Host]]:
    """A host whose web, in tmp_path/app (away from the sentinel's folder), watches `pattern`;
    `file` under app holds `text` before it starts. Yields app and the armed host."""
    app = tmp_path / "app"
    (app / file).parent.mkdir(parents=True)
    (app / file).write_text(text)
    web = spec(app, "web", "sleep 60", watch=(pattern,), watch_debounce=50)
    async with Host(manifest(tmp_path, web, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        yield app, host


async def test_dot_and_dot_slash_watch_the_whole_cwd(tmp_path: Path) -> None:
    app = tmp_path / "app"  # the sentinel's file is outside every one's cwd
    (app / "src").mkdir(parents=True)
    patterns = {"dot": ".", "dot-slash": "./", "src-dot": "src/.", "dot-src": "./src/"}
    services = [spec(app, name, "sleep 60", watch=(p,)) for name, p in patterns.items()]
    async with Host(manifest(tmp_path, *services, sentinel(tmp_path))) as host:
        await armed(host, tmp_path)
        (app / "src" / "app.py").write_text("v = 1\n")
        await wait_until(host, lambda s: all(s[name].restarts == 1 for name in patterns))
        assert {name: changes(host, name)[0].paths for name in patterns} == {
            name: ("src/app.py",) for name in patterns
        }


async def test_a_watched_folder_deleted_and_recreated_is_watched_again(tmp_path: Path) -> None:
    async with watching(tmp_path, "src", "src/app.py", "v = 1\n") as (app, host):
        src = app / "src"
        shutil.rmtree(src)
        await wait_until(host, lambda s: s["web"].restarts == 1)
        src.mkdir()  # the folder coming back is a change of its own
        await wait_until(host, lambda s: s["web"].restarts == 2)
        (src / "app.py").write_text("v = 2\n")
        await wait_until(host, lambda s: s["web"].restarts == 3)
        assert [e.paths for e in changes(host, "web")] == [
            ("src", "src/app.py"),
            ("src",),
            ("src/app.py",),
        ]


async def test_a_nested_watched_folder_comes_back_with_the_files_written_into_it(
    tmp_path: Path,
) -> None:
    async with watching(tmp_path, "a/b/c/*.txt", "a/b/c/x.txt", "1") as (app, host):
        deep = app / "a" / "b" / "c"
        shutil.rmtree(app / "a")
        await wait_until(host, lambda s: s["web"].restarts == 1)
        # mkdir -p and a write at once: the file is there before the folder is watched.
        os.makedirs(deep)
        (deep / "x.txt").write_text("2")
        await wait_until(host, lambda s: s["web"].restarts == 2)
        (deep / "x.txt").write_text("3")
        await wait_until(host, lambda s: s["web"].restarts == 3)
        assert [e.paths for e in changes(host, "web")] == [("a/b/c/x.txt",)] * 3


async def test_a_watched_files_folder_deleted_and_recreated_is_watched_again(
    tmp_path: Path,
) -> None:
    settings = "config/settings.toml"
    async with watching(tmp_path, settings, settings, "a = 1\n") as (app, host):
        config = app / "config"
        shutil.rmtree(config)
        await wait_until(host, lambda s: s["web"].restarts == 1)
        config.mkdir()
        (config / "settings.toml").write_text("a = 2\n")
        await wait_until(host, lambda s: s["web"].restarts == 2)
        (config / "settings.toml").write_text("a = 3\n")
        await wait_until(host, lambda s: s["web"].restarts == 3)


async def test_a_watched_folder_moved_away_is_no_longer_watched_under_its_old_name(
    tmp_path: Path,
) -> None:
    async with watching(tmp_path, "src", "src/app.py", "v = 1\n") as (app, host):
        src = app / "src"
        src.rename(app / "old")
        await wait_until(host, lambda s: s["web"].restarts == 1)  # src is gone: a change
        (app / "old" / "app.py").write_text("not watched any more")
        await settle(host, tmp_path)
        assert host.snapshot()["web"].restarts == 1
        (app / "old").rename(src)
        await wait_until(host, lambda s: s["web"].restarts == 2)
        (src / "app.py").write_text("v = 3\n")
        await wait_until(host, lambda s: s["web"].restarts == 3)
        assert [e.paths for e in changes(host, "web")][2] == ("src/app.py",)


MANIFEST = """
[tuisup]
{log_dir}

[services.everything]
command = "sleep 60"
watch = ["**"]
watch_ignore = ["sentinel.txt"]
watch_debounce = 50

[services.sentinel]
command = "sleep 60"
watch = ["sentinel.txt"]
"""


@pytest.mark.parametrize("log_dir", ["", 'log_dir = "var/log/tuisup"'])
async def test_nothing_tuisup_writes_counts_even_the_folders_it_creates(
    tmp_path: Path, log_dir: str
) -> None:
    path = tmp_path / "services.toml"
    path.write_text(textwrap.dedent(MANIFEST).format(log_dir=log_dir))
    async with Host(load_manifest(path)) as host:
        # Log folders are made at the first log line: the sentinel's restart marker, written
        # while the watcher runs. mkdir -p makes `.tuisup` (or `var`, `var/log`) first.
        assert not (tmp_path / ".tuisup").exists() and not (tmp_path / "var").exists()
        await armed(host, tmp_path)
        await wait_until(host, lambda s: s["sentinel"].restarts >= 1)
        logs = host.manifest.settings.log_dir
        assert logs is not None and (logs / "sentinel.log").exists()
        await settle(host, tmp_path)
        assert changes(host, "everything") == []
        # tuisup's home beside the manifest: its control socket and own log live there too.
        (tmp_path / ".tuisup").mkdir(exist_ok=True)
        (tmp_path / ".tuisup" / "tuisup.log").write_text("tuisup's own\n")
        await settle(host, tmp_path)
        assert changes(host, "everything") == []
        (tmp_path / "app.py").write_text("but this counts\n")
        await wait_until(host, lambda s: s["everything"].restarts == 1)
        assert [e.paths for e in changes(host, "everything")] == [("app.py",)]


async def test_a_file_name_that_is_not_utf8_restarts_the_service_and_is_shown_replaced(
    tmp_path: Path,
) -> None:
    """Regression: its name reached the log file's encoder as it was decoded (with lone
    surrogates), and the error failed the service, and with it a host of one service."""
    async with watching(tmp_path, ".", "app.py", "v = 1\n") as (app, host):
        name = b"bad\xff\x9bname.py"
        os.close(os.open(os.path.join(os.fsencode(app), name), os.O_CREAT | os.O_WRONLY))
        views = await wait_until(host, lambda s: s["web"].restarts == 1)
        assert views["web"].state.value == "running"
        assert changes(host, "web")[0].paths == ("bad\ufffd\ufffdname.py",)
        markers = [line for b in host.store.since("web", 0) for line in b.lines]
        assert "── bad\ufffd\ufffdname.py changed: restarting ──" in markers
