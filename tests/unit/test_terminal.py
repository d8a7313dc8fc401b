"""The neutralisers every printed string from a service, a check, a file or a manifest goes
through: what survives of escapes, controls and line breaks in each shape."""

from __future__ import annotations

import json
import subprocess
import sys

from tuisup.terminal import json_text, one_line, output_line, text_lines, unsafe


def test_output_lines_keep_colour_and_lose_cursor_moves_clears_and_titles() -> None:
    line = "\x1b[31mred\x1b[0m \x1b[2J\x1b[H\x1b]0;title\x07moved\x1b[10;5Hhere\x08"
    assert output_line(line, keep_colour=True) == "\x1b[31mred\x1b[0m movedhere"
    assert output_line(line, keep_colour=False) == "red movedhere"
    assert output_line("10%\r50%\r100%", keep_colour=False) == "100%"
    assert output_line("tab\tkept", keep_colour=False) == "tab\tkept"


def test_c1_controls_are_escapes_too_and_are_removed_whole() -> None:
    # U+009B is CSI, U+009D OSC, U+009C ST, U+0090 DCS, U+0085 NEL: in UTF-8, as a service
    # writes them; a terminal that honours C1 would not show their parameters either.
    line = "a\u009b2Jb\u009d0;title\u009cc\u00901;2|x\u009cd\u0085e\u009b31mf"
    assert output_line(line, keep_colour=True) == "abcdef"
    assert output_line(line, keep_colour=False) == "abcdef"


def test_only_plain_colour_sequences_survive_not_xterms_key_modifier_setting() -> None:
    line = "\x1b[>4;1mkeys\x1b[1;38;5;208mbold orange\x1b[38:2:1:2:3mrgb\x1b[m"
    assert output_line(line, keep_colour=True) == (
        "keys\x1b[1;38;5;208mbold orange\x1b[38:2:1:2:3mrgb\x1b[m"
    )


def test_the_quick_test_sees_every_control_but_tab_and_newline() -> None:
    assert not unsafe("plain ascii\twith a tab\nand a newline")
    assert not unsafe("non-ascii é ✓ but no control")
    for code in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)):
        assert unsafe(f"é {chr(code)} ✓"), hex(code)
        assert unsafe(f"ascii {chr(code)}"), hex(code)


def test_one_line_removes_every_escape_and_control_and_marks_line_breaks() -> None:
    message = "boom \x1b]0;pwned\x07\x1b[2J\u009b2J\u009d0;pwned\u009c done\n  next\tline\r\n"
    assert one_line(message) == "boom  done ⏎ next line"
    assert one_line("\n\nfirst\n\n\nsecond\u2028third\x85fourth\n") == (
        "first ⏎ second ⏎ third ⏎ fourth"
    )
    assert one_line("  indented, kept") == "  indented, kept"
    assert one_line("nul\x00 del\x7f bel\x07 c1\u0080") == "nul del bel c1"
    assert one_line("\x1b[31mcoloured\x1b[0m error") == "coloured error"
    # An unterminated title does not swallow the lines after it.
    assert one_line("a\x1b]0;title\nb") == "a ⏎ b"


def test_text_lines_make_each_line_of_a_message_safe() -> None:
    assert text_lines("one \x1b[2Jx\ntwo\u009b2J\n") == ["one x", "two"]


def test_json_text_escapes_del_and_c1_and_reads_back_exact() -> None:
    data = {"lines": ["plain \x1b]0;t\x07 \u009b2J \x7f é ✓"], "n": 1}
    text = json_text(data)
    assert "\\u009b2J" in text and "\\u007f" in text and "\\u001b" in text
    assert "é ✓" in text  # readable non-ASCII stays as it is
    assert not any(c < " " or "\x7f" <= c <= "\x9f" for c in text)
    assert json.loads(text) == data


def test_the_module_loads_neither_the_engine_nor_anyio_nor_textual() -> None:
    code = (
        "import sys, tuisup.terminal; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anyio', 'textual', 'rich')"
        " or m.startswith('tuisup.engine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_what_stands_for_bytes_that_were_not_utf8_is_shown_replaced_and_sent_escaped() -> None:
    # As `os.fsdecode(b"bad\xff\x9bname")` decodes: printed with surrogateescape, the lone
    # surrogates were the raw bytes again, 0x9B a CSI on a terminal that takes C1 controls.
    name = "bad\udcff\udc9bname"
    assert one_line(name) == "bad\ufffd\ufffdname"
    text = json_text({"path": name})
    assert text == '{"path": "bad\\udcff\\udc9bname"}'
    assert json.loads(text) == {"path": name}  # exact, as the C1 escapes are
