"""Writing a `Report` to a directory: index.html, report.md, points.csv, report.json, figures/.

index.html stands alone (everything inline); report.md shows the same plots from figures/*.svg,
which are the very SVGs inlined in the HTML; points.csv has one row per point with raw numbers;
report.json holds everything but the drawings. Files are written whole to temporary names and then
renamed, index.html last, so an interrupted write never leaves half a report that looks complete; a
full disk removes the temporary files and leaves the directory as it was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from nnscale.errors import UserError
from nnscale.format import csv_rows
from nnscale.report.html import render_html
from nnscale.report.document import Report, Table

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#"} | {"\n": " ", "\r": " "})


def md(text: object) -> str:
    """Text for Markdown: HTML neutralised (`<` as an entity, so no renderer sees a tag) and
    Markdown's own markup characters backslash-escaped."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.translate(_MD_SPECIAL)


def md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md(h) for _, h in t.columns) + " |",
             "|" + "|".join("---:" if k in t.numeric else "---" for k, _ in t.columns) + "|"]
    for r in t.rows:
        lines.append("| " + " | ".join(md("" if r.get(k) is None else r.get(k))
                                       for k, _ in t.columns) + " |")
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    out = [f"# {md(report.title)}", "", md(report.subtitle), ""]
    out += [f"- **{md(h.label)}**: {md(h.value)}" + (f" — {md(h.detail)}" if h.detail else "")
            for h in report.highlights]
    if report.notes:
        out += [""] + [f"> {md(n)}  " for n in report.notes]
    section = None
    for p in report.plots:
        if p.section != section:
            section = p.section
            out += ["", f"## {md(section)}"]
        out += ["", f"![{md(p.title)}](figures/{p.id}.svg)", "", f"*{md(p.caption)}*"]
    for t in report.tables:
        out += ["", f"## {md(t.title)}", ""]
        if t.note:
            out += [md(t.note), ""]
        out.append(md_table(t))
    return "\n".join(out) + "\n"


def _finite(o):
    """JSON has no NaN or Infinity: such numbers (and anything odd) become null or text."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if o is None or isinstance(o, (str, int, bool)):
        return o
    return str(o)


def render_json(report: Report) -> str:
    data = {
        "title": report.title,
        "subtitle": report.subtitle,
        "highlights": [{"label": h.label, "value": h.value, "detail": h.detail}
                       for h in report.highlights],
        "notes": list(report.notes),
        "plots": [{"id": p.id, "section": p.section, "title": p.title, "caption": p.caption,
                   "file": f"figures/{p.id}.svg"} for p in report.plots],
        "tables": {t.id: {"title": t.title, "columns": [k for k, _ in t.columns],
                          "rows": list(t.raw or t.rows)} for t in report.tables},
        "points": list(report.points),
        "predictions": list(report.predictions),
        "environment": report.environment,
    }
    return json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"


def render_csv(report: Report) -> str:
    """points.csv: raw values; text a spreadsheet would run as a formula neutralised (csv_rows)."""
    keys = list(report.points[0]) if report.points else ["model", "mode", "status"]
    return csv_rows(report.points, keys)


def _write_all(files: dict[Path, str], out: Path) -> None:
    """Every file to a temporary name first, then the renames, in order (a rename needs no space).
    A full disk or an unwritable directory while writing: the temporary files are removed and the
    directory holds what it held before (no half report), then one line (UserError)."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            tmp = path.with_name(f".{path.name}.tmp")
            temps.append((tmp, path))
            tmp.write_text(text, encoding="utf-8")
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException as e:  # a full disk, or SIGTERM / Ctrl-C while writing: no temp file left
        for tmp, _ in temps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        if not isinstance(e, OSError):
            raise
        raise UserError(f"cannot write the report to {out}: {e.strerror or e}; nothing was "
                        "written (free space, or give another --out directory)") from None


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the report's files into `out_dir` (created if needed); returns them by name."""
    out = Path(out_dir)
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"cannot write the report to {out}: the directory is not writable")
    paths = {
        "html": out / "index.html",
        "markdown": out / "report.md",
        "csv": out / "points.csv",
        "json": out / "report.json",
    }
    files: dict[Path, str] = {}
    for p in report.plots:
        path = out / "figures" / f"{p.id}.svg"
        files[path] = '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + p.svg
        paths[f"figure:{p.id}"] = path
    files[paths["markdown"]] = render_markdown(report)
    files[paths["csv"]] = render_csv(report)
    files[paths["json"]] = render_json(report)
    files[paths["html"]] = render_html(report)  # last: its presence means the report is whole
    _write_all(files, out)
    return paths
