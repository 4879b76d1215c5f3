"""compare's significance logic, and the `report` and `compare` commands on a real SQLite store."""

from __future__ import annotations

import json

import pytest
from synthetic import slower

from nnscale.cli import main
from nnscale.records import Measurement, Workload
from nnscale.report.comparison import (BOTH_FAILED, IMPROVEMENT, NO_CI, ONLY_A, ONLY_B, REGRESSION,
                                    SAME, cis_overlap, compare, summary)


def point(batch: int, rate: float | None, lo: float | None = None, hi: float | None = None,
          status: str = "ok") -> Measurement:
    stats = {} if rate is None else {"samples_per_s_median": rate, "samples_per_s_ci_low": lo,
                                     "samples_per_s_ci_high": hi}
    return Measurement(Workload("net", "inference", batch, (3, 8, 8)), status, stats=stats)


def test_cis_overlap():
    assert cis_overlap((1, 2), (2, 3))  # touching intervals share a point: not significant
    assert cis_overlap((1, 3), (1.5, 2.5))
    assert not cis_overlap((1, 2), (2.01, 3))
    assert not cis_overlap((5, 6), (1, 4.9))
    assert cis_overlap((None, 2), (1, 3)) is None


@pytest.mark.parametrize("a, b, verdict, significant", [
    (point(1, 100, 98, 102), point(1, 90, 88, 92), REGRESSION, True),
    (point(1, 100, 98, 102), point(1, 110, 108, 112), IMPROVEMENT, True),
    (point(1, 100, 90, 110), point(1, 95, 85, 105), SAME, False),  # 5 % slower, CIs overlap
    (point(1, 100, 99, 101), point(1, 100.5, 99.5, 101.5), SAME, False),
    (point(1, 100), point(1, 50), NO_CI, None),  # no CI: cannot tell, never a regression
    (point(1, 100, 98, 102), point(1, None, status="oom"), REGRESSION, True),
    (point(1, None, status="error"), point(1, 100, 98, 102), IMPROVEMENT, True),
    (point(1, None, status="oom"), point(1, None, status="oom"), BOTH_FAILED, None),
])
def test_verdicts(a, b, verdict, significant):
    (c,) = compare([a], [b])
    assert (c.verdict, c.significant) == (verdict, significant)
    assert c.regression == (verdict == REGRESSION)


def test_unstable_points_are_compared_and_joined_by_workload_key():
    a = [point(1, 100, 98, 102), point(2, 200, 196, 204), point(4, 300, 290, 310)]
    b = [point(2, 150, 140, 160, status="unstable"), point(1, 100, 98, 102), point(8, 1, 0.9, 1.1)]
    changes = compare(a, b)
    assert [(c.workload.batch_size, c.verdict) for c in changes] == [
        (1, SAME), (2, REGRESSION), (4, ONLY_A), (8, ONLY_B)]
    assert changes[1].change == pytest.approx(-0.25)
    assert summary(changes) == ("4 points: 1 regression, 1 no significant change, 1 only in A, "
                                "1 only in B")


def test_compare_command(store_with_runs, capsys):
    assert main(["compare", "base", "next", "--db", store_with_runs]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "significant = the 95 % CIs do not overlap" in out
    assert main(["compare", "base", "next", "--db", store_with_runs, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # Made 20 % slower: a regression at every precision. Elsewhere only noise (1 %), which now and
    # then gives CIs that do not overlap, as in real runs: flagged, but small.
    slowed = [r for r in rows if r["mode"] == "inference" and r["batch_size"] == 16]
    assert len(slowed) == 2 and all(r["regression"] for r in slowed)
    assert all(r["change"] == pytest.approx(-0.2, abs=0.03) for r in slowed)
    assert all(abs(r["change"]) < 0.05 for r in rows if r not in slowed and r["change"] is not None)
    assert sum(r["verdict"] == "no significant change" for r in rows) > len(rows) / 2
    assert main(["compare", "base", "next", "--db", store_with_runs, "--fail-on-regression"]) == 1
    assert main(["compare", "base", "base", "--db", store_with_runs]) == 2


def test_missing_run_is_a_one_line_error(store_with_runs, tmp_path, capsys):
    for argv, needle in (
            (["report", "nope", "--db", store_with_runs, "-o", str(tmp_path / "r")],
             "no run named 'nope'"),
            (["compare", "base", "nope", "--db", store_with_runs], "no run named 'nope'"),
            (["report", "base", "--db", str(tmp_path / "absent.db")], "no results store")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("nnscale: error: ") and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_report_command_writes_the_report(store_with_runs, tmp_path, capsys):
    preds = tmp_path / "pred.json"
    # As `nnscale predict --format json` prints it: the configuration in "inputs".
    preds.write_text(json.dumps({"inputs": {"model": "resnet50", "batch_per_gpu": 64,
                                            "precision": "bf16"}, "notes": [],
                                 "rows": [{"nodes": 1, "gpus": g, "samples_per_s": 1000.0 * g,
                                           "speedup": 0.9 * g, "efficiency": 0.9,
                                           "time_to_train_s": 30000 / g} for g in (1, 2, 4)]}))
    out = tmp_path / "rep"
    assert main(["report", "base", "--db", store_with_runs, "-o", str(out), "--no-netstats",
                 "--predictions", str(preds), "--title", "Base run"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    data = json.loads((out / "report.json").read_text())
    assert data["title"] == "Base run"
    assert {"scaling", "predicted", "time-to-train"} <= {p["id"] for p in data["plots"]}
    assert {(r["model"], r["batch_size"], r["gpus"]) for r in data["predictions"]} == {
        ("resnet50", 64, 1), ("resnet50", 64, 2), ("resnet50", 64, 4)}
    bad = tmp_path / "bad.json"
    for text in ("{not json", "[1, 2]"):
        bad.write_text(text)
        assert main(["report", "base", "--db", store_with_runs, "--predictions", str(bad)]) == 2


def test_report_command_defaults_to_the_newest_run_with_netstats(store_with_runs, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--db", store_with_runs]) == 0
    data = json.loads((tmp_path / "report-next" / "report.json").read_text())
    assert data["title"] == "Run next"
    netstats = data["tables"]["netstats"]["rows"]
    assert [(r["network"], r["model"], r["seed_conv_layers"], r["conv_depth"])
            for r in netstats] == [("ResNet-50", "resnet50", 49, 49)]


def test_slower_helper_scales_the_ci():
    m = point(1, 100, 98, 102)
    assert slower(m, 0.5).stats.throughput.samples_per_s_ci_high == 51


def allreduce_point(median_ms: float, lo_ms: float, hi_ms: float) -> Measurement:
    from nnscale.records import ALLREDUCE
    from nnscale.records_stats import Stats, Timing

    w = Workload("allreduce", "training", 1, (), kind=ALLREDUCE, world_size=2, message_bytes=1 << 20)
    timing = Timing(median_ms=median_ms, median_ci_low_ms=lo_ms, median_ci_high_ms=hi_ms)
    return Measurement(w, "ok", samples_ms=(median_ms,) * 5, stats=Stats(timing=timing))


def test_points_without_a_sample_rate_are_compared_by_their_time():
    # An all-reduce has no samples/s: it was "failed in both" although it ran in both.
    (same,) = compare([allreduce_point(2.0, 1.9, 2.1)], [allreduce_point(2.05, 1.95, 2.15)])
    assert (same.verdict, same.significant) == (SAME, False)
    (slower,) = compare([allreduce_point(2.0, 1.9, 2.1)], [allreduce_point(2.5, 2.4, 2.6)])
    assert (slower.verdict, slower.significant) == (REGRESSION, True)
    assert slower.change == pytest.approx(2.0 / 2.5 - 1)  # all-reduces per second: -20 %
