"""What a report is made of, before it is written: plots as SVG text, tables as rows of cells.

A `Report` is plain data, so the HTML, Markdown, CSV and JSON writers all render the same content,
and a test can check a report without parsing any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Plot:
    id: str  # unique in the report; also the SVG file name and the HTML anchor
    section: str  # the heading it appears under
    title: str
    caption: str  # one or two sentences: how to read it
    svg: str  # an <svg> element, ready to inline


@dataclass(frozen=True, slots=True)
class Table:
    id: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (key, header)
    rows: tuple[dict, ...]  # cells pre-formatted as text, by key
    note: str = ""
    raw: tuple[dict, ...] = ()  # the same rows with raw numbers, for JSON (empty: same as rows)
    numeric: frozenset[str] = frozenset()  # keys whose cells are right-aligned


@dataclass(frozen=True, slots=True)
class Highlight:
    """One headline number at the top of the report."""

    label: str
    value: str
    detail: str = ""
    unit: str = ""  # drawn smaller after the value


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    subtitle: str
    highlights: tuple[Highlight, ...]
    plots: tuple[Plot, ...]
    tables: tuple[Table, ...]
    notes: tuple[str, ...]  # what is missing and why (e.g. no distributed points: no scaling plot)
    points: tuple[dict, ...]  # every point, raw values: points.csv and report.json
    environment: dict = field(default_factory=dict)
    predictions: tuple[dict, ...] = ()

    def plot(self, plot_id: str) -> Plot | None:
        return next((p for p in self.plots if p.id == plot_id), None)

    def table(self, table_id: str) -> Table | None:
        return next((t for t in self.tables if t.id == table_id), None)
