"""The HTML page's template: every field of a report is escaped by the engine, and the templates
ship with the package."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from nnscale.report.html import render_html
from nnscale.report.document import Highlight, Plot, Report, Table

ROOT = Path(__file__).resolve().parents[2]
H = "<script>'x'&\"y\"</script>"
ESCAPED = "&lt;script&gt;&#x27;x&#x27;&amp;&quot;y&quot;&lt;/script&gt;"


def _report() -> Report:
    table = Table("t" + H, H, (("status", H), ("n", "n")), ({"status": H, "n": 3}, {"status": None}),
                  note=H, numeric=frozenset({"n"}))
    return Report(title=H, subtitle=H, highlights=(Highlight(H, H, H, H),),
                  plots=(Plot("p" + H, H, H, H, '<svg width="30pt"><text>a</text></svg>'),),
                  tables=(table,), notes=(H,), points=())


def test_every_field_is_escaped():
    page = render_html(_report())
    assert "<script" not in page
    # title twice, subtitle, highlight x4, plot id/section/title/caption, toc x2, table title, header,
    # status cell, note, notes list (the table id shows escaped in its id attribute)
    assert page.count(ESCAPED) >= 16
    assert '<span class="badge st-script-x-y-script">' in page
    assert '<td class="num">3</td>' in page
    assert '<svg style="max-width:40px" width="30pt"><text>a</text></svg>' in page  # inserted as is


def test_templates_are_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["nnscale"]
    templates = sorted((ROOT / "src/nnscale/report/templates").iterdir())
    assert templates
    for path in templates:
        rel = path.relative_to(ROOT / "src/nnscale").as_posix()
        assert any(fnmatch(rel, p) for p in patterns), f"{rel} is not shipped"
        assert not re.search(r"\|\s*safe\b", path.read_text()), "use Markup in html.py, not |safe"
