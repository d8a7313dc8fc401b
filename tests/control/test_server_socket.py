"""The socket itself: its modes, what is found at its path before binding, who may connect,
and that it is gone when the host is."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.control.raw import Raw, serving, short_folder
from tuisup.control.paths import SocketPath
from tuisup.control.server import ControlError, ControlServer
from tuisup.engine import Host
from tuisup.model.record import replace
from tuisup.spec import Manifest

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")


@pytest.fixture
def folder() -> Iterator[Path]:
    with short_folder() as path:
        yield path


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_its_folder_is_0700_and_the_socket_0600(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    (folder / ".tuisup").mkdir(mode=0o755)  # made earlier (its logs), too open
    os.chmod(folder / ".tuisup", 0o755)
    umask = os.umask(0o022)
    try:
        host = Host(make_manifest(web="exec sleep 30"))
        server = ControlServer(host, SocketPath(path=folder / ".tuisup" / "tuisup.sock"))
        server.bind()
        assert os.umask(0o022) == 0o022  # given back as it was
    finally:
        os.umask(umask)
    async with server, host:
        assert mode(folder / ".tuisup") == 0o700
        assert mode(folder / ".tuisup" / "tuisup.sock") == 0o600
        assert stat.S_ISSOCK(os.lstat(folder / ".tuisup" / "tuisup.sock").st_mode)


async def test_a_folder_the_user_named_keeps_its_mode_and_a_new_one_is_0700(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    os.chmod(folder, 0o755)
    for where, expected in ((folder / "ctl.sock", 0o755), (folder / "new" / "ctl.sock", 0o700)):
        host = Host(make_manifest(web="exec sleep 30"))
        server = ControlServer(host, SocketPath(path=where, chosen=True))
        server.bind()
        async with server:
            assert mode(where.parent) == expected
            assert mode(where) == 0o600


@as_root
async def test_a_folder_of_its_own_that_another_user_made_is_refused(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    own = folder / "tuisup-0"
    own.mkdir(mode=0o777)
    os.chown(own, NOBODY, NOBODY)  # someone was first in a shared place
    server = ControlServer(
        Host(make_manifest(web="exec sleep 30")), SocketPath(path=own / "h.sock")
    )
    with pytest.raises(ControlError) as error:
        server.bind()
    assert str(error.value) == (
        f"tuisup: cannot serve the control socket {own / 'h.sock'}: {own} belongs to uid {NOBODY}"
    )
    assert list(own.iterdir()) == []


async def test_a_stale_socket_is_replaced(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(folder / "s.sock"))  # a host that died: bound, nobody listens
    dead.close()
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        raw = await Raw.connect(folder / "s.sock")
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()


async def test_a_live_socket_refuses_a_second_host_with_the_first_ones_pid(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    manifest = make_manifest(web="exec sleep 30")
    async with serving(manifest, folder / "s.sock"):
        second = ControlServer(Host(manifest), SocketPath(path=folder / "s.sock"))
        with pytest.raises(ControlError) as error:
            # In a thread: the first host answers the hello on this loop.
            await anyio.to_thread.run_sync(second.bind)
        assert str(error.value) == (
            f"tuisup is already running {manifest.path} (pid {os.getpid()}): "
            "tuisup attach opens its console"
        )
        # Another manifest that names the same socket: the message names the one running.
        other = ControlServer(Host(replace(manifest, path=folder / "other.toml")), second.path)
        with pytest.raises(ControlError) as error:
            await anyio.to_thread.run_sync(other.bind)
        assert f"already running {manifest.path} (pid {os.getpid()})" in str(error.value)
        raw = await Raw.connect(folder / "s.sock")  # the first one is untouched
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()


@pytest.mark.parametrize("kind", ["file", "symlink", "folder", "dangling symlink"])
async def test_what_is_not_a_socket_is_an_error_and_left_alone(
    make_manifest: Callable[..., Manifest], folder: Path, kind: str
) -> None:
    where = folder / "s.sock"
    target = folder / "precious"
    if kind == "file":
        where.write_text("keep me")
    elif kind == "folder":
        where.mkdir()
    else:
        if kind == "symlink":
            target.write_text("keep me")
        where.symlink_to(target)
    before = os.lstat(where)
    server = ControlServer(Host(make_manifest(web="exec sleep 30")), SocketPath(path=where))
    with pytest.raises(ControlError) as error:
        server.bind()
    assert str(error.value) == f"tuisup: {where} exists and is not a socket: left alone"
    after = os.lstat(where)
    assert (after.st_ino, after.st_mode, after.st_mtime) == (
        before.st_ino,
        before.st_mode,
        before.st_mtime,
    )
    if kind == "symlink":
        assert target.read_text() == "keep me"


async def test_the_socket_is_gone_when_the_host_is_but_only_if_it_is_still_ours(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        assert stat.S_ISSOCK(os.lstat(folder / "s.sock").st_mode)
    assert os.listdir(folder) == []  # nothing left at all
    async with serving(make_manifest(web="exec sleep 30"), folder / "s.sock"):
        # Someone removed it and another one took the path meanwhile: not ours to remove.
        (folder / "s.sock").unlink()
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(folder / "s.sock"))
    other.close()
    assert stat.S_ISSOCK(os.lstat(folder / "s.sock").st_mode)


def as_nobody(path: Path, attempts: int = 1) -> list[str]:
    """Connect to `path` from a forked process that became nobody; what each attempt got."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only these calls, then _exit
        outcomes = []
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            for _ in range(attempts):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.settimeout(5)
                    try:
                        client.connect(str(path))
                        client.sendall(b'{"id": 0, "op": "hello", "version": 1}\n')
                        outcomes.append("closed" if client.recv(1000) == b"" else "answered")
                    except (BrokenPipeError, ConnectionResetError):
                        outcomes.append("closed")  # at once, before the hello was read
                    except OSError as exc:
                        outcomes.append(type(exc).__name__)
        finally:
            os.write(write, json.dumps(outcomes).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        got = pipe.read()
    os.waitpid(pid, 0)
    return list(json.loads(got))


@as_root
async def test_another_user_cannot_connect_through_the_modes(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    os.chmod(folder, 0o755)
    where = folder / "ctl.sock"  # a folder anyone may enter: the socket's mode alone
    host = Host(make_manifest(web="exec sleep 30"))
    server = ControlServer(host, SocketPath(path=where, chosen=True))
    server.bind()
    async with server, host:
        assert mode(folder) == 0o755
        assert await anyio.to_thread.run_sync(as_nobody, where) == ["PermissionError"]


@as_root
async def test_another_user_is_refused_by_its_credentials_and_reported_once(
    make_manifest: Callable[..., Manifest], folder: Path
) -> None:
    os.chmod(folder, 0o755)
    where = folder / "ctl.sock"
    refused: list[tuple[int, int]] = []
    host = Host(make_manifest(web="exec sleep 30"))
    path = SocketPath(path=where, chosen=True)
    server = ControlServer(host, path, refused=lambda *who: refused.append(who))
    server.bind()
    async with server, host:
        os.chmod(where, 0o666)  # as if the modes had failed: the peer check still holds
        got = await anyio.to_thread.run_sync(as_nobody, where, 3)
        assert got == ["closed", "closed", "closed"]
        assert len(refused) == 1 and refused[0][1] == NOBODY
        assert refused[0][0] > 0  # its pid, from SO_PEERCRED
        raw = await Raw.connect(where)  # this user still gets in
        assert (await raw.result("snapshot"))["services"][0]["service"] == "web"
        await raw.aclose()
