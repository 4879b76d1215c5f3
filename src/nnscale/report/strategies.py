"""Data-parallel strategies side by side: memory per rank (DDP against FSDP) and the step's parts.

Reads the points `nnscale scale --strategy ddp|fsdp` stores (nnscale.distributed.scaling):
`per_rank_peak_memory_bytes` (measured, nnscale.distributed.memory), `per_rank_model_state_bytes`
(parameters + gradients + optimizer state each rank holds, counted from its tensors), and the
breakdown: forward, backward, optimizer, exposed communication; for FSDP also the all-gather and
reduce-scatter times, for DDP the all-reduce's (its communication total). Points stored before
the `strategy` field existed are upgraded when read (records.upgrade_legacy). Pure: no torch.
"""

from __future__ import annotations

from collections import defaultdict

from nnscale.records import Measurement
from nnscale.report import points as P
from nnscale.report.document import Plot, Table
from nnscale.report.svg import INK, PALETTE, fig_legend, label, new_figure, to_svg
from nnscale.report.tables import fmt, mem

STRATEGY_COLOR = {"ddp": PALETTE[0], "fsdp": PALETTE[1]}
PART_KEYS = (("forward_ms", "forward"), ("backward_ms", "backward"), ("optimizer_ms", "optimizer"),
             ("comm_exposed_ms", "exposed comm"))
PART_COLORS = (PALETTE[2], PALETTE[5], PALETTE[4], PALETTE[3])
MIB = 2**20


def strategy_points(ms: list[Measurement]) -> list[Measurement]:
    """Measured distributed points with a strategy, in (model, strategy, world size) order."""
    found = [m for m in ms if P.measured(m) and m.workload.strategy]
    return sorted(found, key=lambda m: (m.workload.model, m.workload.batch_size,
                                        m.workload.strategy, m.workload.world_size))


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _peaks(m: Measurement) -> list[float]:
    return [float(v) for v in P.dist(m).per_rank_peak_memory_bytes or () if isinstance(v, (int, float))]


def _name(m: Measurement) -> str:
    w = m.workload
    return f"{w.model} b{w.batch_size} {w.strategy} ×{w.world_size}"


COLUMNS = (("model", "network"), ("strategy", "strategy"), ("workers", "workers"),
           ("batch", "batch/worker"), ("peak", "peak memory/rank"), ("spread", "ranks' range"),
           ("state", "params+grads+optimizer/rank"), ("step", "step ms (median)"),
           ("ci", "95 % CI of the median"), ("fwd", "forward"), ("bwd", "backward"),
           ("opt", "optimizer"), ("exposed", "exposed comm"), ("ag", "all-gather"),
           ("rs", "reduce-scatter"), ("ar", "all-reduce"))


def strategies_table(ms: list[Measurement]) -> Table | None:
    points = strategy_points(ms)
    if not points:
        return None
    rows, raw = [], []
    for m in points:
        t, d, w = m.stats.timing, P.dist(m), m.workload
        peaks = _peaks(m)
        state = [v for v in d.per_rank_model_state_bytes or () if isinstance(v, (int, float))]
        ddp = w.strategy == "ddp"
        r = {"model": w.model, "strategy": w.strategy, "workers": w.world_size,
             "batch": w.batch_size, "peak": max(peaks) if peaks else None,
             "peak_min": min(peaks) if peaks else None, "state": max(state) if state else None,
             "step": _num(t.median_ms), "ci_low": _num(t.median_ci_low_ms),
             "ci_high": _num(t.median_ci_high_ms),
             **{k: _num(getattr(d, key)) for k, key in (
                 ("fwd", "forward_ms"), ("bwd", "backward_ms"), ("opt", "optimizer_ms"),
                 ("exposed", "comm_exposed_ms"), ("ag", "all_gather_ms"), ("rs", "reduce_scatter_ms"))},
             "ar": _num(d.comm_total_ms) if ddp else None}
        raw.append(r)
        rows.append({**{k: str(r[k]) for k in ("model", "strategy", "workers", "batch")},
                     "peak": mem(r["peak"]),
                     "spread": f"{mem(r['peak_min'])} – {mem(r['peak'])}" if peaks else "–",
                     "state": mem(r["state"]), "step": fmt(r["step"]),
                     "ci": (f"{fmt(r['ci_low'])} – {fmt(r['ci_high'])}"
                            if "–" not in (fmt(r["ci_low"]), fmt(r["ci_high"])) else "–"),
                     **{k: fmt(r[k]) for k in ("fwd", "bwd", "opt", "exposed", "ag", "rs", "ar")}})
    return Table("strategies", "Data-parallel strategies: memory per rank and the step's parts",
                 COLUMNS, tuple(rows), raw=tuple(raw),
                 numeric=frozenset(k for k, _ in COLUMNS[2:]),
                 note="Peak memory per rank is measured (CPU: peak resident set of a separate pass "
                      "of steps over the bare worker's; CUDA: max_memory_allocated); the state "
                      "column is counted from each rank's tensors. Times are ms per step; the "
                      "parts are means of the middle half of the instrumented steps "
                      "(docs/distributed.md).")


def strategies_plot(ms: list[Measurement]) -> list[Plot]:
    """Memory per rank (bars: the highest rank, whiskers down to the lowest) and the step's parts
    (stacked), one bar per (strategy, workers), for each network and batch."""
    points = strategy_points(ms)
    if not points:
        return []
    groups: dict[tuple, list[Measurement]] = defaultdict(list)
    for m in points:
        groups[(m.workload.model, m.workload.batch_size)].append(m)
    fig, axes = new_figure(2 * len(groups), ncols=2, width=5.2, height=3.6)
    for g, ((model, batch), pts) in enumerate(groups.items()):
        ax_m, ax_t = axes[2 * g], axes[2 * g + 1]
        names = [f"{m.workload.strategy}\n×{m.workload.world_size}" for m in pts]
        xs = list(range(len(pts)))
        for x, m in zip(xs, pts):
            peaks = _peaks(m)
            if not peaks:
                continue
            top, low = max(peaks) / MIB, min(peaks) / MIB
            ax_m.bar(x, top, color=STRATEGY_COLOR.get(m.workload.strategy, INK), width=0.6)
            ax_m.errorbar(x, top, yerr=[[top - low], [0]], color=INK, capsize=4, lw=1)
            state = P.dist(m).per_rank_model_state_bytes or ()
            if state:
                ax_m.plot([x - 0.3, x + 0.3], [max(state) / MIB] * 2, color=INK, ls="--", lw=1)
        ax_m.set_xticks(xs, [label(n) for n in names])
        ax_m.set_ylabel("peak memory per rank [MiB]")
        ax_m.set_title(label(f"{model} b{batch}: memory per rank"))
        for x, m in zip(xs, pts):
            bottom = 0.0
            for (key, part), color in zip(PART_KEYS, PART_COLORS):
                v = _num(getattr(P.dist(m), key)) or 0.0
                ax_t.bar(x, v, bottom=bottom, color=color, width=0.6,
                         label=part if x == 0 and g == 0 else None)
                bottom += v
            t = m.stats.timing
            lo, hi, med = _num(t.min_ms), _num(t.max_ms), _num(t.median_ms)
            if med is not None and lo is not None and hi is not None:
                ax_t.errorbar(x + 0.36, med, yerr=[[med - lo], [hi - med]], fmt="o", ms=3,
                              color=INK, capsize=3, lw=1,
                              label="step: median, min–max" if x == 0 and g == 0 else None)
        ax_t.set_xticks(xs, [label(n) for n in names])
        ax_t.set_ylabel("ms per step")
        ax_t.set_title(label(f"{model} b{batch}: the step's parts"))
    fig_legend(fig, [axes[1]])
    return [Plot(id="strategies", section="Scaling across workers",
                 title="Memory per rank and step breakdown, DDP against FSDP",
                 caption="Left: measured peak memory per rank (bar: the highest rank, whisker down "
                         "to the lowest; dashed: parameters + gradients + optimizer state the rank "
                         "holds). Right: the step's parts (means of the middle half of the "
                         "instrumented steps), with the measured step's median and min–max.",
                 svg=to_svg(fig, "strategies"))]
