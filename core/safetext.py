"""Stored data shown to people: control characters made visible, never markup.

Span attributes come from whoever sends spans. Shown as they are, an ESC sequence in an agent
name clears the screen or sets the terminal's title, a bidi override reorders what is read, and
``[/]`` is rich markup (a crash). ``printable`` writes every such character as its escape
(``\\x1b``, ``\\n``, ``\\u202e``); ``cell`` wraps that in a rich ``Text``, which rich never parses
as markup. Every human-readable rendering of data (terminal tables, the text, Markdown and HTML
reports, CLI messages) goes through ``printable``; JSON and CSV output stay raw data.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls, DEL, C1 controls (0x9b is an 8-bit CSI), bidi marks, embeddings, overrides and
# isolates, and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def printable(value: object) -> str:
    """``str(value)`` with every control, bidi and line-separator character written as its escape."""
    return _UNSAFE.sub(_escape, str(value))


def cell(value: object) -> Text:
    """A rich table cell or line showing ``value`` literally: escaped controls, no markup."""
    return Text(printable(value))


def printable_lines(value: object) -> str:
    """``printable`` for a multi-line message (an SQL error): its line breaks stay line breaks."""
    return "\n".join(map(printable, str(value).split("\n")))
