"""Provides the errors a host answers with, the same in-process and over the control socket.

Each has a `code` that travels over the socket (`{"code": "unknown_service", "message":
...}`); the client raises the same class again, so a front end handles one set of errors
whichever host it talks to.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the host refused or could not do, with a code for scripts."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnknownService(ApiError):
    """A command named a service that the manifest does not have."""

    code = "unknown_service"

    @classmethod
    def named(cls, name: str, known: list[str]) -> UnknownService:
        """The error for `name`, suggesting the closest of the `known` names if any is close."""
        import difflib  # only when a name is wrong

        message = f'unknown service "{name}"'
        # Never itself: a group's or an empty table's name is known, yet no service's.
        close = difflib.get_close_matches(name, [k for k in known if k != name], n=1)
        if close:
            message += f' (did you mean "{close[0]}"?)'
        return cls(message)


class HostStopping(ApiError):
    """The host is shutting down and starts nothing more."""

    code = "stopping"


class BadRequest(ApiError):
    """A request that is not one: malformed, too large, an unknown operation or argument."""

    code = "bad_request"


class CannotScale(ApiError):
    """A scale the host refused: not a replicated table, or ports that would overlap."""

    code = "cannot_scale"


ERRORS: dict[str, type[ApiError]] = {
    cls.code: cls for cls in (ApiError, UnknownService, HostStopping, BadRequest, CannotScale)
}
"""Every error class, by its code."""


def error_from_json(code: str, message: str) -> ApiError:
    """The error an answer names (a plain ApiError for a code this client does not know)."""
    return ERRORS.get(code, ApiError)(message)
