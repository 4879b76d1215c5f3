"""Plots of one-worker batch-size sweeps: throughput, latency percentiles, memory, MFU, frameworks.

Each function takes the run's points and returns the plots its data supports ([] when none). Batch
sizes are powers of two in practice, so the batch axis is log2 with the measured sizes as ticks.
Throughput and MFU keep a linear y axis from zero, where the flattening of the curve (the knee) is
easiest to see; latency and memory span orders of magnitude and get log axes.
"""

from __future__ import annotations

from collections import defaultdict

from matplotlib.lines import Line2D

from nnscale.records import MODES, Measurement
from nnscale.report import points as P
from nnscale.report.document import Plot
from nnscale.report.svg import (MUTED, color_for, fig_legend, label, log2_batches, new_figure,
                                plain_log, to_svg)

MODE_STYLE = {"training": "-", "inference": "--"}


def _slug(text: str, i: int) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40]
    return f"{safe or 'net'}-{i}"


def _marks(ax, pts: list[Measurement], ys: dict[int, float], color: str, knee: int | None,
           seen: set[str]) -> None:
    """Unstable points hollow, OOM points as a cross on the batch axis, the knee as a star."""
    xaxis = ax.get_xaxis_transform()  # x in data, y in axes fraction: the cross sits on the axis
    for m in pts:
        b = m.workload.batch_size
        if m.status == "unstable" and b in ys:
            ax.plot([b], [ys[b]], "o", mfc="white", mec=color, ms=8, mew=1.5, zorder=4)
            seen.add("unstable")
        elif m.status in ("oom", "error", "timeout"):
            ax.plot([b], [0.04], "X", color=color, ms=8, transform=xaxis, clip_on=False, zorder=4)
            seen.add("failed")
    if knee is not None and knee in ys:
        ax.plot([knee], [ys[knee]], "*", color=color, mec="white", ms=15, zorder=5)
        seen.add("knee")


def _mark_legend(seen: set[str]) -> list[Line2D]:
    out = []
    if "knee" in seen:
        out.append(Line2D([], [], ls="", marker="*", color=MUTED, ms=11, label="knee (95 % of best)"))
    if "unstable" in seen:
        out.append(Line2D([], [], ls="", marker="o", mfc="white", mec=MUTED, ms=7,
                          label="unstable (CI target missed)"))
    if "failed" in seen:
        out.append(Line2D([], [], ls="", marker="X", color=MUTED, ms=7, label="OOM / failed"))
    return out


def throughput_plots(ms: list[Measurement]) -> list[Plot]:
    """Per network: throughput against batch, one panel per mode, CI bands, knee starred."""
    single = P.single_worker(ms)
    curves = P.curves(single)
    plots = []
    for i, model in enumerate(P.models(single)):
        modes = [mode for mode in MODES if any(k[0] == model and k[1] == mode for k in curves)]
        keys = [k for k in curves if k[0] == model]
        if not any(P.measured(m) for k in keys for m in curves[k]):
            continue
        varying = P.varying_fields(m.workload for k in keys for m in curves[k])
        fig, axes = new_figure(len(modes), ncols=2, width=5.0, height=3.6)
        seen: set[str] = set()
        for ax, mode in zip(axes, modes):
            batches = []
            for j, key in enumerate(k for k in keys if k[1] == mode):
                pts = curves[key]
                batches += [m.workload.batch_size for m in pts]
                good = [m for m in pts if P.measured(m)]
                color = color_for(pts[0].workload.precision if varying == ["precision"] else "", j)
                ys = {m.workload.batch_size: P.rate(m) for m in good}
                if good:
                    xs = [m.workload.batch_size for m in good]
                    ax.plot(xs, [ys[x] for x in xs], marker="o", color=color,
                            label=label(P.variant_label(pts[0].workload, varying)))
                    band = [(m.workload.batch_size, *P.rate_ci(m)) for m in good]
                    band = [(b, lo, hi) for b, lo, hi in band if lo is not None and hi is not None]
                    if len(band) >= 2:
                        bx, lo, hi = zip(*band)
                        ax.fill_between(bx, lo, hi, color=color, alpha=0.18, lw=0)
                _marks(ax, pts, ys, color, P.knee_of(pts), seen)
            log2_batches(ax, batches)
            ax.set_ylim(bottom=0)
            ax.set_title(label(f"{model} · {mode}"))
            ax.set_xlabel("batch size [samples]")
            ax.set_ylabel("throughput [samples/s]")
        fig_legend(fig, axes, _mark_legend(seen))
        plots.append(Plot(
            id=f"throughput-{_slug(model, i)}", section="Throughput against batch size",
            title=f"{model}: throughput against batch size",
            caption="Median samples per second; the band is its 95 % confidence interval. The star "
                    "marks the knee: the smallest batch within 95 % of the best throughput.",
            svg=to_svg(fig, f"throughput-{_slug(model, i)}")))
    return plots


def _by_model_panels(ms: list[Measurement], value, modes=MODES):
    """(model, curves of that model in `modes` with at least one value) for each model."""
    curves = P.curves(P.single_worker(ms))
    out = []
    for model in P.models(ms):
        keys = [k for k in curves if k[0] == model and k[1] in modes
                and any(P.measured(m) and value(m) is not None for m in curves[k])]
        if keys:
            out.append((model, keys))
    return out, curves


def latency_plot(ms: list[Measurement]) -> list[Plot]:
    """Inference latency of one batch, p50 / p95 / p99, against batch, one panel per network."""
    panels, curves = _by_model_panels(ms, lambda m: P.latency(m, 50), modes=("inference",))
    if not panels:
        return []
    fig, axes = new_figure(len(panels))
    styles = {50: "-", 95: "--", 99: ":"}
    for ax, (model, keys) in zip(axes, panels):
        varying = P.varying_fields(m.workload for k in keys for m in curves[k])
        batches = []
        for j, key in enumerate(keys):
            good = [m for m in curves[key] if P.measured(m)]
            color = color_for(good[0].workload.precision if varying == ["precision"] else "", j)
            name = label(P.variant_label(good[0].workload, varying))
            for pct, ls in styles.items():
                pts = [(m.workload.batch_size, P.latency(m, pct)) for m in good]
                pts = [(b, v) for b, v in pts if v is not None]
                if pts:
                    batches += [b for b, _ in pts]
                    ax.plot(*zip(*pts), ls=ls, marker="o" if pct == 50 else None, color=color,
                            label=name if pct == 50 else None)
        log2_batches(ax, batches)
        plain_log(ax)
        ax.set_title(label(model))
        ax.set_xlabel("batch size [samples]")
        ax.set_ylabel("latency of one batch [ms]")
    fig_legend(fig, axes, [Line2D([], [], ls=ls, color=MUTED, label=f"p{p}")
                           for p, ls in styles.items()])
    return [Plot(id="latency", section="Latency", title="Inference latency percentiles",
                 caption="Time to run one batch in inference: median (p50), p95 and p99 of the "
                         "measured iterations. Both axes are logarithmic.",
                 svg=to_svg(fig, "latency"))]


def _mode_lines(ms, value, ylabel, plot_id, title, caption, *, scale=1.0, logy=False, limit=None):
    """Shared shape of the memory and MFU plots: per network, colour = variant, dash = mode."""
    panels, curves = _by_model_panels(ms, value)
    if not panels:
        return []
    fig, axes = new_figure(len(panels))
    seen: set[str] = set()
    for ax, (model, keys) in zip(axes, panels):
        varying = P.varying_fields(m.workload for k in keys for m in curves[k])
        variants = list(dict.fromkeys(k[2] for k in keys))
        batches = []
        for key in keys:
            pts = curves[key]
            j = variants.index(key[2])
            color = color_for(pts[0].workload.precision if varying == ["precision"] else "", j)
            good = [(m.workload.batch_size, value(m)) for m in pts if P.measured(m)]
            good = [(b, v * scale) for b, v in good if v is not None]
            batches += [m.workload.batch_size for m in pts]
            ax.plot(*zip(*good), ls=MODE_STYLE.get(key[1], "-"), marker="o", color=color,
                    label=label(f"{P.variant_label(pts[0].workload, varying)} {key[1]}"))
            _marks(ax, [m for m in pts if m.status != "unstable"], {}, color, None, seen)
        if limit is not None:
            ax.axhline(limit * scale, color="#c0392b", lw=1, ls="-.", label="device memory")
        log2_batches(ax, batches)
        if logy:
            plain_log(ax)
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(label(model))
        ax.set_xlabel("batch size [samples]")
        ax.set_ylabel(ylabel)
    fig_legend(fig, axes, _mark_legend(seen))
    return [Plot(id=plot_id, section=title, title=title, caption=caption,
                 svg=to_svg(fig, plot_id))]


def memory_plot(ms: list[Measurement], device_memory: float | None = None) -> list[Plot]:
    values = [P.memory(m) for m in ms if P.memory(m)]
    big = max(values + [device_memory or 0], default=0) >= 4 * 2**30
    unit, scale = ("GiB", 2**-30) if big else ("MiB", 2**-20)
    return _mode_lines(
        ms, P.memory, f"peak memory [{unit}]", "memory", "Memory against batch size",
        "Peak memory allocated during a step (solid: training, dashed: inference). Crosses mark "
        "batches that ran out of memory.", scale=scale, logy=True, limit=device_memory)


def mfu_plot(ms: list[Measurement]) -> list[Plot]:
    return _mode_lines(
        ms, P.mfu, "MFU [% of peak FLOP/s]", "mfu", "Model FLOP utilisation",
        "Achieved FLOP/s (the model's counted FLOPs per sample × samples/s) as a share of the "
        "device's peak for the precision used.", scale=100.0)


def framework_plot(ms: list[Measurement]) -> list[Plot]:
    """One line per framework, per network and mode, when the run compares frameworks."""
    single = [m for m in P.single_worker(ms) if P.measured(m)]
    if len(P.frameworks(single)) < 2:
        return []
    panels = []
    for model in P.models(single):
        for mode in MODES:
            pts = [m for m in single if m.workload.model == model and m.workload.mode == mode]
            if len({m.workload.framework for m in pts}) < 2:
                continue
            # Compare like with like: the precision most frameworks ran, default layout, eager.
            count = defaultdict(set)
            for m in pts:
                count[m.workload.precision].add(m.workload.framework)
            prec = max(count, key=lambda p: (len(count[p]), p == "fp32"))
            chosen = [m for m in pts if m.workload.precision == prec]
            # Per framework its plainest points: default layout, uncompiled where it has them
            # (JAX runs only jitted, so its points are all compiled and stay in).
            picked = []
            for fw in P.frameworks(chosen):
                own = [m for m in chosen if m.workload.framework == fw]
                for want in ((False, False), (False, True), (True, False), (True, True)):
                    sel = [m for m in own if (m.workload.channels_last, m.workload.compile) == want]
                    if sel:
                        picked += sel
                        break
            panels.append((model, mode, prec, picked or chosen))
    if not panels:
        return []
    fig, axes = new_figure(len(panels))
    for ax, (model, mode, prec, pts) in zip(axes, panels):
        for j, fw in enumerate(P.frameworks(pts)):
            line = sorted((m for m in pts if m.workload.framework == fw),
                          key=lambda m: m.workload.batch_size)
            by_batch = {m.workload.batch_size: m for m in line}  # one point per batch
            xs = sorted(by_batch)
            ax.plot(xs, [P.rate(by_batch[b]) for b in xs], marker="o", color=color_for("", j),
                    label=label(fw))
            band = [(b, *P.rate_ci(by_batch[b])) for b in xs]
            band = [(b, lo, hi) for b, lo, hi in band if lo is not None and hi is not None]
            if len(band) >= 2:
                bx, lo, hi = zip(*band)
                ax.fill_between(bx, lo, hi, color=color_for("", j), alpha=0.18, lw=0)
        log2_batches(ax, [m.workload.batch_size for m in pts])
        ax.set_ylim(bottom=0)
        ax.set_title(label(f"{model} · {mode} · {prec}"))
        ax.set_xlabel("batch size [samples]")
        ax.set_ylabel("throughput [samples/s]")
    fig_legend(fig, axes)
    return [Plot(id="frameworks", section="Frameworks", title="Throughput by framework",
                 caption="The same network and precision run by each framework; bands are 95 % "
                         "confidence intervals of the median.", svg=to_svg(fig, "frameworks"))]
