"""Memory per GPU of a decoder-only language model trained with DP x FSDP x TP x PP.

Pure arithmetic over `LMShape` (nnscale.zoo.lm_shapes); bytes throughout. docs/prediction.md
("Layouts of language models") explains every term.

Model states (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models", section 3.1): mixed-precision Adam keeps 2 bytes of bf16/fp16 parameters, 2 of
gradients and K = 12 of optimizer states (fp32 master copy, momentum, variance) per parameter:
2 + 2 + 12 = 16 bytes. ZeRO stage 1 shards the 12, stage 2 also the gradients, stage 3 (= FSDP's
FULL_SHARD) also the parameters, each over the sharding degree. fp32 training keeps 4 + 4 + 8.
Tensor parallelism divides every matrix by t (Shoeybi et al. 2019), a pipeline stage holds L/p
layers (the first stage also the input embedding, the last the output projection).

Activations per layer and micro-batch, in bytes, from the tensors autograd keeps (Korthikanti et al.
2022, "Reducing Activation Recomputation in Large Transformer Models", section 4): for the GPT-3
block s·b·h·(34 + 5·a·s/h), split into the part tensor parallelism shards (24 + 5as/h: inside the
attention and MLP) and the part it replicates (10: norm inputs, inputs of the column-parallel
matrices, dropout masks), which sequence parallelism shards too. The same derivation is applied to
the Llama block (RMSNorm, grouped-query attention with kv_dim, SwiGLU with three matrices, no
dropout) and to fused attention kernels, which keep no s x s matrix (Dao et al. 2022,
FlashAttention). Checkpointing modes:
- "none": every tensor above;
- "selective": Korthikanti's: the attention core (the s x s terms) is recomputed;
- "selective-op": torchtitan's op-level policy (torchtitan/models/llama3/infra/parallelize.py,
  `_custom_policy`: "saves output of all compute ops, except every second mm"): keeps the layer input,
  attention's output and every other matrix product's output;
- "full": keeps only each layer's input (2sbh, /t with sequence parallelism).
The backward of one layer needs that layer's full activations back (recomputed under checkpointing):
one more layer's worth is counted as working memory.

Under 1F1B (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM", section 2.2) the first stage holds min(p, m) micro-batches in flight; the
interleaved schedule with v chunks holds (1 + (p-1)/(p·v)) times as much (their section 2.2.2).
The output layer keeps the logits (bf16) and the loss's fp32 copy and gradient: 2 + 4 + 4 bytes
per vocabulary entry and token, vocabulary-parallel over t (Megatron's parallel cross-entropy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nnscale.errors import UserError
from nnscale.zoo.lm_shapes import LMShape, lm_shape

RECOMPUTE = ("none", "selective", "selective-op", "full")
# Bytes per parameter of (weights, gradients, optimizer states): ZeRO section 3.1.
STATE_BYTES = {"bf16": (2, 2, 12), "fp16": (2, 2, 12), "fp32": (4, 4, 8)}
LOGIT_BYTES = 2 + 4 + 4  # bf16 logits, their fp32 copy for the loss, the fp32 gradient
GIB = 2**30


def shape_by_name(name: str) -> LMShape:
    """The zoo's shape for `name`, or a one-line UserError naming the known ones."""
    from nnscale.zoo.lm_shapes import LM_SHAPES

    shape = lm_shape(name)
    if shape is None:
        raise UserError(f"unknown language model {name!r}; known: {', '.join(LM_SHAPES)}")
    return shape


@dataclass(frozen=True, slots=True)
class Layout:
    """A parallel layout: dp data-parallel ranks (of which groups of `fsdp` shard the model states,
    ZeRO stage `zero`), tp tensor-parallel ranks, pp pipeline stages of `v` chunks each."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    fsdp: int = 1  # sharding degree inside dp (dp // fsdp replicas: HSDP when 1 < fsdp < dp)
    v: int = 1  # interleaved pipeline chunks per stage (1 = plain 1F1B)
    sequence_parallel: bool = True  # Korthikanti's sequence parallelism alongside TP

    @property
    def gpus(self) -> int:
        return self.dp * self.tp * self.pp

    @property
    def zero(self) -> int:
        """ZeRO stage of the sharding: FSDP's FULL_SHARD is stage 3; no sharding is DDP (0)."""
        return 3 if self.fsdp > 1 else 0

    def label(self) -> str:
        parts = [f"DP {self.dp}" if self.fsdp == 1 else
                 (f"FSDP {self.fsdp}" if self.fsdp == self.dp else f"HSDP {self.dp // self.fsdp}x{self.fsdp}")]
        if self.tp > 1:
            parts.append(f"TP {self.tp}")
        if self.pp > 1:
            parts.append(f"PP {self.pp}" + (f" v{self.v}" if self.v > 1 else ""))
        return " x ".join(parts)

    def check(self, shape: LMShape) -> None:
        """One-line UserError for a layout the model cannot be split into."""
        for name in ("dp", "tp", "pp", "fsdp", "v"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.dp % self.fsdp:
            raise UserError(f"FSDP degree {self.fsdp} must divide the data-parallel degree {self.dp}")
        if shape.num_heads % self.tp or shape.num_kv_heads % self.tp:
            raise UserError(f"TP {self.tp} must divide {shape.name}'s {shape.num_heads} heads and "
                            f"{shape.num_kv_heads} key/value heads")
        if self.pp * self.v > shape.num_layers or shape.num_layers % (self.pp * self.v):
            raise UserError(f"a pipeline of {self.pp} stages x {self.v} chunks must divide "
                            f"{shape.name}'s {shape.num_layers} layers")


def stage_params(shape: LMShape, layout: Layout) -> int:
    """Parameters one GPU of the most loaded pipeline stage holds before FSDP sharding."""
    per_stage_layers = shape.num_layers // layout.pp * shape.params_per_layer()
    first = shape.params_embedding()
    last = shape.params_lm_head() + shape.params_final_norm()
    if layout.pp == 1:
        edge = first + last
    else:  # the heavier of the first and last stage; a tied head is a copy on the last stage
        last += shape.vocab_size * shape.hidden_size if shape.tied_embeddings else 0
        edge = max(first, last)
    return -(-(per_stage_layers + edge) // layout.tp)


def state_bytes(params: int, layout: Layout, precision: str = "bf16", zero: int | None = None) -> dict:
    """Weights, gradients and optimizer states of `params` parameters on one GPU (ZeRO sharding)."""
    if precision not in STATE_BYTES:
        raise UserError(f"precision {precision!r}: the memory model knows {', '.join(STATE_BYTES)}")
    w, g, o = STATE_BYTES[precision]
    stage = layout.zero if zero is None else zero
    shard = layout.fsdp if layout.fsdp > 1 else layout.dp
    return {"weights": params * w / (shard if stage >= 3 else 1),
            "gradients": params * g / (shard if stage >= 2 else 1),
            "optimizer": params * o / (shard if stage >= 1 else 1)}


def activation_terms(shape: LMShape, flash: bool) -> tuple[float, float, float, float]:
    """(replicated, sharded, score, every-other-mm) bytes per token of one layer without
    checkpointing: `replicated` is what TP keeps whole (sequence parallelism shards it), `sharded`
    what TP divides, `score` the s x s terms per unit of a·s (0 with a fused attention kernel), and
    the bytes of the products the selective-op policy recomputes."""
    h, f, kv = shape.hidden_size, shape.ffn_hidden_size, shape.kv_dim
    if shape.arch == "gpt2":  # Korthikanti's block: LayerNorm, GELU MLP, dropout after attention and MLP
        replicated = 2 * h + 2 * h + h + 2 * h + 2 * h + h  # LN1 in, QKV in, mask, LN2 in, fc1 in, mask
        sharded = 4 * h + 2 * h + 2 * h + 2 * f + 2 * f  # Q, K, V, proj in, GELU in, fc2 in
        score = 0.0 if flash else 5.0  # softmax out 2, dropout mask 1, dropout out 2 (x a·s)
        mm_outputs = (2 * (h + 2 * kv), 2 * h, 2 * f, 2 * h)  # fused QKV, proj, fc1, fc2
    else:  # Llama: RMSNorm, GQA, SwiGLU, no dropout
        replicated = 2 * h + 2 * h + 2 * h + 2 * h  # norm1 in, QKV in, norm2 in, gate/up in
        sharded = 2 * h + 4 * kv + 2 * h + 8 * f  # Q, K and V, attention out, gate, up, silu, product
        score = 0.0 if flash else 5.0
        mm_outputs = (2 * h, 2 * kv, 2 * kv, 2 * h, 2 * f, 2 * f, 2 * h)  # q, k, v, o, gate, up, down
    # The policy recomputes the 2nd, 4th, ... product of each layer; its other outputs are kept.
    recomputed_mm = sum(mm_outputs[1::2])
    return replicated, sharded, score, recomputed_mm


def activation_bytes_per_layer(shape: LMShape, seq_len: int, micro_batch: int, tp: int = 1,
                               sequence_parallel: bool = True, recompute: str = "none",
                               flash: bool | None = None) -> float:
    """Bytes one layer keeps for backward, per micro-batch, on one TP rank."""
    if recompute not in RECOMPUTE:
        raise UserError(f"activation checkpointing {recompute!r}: expected one of {', '.join(RECOMPUTE)}")
    flash = shape.arch == "llama" if flash is None else flash
    tokens = seq_len * micro_batch
    h = shape.hidden_size
    repl, shard, score, recomputed_mm = activation_terms(shape, flash)
    repl_div = tp if (sequence_parallel and tp > 1) else 1
    if recompute == "full":
        return 2 * h * tokens / repl_div
    score_bytes = score * shape.num_heads * seq_len  # per token: a·s entries of the score matrices
    if recompute in ("selective", "selective-op"):
        score_bytes = 0.0  # the attention core is recomputed (fused kernels never keep it)
    per_token = repl / repl_div + (shard + score_bytes) / tp
    if recompute == "selective-op":
        # Kept: the layer input, attention's output and every other product; elementwise results
        # (norms, SiLU, products) are recomputed from them.
        kept = 2 * h + 2 * h + (_mm_total(shape) - recomputed_mm)
        per_token = 2 * h / repl_div + (kept - 2 * h) / tp
    return per_token * tokens


def _mm_total(shape: LMShape) -> float:
    h, f, kv = shape.hidden_size, shape.ffn_hidden_size, shape.kv_dim
    if shape.arch == "gpt2":
        return 2 * (h + 2 * kv) + 2 * h + 2 * f + 2 * h
    return 2 * h + 4 * kv + 2 * h + 4 * f + 2 * h


def in_flight(layout: Layout, micro_batches: int) -> float:
    """Micro-batches whose activations the first pipeline stage holds at its peak (1F1B)."""
    if layout.pp == 1:
        return 1.0
    held = min(layout.pp, micro_batches)
    return held * (1 + (layout.pp - 1) / (layout.pp * layout.v)) if layout.v > 1 else float(held)


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    """Bytes per GPU of the most loaded rank."""

    weights: float
    gradients: float
    optimizer: float
    unsharded: float  # FSDP: the gathered layers (the current one and the prefetched next)
    activations: float  # checkpointed activations of every layer and micro-batch in flight
    working: float  # one layer's full activations, rebuilt for its backward
    logits: float
    capacity: float

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.unsharded + self.activations
                + self.working + self.logits)

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def to_dict(self) -> dict:
        return dict(asdict(self), total=self.total, fits=self.fits)


def memory_per_gpu(shape: LMShape, layout: Layout, seq_len: int, micro_batch: int,
                   micro_batches: int = 1, recompute: str = "none", precision: str = "bf16",
                   capacity_bytes: float = float("inf"), flash: bool | None = None,
                   zero: int | None = None) -> MemoryBreakdown:
    """Peak memory of one GPU for `layout` (see the module docstring)."""
    params = stage_params(shape, layout)
    states = state_bytes(params, layout, precision, zero)
    weight_bytes = STATE_BYTES.get(precision, (2,))[0]
    stage = layout.zero if zero is None else zero
    # FSDP gathers one layer (and prefetches the next) at a time: two layers unsharded.
    unsharded = (2 * shape.params_per_layer() / layout.tp * weight_bytes) if stage >= 3 else 0.0
    layers = shape.num_layers // layout.pp
    per_layer = activation_bytes_per_layer(shape, seq_len, micro_batch, layout.tp,
                                           layout.sequence_parallel, recompute, flash)
    activations = per_layer * layers * in_flight(layout, micro_batches)
    working = 0.0
    if recompute != "none":
        working = activation_bytes_per_layer(shape, seq_len, micro_batch, layout.tp,
                                             layout.sequence_parallel, "none", flash)
    logits = seq_len * micro_batch * shape.vocab_size / layout.tp * LOGIT_BYTES
    return MemoryBreakdown(states["weights"], states["gradients"], states["optimizer"], unsharded,
                           activations, working, logits, capacity_bytes)


def largest_micro_batch(shape: LMShape, layout: Layout, seq_len: int, capacity_bytes: float,
                        micro_batches_for=None, limit: int = 4096, **kw) -> int:
    """The largest micro-batch (sequences) that fits `capacity_bytes`, 0 if none does.
    `micro_batches_for(b)` gives the number of micro-batches at micro-batch b (default 1)."""
    def fits(b: int) -> bool:
        m = micro_batches_for(b) if micro_batches_for else 1
        return memory_per_gpu(shape, layout, seq_len, b, m, capacity_bytes=capacity_bytes, **kw).fits

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:  # memory grows with b: bisect between the last fit and the first miss
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
