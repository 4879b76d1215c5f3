"""The report's strategy comparison (report/strategies.py) from stored DDP and FSDP points."""

from __future__ import annotations

from dataclasses import asdict

from nnscale.records import DISTRIBUTED, Measurement, Workload
from nnscale.report.build import build_report

MIB = 2**20


def _point(strategy: str, world: int, peaks_mib: list[float], framework: str | None = None,
           **parts) -> Measurement:
    """A point as `nnscale scale` stores it; with `framework`, one stored before the `strategy`
    field existed, whose tag alone said DDP (read back through Workload.from_dict, as the store does)."""
    w = Workload("test-wide-mlp", "training", 4, (1, 32, 32), threads=1, world_size=world,
                 kind=DISTRIBUTED, strategy=strategy)
    if framework is not None:
        old = {k: v for k, v in asdict(w).items() if k in (
            "model", "mode", "batch_size", "input_shape", "device", "precision", "channels_last",
            "compile", "threads", "world_size")}
        w = Workload.from_dict({**old, "framework": framework})
    stats = {"step_time_ms": 100.0, "min_ms": 90.0, "max_ms": 130.0, "median_ci_low_ms": 95.0,
             "median_ci_high_ms": 105.0, "samples_per_s": 40.0 * world,
             "per_rank_peak_memory_bytes": [p * MIB for p in peaks_mib],
             "per_rank_model_state_bytes": [60 * MIB / (world if strategy == "fsdp" else 1)] * world,
             "forward_ms": 20.0, "backward_ms": 50.0, "optimizer_ms": 10.0, "comm_exposed_ms": 20.0,
             "comm_total_ms": 30.0, **parts}
    return Measurement(w, "ok", (100.0, 101.0), stats)


def test_memory_per_rank_and_parts_per_strategy():
    ms = [_point("ddp", 1, [90]), _point("ddp", 2, [91, 93]),
          _point("fsdp", 1, [95]), _point("fsdp", 2, [50, 52], all_gather_ms=12.0, reduce_scatter_ms=8.0),
          Measurement(Workload("test-wide-mlp", "training", 4, (1, 32, 32)), "ok", (5.0,),
                      {"samples_per_s": 800.0})]  # a one-process point: not a strategy's
    report = build_report(ms, {}, title="t")
    table = report.table("strategies")
    rows = {(r["strategy"], r["workers"]): r for r in table.rows}
    assert sorted(rows) == [("ddp", "1"), ("ddp", "2"), ("fsdp", "1"), ("fsdp", "2")]
    assert rows["fsdp", "2"]["peak"] == "52.0 MiB" and rows["fsdp", "2"]["spread"] == "50.0 MiB – 52.0 MiB"
    assert rows["ddp", "2"]["peak"] == "93.0 MiB" and rows["ddp", "2"]["ar"] == "30.0"
    assert rows["fsdp", "2"]["ag"] == "12.0" and rows["fsdp", "2"]["ar"] == "–"
    assert rows["fsdp", "2"]["ci"] == "95.0 – 105"
    raw = {(r["strategy"], r["workers"]): r for r in table.raw}
    assert raw["fsdp", 2]["peak"] == 52 * MIB and raw["ddp", 2]["state"] == 60 * MIB
    plot = report.plot("strategies")
    assert plot is not None and "memory per rank" in plot.svg
    assert "exposed comm" in plot.svg


def test_ddp_points_stored_before_the_strategy_field_count_as_ddp():
    old = _point("ddp", 2, [91, 93], framework="torch-ddp[nodes=2]")
    assert (old.workload.strategy, old.workload.nnodes) == ("ddp", 2)
    (row,) = build_report([old], {}, title="t").table("strategies").rows
    assert row["strategy"] == "ddp"


def test_no_distributed_points_no_strategy_table_or_plot():
    one = Measurement(Workload("test-tiny-mlp", "training", 4, (3, 8, 8)), "ok", (1.0,),
                      {"samples_per_s": 4000.0})
    report = build_report([one], {}, title="t")
    assert report.table("strategies") is None and report.plot("strategies") is None
