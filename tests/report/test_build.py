"""build_report: which plots and tables a run gets, their units, and what is said when one is missing."""

from __future__ import annotations

import re

import synthetic as S
from synthetic import HOSTILE

from nnscale.records import Measurement, Workload
from nnscale.report import build_report
from nnscale.report import points as P
from nnscale.report.svg import label

# Every plot's axes say what they measure and in which unit.
UNITS = {
    "throughput": ("batch size [samples]", "throughput [samples/s]"),
    "latency": ("batch size [samples]", "latency of one batch [ms]"),
    "memory": ("batch size [samples]", "peak memory [GiB]"),
    "mfu": ("batch size [samples]", "MFU [% of peak FLOP/s]"),
    "scaling": ("workers [GPUs]", "speedup over one worker [×]", "parallel efficiency [%]"),
    "predicted": ("workers [GPUs]", "throughput [samples/s]"),
    "time-to-train": ("time to train [min]",),
}


def svg_texts(svg: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)]


def test_every_plot_is_an_svg_with_labelled_axes(full_report):
    ids = [p.id for p in full_report.plots]
    assert ids[:2] == ["throughput-resnet50-0", "throughput-alexnet-1"]
    for kind, labels in UNITS.items():
        plots = [p for p in full_report.plots if p.id.startswith(kind)]
        assert plots, f"no {kind} plot"
        for p in plots:
            assert p.svg.startswith("<svg ") and p.svg.rstrip().endswith("</svg>")
            texts = svg_texts(p.svg)
            for text in labels:
                assert text in texts, (p.id, text)


def test_plots_are_deterministic_and_ids_are_per_figure(full_report, run_points):
    again = build_report(run_points, S.ENVIRONMENT, predictions=S.predictions(),
                         netstats_rows=S.NETSTATS_ROWS, title=f"Run {HOSTILE}")
    assert [p.svg for p in again.plots] == [p.svg for p in full_report.plots]
    seen = set()
    for p in full_report.plots:
        ids = set(re.findall(r'\sid="([^"]+)"', p.svg))
        assert all(i.startswith(p.id + "-") for i in ids), p.id
        refs = set(re.findall(r'(?:url\(#|href="#)([^")]+)', p.svg))
        assert refs <= ids, f"{p.id} refers to ids it does not define: {refs - ids}"
        assert not ids & seen
        seen |= ids


def test_knee_oom_and_unstable_are_marked(full_report, run_points):
    curve = P.curves(P.single_worker(run_points))[("resnet50", "training", ("torch", "fp32", False,
                                                                             False, "cuda:0", 0))]
    assert [m.status for m in curve][-1] == "oom"
    knee = P.knee_of(curve)
    assert knee is not None and knee < 512
    texts = svg_texts(full_report.plot("throughput-resnet50-0").svg)
    assert {"knee (95 % of best)", "unstable (CI target missed)", "OOM / failed"} <= set(texts)


def test_tables_are_filled(full_report, run_points):
    tables = {t.id: t for t in full_report.tables}
    assert list(tables) == ["best", "netstats", "predictions", "time-to-train", "environment",
                            "points"]
    assert len(tables["points"].rows) == len(run_points)
    best = {(r["model"], r["mode"]) for r in tables["best"].rows}
    assert ("resnet50", "training") in best and ("alexnet", "inference") in best
    assert {"ResNet-152"} < {r["network"] for r in tables["time-to-train"].rows}
    env = {r["what"]: r["value"] for r in tables["environment"].rows}
    assert env["torch.gpus.0.name"] == "NVIDIA A100-SXM4-40GB"
    assert env["torch.gpus.0.memory_bytes"] == "40.0 GiB"
    oom = next(r for r in tables["points"].rows if r["status"] == "oom")
    assert oom["samples_per_s"] == "–" and "out of memory" in oom["error"]
    unstable = next(r for r in tables["points"].rows if r["status"] == "unstable")
    assert "unstable" in unstable["flags"] and "CI ±" in unstable["flags"]
    ok = next(r for r in tables["points"].raw if r["status"] == "ok")
    assert ok["samples_per_s_ci_low"] < ok["samples_per_s"] < ok["samples_per_s_ci_high"]
    pred = tables["predictions"]
    measured = [r for r in pred.rows if r["measured"] != "–"]
    assert [r["gpus"] for r in measured] == [1, 2]  # the synthetic sweep has world sizes 1 and 2


def test_highlights(full_report):
    by_label = {h.label: h for h in full_report.highlights}
    assert by_label["points measured"].detail.endswith("2 unstable · 1 oom · 1 error")
    assert "speedup on 2 GPUs" in by_label and "predicted on 64 GPUs" in by_label
    assert by_label["best training"].unit == "samples/s"


def test_a_sweep_without_distributed_points_has_no_scaling_plot_and_says_so():
    ms = [m for m in S.sweep(models=("resnet50",)) if m.workload.world_size == 1]
    r = build_report(ms, {}, title="single")
    ids = {p.id.split("-")[0] for p in r.plots}
    assert ids == {"throughput", "latency", "memory", "mfu"}
    assert any("No distributed points" in n for n in r.notes)
    assert any("No predictions" in n for n in r.notes)
    assert [t.id for t in r.tables] == ["best", "points"]  # no environment given: no table


def test_cpu_points_without_mfu_or_memory_get_only_what_they_have():
    w = Workload("tiny", "inference", 1, (3, 8, 8))
    ms = [Measurement(Workload("tiny", "inference", b, (3, 8, 8)), "ok",
                      stats={"samples_per_s": 100.0 * b}) for b in (1, 2, 4)]
    r = build_report(ms, {"host": "laptop"}, title="cpu")
    assert [p.id for p in r.plots] == ["throughput-tiny-0"]
    assert any("No MFU" in n for n in r.notes) and any("memory" in n for n in r.notes)
    assert r.subtitle == "laptop"
    empty = build_report([], {}, title="empty")
    assert not empty.plots and any("no points" in n for n in empty.notes)
    failed = build_report([Measurement(w, "oom", error="OOM")], {}, title="failed")
    assert not failed.plots and len(failed.table("points").rows) == 1


def test_framework_comparison_plot_only_with_several_frameworks():
    r = build_report(S.framework_sweep(), S.ENVIRONMENT, title="frameworks")
    plot = r.plot("frameworks")
    assert plot is not None
    texts = svg_texts(plot.svg)
    assert {"torch", "onnxruntime", "tensorflow", "jax"} <= set(texts)
    assert "throughput [samples/s]" in texts
    one = build_report([m for m in S.framework_sweep() if m.workload.framework == "jax"], {},
                       title="one")
    assert one.plot("frameworks") is None


def test_matplotlib_markup_in_names_is_drawn_literally():
    assert label("$x^2$") == r"\$x^2\$"
    assert label("_hidden") == "\u200b_hidden"
    ms = [Measurement(Workload("$\\frac{1}{0}$_net", "inference", b, (3, 8, 8)), "ok",
                      stats={"samples_per_s": 10.0 * b}) for b in (1, 2)]
    r = build_report(ms, {}, title="markup")  # mathtext would raise on this name
    assert "$\\frac{1}{0}$_net · inference" in svg_texts(r.plots[0].svg)


def test_the_report_package_loads_no_framework():
    import subprocess
    import sys

    code = ("import sys, nnscale.report, nnscale.report.comparison; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_fresh_install_s_flushed_writes_are_said_and_a_few_mb_are_not():
    env = dict(S.ENVIRONMENT, interference={"pending_writes_bytes": 2_334_732 * 1024, "sync_s": 3.2})
    notes = build_report(S.sweep(), env, title="t").notes
    assert any("2.39 GB of pending disk writes" in n and "in 3.2 s" in n for n in notes), notes
    quiet = dict(S.ENVIRONMENT, interference={"pending_writes_bytes": 40 << 20, "sync_s": 0.01})
    assert not any("pending disk writes" in n for n in build_report(S.sweep(), quiet, title="t").notes)


def test_the_calibrations_all_reduce_sizes_are_counted_apart_from_the_results():
    from nnscale.records import ALLREDUCE

    sweep = [Measurement(Workload("m", "training", b, (3, 8, 8)), s, (1.0,), {"samples_per_s": 10.0 * b})
             for b, s in ((1, "ok"), (2, "ok"), (4, "unstable"))]
    calls = [Measurement(Workload(ALLREDUCE, "training", 1, (), world_size=2, kind=ALLREDUCE,
                                  message_bytes=n), s, (1.0,), {"size_bytes": n, "time_ms": 1.0})
             for n, s in ((1024, "ok"), (4096, "unstable"), (16384, "unstable"))]
    h = {x.label: x for x in build_report(sweep + calls, {}, title="t").highlights}["points measured"]
    assert h.value == "3"  # the results, not the fit's inputs
    assert h.detail.startswith("2 ok · 1 unstable; plus 3 all-reduce sizes as inputs of the "
                               "prediction's fit (1 ok · 2 unstable:")
    # A run of all-reduces alone: they are its results.
    h = {x.label: x for x in build_report(calls, {}, title="t").highlights}["points measured"]
    assert h.value == "3" and h.detail == "1 ok · 2 unstable"
