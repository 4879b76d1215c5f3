"""Language models in the report: tokens/s and MFU against batch × sequence length, per phase
(prefill, decode, training), one line per sequence length, and a table of the same points.

A point is a language model's when its stats carry `seq_len` (measure/lm.py stores it with
tokens/s); the report reads only records, never the zoo, so it stays free of torch. The x axis is
the tokens a step holds, batch × S: what fills the GPU (or the CPU's caches) in the prefill and in
training, and the size of the key/value cache a decode step reads. The sample-based throughput
plots leave these points out: there a batch of 1 × 2,048 tokens and one of 1 × 128 would share a
curve.
"""

from __future__ import annotations

from nnscale.records import Measurement
from nnscale.report import points as P
from nnscale.report.document import Plot, Table
from nnscale.report.svg import color_for, fig_legend, label, log2_batches, new_figure, to_svg
from nnscale.report.tables import fmt, mem, pct

PHASES = ("prefill", "decode", "training")


def is_lm_point(m: Measurement) -> bool:
    return P.num(m.stats.throughput.seq_len) is not None


def _phase(m: Measurement) -> str:
    return str(m.stats.throughput.lm_phase or ("training" if m.workload.mode == "training" else
                                           "decode" if m.workload.mode == "decode" else "prefill"))


def _tokens(m: Measurement) -> int:
    return m.workload.batch_size * int(m.stats.throughput.seq_len)


def _series(ms: list[Measurement]) -> dict[tuple[str, str], dict[int, list[Measurement]]]:
    """(model, phase) -> sequence length -> measured points sorted by batch × S."""
    out: dict[tuple[str, str], dict[int, list[Measurement]]] = {}
    for m in P.single_worker(ms):
        if is_lm_point(m) and P.measured(m):
            out.setdefault((m.workload.model, _phase(m)), {}).setdefault(int(m.stats.throughput.seq_len), []).append(m)
    for by_seq in out.values():
        for pts in by_seq.values():
            pts.sort(key=_tokens)
    return out


def _plot(ms: list[Measurement], value, ylabel: str, kind: str, scale: float = 1.0) -> list[Plot]:
    series = _series(ms)
    plots = []
    for i, model in enumerate(dict.fromkeys(k[0] for k in series)):
        panels = [(phase, series[(model, phase)]) for phase in PHASES if (model, phase) in series
                  and any(value(m) is not None for pts in series[(model, phase)].values() for m in pts)]
        if not panels:
            continue
        fig, axes = new_figure(len(panels), ncols=3, width=4.4, height=3.4)
        for ax, (phase, by_seq) in zip(axes, panels):
            xs = []
            for j, seq in enumerate(sorted(by_seq)):
                pts = [m for m in by_seq[seq] if value(m) is not None]
                if pts:
                    xs += [_tokens(m) for m in pts]
                    ax.plot([_tokens(m) for m in pts], [scale * value(m) for m in pts], marker="o",
                            color=color_for("", j), label=label(f"S = {seq}"))
            log2_batches(ax, xs)  # ticks at the measured batch × S, as plain numbers
            ax.set_ylim(bottom=0)
            ax.set_title(label(f"{model} · {phase}"))
            ax.set_xlabel("batch × sequence length [tokens]")
            ax.set_ylabel(ylabel)
        fig_legend(fig, axes)
        safe = "".join(c if c.isalnum() else "-" for c in model.lower()).strip("-")[:40]
        pid = f"lm-{kind}-{safe}-{i}"
        caption = ("Median tokens per second of one worker: batch × S per step for the prefill and "
                   "training, batch (one token per sequence) for decode." if kind == "tokens" else
                   "Model FLOPs utilisation: FlopCounterMode's FLOPs per sequence "
                   "(nnscale stats MODEL --seq-len S) × sequences/s over the device's measured peak.")
        plots.append(Plot(id=pid, section="Language models",
                          title=f"{model}: {'tokens/s' if kind == 'tokens' else 'MFU'} against batch × "
                                "sequence length",
                          caption=caption, svg=to_svg(fig, pid)))
    return plots


def lm_plots(ms: list[Measurement]) -> list[Plot]:
    """Tokens/s, then MFU where known, against batch × S for every language model of the run."""
    return (_plot(ms, lambda m: P.num(m.stats.throughput.tokens_per_s), "throughput [tokens/s]", "tokens")
            + _plot(ms, P.mfu, "MFU [%]", "mfu", scale=100.0))


LM_COLUMNS = (
    ("model", "network"), ("phase", "phase"), ("seq_len", "S"), ("batch_size", "batch"),
    ("tokens", "batch × S"), ("precision", "precision"), ("checkpointing", "act. ckpt"),
    ("status", "status"), ("tokens_per_s", "tokens/s"), ("ci", "95 % CI"),
    ("per_sequence", "tokens/s per sequence"), ("mfu", "MFU"), ("memory", "peak memory"),
)


def lm_table(ms: list[Measurement]) -> Table:
    """Every language-model point of one worker, in phase, S, batch order."""
    pts = [m for m in P.single_worker(ms) if is_lm_point(m)]
    pts.sort(key=lambda m: (m.workload.model, PHASES.index(_phase(m)) if _phase(m) in PHASES else 9,
                            int(m.stats.throughput.seq_len), m.workload.batch_size))
    raw, rows = [], []
    for m in pts:
        s = m.stats.throughput
        r = {"model": m.workload.model, "phase": _phase(m), "seq_len": int(s.seq_len),
             "batch_size": m.workload.batch_size, "tokens": _tokens(m), "precision": m.workload.precision,
             "checkpointing": m.workload.activation_checkpointing, "status": m.status,
             "tokens_per_s": P.num(s.tokens_per_s), "ci_low": P.num(s.tokens_per_s_ci_low),
             "ci_high": P.num(s.tokens_per_s_ci_high),
             "per_sequence": P.num(s.tokens_per_s_per_sequence), "mfu": P.mfu(m),
             "memory": P.memory(m)}
        raw.append(r)
        ci = "–" if r["ci_low"] is None or r["ci_high"] is None else f"{fmt(r['ci_low'])} – {fmt(r['ci_high'])}"
        rows.append(dict(r, checkpointing="yes" if r["checkpointing"] else "no",
                         tokens_per_s=fmt(r["tokens_per_s"]), ci=ci, per_sequence=fmt(r["per_sequence"]),
                         mfu=pct(r["mfu"], 2), memory=mem(r["memory"])))
    return Table("lm", "Language models: tokens/s and MFU against batch × sequence length", LM_COLUMNS,
                 tuple(rows), raw=tuple(raw),
                 note="Prefill: one forward pass over S tokens that builds the key/value cache; decode: "
                      "one token per sequence and step attending to S − 1 cached ones; training: "
                      "forward, next-token cross-entropy, backward, SGD. MFU counts attention over "
                      "the full S × S scores (the PaLM convention, docs/transformers.md).",
                 numeric=frozenset({"seq_len", "batch_size", "tokens", "tokens_per_s", "per_sequence",
                                    "mfu", "memory"}))
