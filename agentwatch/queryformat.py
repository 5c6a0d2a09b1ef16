"""Print query results as a terminal table, a vertical listing, CSV or JSON.

A table only when it fits the terminal: each column as wide as its widest value, at most
``MAX_CELL`` characters (longer values are cut with "…"). When even that is wider than the
terminal (``SELECT * FROM runs``), each row is listed vertically, one ``column │ value`` line per
field, as psql's expanded display does. A table asked for (``--format table``) that does not fit
shows the leading columns that do, each as wide as it would be, and says under it how many were
left out: it is never squeezed into columns too narrow to read. What was cut is said under the
result, with the way to see it whole (``--format json``).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.safetext import printable

Layout = Literal["auto", "table", "vertical"]
MAX_CELL = 80
"""Characters of a value shown in a table cell."""
MAX_VERTICAL_LINES = 4
"""Terminal lines a value may take in the vertical listing."""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode()


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _plain(v) for v in row])
    return out.getvalue()


def _text(value: Any) -> str:
    """A value as one line of terminal-safe text (controls and line breaks escaped)."""
    if value is None:
        return ""
    plain = _plain(value)
    if isinstance(plain, list | dict):
        plain = orjson.dumps(plain).decode()
    return printable(plain)


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[: max(limit - 1, 0)] + "…", True)


def print_result(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], console: Console, layout: Layout = "auto"
) -> None:
    """``rows`` as a table or a vertical listing (``auto``: a table when it fits ``console``)."""
    texts = [[_text(v) for v in row] for row in rows]
    names = [printable(c) for c in columns]
    widths = [min(max([len(n), *(len(r[i]) for r in texts)]), MAX_CELL) for i, n in enumerate(names)]
    fits = _fitting(widths, console.width)
    left_out = ""
    if layout == "table" or (layout == "auto" and fits == len(names)):
        if fits < len(names):
            left_out = f"; {fits} of {len(names)} columns shown, the rest do not fit {console.width} columns:"
            left_out += " --format vertical shows them"
            names, texts = names[:fits], [row[:fits] for row in texts]
        cut = _print_table(names, texts, console)
    else:
        cut = _print_vertical(names, texts, console)
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''}{left_out}"
    if cut:
        footer += f"; {cut} value{'s' if cut != 1 else ''} cut short: --format json shows them whole"
    console.print(Text(footer + ")"))


def _fitting(widths: list[int], width: int) -> int:
    """How many leading columns of ``widths`` fit a table ``width`` characters wide (at least one:
    a single column wider than the terminal is folded)."""
    used = 1  # the left border
    for count, column in enumerate(widths):
        used += column + 3  # padding and the border after it
        if used > width:
            return max(count, 1)
    return len(widths)


def _print_table(names: list[str], texts: list[list[str]], console: Console) -> int:
    table = Table(show_header=True, header_style="bold", show_lines=False)
    for name in names:
        table.add_column(Text(name), overflow="fold")
    cut = 0
    for row in texts:
        cells = []
        for value in row:
            shown, was_cut = _cut(value, MAX_CELL)
            cut += was_cut
            cells.append(Text(shown))
        table.add_row(*cells)
    console.print(table)
    return cut


def _print_vertical(names: list[str], texts: list[list[str]], console: Console) -> int:
    label = max((len(n) for n in names), default=0)
    room = max(console.width - label - 3, 20)
    cut = 0
    for number, row in enumerate(texts, 1):
        head = f"─[ row {number} ]"
        console.print(Text(head + "─" * max(console.width - len(head), 0), "dim"))
        for name, value in zip(names, row, strict=True):
            shown, was_cut = _cut(value, room * MAX_VERTICAL_LINES)
            cut += was_cut
            lines = [shown[i : i + room] for i in range(0, len(shown), room)] or [""]
            console.print(Text(f"{name.ljust(label)} │ {lines[0]}"), no_wrap=True, crop=True)
            for more in lines[1:]:
                console.print(Text(f"{'':{label}} │ {more}"), no_wrap=True, crop=True)
    return cut
