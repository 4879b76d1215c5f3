"""Published language-model training runs, each predicted from its hardware and layout alone.

The layout model (`layout.step_time`) needs one number no data sheet gives: the fraction of the
device's dense peak the software reaches on the step's matrix work (`efficiency`). It is a property
of the software stack, so there is one per stack, each calibrated on ONE case (role "calibrate")
and used unchanged for the stack's other cases (role "validate"): torchtitan (eager PyTorch, FSDP2,
H100) on the Llama 3.1 8B run on 8 GPUs, Megatron-LM (A100) on the 530B selective-recomputation
run. Every case is also shown leave-one-case-out: its stack's efficiency fitted on the stack's
other cases only. docs/prediction.md ("Layouts of language models") lists the inputs and sources.

Sources:
- torchtitan, benchmarks/llama3_h100_202412_torchtitan.md (Dec 2024): Table 1 (8B, 8 GPUs, FSDP,
  local batch 2, global 16, selective AC: 5,762 TPS/GPU, 82.4 GiB), Table 3 (8B, 128 GPUs, global
  256: 5,605, 67.0 GiB), Table 4 (70B, 256 GPUs, FSDP 32 x TP 8, torch.compile + Float8, local
  batch 16, global 512, full AC: 829, 71.9 GiB). Hosts of 8 H100 96GB HBM2e (500 W) on NVLink,
  400 Gb/s RDMA per GPU. Sequence length 8,192 and op-level selective AC: torchtitan's
  train_configs/llama3_8b.toml and llama3_70b.toml of that time (seq_len = 8192,
  selective_ac_option = "op"). Float8 on the linear layers; torch.compile is not modelled.
- Korthikanti et al. 2022, arXiv:2205.05198, abstract: the 530B GPT-3-style model on 2,240 A100
  GPUs reaches 54.2 % MFU with sequence parallelism and selective recomputation, 42.1 % with full
  recomputation. Its Table 5 (per-iteration seconds for 22B, 175B, 530B and 1T) could not be read
  from any stored copy here: those numbers are not used, and not invented.
  The 530B shape and layout are MT-NLG's (Smith et al. 2022, arXiv:2201.11990, sections 2 and 3:
  105 layers, hidden 20,480, 128 heads, sequence 2,048, 8-way tensor x 35-way pipeline on DGX A100
  nodes, batch 1,920); 2,240 GPUs = 8 x 35 x 8 data-parallel replicas. Vocabulary 51,200
  (GPT-2's 50,257 padded, as Megatron pads it). Assumed: plain 1F1B; Selene's DGX A100 80 GB with
  8 HDR 200 Gb/s compute NICs per node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from math import log

from scipy.optimize import minimize_scalar

from nnscale.predict.catalogue import Catalogue
from nnscale.predict.layout import Cluster, Training, step_time
from nnscale.predict.memory import GIB, Layout, memory_per_gpu, shape_by_name
from nnscale.zoo.lm_shapes import LMShape

TORCHTITAN = "torchtitan, benchmarks/llama3_h100_202412_torchtitan.md"
KORTHIKANTI = "Korthikanti et al. 2022, arXiv:2205.05198, abstract (2,240 A100)"
MT_NLG_530B = LMShape("mt-nlg-530b", "gpt2", 51_200, 20_480, 105, 128, 128, 81_920, 2_048, True,
                      source="Smith et al. 2022, MT-NLG, arXiv:2201.11990, section 2")


@dataclass(frozen=True, slots=True)
class LMCase:
    key: str
    model: str
    stack: str  # the software whose efficiency the case uses: "torchtitan" or "megatron"
    role: str  # "calibrate" (sets its stack's efficiency) or "validate"
    device: str
    intra_link: str
    inter_link: str
    gpus_per_node: int
    nics_per_node: int
    layout: Layout
    training: Training
    published_tps_per_gpu: float | None = None  # tokens/s per GPU
    published_mfu: float | None = None
    published_memory_gib: float | None = None
    source: str = ""

    def shape(self) -> LMShape:
        return MT_NLG_530B if self.model == MT_NLG_530B.name else shape_by_name(self.model)


def _tt(key, model, role, gpus, tp, batch, local, recompute, tps, mem, float8=False) -> LMCase:
    dp = gpus // tp
    return LMCase(key, model, "torchtitan", role, "h100-96gb", "nvlink4", "400gbe", 8, 8,
                  Layout(dp=dp, tp=tp, fsdp=dp),
                  Training(seq_len=8192, global_batch=batch, micro_batch=local, recompute=recompute,
                           float8=float8, grad_reduce_bytes=4),
                  published_tps_per_gpu=tps, published_memory_gib=mem, source=TORCHTITAN)


def _meg(key, role, recompute, mfu) -> LMCase:
    return LMCase(key, MT_NLG_530B.name, "megatron", role, "a100-80gb", "nvlink3", "ib-hdr", 8, 8,
                  Layout(dp=8, tp=8, pp=35),
                  Training(seq_len=2048, global_batch=1920, micro_batch=1, recompute=recompute,
                           grad_reduce_bytes=4, dp_overlap=False),
                  published_mfu=mfu, source=KORTHIKANTI)


CASES: tuple[LMCase, ...] = (
    _tt("torchtitan-8b-8", "llama3-8b", "calibrate", 8, 1, 16, 2, "selective-op", 5762, 82.4),
    _tt("torchtitan-8b-128", "llama3-8b", "validate", 128, 1, 256, 2, "selective-op", 5605, 67.0),
    _tt("torchtitan-70b-256", "llama3-70b", "validate", 256, 8, 512, 16, "full", 829, 71.9, float8=True),
    _meg("korthikanti-530b-selective", "calibrate", "selective", 0.542),
    _meg("korthikanti-530b-full", "validate", "full", 0.421),
)
RATIO = ("torchtitan-8b-128", "torchtitan-8b-8", 5605 / 5762)  # weak scaling 8 -> 128 GPUs


def predict_case(case: LMCase, catalogue: Catalogue, efficiency: float):
    cluster = Cluster(catalogue.device(case.device), catalogue.link(case.intra_link),
                      catalogue.link(case.inter_link), case.gpus_per_node, case.nics_per_node)
    return step_time(case.shape(), case.layout, cluster, replace(case.training, efficiency=efficiency))


def _published(case: LMCase, terms) -> float:
    """The published figure in tokens/s per GPU (an MFU converts with the model's own FLOPs)."""
    if case.published_tps_per_gpu is not None:
        return case.published_tps_per_gpu
    return case.published_mfu * terms.peak_flops / terms.model_flops_per_token


def fit_efficiency(cases: Sequence[LMCase], catalogue: Catalogue) -> float:
    """The efficiency that minimises the squared log error of tokens/s over `cases`."""
    def loss(eff: float) -> float:
        total = 0.0
        for c in cases:
            t = predict_case(c, catalogue, eff)
            total += log(t.tokens_per_s_per_gpu / _published(c, t)) ** 2
        return total

    return float(minimize_scalar(loss, bounds=(0.05, 1.0), method="bounded",
                                 options={"xatol": 1e-5}).x)


def efficiencies(catalogue: Catalogue, cases: Sequence[LMCase] = CASES) -> dict[str, float]:
    """Each stack's efficiency, from its 'calibrate' case."""
    return {c.stack: fit_efficiency([c], catalogue) for c in cases if c.role == "calibrate"}


def reproduction(catalogue: Catalogue, cases: Sequence[LMCase] = CASES) -> list[dict]:
    """One row per case: published, predicted (calibrated efficiency), error, and the same
    leave-one-case-out; then the weak-scaling ratio row."""
    effs = efficiencies(catalogue, cases)
    rows, by_key = [], {}
    for c in cases:
        t = predict_case(c, catalogue, effs[c.stack])
        others = [o for o in cases if o.stack == c.stack and o.key != c.key]
        loo_eff = fit_efficiency(others, catalogue) if others else None
        t_loo = predict_case(c, catalogue, loo_eff) if loo_eff else None
        pub = _published(c, t)
        mem = memory_per_gpu(c.shape(), c.layout, c.training.seq_len, c.training.micro_batch,
                             c.training.micro_batches(c.layout), c.training.recompute,
                             transient_gradients=c.stack != "megatron")  # Megatron: a grad buffer
        row = {"key": c.key, "role": c.role, "stack": c.stack, "gpus": c.layout.gpus,
               "layout": c.layout.label(), "efficiency": effs[c.stack], "published": pub,
               "predicted": t.tokens_per_s_per_gpu, "error": t.tokens_per_s_per_gpu / pub - 1,
               "loo_efficiency": loo_eff,
               "loo_error": (t_loo.tokens_per_s_per_gpu / pub - 1) if t_loo else None,
               "published_mfu": c.published_mfu, "predicted_mfu": t.mfu,
               "step_s": t.step_s, "limited_by": t.limited_by(),
               "published_memory_gib": c.published_memory_gib, "predicted_memory_gib": mem.total / GIB,
               "unit": "tokens/s per GPU", "source": c.source}
        rows.append(row)
        by_key[c.key] = (row, t, t_loo)
    num, den, published = RATIO
    (rn, tn, _), (_, td, _) = by_key[num], by_key[den]
    ratio = tn.tokens_per_s_per_gpu / td.tokens_per_s_per_gpu
    # Leave-one-case-out for a ratio: both of its cases out, the efficiency from the stack's others.
    rest = [c for c in cases if c.stack == "torchtitan" and c.key not in (num, den)]
    loo_ratio = None
    if rest:
        eff = fit_efficiency(rest, catalogue)
        by = {c.key: c for c in cases}
        loo_ratio = (predict_case(by[num], catalogue, eff).tokens_per_s_per_gpu
                     / predict_case(by[den], catalogue, eff).tokens_per_s_per_gpu)
    rows.append({"key": f"{num} / {den}", "role": "validate", "stack": "torchtitan", "gpus": rn["gpus"],
                 "layout": "weak scaling", "published": published, "predicted": ratio,
                 "error": ratio - published, "loo_error": (loo_ratio - published) if loo_ratio else None,
                 "unit": "ratio (error in points)", "source": TORCHTITAN})
    return rows


def error_band(rows: Sequence[dict]) -> str:
    """The suite's band, for `plan` and `predict` outputs."""
    rates = [r for r in rows if r["unit"].startswith("tokens")]
    worst = max(abs(r["loo_error"]) for r in rates if r["loo_error"] is not None)
    ratio = [r for r in rows if r["unit"].startswith("ratio")][0]
    return (f"tokens/s within ±{100 * worst:.0f} % on {len(rates)} published runs leave-one-case-out "
            f"(weak scaling 8->128 GPUs within {100 * abs(ratio['error']):.1f} points)")
