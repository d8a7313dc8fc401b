"""Provides what a compose file's replicas and ports are in tuisup's words.

`deploy.replicas` or `scale` is `replicas`, and `ports` that map each replica's port 1:1
is `port`. The variables `tuisup export compose` writes that tuisup sets itself
(`TUISUP_PORT_<NAME>`, `PORT`, `TUISUP_REPLICA`) are left out, and give back the `port`.
"""

from __future__ import annotations

from typing import Any

from tuisup.importers.model import Imported
from tuisup.manifest.replicas import REPLICA, port_variable


def replicas(made: Imported, name: str, raw: dict[str, Any], service: dict[str, Any]) -> None:
    """Read a compose service's count into `service`.

    `deploy.replicas` (or `scale`) is `replicas`; its `ports`, where they give each replica
    a host port of its own, the same inside the container and out, are `port`.
    """
    deploy = raw.get("deploy") or {}
    for key in deploy:
        if key != "replicas":
            made.lose(name, f"deploy.{key}", "tuisup has no such setting")
    count = deploy.get("replicas", raw.get("scale"))
    if count is None:
        return
    service["replicas"] = count
    ports = [_ports(entry) for entry in raw.get("ports") or []]
    if len(ports) == 1 and (both := ports[0]) is not None:
        host, inside = both
        if host == inside and len(host) == max(1, count):
            service["port"] = host.start


def _ports(entry: object) -> tuple[range, range] | None:
    """The host and container ports of a `ports` entry that publishes both; else None."""
    if isinstance(entry, dict):
        published, target = entry.get("published"), entry.get("target")
        if published is None or target is None:
            return None
        host, inside = _range(str(published)), _range(str(target))
    else:
        words = str(entry).split("/")[0].split(":")
        if len(words) < 2:
            return None  # a container port alone: docker picks the host's
        host, inside = _range(words[-2]), _range(words[-1])
    return None if host is None or inside is None else (host, inside)


def _range(text: str) -> range | None:
    first, _, last = text.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    return range(int(first), int(last or first) + 1)


def tuisups_own(made: Imported) -> None:
    """Leave out the variables tuisup sets itself, as `tuisup export compose` wrote them.

    A service whose `PORT` is its own `TUISUP_PORT_<NAME>` had a `port`: it gets it back.
    """
    ports: dict[str, int] = {}
    for name, service in made.services.items():
        env = service.get("env", {})
        own = env.get(port_variable(name))
        if "port" not in service and own is not None and own == env.get("PORT") and own.isdigit():
            service["port"] = int(own)
        if "port" in service:
            ports[port_variable(name)] = service["port"]
    for service in made.services.values():
        env = service.get("env", {})
        given = {**ports, "PORT": service.get("port")}
        kept = {k: v for k, v in env.items() if given.get(k) is None or str(given[k]) != v}
        if "replicas" in service and kept.get(REPLICA, "0") == "0":
            kept.pop(REPLICA, None)
        if kept:
            service["env"] = kept
        else:
            service.pop("env", None)
