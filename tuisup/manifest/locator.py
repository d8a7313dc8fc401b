"""Provides where every key and value of a TOML text starts: TOML parsers keep no positions.

`Locator` walks the text once and records the (line, column) of every key and value by its
path, so that a problem found after parsing can point at the offending text. It also notices
a table or key defined twice, which tomlkit reports at the wrong place or nowhere.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right

Key = tuple[str | int, ...]
"""A path into the TOML document; ints index arrays."""
Pos = tuple[int, int]
"""A 1-based (line, column); (0, 0) when unknown."""

BARE = re.compile(r"[A-Za-z0-9_-]+")
"""A key that TOML takes without quotes."""
_SCALAR = re.compile(r"[^,\]}#\r\n]+")


class ScanError(Exception):
    """The locator met text it doesn't understand."""


class Locator:
    """Finds where each key and value starts in TOML text, since tomlkit keeps no positions.

    It also spots the first key or table that is defined twice, which tomlkit reports
    without a useful position.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.keys: dict[Key, Pos] = {}
        self.values: dict[Key, Pos] = {}
        self.duplicate: tuple[Key, Pos] | None = None
        self._defined: set[Key] = set()
        self._dotted: set[Key] = set()
        self._arrays_of_tables: set[Key] = set()
        self._headers: set[Key] = set()

    def run_safely(self) -> None:
        """Scan the whole text, keeping what was found before anything unexpected."""
        try:
            self._run()
        except (ScanError, RecursionError, ValueError):
            pass

    def find(self, path: Key, *, key: bool = False) -> Pos:
        """Return where `path`'s value (or key) starts, else its nearest located parent's."""
        tables = (self.keys, self.values) if key else (self.values, self.keys)
        for size in range(len(path), 0, -1):
            for table in tables:
                if path[:size] in table:
                    return table[path[:size]]
        return (0, 0)

    def _pos(self, i: int) -> Pos:
        line = bisect_right(self.starts, i)
        return line, i - self.starts[line - 1] + 1

    def _peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def _expect(self, token: str) -> None:
        if not self.text.startswith(token, self.i):
            raise ScanError(token)
        self.i += len(token)

    def _skip(self, *, newlines: bool = False) -> None:
        while char := self._peek():
            if char in " \t" or (newlines and char in "\r\n"):
                self.i += 1
            elif char == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def _run(self) -> None:
        table: Key = ()
        while True:
            self._skip(newlines=True)
            if not self._peek():
                return
            if self._peek() == "[":
                table = self._header()
            else:
                self._pair(table)
            self._skip()
            if self._peek() not in ("", "\n", "\r"):
                raise ScanError("end of line")

    def _header(self) -> Key:
        start = self.i
        many = self.text.startswith("[[", start)
        self.i += 2 if many else 1
        parts = self._key()
        self._expect("]]" if many else "]")
        path = self._note_key((), parts)
        if path not in self._headers:  # a header beats an earlier `[path.sub]` mention
            self._headers.add(path)
            self.keys[path] = self._pos(start)
        if many:
            self._arrays_of_tables.add(path)
        else:
            self._define(path, start)
        return path

    def _pair(self, table: Key) -> None:
        parts = self._key()
        path = self._note_key(table, parts)
        self.keys.setdefault(path, self._pos(parts[-1][1]))
        self._dotted.update(path[:size] for size in range(len(table) + 1, len(path)))
        self._define(path, parts[-1][1])
        self._skip()
        self._expect("=")
        self._skip()
        self._value(path)

    def _note_key(self, table: Key, parts: list[tuple[str, int]]) -> Key:
        path = table
        for name, start in parts[:-1]:
            path = (*path, name)
            self.keys.setdefault(path, self._pos(start))
        return (*path, parts[-1][0])

    def _define(self, path: Key, start: int) -> None:
        if any(path[:size] in self._arrays_of_tables for size in range(1, len(path) + 1)):
            return  # each [[table]] opens a fresh table, so keys under it repeat legally
        if self.duplicate is None and (path in self._defined or path in self._dotted):
            self.duplicate = (path, self._pos(start))
        self._defined.add(path)

    def _key(self) -> list[tuple[str, int]]:
        parts: list[tuple[str, int]] = []
        while True:
            self._skip()
            start = self.i
            if self._peek() in ('"', "'"):
                name = decode_key(self._string())
            elif match := BARE.match(self.text, self.i):
                name, self.i = match.group(), match.end()
            else:
                raise ScanError("key")
            parts.append((name, start))
            self._skip()
            if self._peek() != ".":
                return parts
            self.i += 1

    def _value(self, path: Key) -> None:
        self.values.setdefault(path, self._pos(self.i))
        char = self._peek()
        if char == "{":
            self._inline_table(path)
        elif char == "[":
            self._array(path)
        elif char in ('"', "'"):
            self._string()
        elif match := _SCALAR.match(self.text, self.i):
            self.i = match.end()
        else:
            raise ScanError("value")

    def _string(self) -> str:
        start, text = self.i, self.text
        quote = next(q for q in ('"""', "'''", '"', "'") if text.startswith(q, start))
        i = start + len(quote)
        while i < len(text):
            if quote[0] == '"' and text[i] == "\\":
                i += 2
            elif text.startswith(quote, i):
                end = i + len(quote)
                while len(quote) == 3 and end - i < 5 and text[end : end + 1] == quote[0]:
                    end += 1  # """a""""" ends with up to two quotes of content
                self.i = end
                return text[start:end]
            elif len(quote) == 1 and text[i] == "\n":
                break
            else:
                i += 1
        raise ScanError("string")

    def _inline_table(self, path: Key) -> None:
        self.i += 1
        self._skip(newlines=True)
        while self._peek() != "}":
            self._pair(path)
            self._skip(newlines=True)
            if self._peek() == ",":
                self.i += 1
                self._skip(newlines=True)
            elif self._peek() != "}":
                raise ScanError("inline table")
        self.i += 1

    def _array(self, path: Key) -> None:
        self.i += 1
        index = 0
        while True:
            self._skip(newlines=True)
            if self._peek() == "]":
                self.i += 1
                return
            self._value((*path, index))
            index += 1
            self._skip(newlines=True)
            if self._peek() == ",":
                self.i += 1
            elif self._peek() != "]":
                raise ScanError("array")


def decode_key(raw: str) -> str:
    """Unquote a quoted key, letting tomllib deal with escapes."""
    if raw.startswith("'"):
        return raw[1:-1]
    try:
        return str(tomllib.loads(f"k = {raw}")["k"])
    except Exception as exc:
        raise ScanError("quoted key") from exc
