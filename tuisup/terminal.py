"""Provides what makes text from services, checks, files and manifests safe to show on a terminal.

Such text can hold escape sequences that set the window title, clear the screen or move the
cursor, and other control characters. The C1 controls (U+0080..U+009F) count as well: a
terminal that honours them in UTF-8, as xterm does, takes U+009B for CSI and U+009D for OSC.
There are two shapes:

- `output_line`: a line a service printed. Colour (SGR) may survive, and a carriage return
  shows the line's last state, as a terminal would.
- `one_line`: one "word" from an exception message, a reason, a file name or a manifest
  error. Nothing of an escape and no control character survives, and line breaks become ` ⏎ `.
- `path_text`: a path in one of tuisup's own messages. It must stay exact (a user copies it),
  so its controls are escaped, not removed: written as a shell writes such a path, `$'...'`.

Text is made safe where it is printed. The engine keeps it exact, because the log files and
`--json` want it lossless: `json_text` escapes C1 controls instead of dropping them. This
module imports only the standard library, so `tuisup check` uses it without loading the engine.
"""

from __future__ import annotations

import json
import os
import re

BREAK = " ⏎ "
"""What a line break becomes in one line. It is visible, where a space would join two lines
into one sentence, and it cannot pass for a path or a separator of tuisup's own lines."""

# Escape sequences: CSI, OSC (to BEL or ST), the other string sequences (DCS, SOS, PM, APC, to
# ST), and two-byte escapes, each in its 7-bit form (ESC ...) and, but the last, its C1 form.
# A string sequence also ends at a line break, so an unterminated one cannot swallow the lines
# after it.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
_COLOUR = re.compile(r"\x1b\[[0-9;:]*m")
"""An SGR sequence, the only one an output line may keep. Not `ESC[>4;1m`: its private
parameters make it xterm's key-modifier setting, not a colour."""
# Control characters other than tab and newline. Not ESC: _ESCAPE takes every one, but those
# of the colours an output line keeps.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]")
# Line breaks, with the blanks around them.
_BREAKS = re.compile(r"[ \t]*(?:(?:\r\n|[\n\r\x0b\x0c\x85\u2028\u2029])[ \t]*)+")
# The same controls, for a quick test: thirty-one substring searches beat one regex scan
# eightfold. C1 controls are not ASCII, so pure-ASCII text skips their thirty-two.
_UNSAFE_ASCII = tuple(chr(c) for c in (*range(0x09), *range(0x0B, 0x20), 0x7F))
_C1 = tuple(chr(c) for c in range(0x80, 0xA0))
_SHELL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
"""What `$'...'` writes with a backslash (the quote and the backslash itself must be)."""
_JSON_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in ("\x7f", *_C1)}
# Lone surrogates: a name decoded from bytes that are not UTF-8 (`os.fsdecode`) holds them.
# Printed with `surrogateescape` they are those raw bytes again, 0x9B (CSI) among them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def unsafe(text: str) -> bool:
    """Whether `text` holds an escape or a control character other than tab and newline."""
    if any(c in text for c in _UNSAFE_ASCII):
        return True
    return not text.isascii() and any(c in text for c in _C1)


def last_state(line: str) -> str:
    """Return what a terminal shows of a line that redraws itself with carriage returns."""
    if "\r" not in line:
        return line
    return line.rstrip("\r").rsplit("\r", 1)[-1]


def output_line(line: str, *, keep_colour: bool) -> str:
    """Make a line a service printed safe to print.

    Args:
        line: One line of output, without its newline.
        keep_colour: Keep colour (SGR) sequences; every other escape is removed.

    Returns:
        What a terminal would show after its last carriage return, with no escapes left but
        colours when `keep_colour` is set, and no control characters but tabs.
    """
    if not unsafe(line):
        return line
    line = last_state(line)
    line = _ESCAPE.sub(_colour_only if keep_colour else "", line)
    return _CONTROL.sub("", line)


def _colour_only(match: re.Match[str]) -> str:
    seq = match.group()
    return seq if _COLOUR.fullmatch(seq) else ""


def one_line(text: str) -> str:
    """Make a string from a service, a check, a file name or the manifest safe, on one line.

    Escape sequences are removed whole, as a terminal would not show them. Line breaks, with
    the blanks around them, become ` ⏎ ` (none at either end). Tabs become spaces, other
    control characters are removed, and what stands for bytes that were not UTF-8 is U+FFFD.
    """
    if text.isprintable():  # one pass in C; False for any control character
        return text
    text = _SURROGATE.sub("\ufffd", text)
    text = _BREAKS.sub(BREAK, _ESCAPE.sub("", text))
    text = text.removeprefix(BREAK).removesuffix(BREAK)
    return _CONTROL.sub("", text.replace("\t", " "))


def path_text(path: str | os.PathLike[str], *, shell: bool = False) -> str:
    r"""Show a path (or a file name) in a message: exact, on one line, safe on a terminal.

    A path with nothing unsafe in it is shown as it is. One with a control character (an
    escape's ESC or BEL, a line break, a C1 control), another character that prints as
    nothing, or bytes that are not UTF-8 is written in the shell's `$'...'` quotes (as GNU
    `ls` writes it), each such character escaped: `d ESC ]0;x BEL` is `$'d\x1b]0;x\x07'`. It
    shows what the name holds, and bash and zsh read it back as the very same path.

    Args:
        path: The path, as Python has it (bytes that are not UTF-8 as lone surrogates).
        shell: For a command the user may paste: a plain path is quoted as a shell needs
            (`'my app/services.toml'`) too.
    """
    text = os.fsdecode(path)
    if text.isprintable():  # one pass in C; False for any control character
        if not shell:
            return text
        import shlex  # only for a command shown

        return shlex.quote(text)
    return "$'" + "".join(map(_shell_escaped, text)) + "'"


def _shell_escaped(char: str) -> str:
    """One character of a path inside `$'...'`."""
    if char in _SHELL_ESCAPES:
        return _SHELL_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as `os.fsdecode` keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    # Its UTF-8 bytes, as GNU `ls` writes them: bash reads `\u` as the locale's encoding
    # (under `LANG=C` it prints `\u0085` back as it is), `\x` as bytes, in every locale.
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))


def text_lines(text: str) -> list[str]:
    """Split a message of several lines (a manifest error) and make each line safe."""
    return [one_line(line) for line in text.splitlines()]


def json_text(value: object) -> str:
    """Return `value` as JSON on one line: exact, readable, and safe on a terminal.

    Non-ASCII text stays as it is, except DEL and the C1 controls, which are escaped (U+009B
    as a backslash-u escape) like JSON escapes the other controls: a script reads back the
    exact data.
    """
    text = json.dumps(value, ensure_ascii=False)
    if "\x7f" in text or (not text.isascii() and any(c in text for c in _C1)):
        # JSON is ASCII outside its strings: these sit inside one, where an escape is exact.
        text = text.translate(_JSON_ESCAPES)
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)  # as ensure_ascii does
    return text
