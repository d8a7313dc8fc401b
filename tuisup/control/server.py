"""Provides ControlServer: a host's API served on its UNIX socket, to clients of its user only.

    server = ControlServer(host, socket_path(manifest.path), refused=announce)
    server.bind()          # probe what is there, then bind 0600 in a 0700 folder
    async with server:     # accept clients until the block ends
        async with host:
            ...

The server knows the host through `HostAPI` alone, as every front end does. Binding is a
step of its own, taken before the host starts any service: a second host for the same
manifest is refused before it runs anything. Each client is a `Connection`
(`tuisup.control.connection`); a process of another user is turned away at once, and
`refused` is told once per user id (the runner puts it on the host's bus as a
`control_refused` event, so that the printer and the console say it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketAttribute, SocketListener, TaskGroup

import tuisup
from tuisup.api import HostAPI
from tuisup.control import protocol
from tuisup.control.paths import Found, SocketPath, private_folder, probe
from tuisup.model.record import Record
from tuisup.terminal import one_line, path_text

if TYPE_CHECKING:
    from tuisup.control.connection import Connection
    from tuisup.control.ops import ViewCoder
    from tuisup.control.streams import Feeds

CLOSE_GRACE = 2.0
"""Seconds a closing server gives its clients to receive what is theirs (the answer to a
`shutdown`, the last events of a stream) before it cuts them off."""
ACCEPT_AGAIN = 0.1
"""Seconds before accepting again after accepting failed (the descriptors ran out)."""
ASK_WITHIN = 2.0
"""Seconds a live host has to answer the hello that asks for its pid."""
_CREDENTIALS = struct.Struct("3i")
"""`struct ucred`: pid, uid, gid."""


class Limits(Record):
    """How long and how much a client may take."""

    hello_within: float = protocol.HELLO_WITHIN
    """Seconds from connecting to a complete hello."""
    stall: float = 10.0
    """Seconds a client may go without taking anything it is sent."""
    outbox: int = 4 << 20
    """Bytes waiting for a client beyond which its streams drop events."""
    malformed: int = 10
    """Malformed lines after which a connection is closed."""
    in_flight: int = 64
    """Requests of one connection running at once."""


class ControlError(Exception):
    """The socket cannot be served: another host runs, the path is taken, binding failed.

    Its text is the one line the runner prints before it exits with status 1.
    """


class ControlServer:
    """Serves one host's API on one UNIX socket."""

    def __init__(
        self,
        api: HostAPI,
        path: SocketPath,
        *,
        refused: Callable[[int, int], None] | None = None,
        limits: Limits | None = None,
    ) -> None:
        """Serve `api` at `path` (nothing happens before `bind`).

        Args:
            api: The host.
            path: Where the socket goes.
            refused: Called with (pid, uid) the first time each other user is turned away.
            limits: Timeouts and sizes (tests make them short).
        """
        self.api = api
        self.path = path
        self.limits = limits or Limits()
        self._refused = refused
        self._refused_uids: set[int] = set()
        self._socket: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._made: list[Path] = []
        """The folders made for a socket the user placed, the deepest first: removed with it."""
        self._listener: SocketListener | None = None
        self._tg: TaskGroup | None = None
        self._connections: set[Connection] = set()
        self._shared: tuple[ViewCoder, Feeds] | None = None
        """What connections share: the specs' JSON, the host's feeds of events."""
        self._hello: dict[str, object] = {
            "version": protocol.VERSION,
            "tuisup": tuisup.__version__,
            "pid": os.getpid(),
            "manifest": api.manifest_path,
            "socket": str(path.path),
        }

    # -- binding --------------------------------------------------------------------------

    def bind(self) -> None:
        """Take the socket's path: probe what is there, then bind and listen, mode 0600.

        Raises:
            ControlError: Another host serves it, the path is not a socket (or is a
                symlink), or binding failed. Nothing at the path is deleted but a stale
                socket.
        """
        where = self.path.path
        try:
            made = private_folder(where.parent, own=self.path.own_folder)
        except OSError as exc:
            raise ControlError(_cannot(where, exc)) from None
        # tuisup's own folders stay (`.tuisup` holds the logs; the fallback's is shared).
        self._made = [] if self.path.own_folder else made
        found = probe(where)
        if found is Found.NOT_A_SOCKET:
            raise ControlError(f"tuisup: {_shown(where)} exists and is not a socket: left alone")
        if found is Found.LIVE:
            raise ControlError(_running(where, self.api.manifest_path))
        if found is Found.STALE:  # a host that died: nobody listens
            with contextlib.suppress(FileNotFoundError):
                where.unlink()
        try:
            self._socket = _listen(where)
        except OSError as exc:
            self._unmake()
            raise ControlError(_cannot(where, exc)) from None
        info = os.lstat(where)
        self._inode = (info.st_dev, info.st_ino)

    # -- serving --------------------------------------------------------------------------

    async def __aenter__(self) -> ControlServer:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        self._listener = await SocketListener.from_socket(self._socket)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._accept, self._listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None and self._listener is not None
        with anyio.CancelScope(shield=True):
            await self._listener.aclose()
            self._remove()
            for connection in list(self._connections):
                connection.finish(streams=self.api.stopping)
            with anyio.move_on_after(CLOSE_GRACE):
                for connection in list(self._connections):
                    await connection.done.wait()
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    @property
    def clients(self) -> int:
        """How many clients are connected now."""
        return len(self._connections)

    async def _accept(self, listener: SocketListener) -> None:
        assert self._tg is not None
        while True:
            try:
                stream = await listener.accept()
            except anyio.ClosedResourceError:  # the server is closing
                return
            except (anyio.BrokenResourceError, OSError):
                # Out of descriptors (EMFILE), most likely: the clients connected are
                # served, and the one waiting is taken once one of them has gone.
                await anyio.sleep(ACCEPT_AGAIN)
                continue
            raw = stream.extra(SocketAttribute.raw_socket)
            try:
                pid, uid, _ = _CREDENTIALS.unpack(
                    raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
                )
            except OSError:  # gone already
                await stream.aclose()
                continue
            if uid != os.getuid():
                await stream.aclose()
                self._refuse(pid, uid)
                continue
            # Imported at the first client, not at every start: most hosts never get one.
            from tuisup.control.connection import Connection

            if self._shared is None:
                from tuisup.control.ops import ViewCoder
                from tuisup.control.streams import Feeds

                self._shared = ViewCoder(), Feeds(self.api, self._tg)
            # The socket leaves anyio's stream here: the connection reads and writes it
            # through an asyncio transport (see tuisup.control.connection).
            connection = Connection(
                self.api, raw, self._hello, pid, self.limits, *self._shared, self._detach
            )
            self._connections.add(connection)
            self._tg.start_soon(self._serve, connection)

    def _detach(self, command: Awaitable[None]) -> None:
        """Do a command that no client waits for (`no_wait`), as long as the server runs."""

        async def run() -> None:
            with contextlib.suppress(Exception):  # nobody to tell: the events say it all
                await command

        assert self._tg is not None
        self._tg.start_soon(run)

    async def _serve(self, connection: Connection) -> None:
        try:
            await connection.run()
        except Exception:  # a bug in one connection: it is closed, and nothing more
            pass
        finally:
            self._connections.discard(connection)

    def _refuse(self, pid: int, uid: int) -> None:
        if uid in self._refused_uids:
            return
        self._refused_uids.add(uid)
        if self._refused is not None:
            self._refused(pid, uid)

    def _remove(self) -> None:
        """Remove the socket file, if it is still the one this server made; then its folders."""
        if self._inode is not None:
            where = self.path.path
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(where)
                if (info.st_dev, info.st_ino) == self._inode and stat.S_ISSOCK(info.st_mode):
                    where.unlink()
            self._inode = None
        self._unmake()

    def _unmake(self) -> None:
        """Remove the folders made for the socket, the deepest first, as long as they are empty.

        A user who names a socket in a folder that is not there (`[tuisup] socket`) gets it
        made, and finds nothing of it left once the host has exited.
        """
        for folder in self._made:
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:  # something was put in it meanwhile: it stays, and its parents
                break
        self._made = []


def _listen(where: Path) -> socket.socket:
    """A socket bound at `where`, mode 0600 before anyone can connect, listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The umask is the process's: set only around bind, before the host starts
        # anything (a child spawned meanwhile would inherit it).
        old = os.umask(0o177)
        try:
            sock.bind(os.fsencode(where))
        finally:
            os.umask(old)
        os.chmod(where, 0o600)  # whatever the umask did, before listen
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _running(where: Path, manifest: str) -> str:
    """What to say when another host serves the socket: its manifest and pid, from a hello."""
    try:
        hello = _ask_hello(where)
    except PermissionError:
        return f"tuisup: {_shown(where)} is another user's socket: left alone"
    except (OSError, ValueError, KeyError, TypeError):
        hello = {}
    # Its manifest, not ours: two manifests may name the same socket.
    shown = _shown(Path(str(hello.get("manifest") or manifest)))
    pid = hello.get("pid")
    running = f"(pid {pid})" if isinstance(pid, int) else "(pid unknown)"
    return f"tuisup is already running {shown} {running}: tuisup attach opens its console"


def _ask_hello(where: Path) -> dict[str, object]:
    """What the host serving `where` says of itself in its hello."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ASK_WITHIN)
        sock.connect(os.fsencode(where))
        sock.sendall(protocol.encode(protocol.hello()))
        with sock.makefile("rb") as answers:
            answer = json.loads(answers.readline(protocol.MAX_LINE))
    result: dict[str, object] = answer["result"]
    return result


def _cannot(where: Path, exc: OSError) -> str:
    """One line for a failure to serve at `where`, naming the path that failed if another."""
    why = one_line(exc.strerror or str(exc))
    if exc.filename is not None and Path(os.fsdecode(exc.filename)) != where:
        why = f"{_shown(Path(os.fsdecode(exc.filename)))}: {why}"
    return f"tuisup: cannot serve the control socket {_shown(where)}: {why}"


def _shown(path: Path) -> str:
    """`path` as a user in the current folder would type it (and safe on a terminal)."""
    try:
        return path_text(path.relative_to(Path.cwd()))
    except ValueError:
        return path_text(path)
