"""The report as one self-contained HTML page: CSS and SVG inline, no script, no external URL.

The page is a Jinja2 template (templates/report.html.j2, with its CSS in templates/report.css) in an
environment with autoescaping on, so every string that came from a user or a record is escaped by
the engine, not by hand at each place it is written. Only the SVGs are inserted as they are: they
are matplotlib's output, whose text matplotlib's XML writer has already escaped (`svg.label`). The
Content-Security-Policy forbids scripts and every fetch, so a string that escaped escaping could
still not run or phone home: the page works offline and from a mail attachment alike.
"""

from __future__ import annotations

import html
import re
from functools import cache

import jinja2
from markupsafe import Markup

from nnscale import __version__
from nnscale.report.document import Plot, Report

# No default-src at all: nothing may load, inline <style> may apply, no script may run. Markup: our
# own constant, written into its attribute as it is (it holds no double quote).
CSP = Markup("default-src 'none'; style-src 'unsafe-inline'; img-src data:")


def _anchor(text: object) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section"


def _svg(svg: str) -> Markup:
    # Shown at its natural size at most: a one-panel plot is not blown up to the page width.
    m = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', svg)
    if m:
        px = float(m.group(1)) * 4 / 3
        svg = svg.replace("<svg ", f'<svg style="max-width:{px:.0f}px" ', 1)
    return Markup(svg)


def _finalize(value: object) -> object:
    # Autoescaping escapes what this returns. Escaping here first, with the standard library's
    # entities (&quot; &#x27;, as the pages of earlier releases), keeps a report byte-identical to
    # theirs; markupsafe would write &#34; &#39;. Markup (the macros' output, the SVGs) passes as is.
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nnscale.report", "templates"),
        autoescape=True,  # for every template, whatever its file name ends with
        finalize=_finalize,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the test, not an empty cell
    )
    env.filters["anchor"] = _anchor
    env.filters["svg"] = _svg
    return env


def render_html(report: Report) -> str:
    sections: dict[str, list[Plot]] = {}
    for p in report.plots:
        sections.setdefault(p.section, []).append(p)
    toc = [(f"sec-{_anchor(s)}", s) for s in sections]
    toc += [(f"sec-{_anchor(t.id)}", t.title) for t in report.tables]
    return _environment().get_template("report.html.j2").render(
        report=report, sections=sections, toc=toc, csp=CSP, version=__version__)
