"""Provides Ops: the control protocol's operations, each a call of the HostAPI.

Each operation checks its arguments (`Args`: unknown, missing or mistyped ones are a
`BadRequest`), calls the host and returns the answer's `result` as JSON-ready data. What
the host refuses comes back as its `ApiError`; the connection turns both into answers.
`subscribe` returns a `Subscribed`: the connection answers it and runs the stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio

from tuisup.api import HostAPI, Subscription
from tuisup.model import BadRequest, ServiceView, SpecView, UnknownService
from tuisup.model.events import Event, ManifestInvalid, ManifestReloaded
from tuisup.model.logs import last_lines
from tuisup.model.record import Record
from tuisup.spec import selects

ARGUMENTS: dict[str, frozenset[str]] = {
    op: frozenset(names)
    for op, names in {
        "snapshot": {"services", "spec"},
        "start": {"name", "no_wait"},
        "stop": {"name", "no_wait"},
        "restart": {"name", "no_wait"},
        "kill": {"name", "no_wait"},
        "affected": {"verb", "name"},
        "toggle_watch": {"name"},
        "scale": {"name", "count"},
        "tables": set(),
        "reload": set(),
        "logs": {"name", "since", "limit"},
        "processes": set(),
        "reopen_logs": set(),
        "shutdown": {"reason"},
        "subscribe": {"lines", "views", "services"},
        "unsubscribe": {"stream"},
    }.items()
}
"""The arguments each operation takes (besides `hello`, which the connection answers)."""
VERBS = ("start", "stop", "restart")
"""What `affected` can be asked about."""
OUTCOME_WITHIN = 1.0
"""Seconds a reload's answer waits for the event that says what it did (it was emitted
before the reload returned: this bounds only a host that stopped meanwhile)."""


class Args:
    """A request's `args`, read by type; whatever does not fit is a BadRequest."""

    def __init__(self, op: str, raw: object) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise BadRequest(f"{op}: args must be an object")
        unknown = sorted(set(raw) - ARGUMENTS[op])
        if unknown:
            raise BadRequest(f'{op}: unknown argument "{unknown[0]}"')
        self.op = op
        self._raw: dict[str, Any] = raw

    def _bad(self, key: str, wanted: str) -> BadRequest:
        return BadRequest(f"{self.op}: {key} must be {wanted}")

    def text(self, key: str) -> str:
        """A required string."""
        value = self._raw.get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        """A string, or None when it is left out (or null)."""
        return None if self._raw.get(key) is None else self.text(key)

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean, `default` when left out."""
        value = self._raw.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def count(self, key: str) -> int | None:
        """An integer of at least 0, or None when it is left out (or null)."""
        value = self._raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._bad(key, "an integer >= 0")
        return value

    def names(self, key: str) -> list[str] | None:
        """A list of strings, or None when it is left out (or null)."""
        value = self._raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of service names")
        return value


class StreamOptions(Record):
    """What a `subscribe` asked for."""

    lines: bool = False
    """Output events carry their lines."""
    views: bool = False
    """Each batch of events is followed by a `status` event with the views it changed."""
    services: frozenset[str] | None = None
    """Only events about these services (and host-wide ones); None: every service."""


class Subscribed(Record):
    """A subscription taken for a `subscribe`: the connection answers, then streams it."""

    subscription: Subscription
    options: StreamOptions
    snapshot: list[ServiceView]
    """The views the answer carries (those of `options.services`, if given)."""


class ViewCoder:
    """Views as JSON, each spec encoded once: a spec changes only with a reload.

    A `snapshot` of 100 services spends two thirds of its time on their specs otherwise.
    The host makes one SpecView per spec, so the view's spec object is the key.
    """

    KEPT = 4096
    """Specs remembered; past this (reload after reload) the memory starts over."""

    def __init__(self) -> None:
        self._specs: dict[int, tuple[SpecView, dict[str, Any]]] = {}

    def __call__(self, views: Iterable[ServiceView]) -> list[dict[str, Any]]:
        """Each view's `to_json()`."""
        coded = []
        for view in views:
            known = self._specs.get(id(view.spec))
            if known is None or known[0] is not view.spec:
                if len(self._specs) >= self.KEPT:
                    self._specs.clear()
                known = self._specs[id(view.spec)] = (view.spec, view.spec.to_json())
            data = view.to_json(spec=False)
            data["spec"] = known[1]
            coded.append(data)
        return coded


class Ops:
    """The operations of one connection, over one host."""

    def __init__(
        self,
        api: HostAPI,
        peer_pid: int,
        coder: ViewCoder,
        detach: Callable[[Awaitable[None]], None],
    ) -> None:
        self.api = api
        self.peer_pid = peer_pid
        self.coder = coder
        """Shared by the server's connections."""
        self.detach = detach
        """Runs a command that nobody waits for, in a task of the server's, not the
        connection's: it is done even if the client is gone by then."""
        self._ops: dict[str, Callable[[Args], Awaitable[Any]]] = {
            "snapshot": self.snapshot,
            "start": self.command,
            "stop": self.command,
            "restart": self.command,
            "kill": self.command,
            "affected": self.affected,
            "toggle_watch": self.toggle_watch,
            "scale": self.scale,
            "tables": self.tables,
            "reload": self.reload,
            "logs": self.logs,
            "processes": self.processes,
            "reopen_logs": self.reopen_logs,
            "shutdown": self.shutdown,
            "subscribe": self.subscribe,
        }

    async def call(self, op: str, raw_args: object) -> Any:
        """Run one operation; return its result.

        Raises:
            ApiError: The request is not one (BadRequest), or the host refused it.
        """
        handler = self._ops.get(op)
        if handler is None:
            raise unknown_op(op)
        return await handler(Args(op, raw_args))

    def _views(self, names: list[str] | None) -> list[ServiceView]:
        """The views of `names` (every service for None; a replicated one's: its replicas)."""
        views = self.api.snapshot()
        if names is None:
            return list(views.values())
        declared = {view.declared for view in views.values()}
        for name in names:
            if name not in views and name not in declared:
                raise UnknownService.named(name, sorted({*views, *declared}))
        return [view for name, view in views.items() if selects(names, name)]

    async def snapshot(self, args: Args) -> dict[str, Any]:
        """`snapshot` {services?, spec?} → {"services": [view]}.

        `spec: false` leaves each view's manifest table out: a client that keeps them
        (from its subscription) or does not need them (`tuisup ps`) gets a quarter of the
        bytes, made in a third of the time.
        """
        views = self._views(args.names("services"))
        if not args.flag("spec", default=True):
            return {"services": [view.to_json(spec=False) for view in views]}
        return {"services": self.coder(views)}

    async def command(self, args: Args) -> dict[str, Any]:
        """`start`, `stop`, `restart`, `kill` {name, no_wait?} → {"moved": [others]}.

        Answered once done; with `no_wait`, at once, and the host does it all the same,
        whatever becomes of the client (`tuisup start --no-wait` leaves at once).
        """
        name = args.text("name")  # a service, a replicated table or a group: the host knows
        # Asked first: it refuses an unknown name before anything is done (or detached).
        moved = await self.api.affected("stop" if args.op == "kill" else args.op, name)
        moved = [] if args.op == "kill" else moved
        done = getattr(self.api, args.op)(name)
        if args.flag("no_wait"):
            self.detach(done)
        else:
            await done
        return {"moved": moved}

    async def affected(self, args: Args) -> dict[str, Any]:
        """`affected` {verb, name} → {"services": [names]}."""
        verb, name = args.text("verb"), args.text("name")
        if verb not in VERBS:
            raise BadRequest(f"affected: verb must be one of {', '.join(VERBS)}")
        return {"services": await self.api.affected(verb, name)}

    async def tables(self, args: Args) -> dict[str, Any]:
        """`tables` → {"tables": {name: {replicas, group}}}: in manifest order."""
        return {"tables": {name: t.to_json() for name, t in (await self.api.tables()).items()}}

    async def toggle_watch(self, args: Args) -> dict[str, Any]:
        """`toggle_watch` {name} → {"watching": true | false | null}."""
        name = args.text("name")
        self._views([name])  # an unknown name is refused, with the closest
        return {"watching": await self.api.toggle_watch(name)}

    async def scale(self, args: Args) -> dict[str, Any]:
        """`scale` {name, count} → {"replicas": count}, once the new ones started."""
        name, count = args.text("name"), args.count("count")
        if count is None:
            raise BadRequest("scale: count must be an integer >= 0")
        await self.api.scale(name, count)
        return {"replicas": count}

    async def reload(self, args: Args) -> dict[str, Any]:
        """`reload` {} → {"applied": bool}, with the `summary` or the `error` it led to."""
        subscription = await self.api.subscribe()
        applied = await self.api.reload()
        result: dict[str, Any] = {"applied": applied}
        if applied or not self.api.stopping:
            outcome = await _outcome(subscription)
            if isinstance(outcome, ManifestReloaded):
                result["summary"] = outcome.summary()
            elif isinstance(outcome, ManifestInvalid):
                result["error"] = outcome.error
        return result

    async def logs(self, args: Args) -> dict[str, Any]:
        """`logs` {name?, since?, limit?} → {"batches": [batch]} (the last `limit` lines)."""
        since, limit = args.count("since") or 0, args.count("limit")
        batches = await self.api.logs(args.optional_text("name"), since)
        if limit is not None:
            batches = last_lines(batches, limit)
        return {"batches": [batch.to_json() for batch in batches]}

    async def processes(self, args: Args) -> dict[str, Any]:
        """`processes` {} → the process trees, CPU and memory."""
        return (await self.api.processes()).to_json()

    async def reopen_logs(self, args: Args) -> dict[str, Any]:
        """`reopen_logs` {} → {}: every log file's path is opened again at its next line."""
        await self.api.reopen_logs()
        return {}

    async def shutdown(self, args: Args) -> dict[str, Any]:
        """`shutdown` {reason?} → {} once the host has stopped."""
        reason = args.optional_text("reason") or f"asked by pid {self.peer_pid}"
        await self.api.shutdown(reason)
        return {}

    async def subscribe(self, args: Args) -> Subscribed:
        """`subscribe` {lines?, views?, services?}: the subscription, for the connection."""
        names = args.names("services")
        options = StreamOptions(
            lines=args.flag("lines"),
            views=args.flag("views"),
            services=frozenset(names) if names is not None else None,
        )
        self._views(names)  # unknown names are refused before anything is taken
        subscription = await self.api.subscribe(lines=options.lines)
        wanted = options.services
        views = [v for n, v in subscription.snapshot.items() if selects(wanted, n)]
        return Subscribed(subscription=subscription, options=options, snapshot=views)


def unknown_op(op: str) -> BadRequest:
    """The error for an operation this server does not know, with the closest one."""
    import difflib

    message = f'unknown op "{op}"'
    close = difflib.get_close_matches(op, [*ARGUMENTS, "hello"], n=1)
    if close:
        message += f' (did you mean "{close[0]}"?)'
    return BadRequest(message)


async def _outcome(subscription: Subscription) -> Event | None:
    """The first `manifest_reloaded` or `manifest_invalid` event of `subscription`."""
    batches = aiter(subscription)
    try:
        with anyio.move_on_after(OUTCOME_WITHIN):
            async for batch in batches:
                for event in batch:
                    if isinstance(event, ManifestReloaded | ManifestInvalid):
                        return event
        return None
    finally:
        await close_iterator(batches)


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close a subscription's iterator now (an async generator would wait for the GC)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await aclose()
