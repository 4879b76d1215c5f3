"""Plots across workers: speedup and efficiency, measured against predicted, time to train.

Predicted rows are plain dicts from `predict` (see `report.predictions` for the keys read). The
seed's multi-node result is drawn beside ours in its own format (network, batch, nodes, minutes).
"""

from __future__ import annotations

from collections import defaultdict

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from nnscale.records import Measurement
from nnscale.predict.points import loaded_ratio
from nnscale.report import points as P
from nnscale.report.document import Plot
from nnscale.report.predictions import measured_like, pred_series, series_label, unit
from nnscale.report.svg import (INK, MUTED, PALETTE, color_for, fig_legend, label, log2_batches, new_figure,
                                plain_log, to_svg)

# Dorobisz et al. (2019), slide "Scalability for multiple nodes": ResNet-152, batch 32, trained to
# the end in 1077 min on 4 nodes and 696 min on 8.
SEED_TIME_TO_TRAIN = (("ResNet-152", 32, 4, 1077.0), ("ResNet-152", 32, 8, 696.0))
SOURCE_COLOR = {"seed (2019)": "#9aa5b1", "measured": PALETTE[0], "predicted": PALETTE[1]}


def _series_name(key: tuple) -> str:
    model, mode, batch, _shape, precision = key[:5]
    return f"{model} b{batch} {precision}"


def scaling_plot(ms: list[Measurement], predictions: list[dict]) -> list[Plot]:
    """Speedup and parallel efficiency against workers, with the ideal (linear) line."""
    measured = P.speedups(ms)
    predicted = {k: v for k, v in pred_series(predictions).items()
                 if any(r.get("speedup") is not None for r in v)}
    if not measured:
        return []
    fig, (ax_s, ax_e) = new_figure(2, ncols=2, width=5.0, height=3.7)
    workers = [1]
    colors = {}
    # One network at one batch: the curves differ by precision, coloured as in every other plot.
    by_precision = len({(k[0], k[2]) for k in measured}) == 1
    for j, (key, rows) in enumerate(measured.items()):
        color = color_for(key[4] if by_precision else "", j)
        colors[(key[0], key[2])] = color
        xs = [ws for ws, _, s in rows if s is not None]
        ss = [s for _, _, s in rows if s is not None]
        es = [P.efficiency(ws, m, s) for ws, m, s in rows if s is not None]
        workers += xs
        ax_s.plot(xs, ss, marker="o", color=color, label=label(_series_name(key)))
        ax_e.plot(xs, [100 * e for e in es], marker="o", color=color)
    for j, (pkey, rows) in enumerate(predicted.items()):
        color = (colors.get((pkey[0], pkey[1])) if measured_like(rows[0]) else None) or \
            PALETTE[(len(measured) + j + 1) % len(PALETTE)]
        rows = [r for r in rows if r.get("speedup") is not None]
        xs = [r["gpus"] for r in rows]
        workers += xs
        ax_s.plot(xs, [r["speedup"] for r in rows], ls="--", marker=".", color=color,
                  label=label(f"{series_label(pkey)} predicted"))
        eff = [(r["gpus"], r.get("efficiency") or r["speedup"] / r["gpus"]) for r in rows]
        ax_e.plot([g for g, _ in eff], [100 * e for _, e in eff], ls="--", marker=".", color=color)
    # Predicted series name their own cluster (legend); the axis says what the measured ones were.
    kind = "GPUs" if all(m.workload.device.startswith("cuda") for rows in measured.values()
                         for _, m, _ in rows) else "CPU workers"
    top = max(workers)
    ax_s.plot([1, top], [1, top], ls=":", color=INK, lw=1.2, label="ideal (linear)")
    ax_e.axhline(100, ls=":", color=INK, lw=1.2)
    for ax in (ax_s, ax_e):
        log2_batches(ax, workers)
        ax.set_xlabel(f"workers [{kind}]")
    if top > 16:  # a linear axis would crush the measured few-GPU points against the origin
        ax_s.set_yscale("log", base=2)
        ax_s.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_s.set_ylabel("speedup over one worker [×]")
    ax_e.set_ylabel("parallel efficiency [%]")
    ax_e.set_ylim(0, 110)
    ax_s.set_title("Speedup")
    ax_e.set_title("Efficiency = speedup / workers")
    fig_legend(fig, [ax_s])
    return [Plot(id="scaling", section="Scaling across workers", title="Speedup and efficiency",
                 caption="Data-parallel training, batch per worker fixed (weak scaling), speedup "
                         "against one worker with the same resources as each of the others. Solid: "
                         "measured; dashed: predicted, each for the cluster its label names; "
                         "dotted: ideal linear scaling." + _worker_note(ms),
                 svg=to_svg(fig, "scaling"))]


def _worker_note(ms: list[Measurement]) -> str:
    """What one worker was on this machine, from the points themselves (scaling.describe_worker)."""
    words = sorted({P.worker(m) for m in ms if P.measured(m) and m.workload.world_size > 1
                    and P.worker(m)})
    note = (f" A worker here: {'; '.join(words)} (rank 0's reading; the others on their own cores)."
            if words else "")
    return note + _loaded_note(ms)


def _loaded_note(ms: list[Measurement]) -> str:
    """Each loaded reference against the lone worker it is set against: the compute that N
    co-located workers lose to one another before any communication (distributed/scaling.py)."""
    out = []
    for m in ms:
        w = m.workload
        if not (P.measured(m) and w.loaded):
            continue
        lone = P.lone_reference(m, ms)
        a, b = P.step_ms(m), P.step_ms(lone) if lone else None
        if a and b:
            # The step ratio is what a reader sees; the model's factor is the compute ratio
            # (points.loaded_ratio: the steps also hold the hooks' wait the calibration charges).
            f = loaded_ratio(m, lone)
            out.append(f" Loaded reference: {w.concurrent_copies} copies of the one-worker step at "
                       f"once, on the workers' cores and without communication, took {a:.1f} ms per "
                       f"step against {b:.1f} ms alone ({a / b - 1:+.0%}); the prediction of "
                       f"{w.concurrent_copies} workers per node computes {f - 1:+.0%} slower "
                       "(forward + backward + optimizer, from both breakdowns where they have them).")
    return "".join(out)


def _measured_for(ms: list[Measurement], key: tuple) -> list[Measurement]:
    model, batch, precision, *_ = key
    return sorted((m for m in ms if P.measured(m) and m.workload.model == model
                   and m.workload.mode == "training" and not m.workload.loaded
                   and (batch is None or m.workload.batch_size == batch)
                   and (precision is None or m.workload.precision == precision)),
                  key=lambda m: m.workload.world_size)


def predicted_plot(ms: list[Measurement], predictions: list[dict]) -> list[Plot]:
    """Predicted throughput against GPUs, with the measured points and their CIs on top."""
    series = {k: v for k, v in pred_series(predictions).items()
              if any(r.get("samples_per_s") is not None for r in v)}
    if not series:
        return []
    fig, axes = new_figure(len(series), ncols=2, width=5.0, height=3.6)
    for ax, (key, rows) in zip(axes, series.items()):
        rows = [r for r in rows if r.get("samples_per_s") is not None]
        xs = [r["gpus"] for r in rows]
        ax.plot(xs, [r["samples_per_s"] for r in rows], ls="--", marker=".", color=PALETTE[1],
                label="predicted")
        meas = _measured_for(ms, key) if measured_like(rows[0]) else []
        if meas:
            ws = [m.workload.world_size for m in meas]
            ys = [P.rate(m) for m in meas]
            lo = [y - (P.rate_ci(m)[0] or y) for m, y in zip(meas, ys)]
            hi = [(P.rate_ci(m)[1] or y) - y for m, y in zip(meas, ys)]
            ax.errorbar(ws, ys, yerr=[lo, hi], fmt="o", color=PALETTE[0], capsize=3,
                        label="measured (95 % CI)")
            xs += ws
        log2_batches(ax, xs)
        plain_log(ax)
        ax.set_title(label(series_label(key)))
        ax.set_xlabel(f"workers [{unit(rows[0])}]")
        ax.set_ylabel("throughput [samples/s]")
        ax.legend(loc="upper left")
    return [Plot(id="predicted", section="Measured against predicted",
                 title="Measured against predicted throughput",
                 caption="The prediction extends the measured points to clusters not measured; "
                         "where both exist, the gap is the prediction's error. Each panel is one "
                         "named cluster: " + "; ".join(sorted({k[3] for k in series if k[3]}))
                         + ". A catalogue GPU cluster is predicted from the GPU's data, not from "
                         "this machine's workers, and is never compared with them.",
                 svg=to_svg(fig, "predicted"))]


def time_to_train_rows(ms: list[Measurement], predictions: list[dict]) -> list[dict]:
    """Rows in the seed's format (network, batch size, nodes, minutes) from every source."""
    rows = []
    for m in ms:
        t = P.num(P.dist(m).time_to_train_min)
        if t is not None and P.measured(m) and not m.workload.loaded:
            nodes = m.workload.nnodes
            rows.append({"network": m.workload.model, "precision": m.workload.precision,
                         "batch_size": m.workload.batch_size, "nodes": int(nodes) if nodes else 1,
                         "gpus": m.workload.world_size, "time_min": t, "source": "measured"})
    for r in predictions:
        if r.get("time_to_train_min") is not None:
            rows.append({"network": r.get("model", "?"), "precision": r.get("precision"),
                         "batch_size": r.get("batch_size"),
                         "nodes": r.get("nodes"), "gpus": r.get("gpus"),
                         "time_min": float(r["time_to_train_min"]), "source": "predicted",
                         # with statistical efficiency (predict/stateff.py), where the noise scale is known
                         "time_stat_min": (float(r["time_to_train_stat_s"]) / 60
                                           if r.get("time_to_train_stat_s") is not None else None)})
    if rows:  # the seed's numbers are a reference for ours, never shown alone
        rows += [{"network": n, "precision": None, "batch_size": b, "nodes": k, "gpus": None,
                  "time_min": t, "source": "seed (2019)"} for n, b, k, t in SEED_TIME_TO_TRAIN]
    return rows


def _plural(n, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _bar_name(r: dict) -> str:
    parts = [r["network"], r["precision"], f"batch {r['batch_size']}", _plural(r["nodes"], "node"),
             _plural(r["gpus"], "GPU") if r["gpus"] else None]
    return " · ".join(str(p) for p in parts if p)


def time_to_train_plot(rows: list[dict]) -> list[Plot]:
    if not rows:
        return []
    groups = defaultdict(list)
    for r in rows:
        groups[(r["network"], r["precision"] or "", r["batch_size"])].append(r)
    ordered = [r for g in groups.values()
               for r in sorted(g, key=lambda r: (r["nodes"] or 0, r["gpus"] or 0, r["source"]))]
    fig, (ax,) = new_figure(1, width=9.0, height=0.8 + 0.3 * len(ordered))
    ys = list(range(len(ordered)))[::-1]
    ax.barh(ys, [r["time_min"] for r in ordered], height=0.7,
            color=[SOURCE_COLOR[r["source"]] for r in ordered])
    top = max(r["time_min"] for r in ordered)
    for y, r in zip(ys, ordered):
        ax.text(r["time_min"] + top * 0.01, y, f"{r['time_min']:,.0f} min", va="center",
                fontsize=8, color=INK)
    ax.set_yticks(ys, [label(_bar_name(r)) for r in ordered])
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("time to train [min]")
    ax.grid(axis="y", visible=False)
    ax.legend(handles=[Line2D([], [], lw=8, color=c, label=s) for s, c in SOURCE_COLOR.items()
                       if any(r["source"] == s for r in ordered)], loc="lower right")
    ax.tick_params(axis="y", colors=MUTED)
    return [Plot(id="time-to-train", section="Time to train", title="Time to train",
                 caption="In the seed's format (network, batch size, nodes, minutes). Grey bars "
                         "are the seed's ResNet-152 results (Dorobisz et al. 2019).",
                 svg=to_svg(fig, "time-to-train"))]
