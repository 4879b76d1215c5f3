"""One data-parallel training step, measured (torch.profiler) above predicted (the model's overlap).

Measured: the `step_timeline` a scale point stores (nnscale.distributed.trace): forward, backward op
by op in the order autograd ran them, each bucket's all-reduce on the communication lane, the
optimizer. Predicted: the `timeline` the study's prediction glue attaches to the predicted row of
the same configuration (glue.predict.predicted_timeline): forward, backward layer by layer
from per-layer work, buckets launched when their last gradient is ready and serialised on one
communication stream. Drawn on one time axis, so a reader sees where the two part.

Both timelines are plain dicts {"step_ms", "events": [{kind, name, start_ms, dur_ms, lane}]}.
"""

from __future__ import annotations

from matplotlib.patches import Patch

from nnscale.records import Measurement
from nnscale.report import points as P
from nnscale.report.document import Plot
from nnscale.report.svg import INK, MUTED, PALETTE, label, new_figure, to_svg

KIND_COLOR = {"forward": PALETTE[0], "backward": PALETTE[5], "allreduce": PALETTE[3],
              "optimizer": PALETTE[2], "other": "#9aa5b1"}  # other: overhead, comm not hidden
LANES = ("compute", "comm")
LANE_NAME = {"compute": "compute", "comm": "all-reduce"}


def _valid(timeline) -> bool:
    return (isinstance(timeline, dict) and isinstance(timeline.get("events"), list)
            and isinstance(timeline.get("step_ms"), (int, float)) and timeline["step_ms"] > 0)


def measured_timelines(ms: list[Measurement]) -> list[Measurement]:
    """Data-parallel points (world size >= 2) that carry a recorded step, largest world first."""
    out = [m for m in ms if P.measured(m) and m.workload.world_size > 1
           and _valid(P.dist(m).step_timeline)]
    return sorted(out, key=lambda m: -m.workload.world_size)


def predicted_for(m: Measurement, preds: list[dict]) -> dict | None:
    """The predicted row of `m`'s configuration (model, batch per worker, workers) with a timeline."""
    w = m.workload
    for r in preds:
        if (r.get("model") == w.model and r.get("batch_size") == w.batch_size
                and r.get("gpus") == w.world_size and _valid(r.get("timeline"))):
            return r
    return None


def _draw(ax, timeline: dict, title: str) -> None:
    for y, lane in enumerate(LANES):
        for kind in KIND_COLOR:
            spans = [(e["start_ms"], max(e["dur_ms"], 0.0)) for e in timeline["events"]
                     if e.get("lane", "compute") == lane and e.get("kind") == kind
                     and isinstance(e.get("start_ms"), (int, float))
                     and isinstance(e.get("dur_ms"), (int, float))]
            if spans:
                # Thin white edges keep neighbouring backward ops apart: "backward by layer".
                ax.broken_barh(spans, (len(LANES) - 1 - y - 0.35, 0.7), facecolors=KIND_COLOR[kind],
                               edgecolor="white", linewidth=0.4)
    ax.axvline(timeline["step_ms"], color=INK, ls=":", lw=1.0)
    ax.text(timeline["step_ms"], len(LANES) - 0.45, f" step {timeline['step_ms']:.1f} ms",
            fontsize=8, color=INK, va="bottom")
    ax.set_yticks(range(len(LANES)), [LANE_NAME[lane] for lane in reversed(LANES)])
    ax.set_ylim(-0.6, len(LANES) - 0.1)
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", colors=MUTED)
    ax.set_title(label(title))


def timeline_plot(ms: list[Measurement], preds: list[dict]) -> list[Plot]:
    """The measured step of the largest data-parallel point, above its prediction when there is one."""
    found = measured_timelines(ms)
    if not found:
        return []
    m = found[0]
    measured = P.dist(m).step_timeline
    row = predicted_for(m, preds)
    n = 2 if row is not None else 1
    fig, axes = new_figure(n, ncols=1, width=9.0, height=1.9)
    w = m.workload
    _draw(axes[0], measured, f"measured (torch.profiler, rank 0): {w.model}, batch {w.batch_size} "
                             f"per worker, {w.world_size} workers")
    top = measured["step_ms"]
    if row is not None:
        _draw(axes[1], row["timeline"], "predicted (the model's timeline): the same configuration")
        top = max(top, row["timeline"]["step_ms"])
    for ax in axes:
        ax.set_xlim(0, top * 1.12)
    axes[-1].set_xlabel("time since the step started [ms]")
    fig.legend(handles=[Patch(color=c, label=k) for k, c in KIND_COLOR.items()], loc="outside lower center",
               ncols=len(KIND_COLOR))
    trace = P.dist(m).trace_file
    caption = ("One training step after the measured ones (the profiler's cost stays out of the "
               "measurement). Top: recorded with torch.profiler on rank 0; bottom: the model's "
               "prediction from per-layer work and the fitted all-reduce, buckets in reverse layer "
               "order on one communication stream.")
    if P.worker(m):
        caption += f" A worker: {P.worker(m)} (rank 0)."
    if row is None:
        caption += " No prediction of this configuration was given, so only the measurement is drawn."
    elif row.get("cluster"):
        caption += f" Predicted for {row['cluster']}."
    if trace:
        caption += f" Full trace (Perfetto, chrome://tracing): {trace}"
    return [Plot(id="timeline", section="Scaling across workers", title="One step, measured and predicted",
                 caption=caption, svg=to_svg(fig, "timeline"))]
