"""Provides the reading of TOML text, with a syntax error reported as a located problem."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tuisup.manifest.locator import Locator
from tuisup.manifest.problems import ManifestError, Problem, dotted

TOO_DEEP = "invalid TOML: nested too deeply"


def parse_toml(text: str, display: str) -> dict[str, Any]:
    """Parse TOML and turn any failure into a one-problem ManifestError.

    A valid file is read with the standard library's tomllib: importing tomlkit costs
    40 ms and 5 MB, a third of tuisup's start-up. tomlkit is only needed for what tomllib
    does not do: a readable message and position for a syntax error (here), and writing
    the file back with its comments intact.

    Args:
        text: The TOML source.
        display: How the problem names the file.

    Returns:
        The document.

    Raises:
        ManifestError: The text is not valid TOML.
    """
    try:
        return tomllib.loads(text)
    except RecursionError:
        problem = Problem.of_file(display, TOO_DEEP)
    except ValueError as exc:  # TOMLDecodeError, or an integer of thousands of digits
        problem = _toml_problem(text, exc, display)
    raise ManifestError([problem]) from None


def _toml_problem(text: str, invalid: ValueError, display: str) -> Problem:
    import tomlkit
    import tomlkit.exceptions

    try:
        tomlkit.parse(text)
    except RecursionError:
        return Problem.of_file(display, TOO_DEEP)
    except Exception as exc:  # tomlkit raises more than ParseError for bad input
        return _tomlkit_problem(text, exc, display)
    # tomlkit accepted what tomllib did not: report tomllib's words.
    found = re.search(r"\(at line (\d+), column (\d+)\)$", str(invalid))
    line, col = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    message = re.sub(r" \(at (line \d+, column \d+|end of document)\)$", "", str(invalid))
    return Problem(file=display, line=line, col=col, key="", message=message)


def _tomlkit_problem(text: str, exc: Exception, display: str) -> Problem:
    import tomlkit.exceptions

    message = str(exc)
    redefined = isinstance(exc, tomlkit.exceptions.KeyAlreadyPresent) or any(
        s in message for s in ("already exists", "Redefinition")
    )
    if redefined:
        where = Locator(text)
        where.run_safely()
        if where.duplicate is not None:
            path, (line, col) = where.duplicate
            return Problem(
                file=display, line=line, col=col, key=dotted(path), message="defined twice"
            )
    line = getattr(exc, "line", 0)
    col = getattr(exc, "col", 0)
    message = re.sub(r" at line \d+ col \d+$", "", message) or type(exc).__name__
    # tomlkit counts columns from 0.
    return Problem(file=display, line=line, col=col + 1 if line else 0, key="", message=message)
