"""write_report: the files, a self-contained HTML page, and every user string escaped everywhere."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from synthetic import HOSTILE

from nnscale.errors import UserError
from nnscale.report import write_report
from nnscale.report.write import md


@pytest.fixture(scope="module")
def written(full_report, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(full_report, out / "new" / "dir")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of every <script> (there must be none)."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def test_files_exist_and_figures_are_the_inlined_svgs(written, full_report):
    for name in ("html", "markdown", "csv", "json"):
        assert written[name].stat().st_size > 0
    html = written["html"].read_text()
    for p in full_report.plots:
        svg_file = written[f"figure:{p.id}"].read_text()
        ET.fromstring(svg_file.split("\n", 1)[1])  # well-formed XML on its own
        assert p.svg.split(">", 1)[1] in html  # the same drawing, sized by a style in the page
    assert not list(written["html"].parent.glob(".*.tmp"))


def test_html_is_self_contained(written):
    html = written["html"].read_text()
    parser = _Tags()
    parser.feed(html)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in parser.tags:
        for name in ("src", "href", "xlink:href", "action", "srcset", "data"):
            value = attrs.get(name) or ""
            assert "//" not in value, f"<{tag} {name}={value!r}> reaches outside the file"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html), "CSS fetches something"
    assert "@import" not in html
    csp = next(a["content"] for t, a in parser.tags if a.get("http-equiv") ==
               "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_hostile_name_is_text_everywhere(written):
    html = written["html"].read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>Run &lt;script&gt;alert(1)&lt;/script&gt;</title>" in html
    # the error message's quotes cannot close an attribute, and the name shows in the plots too
    assert "&quot;quotes&quot;" in html or "&#x27;" in html
    svgs = [p.read_text() for k, p in written.items() if k.startswith("figure:")]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in s for s in svgs)
    assert not any("<script" in s for s in svgs)
    text = written["markdown"].read_text()
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    rows = list(csv.DictReader(written["csv"].open()))
    assert any(r["model"] == HOSTILE for r in rows)  # CSV and JSON keep the value as data
    data = json.loads(written["json"].read_text())
    assert data["title"] == f"Run {HOSTILE}"


def test_markdown_tables_survive_pipes_and_markup(written):
    assert md("a|b") == "a\\|b"
    assert md("<b>*x*</b>") == "&lt;b&gt;\\*x\\*&lt;/b&gt;"
    assert md("line\nbreak") == "line break"
    text = written["markdown"].read_text()
    blocks, block = [], []
    for ln in text.splitlines() + [""]:
        if ln.startswith("|"):
            block.append(len(re.findall(r"(?<!\\)\|", ln)))  # unescaped pipes = cells + 1
        elif block:
            blocks.append(block)
            block = []
    assert len(blocks) == 6
    assert all(len(set(b)) == 1 for b in blocks), "a row has more cells than its header"
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert "![Speedup and efficiency](figures/scaling.svg)" in text
    error_row = next(ln for ln in lines if "pipes" in ln)
    assert "\\| pipes" in error_row


def test_csv_and_json_hold_every_point_with_raw_numbers(written, full_report, run_points):
    rows = list(csv.DictReader(written["csv"].open()))
    assert len(rows) == len(run_points)
    ok = next(r for r in rows if r["status"] == "ok")
    assert float(ok["samples_per_s_ci_low"]) < float(ok["samples_per_s"])
    oom = next(r for r in rows if r["status"] == "oom")
    assert oom["samples_per_s"] == "" and oom["error"]
    data = json.loads(written["json"].read_text())  # strict JSON: no NaN anywhere
    assert len(data["points"]) == len(run_points)
    assert {p["id"] for p in data["plots"]} == {p.id for p in full_report.plots}
    assert data["tables"]["best"]["rows"][0]["samples_per_s"] > 0
    assert data["environment"]["host"] == "gpu-node-01"
    assert len(data["predictions"]) == 7 and data["predictions"][0]["time_to_train_min"] > 0


def test_unwritable_output_is_a_user_error(full_report, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="cannot write the report"):
        write_report(full_report, blocker / "sub")
