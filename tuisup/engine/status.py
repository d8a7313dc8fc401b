"""Provides the state machine's edges, and the views observers get of a service's spec.

`TRANSITIONS` is the whole state machine. What observers see of a service is plain data
(`tuisup.model`: `ServiceView`, `ExitRecord`, `ExitStatus`); `spec_view` makes the view of
a manifest table, with the values of secret-looking variables masked here, in the engine,
so that they never reach a front end or the control socket.
"""

from __future__ import annotations

from tuisup.model.states import ACTIVE as ACTIVE
from tuisup.model.states import ExitRecord as ExitRecord
from tuisup.model.states import ExitStatus as ExitStatus
from tuisup.model.states import ServiceState
from tuisup.model.views import GroupView, HealthCheckView, ListenView, SpecView, mask_env
from tuisup.spec import GroupSpec, ServiceSpec

S = ServiceState
TRANSITIONS: dict[ServiceState, frozenset[ServiceState]] = {
    S.STOPPED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
    S.WAITING: frozenset({S.WAITING, S.STARTING, S.STOPPED, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.BACKOFF, S.EXITED, S.FAILED}),
    S.BACKOFF: frozenset({S.WAITING, S.STARTING, S.STOPPED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.BACKOFF, S.FAILED}),
    S.EXITED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
    S.FAILED: frozenset({S.WAITING, S.STARTING, S.FAILED}),
}
"""Every allowed edge of the state machine; anything else is a bug and raises.

`waiting → waiting` says what it waits for changed; `starting → stopping` is a stop asked
for while a run was still starting; `stopping → backoff` is an unhealthy run restarted;
`→ failed` from a non-running state is a dependency that failed for good.
"""

LIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
"""States in which the service has a run."""


class TransitionError(RuntimeError):
    """A state change that the transition table does not allow."""


_AS_IS = (
    "name",
    "command",
    "target",
    "shell",
    "autostart",
    "backoff_delay",
    "backoff_max",
    "jitter",
    "max_restarts",
    "restart_window",
    "stop_timeout",
    "start_timeout",
    "watch",
    "restart_on_unhealthy",
    "restart_dependents",
    "hook_timeout",
    "port",
)
"""The fields a SpecView takes from a ServiceSpec as they are."""
_CHECK_AS_IS = ("target", "interval", "timeout", "retries", "start_period")


def spec_view(spec: ServiceSpec) -> SpecView:
    """What observers see of a service's table (environment values masked)."""
    check = spec.healthcheck
    return SpecView(
        **{name: getattr(spec, name) for name in _AS_IS},
        executor=str(spec.executor) if spec.executor is not None else None,
        cwd=str(spec.cwd),
        env=mask_env(spec.env),
        env_file=str(spec.env_file) if spec.env_file is not None else None,
        restart=str(spec.restart),
        backoff=str(spec.backoff),
        success_exit_codes=tuple(sorted(spec.success_exit_codes)),
        stop_signal=spec.stop_signal.name,
        depends_on={name: str(condition) for name, condition in spec.depends_on.items()},
        hooks={str(event): hook.command for event, hook in spec.hooks.items()},
        healthcheck=HealthCheckView(
            kind=str(check.kind), **{name: getattr(check, name) for name in _CHECK_AS_IS}
        )
        if check is not None
        else None,
        listen=_listen_view(spec),
        group=_group_view(spec.group) if spec.group is not None else None,
    )


def _group_view(group: GroupSpec) -> GroupView:
    return GroupView(
        name=group.name,
        services=group.services,
        strategy=str(group.strategy),
        max_restarts=group.max_restarts,
        restart_window=group.restart_window,
        on_failure=str(group.on_failure),
    )


def _listen_view(spec: ServiceSpec) -> ListenView | None:
    """A listener's settings as observers see them; None for a service that is not one."""
    listen = spec.listen
    if listen is None:
        return None
    return ListenView(kinds=listen.kinds, services=listen.services, buffer=spec.listen_buffer)
