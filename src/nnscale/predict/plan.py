"""`plan`: every valid DP x FSDP x TP x PP layout of a language model on N GPUs, ranked.

A layout is valid when DP·TP·PP = N, TP divides the GPUs of a node and the model's query and
key/value heads (Megatron splits attention by heads), PP·v divides the layers, and the global batch
splits into whole micro-batches on every data-parallel rank. Each is predicted with
`memory.memory_per_gpu` and `layout.step_time`; the ones that fit rank by tokens/s, and every other
one says why it loses: it does not fit, or the term that costs it most against the best layout
(bubble, tensor-parallel or FSDP communication, gradient all-reduce, recomputation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nnscale.errors import UserError
from nnscale.predict.layout import Cluster, StepTerms, Training, step_time
from nnscale.predict.memory import GIB, Layout, MemoryBreakdown, memory_per_gpu
from nnscale.zoo.lm_shapes import LMShape


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, slots=True)
class Candidate:
    layout: Layout
    micro_batch: int
    recompute: str
    memory: MemoryBreakdown
    terms: StepTerms | None  # None where the layout does not fit (it is not timed)

    def row(self) -> dict:
        r = {"layout": self.layout.label(), "dp": self.layout.dp, "fsdp": self.layout.fsdp,
             "tp": self.layout.tp, "pp": self.layout.pp, "v": self.layout.v,
             "micro_batch": self.micro_batch, "recompute": self.recompute,
             "memory_gib": self.memory.total / GIB, "fits": self.memory.fits}
        if self.terms is not None:
            t = self.terms
            r.update(tokens_per_s=t.tokens_per_s, tokens_per_s_per_gpu=t.tokens_per_s_per_gpu,
                     mfu=t.mfu, step_s=t.step_s, bubble_s=t.bubble_s, tp_s=t.tp_s + t.pp_s,
                     fsdp_exposed_s=t.fsdp_exposed_s, dp_exposed_s=t.dp_exposed_s,
                     recompute_s=t.recompute_s, limited_by=t.limited_by())
        return r


def recompute_modes(shape: LMShape) -> tuple[str, ...]:
    """Checkpointing to try: with a fused attention kernel (Llama) Korthikanti's selective mode
    saves nothing, so torchtitan's op-level policy stands for 'selective' there."""
    return ("none", "selective-op", "full") if shape.arch == "llama" else ("none", "selective", "full")


def enumerate_layouts(shape: LMShape, gpus: int, gpus_per_node: int, global_batch: int,
                      tp: int | None = None, pp: int | None = None, dp: int | None = None,
                      micro_batches: tuple[int, ...] | None = None):
    """(layout, micro_batch) pairs, in a fixed order; a fixed tp/pp/dp restricts them."""
    check_fixed(shape, gpus, gpus_per_node, tp, pp, dp)
    for t in divisors(gpus_per_node):
        if t > gpus or shape.num_heads % t or shape.num_kv_heads % t or (tp and t != tp):
            continue
        for p in divisors(shape.num_layers):
            if gpus % (t * p) or (pp and p != pp):
                continue
            d = gpus // (t * p)
            if (dp and d != dp) or global_batch % d:
                continue
            per_rank = global_batch // d
            shards = sorted({1, d} | ({gpus_per_node // t} if d % max(1, gpus_per_node // t) == 0
                                      and gpus_per_node // t > 1 else set()))
            chunks = [1] + ([2] if p > 1 and shape.num_layers % (2 * p) == 0 else [])
            bs = [b for b in divisors(per_rank) if b <= 64]
            if micro_batches:
                bs = [b for b in micro_batches if per_rank % b == 0]
            for f in shards:
                for v in chunks:
                    for b in bs:
                        yield Layout(dp=d, tp=t, pp=p, fsdp=f, v=v), b


def check_fixed(shape: LMShape, gpus: int, gpus_per_node: int, tp, pp, dp) -> None:
    """One-line errors for a layout the user fixed that cannot be."""
    if tp is not None:
        if shape.num_heads % tp or shape.num_kv_heads % tp:
            raise UserError(f"--tp {tp} must divide {shape.name}'s {shape.num_heads} attention heads "
                            f"and {shape.num_kv_heads} key/value heads")
        if tp > gpus_per_node:
            raise UserError(f"--tp {tp} is more than the {gpus_per_node} GPUs of a node "
                            "(tensor parallelism stays on NVLink)")
    if pp is not None and (pp > shape.num_layers or shape.num_layers % pp):
        raise UserError(f"--pp {pp} must divide {shape.name}'s {shape.num_layers} layers")
    fixed = [x for x in (tp, pp, dp) if x is not None]
    product = 1
    for x in fixed:
        product *= x
    if len(fixed) == 3 and product != gpus:
        raise UserError(f"--dp {dp} x --tp {tp} x --pp {pp} = {product}, not the {gpus} GPUs of --gpus")
    if fixed and gpus % product:
        raise UserError(f"the fixed degrees multiply to {product}, which does not divide {gpus} GPUs")


def plan(shape: LMShape, cluster: Cluster, gpus: int, train: Training, tp=None, pp=None, dp=None,
         micro_batches=None, recompute: tuple[str, ...] | None = None) -> list[Candidate]:
    """Every candidate, fitting ones first by tokens/s, then the others by memory."""
    capacity = cluster.device.memory_bytes
    out = []
    for layout, b in enumerate_layouts(shape, gpus, cluster.gpus_per_node, train.global_batch,
                                       tp, pp, dp, micro_batches):
        for mode in recompute or recompute_modes(shape):
            t = replace(train, micro_batch=b, recompute=mode)
            m = t.micro_batches(layout)
            mem = memory_per_gpu(shape, layout, t.seq_len, b, m, mode, capacity_bytes=capacity)
            terms = step_time(shape, layout, cluster, t) if mem.fits else None
            out.append(Candidate(layout, b, mode, mem, terms))
    if not out:
        raise UserError(f"no layout of {shape.name} fits {gpus} GPUs with global batch "
                        f"{train.global_batch}: it must be a multiple of the data-parallel degree")
    return sorted(out, key=lambda c: (c.terms is None,
                                      -c.terms.tokens_per_s if c.terms else c.memory.total))


_TERMS = (("bubble_s", "pipeline bubble"), ("tp_s", "tensor-parallel communication"),
          ("fsdp_exposed_s", "FSDP communication"), ("dp_exposed_s", "gradient all-reduce"),
          ("recompute_s", "recomputation"))


def why_it_loses(c: Candidate, best: Candidate) -> str:
    """The reason a candidate ranks below `best`, in a few words."""
    if c.terms is None:
        return f"does not fit: {c.memory.total / GIB:.1f} GiB > {c.memory.capacity / GIB:.1f} GiB"
    if c is best:
        return "best"
    rc, rb = c.row(), best.row()
    deltas = [(rc[k] - rb[k], name) for k, name in _TERMS]
    extra, name = max(deltas)
    slower = c.terms.step_s / c.terms.tokens_per_step - best.terms.step_s / best.terms.tokens_per_step
    if extra <= 0 or slower <= 0:
        return "compute (smaller micro-batch or more work per GPU)"
    return f"{name} (+{100 * extra / best.terms.step_s:.0f} % of the best step)"
