"""The report's tables: every point, the best configuration per network, the network statistics
beside the seed's, the environment, the predictions and the time to train in the seed's format.

Cells are formatted here, once, as text; every writer escapes them for its own medium. `raw` keeps
the numbers for report.json.
"""

from __future__ import annotations

import math
import statistics

from nnscale.format import binary_bytes, si
from nnscale.predict.published import error_band
from nnscale.records import Measurement
from nnscale.report import points as P
from nnscale.report.document import Table
from nnscale.report.predictions import key, measured_like, series_label


def fmt(v: float | None, digits: int = 3) -> str:
    """3 significant digits, thousands separated: 1234.5 -> '1,234', 0.01234 -> '0.0123'."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if v == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(v)))
    decimals = max(digits - 1 - magnitude, 0)
    return f"{v:,.{decimals}f}"


def pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f} %"


def ci(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"{fmt(lo)} – {fmt(hi)}"


def mem(v: float | None) -> str:
    return "–" if v is None else binary_bytes(int(v))


def _config(m: Measurement) -> str:
    w = m.workload
    extra = [x for x, on in (("channels-last", w.channels_last), ("compiled", w.compile)) if on]
    return " ".join([w.engine, w.precision, *extra])


POINT_COLUMNS = (
    ("model", "network"), ("mode", "mode"), ("framework", "framework"), ("precision", "precision"),
    ("batch_size", "batch"), ("world_size", "workers"), ("device", "device"),
    ("channels_last", "channels-last"), ("compile", "compiled"), ("status", "status"),
    ("samples_per_s", "samples/s"), ("samples_per_s_ci_low", "CI low"),
    ("samples_per_s_ci_high", "CI high"), ("rel_ci", "rel. CI"), ("processes", "processes"),
    ("rel_ci_within", "rel. CI of one process"), ("between_share", "between-process share"),
    ("steal_share", "steal"), ("step_time_ms", "step ms"),
    ("latency_ms_p50", "p50 ms"), ("latency_ms_p95", "p95 ms"), ("latency_ms_p99", "p99 ms"),
    ("peak_memory_bytes", "peak memory"), ("mfu", "MFU"), ("speedup", "speedup"),
    ("efficiency", "efficiency"), ("time_to_train_min", "time to train [min]"),
    ("flags", "flags"), ("error", "error"), ("key", "workload key"),
)


def point_record(m: Measurement) -> dict:
    """One point as a flat dict of raw values: a row of points.csv and of report.json."""
    w, s = m.workload, m.stats
    d = s.distributed
    lo, hi = P.rate_ci(m)
    return {
        "model": w.model, "mode": w.mode, "framework": w.engine, "precision": w.precision,
        "batch_size": w.batch_size, "world_size": w.world_size, "device": w.device,
        "channels_last": w.channels_last, "compile": w.compile, "threads": w.threads,
        "input_shape": "x".join(map(str, w.input_shape)), "status": m.status,
        "samples_per_s": P.rate(m), "samples_per_s_ci_low": lo, "samples_per_s_ci_high": hi,
        "rel_ci": P.num(s.timing.rel_ci), "processes": P.num(s.processes.processes),
        "rel_ci_within": P.num(s.processes.rel_ci_within),
        "between_share": P.num(s.processes.between_share),
        "steal_share": P.num(s.processes.steal_share), "step_time_ms": P.step_ms(m),
        "latency_ms_p50": P.latency(m, 50), "latency_ms_p95": P.latency(m, 95),
        "latency_ms_p99": P.latency(m, 99), "peak_memory_bytes": P.memory(m), "mfu": P.mfu(m),
        "achieved_flop_per_s": P.num(s.compute.achieved_flop_per_s),
        # The speedup `distributed` stored against its 1-worker baseline (before issue 14 the
        # report looked for a key "speedup" that no writer wrote, so this column stayed empty).
        "speedup": P.num(d.speedup_vs_1_worker) if d else None,
        "efficiency": P.num(d.efficiency_vs_1_worker) if d else None,
        "time_to_train_min": P.num(d.time_to_train_min) if d else None,
        "flags": "; ".join(P.flags(m)), "error": m.error, "key": w.key(),
    }


def speedup_cell(speedup: float | None, paired: tuple[float, ...] | None) -> str:
    """The speedup from the combined rates and, from launches interleaved round by round
    (distributed/scaling.py), the median and range of the per-round paired speedups."""
    if speedup is None or not paired or len(paired) < 2 or speedup == 1.0:
        return fmt(speedup)
    return (f"{fmt(speedup)} (paired: median {fmt(statistics.median(paired))}, "
            f"{fmt(min(paired))}–{fmt(max(paired))})")


def _point_order(m: Measurement) -> tuple:
    w = m.workload
    return (w.kind, w.framework, w.model, w.mode, w.precision, w.world_size, w.batch_size)


def points_table(ms: list[Measurement]) -> Table:
    # Sorted: points measured in interleaved rounds (measure/rounds.py) are stored as each one
    # finishes, in no order a reader could follow.
    ms = sorted(ms, key=_point_order)
    raw = [point_record(m) for m in ms]
    shown = []
    for m, r in zip(ms, raw):
        paired = m.stats.distributed.paired_speedups if m.stats.distributed else None
        shown.append(dict(
            r, channels_last="yes" if r["channels_last"] else "no",
            compile="yes" if r["compile"] else "no",
            samples_per_s=fmt(r["samples_per_s"]), samples_per_s_ci_low=fmt(r["samples_per_s_ci_low"]),
            samples_per_s_ci_high=fmt(r["samples_per_s_ci_high"]), rel_ci=pct(r["rel_ci"], 2),
            processes="–" if r["processes"] is None else str(int(r["processes"])),
            rel_ci_within=pct(r["rel_ci_within"], 2), between_share=pct(r["between_share"]),
            steal_share=pct(r["steal_share"]),
            step_time_ms=fmt(r["step_time_ms"]), latency_ms_p50=fmt(r["latency_ms_p50"]),
            latency_ms_p95=fmt(r["latency_ms_p95"]), latency_ms_p99=fmt(r["latency_ms_p99"]),
            peak_memory_bytes=mem(r["peak_memory_bytes"]), mfu=pct(r["mfu"]),
            speedup=speedup_cell(r["speedup"], paired), efficiency=pct(r["efficiency"]),
            time_to_train_min=fmt(r["time_to_train_min"])))
    numeric = {"batch_size", "world_size", "samples_per_s", "samples_per_s_ci_low",
               "samples_per_s_ci_high", "rel_ci", "processes", "rel_ci_within", "between_share",
               "steal_share", "step_time_ms", "latency_ms_p50",
               "latency_ms_p95", "latency_ms_p99", "peak_memory_bytes", "mfu", "speedup",
               "efficiency", "time_to_train_min"}
    return Table("points", "Every point", POINT_COLUMNS, tuple(shown),
                 note="95 % confidence intervals of the median throughput, across the point's fresh "
                      "processes (docs/methodology.md): 'rel. CI of one process' is what one process "
                      "alone would have claimed, 'between-process share' how much of the spread is "
                      "the processes differing, 'steal' the CPU time the hypervisor took. "
                      "Flags: unstable = the CI target was not met within the time budget; oom / error / timeout = no "
                      "timing. The same rows, unformatted, are in points.csv.",
                 raw=tuple(raw), numeric=frozenset(numeric))


def best_table(ms: list[Measurement]) -> Table:
    curves = P.curves(P.single_worker(ms))
    rows, raw = [], []
    for m in P.best_points(ms):
        w = m.workload
        lo, hi = P.rate_ci(m)
        k = P.knee_of(curves[(w.model, w.mode, P.variant(w))])
        raw.append({"model": w.model, "mode": w.mode, "config": _config(m), "batch": w.batch_size,
                    "samples_per_s": P.rate(m), "ci_low": lo, "ci_high": hi, "knee": k,
                    "p99_ms": P.latency(m, 99), "memory": P.memory(m), "mfu": P.mfu(m)})
        rows.append(dict(raw[-1], samples_per_s=fmt(P.rate(m)), ci=ci(lo, hi),
                         knee="–" if k is None else k, p99_ms=fmt(P.latency(m, 99)),
                         memory=mem(P.memory(m)), mfu=pct(P.mfu(m))))
    columns = (("model", "network"), ("mode", "mode"), ("config", "best configuration"),
               ("batch", "batch"), ("samples_per_s", "samples/s"), ("ci", "95 % CI"),
               ("knee", "knee batch"), ("p99_ms", "p99 latency [ms]"), ("memory", "peak memory"),
               ("mfu", "MFU"))
    return Table("best", "Best configuration per network", columns, tuple(rows),
                 note="Highest median throughput on one worker. The knee batch of the same "
                      "configuration gives nearly the same speed (≥ 95 %) for less memory and "
                      "latency.", raw=tuple(raw),
                 numeric=frozenset({"batch", "samples_per_s", "knee", "p99_ms", "memory"}))


NETSTATS_COLUMNS = (
    ("network", "network"), ("model", "zoo entry"), ("input", "input"),
    ("seed_conv_layers", "seed conv"), ("conv_layers", "conv"), ("conv_depth", "depth"),
    ("seed_fc_layers", "seed FC"), ("fc_layers", "FC"), ("seed_params", "seed params"),
    ("params", "params"), ("seed_macs", "seed MACs"), ("macs", "MACs"), ("note", "why it differs"),
)


def netstats_table(rows: list[dict]) -> Table:
    big = ("seed_params", "params", "seed_macs", "macs")
    shown = tuple({k: ("–" if r.get(k) is None else si(r[k]) if k in big else r[k])
                   for k, _ in NETSTATS_COLUMNS} for r in rows)
    return Table("netstats", "Network statistics beside the seed's", NETSTATS_COLUMNS, shown,
                 note="The seed's columns are Sze et al. (2017), Table III, where '# of conv "
                      "layers' is the depth in convolutions; see docs/statistics.md.",
                 raw=tuple(rows), numeric=frozenset({"seed_conv_layers", "conv_layers",
                                                     "conv_depth", "seed_fc_layers", "fc_layers",
                                                     *big}))


def _flatten(d, prefix: str = ""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and any(isinstance(x, (dict, list)) for x in d):
        for i, v in enumerate(d):
            yield from _flatten(v, f"{prefix}.{i}")
    else:
        yield prefix, d


def _env_value(key: str, v) -> str:
    if v is None:
        return "–"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "–"
    if isinstance(v, (int, float)) and not isinstance(v, bool) and key.endswith("bytes"):
        return binary_bytes(int(v))
    return str(v)


def environment_table(env: dict) -> Table:
    rows = tuple({"what": k, "value": _env_value(k, v)} for k, v in _flatten(env or {}))
    return Table("environment", "Environment", (("what", "what"), ("value", "value")), rows,
                 note="Captured once when the run started.")


def predictions_table(preds: list[dict], ms: list[Measurement]) -> Table:
    """Predicted rows, with the measured throughput beside where the same point was measured."""
    measured = {}
    for m in ms:
        if P.measured(m) and m.workload.mode == "training" and not m.workload.loaded:
            w = m.workload
            for prec in (w.precision, None):
                measured.setdefault((w.model, w.batch_size, prec, w.world_size), m)
    rows, raw = [], []
    for r in preds:
        m = (measured.get((r.get("model"), r.get("batch_size"), r.get("precision"), r["gpus"]))
             if measured_like(r) else None)  # a catalogue GPU row is not this machine's point
        got = P.rate(m) if m is not None else None
        err = (r["samples_per_s"] - got) / got if got and r["samples_per_s"] is not None else None
        raw.append({**r, "measured_samples_per_s": got, "error": err})
        rows.append({"model": r.get("model", "–"), "batch_size": r.get("batch_size", "–"),
                     "cluster": series_label(key(r)).split(" · ", 1)[-1] if r.get("cluster") else "–",
                     "nodes": "–" if r["nodes"] is None else r["nodes"], "gpus": r["gpus"],
                     "samples_per_s": fmt(r["samples_per_s"]), "measured": fmt(got),
                     "error": "–" if err is None else f"{100 * err:+.1f} %",
                     "speedup": fmt(r["speedup"]), "efficiency": pct(r["efficiency"]),
                     "compute_ms": fmt(r["compute_ms"]), "comm_ms": fmt(r["comm_ms"]),
                     "exposed_ms": fmt(r["exposed_ms"]),
                     "limiting": r.get("limiting") or "–",
                     "time_to_train_min": fmt(r["time_to_train_min"])})
    columns = (("model", "network"), ("cluster", "cluster"), ("batch_size", "batch/worker"),
               ("nodes", "nodes"), ("gpus", "workers"), ("samples_per_s", "predicted samples/s"),
               ("measured", "measured samples/s"), ("error", "error"), ("speedup", "speedup"),
               ("efficiency", "efficiency"), ("compute_ms", "compute ms"),
               ("comm_ms", "all-reduce ms"), ("exposed_ms", "exposed ms"),
               ("limiting", "limited by"),
               ("time_to_train_min", "time to train [min]"))
    return Table("predictions", "Predicted scaling", columns, tuple(rows),
                 note="error = (predicted − measured) / measured, where the point was measured "
                      "(only rows of workers like the measured ones). Clusters: "
                      + ("; ".join(sorted({r["cluster"] for r in preds if r.get("cluster")}))
                         or "not named") + f". On GPU clusters the model is {error_band().sentence()}.",
                 raw=tuple(raw), numeric=frozenset({"batch_size", "nodes", "gpus", "samples_per_s",
                                                    "measured", "error", "speedup", "efficiency",
                                                    "compute_ms", "comm_ms", "exposed_ms",
                                                    "time_to_train_min"}))


def time_to_train_table(rows: list[dict]) -> Table:
    columns = (("network", "Network"), ("batch_size", "Batch size"), ("nodes", "Nodes"),
               ("time", "Time [min]"), ("time_stat", "with statistical efficiency [min]"), ("gpus", "GPUs"),
               ("precision", "precision"), ("source", "source"))
    shown = tuple({**r, "gpus": "–" if r["gpus"] is None else r["gpus"],
                   "precision": r["precision"] or "–",
                   "nodes": "–" if r["nodes"] is None else r["nodes"],
                   "time": f"{r['time_min']:,.0f}",
                   "time_stat": "–" if r.get("time_stat_min") is None else f"{r['time_stat_min']:,.0f}"}
                  for r in rows)
    return Table("time-to-train", "Time to train, in the seed's format", columns, shown,
                 raw=tuple(rows), numeric=frozenset({"batch_size", "nodes", "gpus", "time", "time_stat"}))
