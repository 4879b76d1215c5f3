"""Step time of a language model trained with DP x FSDP x TP x PP on a cluster from the catalogue.

Pure arithmetic (no torch); seconds, bytes, FLOP. docs/prediction.md ("Layouts of language models")
explains and cites every term. One training step (one optimizer update) of `global_batch` sequences:

- compute: the analytic FLOPs per token (`LMShape.train_flops_per_token`, PaLM's 6N + 12·L·d·s),
  plus recomputation (full: one more forward, x 4/3; Korthikanti's selective: the attention core's
  forward, 4·L·d·s per token; torchtitan's selective-op: every other matrix product's forward),
  on 1/(tp·pp) of the model, at `efficiency` x the device's dense peak. Float8 linear layers run at
  the fp8 peak, twice the bf16 one on Hopper (H100 data sheet: 3,958 fp8 vs 1,979 bf16 TFLOPS, both
  with sparsity). The last pipeline stage also runs the output projection.
- tensor parallelism (Shoeybi et al. 2019, section 3): 2 all-reduces of the b·s·h activations in
  forward and 2 in backward per layer (with sequence parallelism, a reduce-scatter and an all-gather
  each, the same volume: Korthikanti et al. 2022, section 4.2.2), 2 more in full recomputation's
  forward; on the critical path (Megatron of 2022 and torchtitan without AsyncTP do not overlap them);
  inside a node over NVLink when tp <= GPUs per node.
- pipeline (Narayanan et al. 2021, section 2.2): the bubble (p-1)/v micro-batch times for 1F1B with
  v interleaved chunks, and one point-to-point send of the stage boundary's activations per
  micro-batch each way.
- FSDP / ZeRO-3 (Zhao et al. 2023, "PyTorch FSDP", section 3.3; FSDP2 `fully_shard`): per
  micro-batch, an all-gather of the stage's parameters in forward and again in backward, a
  reduce-scatter of the gradients; prefetching hides them behind compute, except what exceeds the
  compute, the first layer's gather (nothing precedes it) and the last reduce-scatter.
- data parallelism across replicas: one all-reduce of the gradients per step after the last
  micro-batch, overlapped with that micro-batch's backward when `dp_overlap` (PyTorch DDP) or exposed.
- the optimizer: Adam reads and writes the sharded states once per step (memory-bound).
- contention and synchronisation, as for CNNs (terms.py, the same global values): compute that a
  collective overlaps runs at 1/(1 + contention) of its speed (Rashidi et al., ISCA 2021), and a
  step ends with the slowest of the GPUs, the expected maximum of N normal step times with the
  catalogue's jitter (Chen et al. 2016). FSDP's gathers at 128 GPUs cross the NICs and overlap
  more of the compute than inside one node: what torchtitan's 8 -> 128 GPU ratio (0.973) loses.
Each collective uses comm.py's ring formulas over the link it crosses: NVLink inside a node; across
nodes the node's NICs, shared by the groups that cross the node boundary at the same time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nnscale.errors import UserError
from nnscale.predict import terms as T
from nnscale.predict.catalogue import Device, Link
from nnscale.predict.comm import ring_allreduce, ring_half
from nnscale.predict.memory import Layout, stage_params
from nnscale.zoo.lm_shapes import LMShape

FP8_SPEEDUP = {"h100": 2.0, "h100-96gb": 2.0, "h200": 2.0}  # fp8 / bf16 dense peak (data sheets)
# Adam's step moves fp32 weights, gradients, m and v in and weights, m, v and a bf16 copy out:
# 4 x 4 read + 3 x 4 + 2 written = 30 bytes per (sharded) parameter.
OPTIMIZER_BYTES_PER_PARAM = 30


@dataclass(frozen=True, slots=True)
class Cluster:
    """GPUs of one kind, `gpus_per_node` to a node joined by `intra`; nodes joined by `inter`
    through `nics_per_node` NICs."""

    device: Device
    intra: Link
    inter: Link | None
    gpus_per_node: int = 8
    nics_per_node: int = 8


@dataclass(frozen=True, slots=True)
class Training:
    """What a step does: sequences, micro-batching, checkpointing, precision and the software's
    achieved fraction of peak on the matrix work (`efficiency`)."""

    seq_len: int
    global_batch: int  # sequences per optimizer step
    micro_batch: int = 1  # sequences per micro-batch per data-parallel rank
    recompute: str = "none"
    efficiency: float = 0.5
    float8: bool = False
    grad_reduce_bytes: int = 4  # bytes per gradient element in reduce-scatter / all-reduce (fp32)
    param_gather_bytes: int = 2  # bytes per parameter in FSDP's all-gather (bf16)
    dp_overlap: bool = True
    terms: T.Terms = T.CATALOGUE  # contention and jitter (terms.py); T.NONE switches them off

    def micro_batches(self, layout: Layout) -> int:
        per_rank, rest = divmod(self.global_batch, layout.dp)
        if rest or per_rank % self.micro_batch or per_rank == 0:
            raise UserError(f"global batch {self.global_batch} must be a multiple of DP {layout.dp} x "
                            f"micro-batch {self.micro_batch}")
        return per_rank // self.micro_batch


@dataclass(frozen=True, slots=True)
class StepTerms:
    """One step's time and where it goes (seconds); `exposed_*` add up with compute to `step_s`."""

    compute_s: float
    recompute_s: float  # part of compute_s
    bubble_s: float
    tp_s: float
    pp_s: float
    fsdp_comm_s: float  # all FSDP traffic, hidden or not
    fsdp_exposed_s: float
    dp_comm_s: float
    dp_exposed_s: float
    optimizer_s: float
    contention_s: float  # compute slowed by the collectives it overlaps
    sync_s: float  # waiting for the slowest GPU
    tokens_per_step: int
    gpus: int
    model_flops_per_token: float
    peak_flops: float

    @property
    def step_s(self) -> float:
        return (self.compute_s + self.bubble_s + self.tp_s + self.pp_s + self.fsdp_exposed_s
                + self.dp_exposed_s + self.optimizer_s + self.contention_s + self.sync_s)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation against the bf16 dense peak (recomputation not counted)."""
        return self.tokens_per_s_per_gpu * self.model_flops_per_token / self.peak_flops

    def limited_by(self) -> str:
        losses = {"bubble": self.bubble_s, "tensor-parallel communication": self.tp_s + self.pp_s,
                  "FSDP communication": self.fsdp_exposed_s, "gradient all-reduce": self.dp_exposed_s,
                  "recomputation": self.recompute_s,
                  "contention and stragglers": self.contention_s + self.sync_s}
        name, worst = max(losses.items(), key=lambda kv: kv[1])
        return name if worst > 0.05 * self.step_s else "compute"

    def to_dict(self) -> dict:
        return dict(asdict(self), step_s=self.step_s, tokens_per_s=self.tokens_per_s,
                    tokens_per_s_per_gpu=self.tokens_per_s_per_gpu, mfu=self.mfu,
                    limited_by=self.limited_by())


def _group_link(cluster: Cluster, size: int, stride: int) -> tuple[float, float]:
    """(alpha, bandwidth) of a ring over `size` ranks placed `stride` apart (TP innermost).

    Inside one node: the intra link. Across nodes: each node holds k of the group's ranks and
    gpus_per_node / (k·stride)... groups cross its boundary at once; NCCL spreads them over the
    node's NICs, so one group gets nics x NIC bandwidth x k·stride / gpus_per_node, capped by NVLink.
    """
    g = cluster.gpus_per_node
    if size * stride <= g:
        return cluster.intra.alpha_s, cluster.intra.effective_bandwidth
    if cluster.inter is None:
        raise UserError(f"a group of {size} ranks spans nodes: an inter-node link is needed")
    per_node = max(1, g // stride)  # this group's ranks in one node
    share = cluster.nics_per_node * cluster.inter.effective_bandwidth * per_node * stride / g
    return max(cluster.intra.alpha_s, cluster.inter.alpha_s), min(cluster.intra.effective_bandwidth, share)


def flops_per_token(shape: LMShape, seq_len: int, recompute: str) -> tuple[float, float]:
    """(model FLOPs, extra FLOPs of recomputation) per token of training."""
    model = shape.train_flops_per_token(seq_len)
    if recompute == "full":
        extra = model / 3
    elif recompute == "selective":  # the attention core's forward: QK^T and AV, 4·d·s per layer
        extra = 4.0 * shape.num_layers * shape.hidden_size * seq_len
    elif recompute == "selective-op":  # every other matrix product of each block, forward (2 FLOP/weight)
        extra = 2.0 * shape.num_layers * _recomputed_mm_weights(shape)
    else:
        extra = 0.0
    return model, extra


def _recomputed_mm_weights(shape: LMShape) -> int:
    h, f, kv = shape.hidden_size, shape.ffn_hidden_size, shape.kv_dim
    if shape.arch == "gpt2":  # fused QKV, proj, fc1, fc2: the 2nd and 4th are recomputed
        return h * h + f * h
    return h * kv + h * h + h * f  # q, k, v, o, gate, up, down: k, o, up


def step_time(shape: LMShape, layout: Layout, cluster: Cluster, train: Training) -> StepTerms:
    """The step of `train` on `cluster` with `layout` (see the module docstring)."""
    layout.check(shape)
    if layout.gpus % cluster.gpus_per_node and layout.gpus > cluster.gpus_per_node:
        raise UserError(f"{layout.gpus} GPUs do not fill nodes of {cluster.gpus_per_node}")
    if layout.tp > cluster.gpus_per_node:
        raise UserError(f"TP {layout.tp} is more than the {cluster.gpus_per_node} GPUs of a node")
    m = train.micro_batches(layout)
    dev, b, s, h = cluster.device, train.micro_batch, train.seq_len, shape.hidden_size
    peak = dev.peak("bf16")
    if train.float8 and dev.name not in FP8_SPEEDUP:
        raise UserError(f"Float8 needs an fp8 tensor core; {dev.name} has none in nnscale's catalogue")
    tokens_mb = b * s

    # Compute of one micro-batch on the slowest (last) stage; linear layers may run in fp8.
    model, extra = flops_per_token(shape, s, train.recompute)
    attn = 12.0 * shape.num_layers * h * s
    linear_speed = FP8_SPEEDUP[dev.name] if train.float8 else 1.0
    per_layer_lin = (model - attn - 6.0 * shape.vocab_size * h) / shape.num_layers
    per_layer_attn = attn / shape.num_layers
    layers = shape.num_layers // layout.pp
    head = 6.0 * shape.vocab_size * h  # output projection on the last stage
    extra_per_layer = extra / shape.num_layers
    rate = train.efficiency * peak
    lin, att = layers * per_layer_lin + head, layers * per_layer_attn  # FLOPs per token, this stage
    rec_lin = rec_att = 0.0
    if train.recompute == "full":  # one more forward of every layer
        rec_lin, rec_att = layers * per_layer_lin / 3, layers * per_layer_attn / 3
    elif train.recompute == "selective":
        rec_att = layers * extra_per_layer
    elif train.recompute == "selective-op":
        rec_lin = layers * extra_per_layer
    seconds_per_flop = tokens_mb / layout.tp / rate
    t_mb = ((lin + rec_lin) / linear_speed + att + rec_att) * seconds_per_flop
    recompute_mb = (rec_lin / linear_speed + rec_att) * seconds_per_flop

    # Tensor parallelism: 4 all-reduces per layer (6 with full recomputation) of b·s·h bf16.
    tp_s = 0.0
    if layout.tp > 1:
        alpha, bw = _group_link(cluster, layout.tp, 1)
        n_ar = 6 if train.recompute == "full" else 4
        tp_s = m * layers * n_ar * sum(ring_allreduce(2.0 * tokens_mb * h, layout.tp, alpha, bw))
    # Pipeline: point-to-point of the boundary activations, forward and backward, per micro-batch.
    pp_s = bubble_s = 0.0
    if layout.pp > 1:
        stride = layout.tp * layout.dp  # stages outermost (Megatron's order: tp, dp, pp)
        link = cluster.intra if stride < cluster.gpus_per_node else (cluster.inter or cluster.intra)
        share = cluster.gpus_per_node if link is cluster.inter else 1
        bw = link.effective_bandwidth * (cluster.nics_per_node / share if link is cluster.inter else 1)
        msg = 2.0 * tokens_mb * h / (layout.tp if layout.sequence_parallel else 1)
        pp_s = m * 2 * (link.alpha_s + msg / bw)
        bubble_s = (layout.pp - 1) / layout.v * (t_mb + (tp_s + pp_s) / m)

    # FSDP inside groups of `fsdp` data-parallel ranks (placed tp apart), per micro-batch.
    params = stage_params(shape, layout)
    fsdp_comm = fsdp_exposed = 0.0
    if layout.fsdp > 1:
        alpha, bw = _group_link(cluster, layout.fsdp, layout.tp)
        gather = sum(ring_half(params * train.param_gather_bytes, layout.fsdp, alpha, bw))
        scatter = sum(ring_half(params * train.grad_reduce_bytes, layout.fsdp, alpha, bw))
        per_mb = 2 * gather + scatter
        fsdp_comm = m * per_mb
        # The first layer's gather has nothing before it to hide behind, the last reduce-scatter
        # nothing after it but the optimizer, which waits for it.
        edges = (gather + scatter) / max(1, layers)
        fsdp_exposed = m * (max(0.0, per_mb - t_mb) + edges)
    # Gradient all-reduce across the dp // fsdp replicas, once per step.
    replicas = layout.dp // layout.fsdp
    dp_comm = dp_exposed = 0.0
    if replicas > 1:
        alpha, bw = _group_link(cluster, replicas, layout.tp * layout.fsdp)
        shard = params / layout.fsdp
        dp_comm = sum(ring_allreduce(shard * train.grad_reduce_bytes, replicas, alpha, bw))
        hidden = 2 / 3 * t_mb if train.dp_overlap else 0.0  # the last micro-batch's backward
        dp_exposed = max(0.0, dp_comm - hidden)
    optimizer_s = params / layout.fsdp * OPTIMIZER_BYTES_PER_PARAM / dev.memory_bandwidth
    # The compute the hidden communication overlaps is slowed (terms.py, "contention").
    overlapped = fsdp_comm - fsdp_exposed + dp_comm - dp_exposed
    contention_s = train.terms.contention * max(0.0, overlapped)
    busy = m * t_mb + bubble_s + tp_s + pp_s + fsdp_exposed + dp_exposed + optimizer_s + contention_s
    sync_s = busy * train.terms.jitter_cv * T.expected_max_normal(layout.gpus)

    return StepTerms(compute_s=m * t_mb, recompute_s=m * recompute_mb, bubble_s=bubble_s, tp_s=tp_s,
                     pp_s=pp_s, fsdp_comm_s=fsdp_comm, fsdp_exposed_s=fsdp_exposed, dp_comm_s=dp_comm,
                     dp_exposed_s=dp_exposed, optimizer_s=optimizer_s, contention_s=contention_s,
                     sync_s=sync_s,
                     tokens_per_step=train.global_batch * s, gpus=layout.gpus,
                     model_flops_per_token=model, peak_flops=peak)
