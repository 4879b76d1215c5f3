"""`build_report`: a run's stored points (and optionally predictions and the network statistics)
turned into a `Report` — plots as SVG text, tables as rows. Pure: no files, no clock, no torch;
the same inputs give the same report, byte for byte.

A plot appears only when its data exists; each one left out is named in `Report.notes` with the
reason, so a reader can tell "not measured" from "forgotten".
"""

from __future__ import annotations

import matplotlib

from nnscale.format import si
from nnscale.records import ALLREDUCE, STATUSES, Measurement
from nnscale.report import points as P
from nnscale.report import plots_batch, plots_lm, plots_scaling, strategies, tables, timeline
from nnscale.report.document import Highlight, Report
from nnscale.report.predictions import normalize, pred_series, unit
from nnscale.report.svg import RC

# Pending disk writes the report mentions having flushed before measuring (environment.py
# flush_pending_writes): a fresh install leaves ~2 GB; a working machine a few MB.
PENDING_WRITES_NOTE_BYTES = 100e6


def _device_memory(ms: list[Measurement], env: dict) -> float | None:
    """The GPU's memory, drawn as a ceiling on the memory plot when every point ran on a GPU."""
    if not ms or not all(m.workload.device.startswith("cuda") for m in ms):
        return None
    gpus = ((env or {}).get("torch") or {}).get("gpus") or []
    value = gpus[0].get("memory_bytes") if gpus and isinstance(gpus[0], dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _subtitle(ms: list[Measurement], env: dict) -> str:
    env = env or {}
    gpus = (env.get("torch") or {}).get("gpus") or []
    devices = sorted({m.workload.device.split(":")[0] for m in ms})
    hardware = []
    if "cuda" in devices and gpus:
        names = sorted({g.get("name", "GPU") for g in gpus if isinstance(g, dict)})
        hardware.append(f"{len(gpus)} × {' / '.join(names)}")
    if "cpu" in devices or not hardware:
        cpu = (env.get("cpu") or {}).get("model")
        if cpu:
            hardware.append(str(cpu))
    parts = [*hardware, env.get("host"), (env.get("captured_utc") or "")[:16].replace("T", " ")]
    return " · ".join(str(p) for p in parts if p)


def _counts(ms: list[Measurement]) -> str:
    counts = {s: sum(m.status == s for m in ms) for s in STATUSES}
    return " · ".join(f"{n} {s}" for s, n in counts.items() if n)


def _highlights(ms: list[Measurement], preds: list[dict]) -> list[Highlight]:
    # A run's all-reduce sizes beside its results (the study's calibration) are inputs of the
    # prediction's fit, counted apart: their intervals span fresh launches whose calls differ far
    # more than a training step does (on the 2-core VMs 0.9-2.8 ms for one 1 KiB call after
    # compute, docs/benchmarks.md), and what that costs shows in the fit's residuals and the
    # prediction's error column, not in a result of the run.
    fit = [m for m in ms if m.workload.kind == ALLREDUCE]
    apart = 0 < len(fit) < len(ms)
    results = [m for m in ms if m.workload.kind != ALLREDUCE] if apart else ms
    detail = _counts(results)
    if apart:
        detail += (f"; plus {len(fit)} all-reduce sizes as inputs of the prediction's fit ({_counts(fit)}: "
                   "their launches differ more than a step does, the fit's residuals show it)")
    out = [Highlight("points measured", str(len(results)), detail)]
    for mode in ("inference", "training"):
        best = [m for m in P.best_points(ms) if m.workload.mode == mode]
        if best:
            m = max(best, key=P.rate)
            out.append(Highlight(f"best {mode}", tables.fmt(P.rate(m)),
                                 f"{m.workload.model} · {m.workload.precision} · "
                                 f"batch {m.workload.batch_size}", unit="samples/s"))
    scaling = [(ws, m, s) for rows in P.speedups(ms).values() for ws, m, s in rows
               if s is not None and ws > 1]
    if scaling:
        ws, m, s = max(scaling, key=lambda t: (t[0], t[2]))
        eff = P.efficiency(ws, m, s)
        detail = f"{m.workload.model} · efficiency {tables.pct(eff, 0)}"
        kind = "GPUs" if m.workload.device.startswith("cuda") else "CPU workers"
        if P.worker(m):
            detail += f" · a worker: {P.worker(m)}"
        out.append(Highlight(f"speedup on {ws} {kind}", f"{s:.2f}", detail, unit="×"))
    # One card per named cluster (at its largest size), the card saying which cluster: never a
    # bare "1024 GPUs" for a prediction from a laptop's CPU workers (issue 11).
    for rows in pred_series(preds).values():
        biggest = max((r for r in rows if r.get("efficiency") is not None),
                      key=lambda r: r["gpus"], default=None)
        if biggest is None:
            continue
        detail = " · ".join(str(p) for p in (biggest.get("model"), biggest.get("cluster")) if p)
        if biggest.get("samples_per_s"):
            detail += f" · {si(biggest['samples_per_s'])} samples/s"
        out.append(Highlight(f"predicted on {biggest['gpus']} {unit(biggest)}",
                             tables.pct(biggest["efficiency"], 0), detail, unit="efficiency"))
    return out


def build_report(
    measurements: list[Measurement],
    environment: dict,
    *,
    predictions: list[dict] | None = None,
    netstats_rows: list[dict] | None = None,
    title: str,
) -> Report:
    """Everything the report shows, from stored records (see the module docstring)."""
    ms = list(measurements)
    preds = normalize(predictions)
    env = environment or {}
    notes = []
    ttt_rows = plots_scaling.time_to_train_rows(ms, preds)
    with matplotlib.rc_context(RC):
        # The headline results first (speed against batch and against workers, the seed's two
        # questions), then the details that explain them.
        # Language models get tokens/s against batch × S (plots_lm); samples/s against batch
        # alone would mix their sequence lengths in one curve.
        plots = plots_batch.throughput_plots([m for m in ms if not plots_lm.is_lm_point(m)])
        plots += plots_lm.lm_plots(ms)
        plots += plots_batch.framework_plot(ms)
        plots += plots_scaling.scaling_plot(ms, preds)
        plots += timeline.timeline_plot(ms, preds)
        plots += strategies.strategies_plot(ms)
        plots += plots_scaling.predicted_plot(ms, preds)
        plots += plots_scaling.time_to_train_plot(ttt_rows)
        plots += plots_batch.latency_plot(ms)
        plots += plots_batch.memory_plot(ms, _device_memory(ms, env))
        plots += plots_batch.mfu_plot(ms)
    have = {p.id.split("-")[0] for p in plots}
    single = [m for m in P.single_worker(ms) if P.measured(m)]
    if not ms:
        notes.append("This run holds no points yet: nothing to plot.")
    elif "throughput" not in have and "lm" not in have:
        notes.append("No one-worker point was measured successfully: no batch-size plots.")
    if "latency" not in have and single:
        notes.append("No inference latency percentiles in this run: no latency plot.")
    if "memory" not in have and single:
        notes.append("No peak memory recorded: no memory plot.")
    if "mfu" not in have and single:
        notes.append("No MFU recorded (it needs the device's peak FLOP/s, known for GPUs): "
                     "no MFU plot.")
    if "scaling" not in have:
        notes.append("No distributed points (more than one worker) in this run: no speedup or "
                     "efficiency plot.")
    if not preds:
        notes.append("No predictions given: no measured-against-predicted plot.")
    if "time" not in have:
        notes.append("No time to train, measured or predicted: no time-to-train bars.")
    found = env.get("interference") if isinstance(env.get("interference"), dict) else {}
    if found.get("warning"):  # what the run found before measuring (nnscale.environment)
        notes.append(f"Before measuring, {found['warning'].removeprefix('warning: ')}.")
    pending = found.get("pending_writes_bytes")
    if isinstance(pending, (int, float)) and pending >= PENDING_WRITES_NOTE_BYTES:
        notes.append(f"Before measuring, {pending / 1e9:.2f} GB of pending disk writes (a fresh "
                     f"install's) were flushed, in {found.get('sync_s') or 0:.1f} s, so that their "
                     "writeback would not run during the first points.")
    plan = env.get("study_plan") if isinstance(env.get("study_plan"), dict) else {}
    if plan.get("dropped"):
        notes.append(f"To fit its budget the study dropped {len(plan['dropped'])} points: "
                     + "; ".join(plan["dropped"]) + ".")

    table_list = [tables.best_table(ms)]
    if any(plots_lm.is_lm_point(m) for m in ms):
        table_list.append(plots_lm.lm_table(ms))
    if (strategy_table := strategies.strategies_table(ms)) is not None:
        table_list.append(strategy_table)
    if netstats_rows:
        table_list.append(tables.netstats_table(netstats_rows))
    else:
        notes.append("Network statistics were not given: no table beside the seed's.")
    if preds:
        table_list.append(tables.predictions_table(preds, ms))
    if ttt_rows:
        table_list.append(tables.time_to_train_table(ttt_rows))
    table_list.append(tables.environment_table(env))
    points = tables.points_table(ms)
    table_list.append(points)
    return Report(title=title, subtitle=_subtitle(ms, env),
                  highlights=tuple(_highlights(ms, preds)), plots=tuple(plots),
                  tables=tuple(t for t in table_list if t.rows or t.id in ("best", "points")),
                  notes=tuple(notes), points=points.raw, environment=env,
                  predictions=tuple(preds))
