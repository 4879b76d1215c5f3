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
The output layer: the final norm's input and output, the logits (bf16) and, at the start of
backward, the loss's fp32 log-softmax, its gradient and the logits' fp32 gradient: 2 + 4 + 4 + 4
bytes per vocabulary entry and token, vocabulary-parallel over t (Megatron's parallel cross-entropy).
Buffers: FSDP holds two gathered layers (the current one and the prefetched next) and one layer's
unsharded gradients for its reduce-scatter (and with `fsdp_root_gathered`, the root unit's
embedding and output, which FSDP2 keeps gathered when the model itself is the last unit sharded,
as nnscale's FSDP step does; torchtitan shards them as units of their own); PyTorch DDP's default buckets are a second copy of the
gradients (DistributedDataParallel's `gradient_as_bucket_view=False`; the docs: True "saves a
copy of gradients"), Megatron's contiguous buffer is not (`ddp_bucket_copy`).
The peak: gradients set to None by zero_grad are made during backward as it frees the activations,
so with one micro-batch per step the peak is the larger of the start of backward (activations and
the output layer's gradient) and its end (all gradients); with accumulation, pipelining or
persistent gradient buffers everything is counted at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nnscale.errors import UserError
from nnscale.zoo.lm_shapes import LMShape, lm_shape

RECOMPUTE = ("none", "selective", "selective-op", "full")
# Bytes per parameter of (weights, gradients, optimizer states) with Adam: ZeRO section 3.1 (mixed
# precision keeps an fp32 master copy, momentum and variance: K = 12; fp32 training only m and v).
STATE_BYTES = {"bf16": (2, 2, 12), "fp16": (2, 2, 12), "fp32": (4, 4, 8)}
# SGD with momentum keeps one fp32 buffer per parameter (plus the master copy in mixed precision).
SGD_STATE_BYTES = {"bf16": 8, "fp16": 8, "fp32": 4}
OPTIMIZERS = ("adam", "sgd-momentum")
ACT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# Logits and the loss at the start of backward, per vocabulary entry and token: the logits (the
# caller holds them), log-softmax's fp32 output that cross-entropy keeps, its gradient and the
# gradient of the fp32 logits (checked with autograd's saved-tensor hooks, docs/prediction.md).
LOGIT_BYTES = {"bf16": 2 + 4 + 4 + 4, "fp16": 2 + 4 + 4 + 4, "fp32": 4 + 4 + 4 + 4}
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


def state_bytes(params: int, layout: Layout, precision: str = "bf16", zero: int | None = None,
                optimizer: str = "adam") -> dict:
    """Weights, gradients and optimizer states of `params` parameters on one GPU (ZeRO sharding)."""
    if precision not in STATE_BYTES:
        raise UserError(f"precision {precision!r}: the memory model knows {', '.join(STATE_BYTES)}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer {optimizer!r}: the memory model knows {', '.join(OPTIMIZERS)}")
    w, g, o = STATE_BYTES[precision]
    o = o if optimizer == "adam" else SGD_STATE_BYTES[precision]
    stage = layout.zero if zero is None else zero
    shard = layout.fsdp if layout.fsdp > 1 else layout.dp
    return {"weights": params * w / (shard if stage >= 3 else 1),
            "gradients": params * g / (shard if stage >= 2 else 1),
            "optimizer": params * o / (shard if stage >= 1 else 1)}


def activation_terms(shape: LMShape, flash: bool, act_bytes: int = 2,
                     eager: bool = False) -> tuple[float, float, float, float]:
    """(replicated, sharded, score, recomputed-mm) bytes per token of one layer without
    checkpointing: `replicated` is what TP keeps whole (sequence parallelism shards it), `sharded`
    what TP divides, `score` the s x s terms per unit of a·s (0 with a fused attention kernel), and
    the bytes of the products the selective-op policy recomputes. Activations take `act_bytes`
    (2 in bf16, 4 in fp32), dropout masks 1 byte (CUDA's fused dropout). `eager`: unfused
    elementwise ops, as Hugging Face's modules run on CPU (checked tensor by tensor with
    autograd's saved-tensor hooks, docs/prediction.md): GPT-2's tanh GELU keeps 3 more tensors of
    the MLP's width (tanh's output, 0.5·x, 1 + tanh), RMSNorm its normalised input before the
    weight, and dropout multiplies by a float noise tensor (a mask of `act_bytes`)."""
    h, f, kv, e = shape.hidden_size, shape.ffn_hidden_size, shape.kv_dim, act_bytes
    mask = e if eager else 1
    if shape.arch == "gpt2":  # Korthikanti's block: LayerNorm, GELU MLP, dropout after attention and MLP
        replicated = e * 4 * h + 2 * mask * h  # LN1 in, QKV in, LN2 in, fc1 in; two dropout masks
        sharded = e * (3 * h + h + f + f + (3 * f if eager else 0))  # Q K V, proj in, GELU in, fc2 in
        score = 0.0 if flash else 2 * e + mask  # softmax out, dropout mask, dropout out (x a·s)
        mm_outputs = (e * (h + 2 * kv), e * h, e * f, e * h)  # fused QKV, proj, fc1, fc2
    else:  # Llama: RMSNorm, GQA, SwiGLU, no dropout
        replicated = e * (4 * h + (2 * h if eager else 0))  # norm1 in, QKV in, norm2 in, MLP in
        sharded = e * (h + 2 * kv + h + 4 * f)  # Q, K and V, attention out, gate, up, SiLU, product
        score = 0.0 if flash else 2 * e
        mm_outputs = (e * h, e * kv, e * kv, e * h, e * f, e * f, e * h)  # q, k, v, o, gate, up, down
    # The policy recomputes the 2nd, 4th, ... product of each layer; its other outputs are kept.
    recomputed_mm = sum(mm_outputs[1::2])
    return replicated, sharded, score, recomputed_mm


def activation_bytes_per_layer(shape: LMShape, seq_len: int, micro_batch: int, tp: int = 1,
                               sequence_parallel: bool = True, recompute: str = "none",
                               flash: bool | None = None, act_bytes: int = 2,
                               eager: bool = False) -> float:
    """Bytes one layer keeps for backward, per micro-batch, on one TP rank."""
    if recompute not in RECOMPUTE:
        raise UserError(f"activation checkpointing {recompute!r}: expected one of {', '.join(RECOMPUTE)}")
    # Fused attention by default where there is no attention dropout (Llama); SDPA with dropout
    # takes its math path on CPU, and Megatron of 2022 had no fused attention.
    flash = shape.arch == "llama" if flash is None else flash
    tokens = seq_len * micro_batch
    h, e = shape.hidden_size, act_bytes
    repl, shard, score, recomputed_mm = activation_terms(shape, flash, act_bytes, eager)
    repl_div = tp if (sequence_parallel and tp > 1) else 1
    if recompute == "full":
        return e * h * tokens / repl_div
    if recompute == "selective-op":
        # Kept: the layer input, attention's output and every other product; elementwise results
        # (norms, activations, products) are recomputed from them.
        kept = e * h + (_mm_total(shape, e) - recomputed_mm)
        return (e * h / repl_div + kept / tp) * tokens
    score_bytes = score * shape.num_heads * seq_len  # per token: a·s entries of the score matrices
    if recompute == "selective":
        score_bytes = 0.0  # the attention core is recomputed (fused kernels never keep it)
    return (repl / repl_div + (shard + score_bytes) / tp) * tokens


def _mm_total(shape: LMShape, e: int) -> float:
    h, f, kv = shape.hidden_size, shape.ffn_hidden_size, shape.kv_dim
    if shape.arch == "gpt2":
        return e * ((h + 2 * kv) + h + f + h)
    return e * (h + 2 * kv + h + 2 * f + h)


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
    buffers: float  # FSDP's gathered layers and reduce-scatter input; DDP's bucket copy
    activations: float  # checkpointed activations of every layer and micro-batch in flight
    working: float  # one layer's full activations, rebuilt for its backward
    logits: float
    capacity: float
    early_gradients: float = 0.0  # the output layer's gradient, made first in backward
    transient_gradients: bool = False  # gradients allocated during backward (zero_grad to None)

    @property
    def total(self) -> float:
        """The peak. With transient gradients the larger of the start of backward (every
        activation, the output layer's gradient) and its end (every gradient, no activation):
        backward frees a layer's activations as it makes that layer's gradients, so the sum of
        the two, linear in the layers done, peaks at one end."""
        held = self.weights + self.optimizer + self.buffers
        start = self.activations + self.working + self.logits
        if self.transient_gradients:
            return held + max(start + self.early_gradients, self.gradients)
        return held + start + self.gradients

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def to_dict(self) -> dict:
        return dict(asdict(self), total=self.total, fits=self.fits)


def memory_per_gpu(shape: LMShape, layout: Layout, seq_len: int, micro_batch: int,
                   micro_batches: int = 1, recompute: str = "none", precision: str = "bf16",
                   capacity_bytes: float = float("inf"), flash: bool | None = None,
                   zero: int | None = None, optimizer: str = "adam", eager: bool = False,
                   ddp_bucket_copy: bool = False, fsdp_root_gathered: bool = False,
                   transient_gradients: bool = True) -> MemoryBreakdown:
    """Peak memory of one GPU for `layout` (see the module docstring). `transient_gradients`:
    gradients exist from their backward to `zero_grad(set_to_none=True)` (PyTorch's default since
    2.0); it holds for one micro-batch per step only (accumulation keeps them), and not for
    Megatron's persistent gradient buffer."""
    params = stage_params(shape, layout)
    states = state_bytes(params, layout, precision, zero, optimizer)
    w_bytes, g_bytes, _ = STATE_BYTES[precision]
    stage = layout.zero if zero is None else zero
    layer = shape.params_per_layer() / layout.tp
    if stage >= 3:  # two gathered layers and one layer's unsharded gradients
        buffers = layer * (2 * w_bytes + g_bytes)
        if fsdp_root_gathered:  # `fully_shard(model)` last: the root unit's own parameters
            # (embedding, final norm, output) stay gathered through the step (FSDP2 does not
            # reshard the root after forward), and their gradients are whole until reduced.
            root = (shape.params_embedding() + shape.params_final_norm() + shape.params_lm_head())
            buffers += root / layout.tp * (w_bytes + g_bytes)
    elif ddp_bucket_copy and layout.dp > 1:
        buffers = params * g_bytes
    else:
        buffers = 0.0
    layers = shape.num_layers // layout.pp
    act = dict(flash=flash, act_bytes=ACT_BYTES[precision], eager=eager)
    per_layer = activation_bytes_per_layer(shape, seq_len, micro_batch, layout.tp,
                                           layout.sequence_parallel, recompute, **act)
    activations = per_layer * layers * in_flight(layout, micro_batches)
    working = 0.0
    if recompute != "none":
        working = activation_bytes_per_layer(shape, seq_len, micro_batch, layout.tp,
                                             layout.sequence_parallel, "none", **act)
    e = ACT_BYTES[precision]
    final_norm = (3 if eager and shape.arch == "llama" else 2) * shape.hidden_size * e
    logits = seq_len * micro_batch * (shape.vocab_size / layout.tp * LOGIT_BYTES[precision] + final_norm)
    transient = transient_gradients and micro_batches == 1 and layout.pp == 1
    early = 0.0
    if not (stage >= 3 and fsdp_root_gathered):  # else the root's gradient is in the buffers
        early = shape.vocab_size * shape.hidden_size / layout.tp * g_bytes
    return MemoryBreakdown(states["weights"], states["gradients"], states["optimizer"], buffers,
                           activations, working, logits, capacity_bytes, early, transient)


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
