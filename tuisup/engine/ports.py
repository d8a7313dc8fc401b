"""Provides the check that a service's port is free before it starts.

A replica given `port` that finds it taken by something else would fail in a way of its
own (or, worse, not at all while another program answers its health check): tuisup says
it plainly, in that replica's log, before the start.
"""

from __future__ import annotations

import socket


def port_taken(port: int) -> str | None:
    """Say why `port` cannot be listened on (e.g. `Address already in use`); None if it can.

    A bind to every address with SO_REUSEADDR, as servers do: a port in TIME_WAIT after
    the service's own last run counts as free, one that something listens on does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
