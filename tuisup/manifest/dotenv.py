"""Provides a reader of dotenv files: `KEY=VALUE`, `export KEY=VALUE`, comments and quotes."""

from __future__ import annotations

import re

from tuisup.manifest.problems import quote

_ENV_ASSIGN = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def parse_dotenv(text: str) -> tuple[dict[str, str], list[tuple[int, int, str]]]:
    """Parse dotenv text: `KEY=VALUE`, `export KEY=VALUE`, comments and quoted values.

    Args:
        text: The file's contents.

    Returns:
        The variables, and a (line, column, message) for every line that isn't valid.
    """
    values: dict[str, str] = {}
    errors: list[tuple[int, int, str]] = []
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_ASSIGN.match(line)
        if match is None:
            errors.append((number, 1, f"expected KEY=VALUE, got {quote(line.strip())}"))
            continue
        try:
            value = _env_value(line, match.end())
        except _EnvError as exc:
            errors.append((number, exc.col, exc.message))
            continue
        if "\0" in value:  # a process's environment cannot hold one
            col = line.index("\0", match.end()) + 1
            errors.append((number, col, "a variable cannot contain NUL characters"))
        else:
            values[match.group(1)] = value
    return values, errors


class _EnvError(Exception):
    def __init__(self, col: int, message: str) -> None:
        super().__init__(message)
        self.col, self.message = col, message


def _env_value(line: str, start: int) -> str:
    """Return the value that starts at `line[start]`, unquoting it."""
    rest = line[start:]
    if not rest.startswith(('"', "'")):
        return re.split(r"[ \t]#", rest, maxsplit=1)[0].strip()
    value, end = [], 1
    while end < len(rest) and rest[end] != rest[0]:
        if rest[0] == '"' and rest[end] == "\\" and rest[end + 1 : end + 2] in _ESCAPES:
            end += 1
            value.append(_ESCAPES[rest[end]])
        else:
            value.append(rest[end])
        end += 1
    if end >= len(rest):
        raise _EnvError(start + 1, f"missing closing {rest[0]} quote")
    after = rest[end + 1 :]
    tail = after.strip()
    if tail and not tail.startswith("#"):
        col = start + end + 2 + len(after) - len(after.lstrip())
        raise _EnvError(col, f"unexpected text after the closing quote: {quote(tail)}")
    return "".join(value)
