"""Plain-text, CSV and JSON rendering of tables, and human-readable numbers. No torch here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

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
    cells = [[h for _, h in columns]] + [["" if r.get(k) is None else str(r.get(k)) for k, _ in columns]
                                          for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        # Numbers right-aligned, text left-aligned, as in any printed table.
        return "  ".join(
            c.rjust(w) if c[:1].isdigit() or c[:1] == "-" and c[1:2].isdigit() else c.ljust(w)
            for c, w in zip(row, widths)
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
