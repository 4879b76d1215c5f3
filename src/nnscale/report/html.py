"""The report as one self-contained HTML page: CSS and SVG inline, no script, no external URL.

Every string that came from a user or a record goes through `esc` (html.escape with quotes), and
the Content-Security-Policy forbids scripts and every fetch, so a string that escaped escaping could
still not run or phone home: the page works offline and from a mail attachment alike. The SVGs are
matplotlib's output, whose text matplotlib's XML writer has already escaped.
"""

from __future__ import annotations

import re
from html import escape

from nnscale import __version__
from nnscale.report.document import Plot, Report, Table

# No default-src at all: nothing may load, inline <style> may apply, no script may run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f5f7fa;--card:#fff;--accent:#0072B2}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;
 color:var(--ink);background:var(--bg)}
.wrap{max-width:1240px;margin:0 auto;padding:0 24px}
header{background:linear-gradient(120deg,#0b2545,#13315c 55%,#1b4f72);color:#fff;padding:28px 0 72px}
header .eyebrow{margin:0;text-transform:uppercase;letter-spacing:.12em;font-size:12px;opacity:.75}
header h1{margin:4px 0 2px;font-size:30px;font-weight:650;word-break:break-word}
header .sub{margin:0;opacity:.85}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:14px;margin-top:-52px}
.card{background:var(--card);border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(16,42,67,.12)}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card .value{font-size:24px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums}
.card .unit{font-size:14px;font-weight:500;color:var(--muted);margin-left:5px}
.card .detail{font-size:13px;color:var(--muted);word-break:break-word}
nav.toc{margin:22px 0 4px;display:flex;flex-wrap:wrap;gap:8px}
nav.toc a{font-size:13px;color:var(--accent);background:#e6f1f8;padding:3px 10px;border-radius:99px;
 text-decoration:none}
section{margin:30px 0}
h2{font-size:20px;margin:0 0 10px;padding-bottom:6px;border-bottom:2px solid var(--line)}
figure{background:var(--card);margin:0 0 16px;padding:16px;border-radius:10px;
 box-shadow:0 1px 3px rgba(16,42,67,.12)}
figcaption{font-size:13.5px;color:var(--muted);margin-bottom:8px}
figcaption strong{color:var(--ink);font-size:15px;display:block}
svg.plot{display:block;width:100%;height:auto;margin:0 auto}
.notes{background:#fff8e6;border-left:4px solid #e69f00;border-radius:6px;padding:10px 16px;
 font-size:13.5px;color:#5c4813}
.notes ul{margin:4px 0 0;padding-left:20px}
.note{color:var(--muted);font-size:13.5px;margin:0 0 8px}
.scroll{overflow:auto;max-height:640px;background:var(--card);border-radius:10px;
 box-shadow:0 1px 3px rgba(16,42,67,.12)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{position:sticky;top:0;background:#eef2f6;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
tbody tr:hover{background:#eef6fb}
.badge{display:inline-block;padding:0 8px;border-radius:99px;font-size:12px;font-weight:600}
.st-ok{background:#e3f4ea;color:#1e6b3a}.st-unstable{background:#fff1d6;color:#8a5a00}
.st-oom,.st-error,.st-timeout{background:#fde2e1;color:#9b1c1c}
tr.regression td{background:#fde2e1}
footer{color:var(--muted);font-size:12.5px;padding:24px 0 40px}
footer a{color:var(--accent)}
"""


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _svg(svg: str) -> str:
    # Shown at its natural size at most: a one-panel plot is not blown up to the page width.
    m = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg)
    if not m:
        return svg
    px = float(m.group(1)) * 4 / 3
    return svg.replace("<svg ", f'<svg style="max-width:{px:.0f}px" ', 1)


def _plot(p: Plot) -> str:
    return (f'<figure id="{esc(p.id)}"><figcaption><strong>{esc(p.title)}</strong>'
            f"{esc(p.caption)}</figcaption>{_svg(p.svg)}</figure>")


def _cell(key: str, value: object, numeric: bool) -> str:
    text = "" if value is None else str(value)
    if key == "status":
        return f'<td><span class="badge st-{esc(_anchor(text))}">{esc(text)}</span></td>'
    return f'<td class="num">{esc(text)}</td>' if numeric else f"<td>{esc(text)}</td>"


def table_html(t: Table, row_class=None) -> str:
    head = "".join(f'<th class="num">{esc(h)}</th>' if k in t.numeric else f"<th>{esc(h)}</th>"
                   for k, h in t.columns)
    body = []
    for r in t.rows:
        cls = row_class(r) if row_class else ""
        cells = "".join(_cell(k, r.get(k), k in t.numeric) for k, _ in t.columns)
        body.append(f'<tr class="{esc(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table id="table-{esc(t.id)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def page(title: str, subtitle: str, body: str, footer: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><div class="wrap"><p class="eyebrow">nnscale report</p><h1>{esc(title)}</h1>
<p class="sub">{esc(subtitle)}</p></div></header>
<main class="wrap">
{body}
</main>
<footer class="wrap">Made by nnscale {esc(__version__)}. {footer}</footer>
</body>
</html>
"""


def render_html(report: Report) -> str:
    sections: dict[str, list[Plot]] = {}
    for p in report.plots:
        sections.setdefault(p.section, []).append(p)
    toc = [(f"sec-{_anchor(s)}", s) for s in sections]
    toc += [(f"sec-{_anchor(t.id)}", t.title) for t in report.tables]
    cards = "".join(
        f'<div class="card"><div class="label">{esc(h.label)}</div>'
        f'<div class="value">{esc(h.value)}<span class="unit">{esc(h.unit)}</span></div>'
        f'<div class="detail">{esc(h.detail)}</div></div>'
        for h in report.highlights)
    parts = [f'<section class="cards">{cards}</section>',
             '<nav class="toc">' + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in toc)
             + "</nav>"]
    if report.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in report.notes)
        parts.append(f'<section id="notes" class="notes"><strong>Not in this report</strong>'
                     f"<ul>{items}</ul></section>")
    for s, plots in sections.items():
        parts.append(f'<section id="sec-{_anchor(s)}"><h2>{esc(s)}</h2>'
                     + "".join(_plot(p) for p in plots) + "</section>")
    for t in report.tables:
        note = f'<p class="note">{esc(t.note)}</p>' if t.note else ""
        parts.append(f'<section id="sec-{_anchor(t.id)}"><h2>{esc(t.title)}</h2>{note}'
                     f"{table_html(t)}</section>")
    footer = ('The same data: <a href="report.md">report.md</a>, <a href="points.csv">points.csv'
              '</a>, <a href="report.json">report.json</a>; plots as files in figures/.')
    return page(report.title, report.subtitle, "\n".join(parts), footer)
