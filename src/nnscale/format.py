"""Plain-text, CSV and JSON rendering of tables, and human-readable numbers. No torch here.

Text tables are laid out by rich (`text_table`) and rendered without any terminal codes: the same
text on a terminal, in a pipe and in a file, so a script or a test can read it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "csv")
# Cells a spreadsheet reads as a formula (or, after a tab / carriage return, may): OWASP "CSV
# Injection" (https://owasp.org/www-community/attacks/CSV_Injection) says prefix them with a single
# quote, which spreadsheets show as text. Numbers stay numbers: -3.5 stored as a float is written as
# it is; only text (error messages, names, notes) is neutralised. A carriage return in text becomes
# a line feed: Python's csv module quotes a field only for the characters of its line terminator
# ("\n" here), so a bare CR would end the row for most readers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: object) -> object:
    """A value for a CSV cell: text that a spreadsheet would take for a formula gets a leading '."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def csv_rows(rows, keys: Sequence[str]) -> str:
    """The CSV text of `rows` (dicts) with a header of `keys`: the one writer for every CSV nnscale
    writes (`render`, points.csv). None is an empty cell, a list or tuple is joined with "x" (shapes),
    formula-like text is neutralised (`csv_cell`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(k) for k in keys])
    for r in rows:
        cells = []
        for v in (r.get(k) for k in keys):
            if isinstance(v, (tuple, list)):
                v = "x".join(map(str, v))
            cells.append("" if v is None else csv_cell(v))
        writer.writerow(cells)
    return buf.getvalue()


def si(value: float | int | None, digits: int = 3) -> str:
    """61100840 -> '61.1M', 724406816 -> '724M', 1.5e9 -> '1.50G' (decimal prefixes, as papers use)."""
    if value is None:
        return "n/a"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            scaled = value / factor
            return f"{scaled:.{max(digits - len(str(int(abs(scaled)))), 0)}f}{suffix}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def binary_bytes(n: int | None) -> str:
    """Bytes with binary prefixes: 86335488 -> '82.3 MiB'."""
    if n is None:
        return "n/a"
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {suffix}"
    return f"{n} B"


def looks_numeric(text: str) -> bool:
    return text[:1].isdigit() or text[:1] == "-" and text[1:2].isdigit()


def _by_content(key: str, text: str) -> str:
    # Numbers right-aligned, text left-aligned, as in any printed table.
    return "right" if looks_numeric(text) else "left"


def text_table(rows: Sequence[dict[str, str]], columns: Sequence[tuple[str, str]], *,
               widths: Sequence[int] | None = None, header: bool = True,
               justify: Callable[[str, str], str] = _by_content) -> str:
    """Rows of text cells as aligned columns, two spaces apart, a rule of dashes under the header.

    `widths` are the least width of each column (a longer cell widens it: the live table of a sweep
    prints row by row at fixed widths); `justify(key, text)` says "left" or "right" per cell.
    """
    texts = [["" if r.get(key) is None else str(r.get(key)) for key, _ in columns] for r in rows]
    # The rule under the header is the header cell's second line, so it is exactly as wide as its
    # column (rich's own rules also run under the padding between columns).
    # Widths in terminal cells: a CJK character takes two.
    least = [max([cell_len(head), widths[i] if widths else 0] + [cell_len(row[i]) for row in texts])
             for i, (_, head) in enumerate(columns)]
    t = Table(box=None, show_header=header, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0))
    for (key, head), n in zip(columns, least):
        t.add_column(Text(head + "\n" + "-" * n, justify=justify(key, head)), min_width=n,
                     no_wrap=True)
    for row in texts:
        t.add_row(*(Text(text, justify=justify(key, text)) for (key, _), text in zip(columns, row)))
    buf = io.StringIO()
    # Never a terminal: no colour, no cursor codes; exactly wide enough that no line is wrapped.
    Console(file=buf, force_terminal=False, color_system=None, width=sum(least) + 2 * len(least) + 1,
            highlight=False,
            emoji=False, markup=False).print(t)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def render(rows: Sequence[dict], columns: Sequence[tuple[str, str]], fmt: str = "table") -> str:
    """Render rows (dicts) with the given (key, header) columns as an aligned table, CSV or JSON.

    The table shows cells as they are (pre-format them); CSV and JSON keep raw values by key.
    """
    if fmt == "json":
        return json.dumps([{k: r.get(k) for k, _ in columns} for r in rows], indent=2, default=list)
    if fmt == "csv":
        return csv_rows(rows, [k for k, _ in columns]).rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    return text_table(rows, columns)
