"""Provides `read_text`: a manifest or env file read whole, up to a size no real one reaches."""

from __future__ import annotations

import os

MAX_BYTES = 16 * 1024 * 1024
"""The most of a file that is read: a larger one is refused, not read to its end (which
/dev/zero, say, has not)."""


class TooLarge(ValueError):
    """A file is larger than MAX_BYTES; the message says so, e.g. `larger than 16 MiB`."""


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 file of at most MAX_BYTES, reading no more than one byte past it.

    Line ends, CRLF or a lone CR, become LF, as `Path.read_text` makes them.

    Args:
        path: The file.

    Returns:
        Its text.

    Raises:
        OSError: It cannot be opened or read.
        UnicodeDecodeError: It is not UTF-8.
        TooLarge: It is larger than MAX_BYTES.
    """
    with open(path, "rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise TooLarge(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
