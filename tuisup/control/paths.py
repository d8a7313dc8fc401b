"""Provides where a host's control socket is, and what is found there before binding.

The default is `.tuisup/tuisup.sock` beside the manifest: project-local, so two projects
never collide and no port is ever taken. A path too long for a socket address falls back
to a short one derived from the manifest's path, under `$XDG_RUNTIME_DIR/tuisup/` (or a
`tuisup-UID` folder in the temp dir).
"""

from __future__ import annotations

import enum
import errno
import itertools
import os
import socket
import stat
from pathlib import Path

from tuisup.model.record import Record
from tuisup.terminal import path_text

SUN_PATH_MAX = 107
"""Bytes of a path a socket address holds (108, one of them its NUL)."""
DEFAULT = Path(".tuisup") / "tuisup.sock"
"""Where the socket goes, relative to the manifest's folder."""
SOCKET_ENV = "TUISUP_SOCKET"
"""The variable that gives a host's services and hooks its socket (and the verbs they run)."""


class SocketPath(Record):
    """Where a host's socket is, and whether that is the short fallback."""

    path: Path
    fallback: bool = False
    """The path asked for did not fit in a socket address: this one is derived from it."""
    wanted: Path | None = None
    """The path asked for (or the default), when `path` is the fallback."""
    chosen: bool = False
    """The user named the path (`--socket`, `[tuisup] socket`): a folder of theirs that
    already exists keeps its mode (tuisup restricts only the folders it owns or makes)."""

    @property
    def own_folder(self) -> bool:
        """Whether the socket's folder is tuisup's own: `.tuisup`, or the fallback's."""
        return self.fallback or not self.chosen


def socket_path(manifest: Path, configured: Path | str | None = None) -> SocketPath:
    """The socket of the host that runs `manifest`.

    Args:
        manifest: The manifest's path.
        configured: `--socket` or `[tuisup] socket`, relative to the manifest's folder;
            None for the default.
    """
    manifest = manifest.absolute()
    wanted = Path(configured).expanduser() if configured is not None else DEFAULT
    if not wanted.is_absolute():
        wanted = manifest.parent / wanted
    chosen = configured is not None
    if len(os.fsencode(wanted)) <= SUN_PATH_MAX:
        return SocketPath(path=wanted, chosen=chosen)
    import hashlib  # only for the fallback: `tempfile` alone is 4 ms of every start
    import tempfile

    digest = hashlib.sha256(os.fsencode(manifest)).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = (
        Path(runtime) / "tuisup"
        if runtime
        else Path(tempfile.gettempdir()) / f"tuisup-{os.getuid()}"
    )
    return SocketPath(path=folder / f"{digest}.sock", fallback=True, wanted=wanted, chosen=chosen)


class Found(enum.Enum):
    """What is at a socket's path before a host binds it."""

    NOTHING = "nothing"
    STALE = "stale"
    """A socket nobody listens on (a host that died): safe to replace."""
    LIVE = "live"
    """A socket a host listens on: another host runs this manifest."""
    NOT_A_SOCKET = "not a socket"
    """A file, a folder, a symlink: never touched."""


def probe(path: Path) -> Found:
    """Look at what is at `path`, without changing anything."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return Found.NOTHING
    if not stat.S_ISSOCK(mode):
        return Found.NOT_A_SOCKET
    probe_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe_socket.settimeout(1.0)
    try:
        probe_socket.connect(os.fsencode(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return Found.STALE
    except OSError:
        return Found.LIVE  # it is there and answers somehow (timed out: busy, not dead)
    finally:
        probe_socket.close()
    return Found.LIVE


def private_folder(folder: Path, *, own: bool = True) -> list[Path]:
    """Make `folder` (and its parents) and keep it to its owner: mode 0700.

    Args:
        folder: Where the socket goes.
        own: It is tuisup's own folder (`.tuisup`, the fallback's): restricted even if it
            existed, and it must belong to this user. A folder the user named that exists
            already is left as it is (`/tmp`, their project): the socket's own mode and the
            peer check guard the socket there.

    Returns:
        The folders it made, the deepest first: none when `folder` was there.

    Raises:
        OSError: It cannot be made, it is not ours, or it cannot be restricted.
    """
    made = list(itertools.takewhile(lambda f: not os.path.lexists(f), [folder, *folder.parents]))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (made or own):
        return made
    info = folder.stat()
    if info.st_uid != os.getuid():
        # Another user's folder in a shared place (a `tuisup-UID` in /tmp made first by
        # someone else) could let them swap the socket: never serve from it.
        raise PermissionError(errno.EPERM, f"{path_text(folder)} belongs to uid {info.st_uid}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    return made
