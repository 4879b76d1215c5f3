"""CSV files open in spreadsheets: a text cell starting with =, +, -, @, tab or CR would be run as a
formula (OWASP "CSV Injection"). Every CSV nnscale writes (points.csv, `nnscale results --format
csv`) goes through one writer that prefixes such cells with ' and leaves numbers alone."""

from __future__ import annotations

import csv
import io

import pytest

from nnscale.cli import main
from nnscale.format import csv_cell, render
from nnscale.records import Measurement, Workload
from nnscale.report import build_report
from nnscale.report.write import render_csv
from nnscale.store import open_store

HOSTILE = ["=HYPERLINK(\"http://x.example\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
           "\t=1", "\r=1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_like_text_gets_a_quote(text):
    assert csv_cell(text) == "'" + text.replace("\r", "\n")


def test_numbers_and_plain_text_are_left_alone():
    assert csv_cell(-3.5) == -3.5 and csv_cell(-2) == -2 and csv_cell("oom at batch 8") == "oom at batch 8"
    out = render([{"a": -3.5, "b": "-x"}], [("a", "a"), ("b", "b")], "csv")
    assert out.splitlines()[1] == "-3.5,'-x"


def _failed(error: str) -> Measurement:
    w = Workload("test-tiny-mlp", "inference", 4, (3, 8, 8), threads=1)
    return Measurement(w, "error", error=error)


def _cells(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_points_csv_neutralises_error_messages():
    points = [_failed(e) for e in HOSTILE]
    report = build_report(points, {}, title="t")
    rows = _cells(render_csv(report))
    assert [r["error"] for r in rows] == ["'" + e.replace("\r", "\n") for e in HOSTILE]
    assert all(not r["error"].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows)


def test_results_csv_neutralises_text_but_keeps_negative_numbers(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    w = Workload("test-tiny-mlp", "inference", 1, (3, 8, 8), threads=1)
    with open_store(db) as store:
        run = store.create_run("r")
        store.add_measurement(run, _failed("=1+1"))
        store.add_measurement(run, Measurement(w, "ok", samples_ms=(1.0, 1.1),
                                               stats={"samples_per_s": 10.0, "step_time_ms_min": -0.25}))
    assert main(["results", "r", "--db", db, "--format", "csv"]) == 0
    rows = _cells(capsys.readouterr().out)
    assert rows[0]["error"] == "'=1+1"
    assert rows[1]["timing.min_ms"] == "-0.25"
