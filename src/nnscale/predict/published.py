"""Published data-parallel scaling results, with the inputs nnscale uses to reproduce them.

Every input is either from the catalogue (with its source), from the publication itself, or a stated
assumption; each case is predicted from its published hardware, model and batch alone, with the
model's global defaults (terms.py), never a per-case parameter. Roles:
- "calibrate": the case set a global default (the contention, fitted by least squares over these;
  the framework cost, from the DDP benchmark's one-GPU rows); also reported leave-one-case-out,
  every default it set refitted without it;
- "validate" / "report": predicted with the defaults, nothing fitted to them;
- "report-assumed": the hardware is not published (assumed), so the case is shown but not in the
  error band (`error_band`).
docs/prediction.md explains each case; tests/predict/test_published.py holds the model to them.

Single-GPU speeds are TensorFlow's published tf_cnn_benchmarks figures for one P100 of an NVIDIA
DGX-1, synthetic data, batch 64, May 2017 (tensorflow/docs, site/en/r1/guide/performance/
benchmarks.md, "Training synthetic data"): InceptionV3 142, ResNet-50 219, ResNet-152 91.8, VGG16
154 images/s. ResNet-101 is not in that table: its time per image is interpolated linearly in
MACs between ResNet-50 and ResNet-152 (4.09, 7.80, 11.51 GMACs, torchvision's published counts):
1/219 + (7.80-4.09)/(11.51-4.09) * (1/91.8 - 1/219) = 7.73 ms -> 129 images/s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from math import log10

from scipy.optimize import brentq, minimize_scalar

from nnscale.predict import terms as T
from nnscale.predict.calibrate import CommParams
from nnscale.predict.catalogue import Catalogue, shipped_catalogue
from nnscale.predict.model import DDP, HOROVOD, Bucketing, Cluster, Layer, ModelProfile, ddp_step_time

HOROVOD_PAPER = ("A. Sergeev, M. Del Balso, 'Horovod: fast and easy distributed deep learning in "
                 "TensorFlow', arXiv:1802.05799, 2018, Fig. 6; Horovod README/docs/benchmarks: "
                 "'128 servers with 4 Pascal GPUs each connected by RoCE-capable 25 Gbit/s network'")
HOROVOD_README_2017 = ("Horovod README, 2017 revision (kept in forks, e.g. github.com/alsrgv/horovod): "
                       "'32 servers with 4 Pascal GPUs each ... 25 Gbit/s ... 90% for Inception V3 and "
                       "ResNet-101, and 79% for VGG-16'")
GOYAL = ("P. Goyal et al., 'Accurate, large minibatch SGD: training ImageNet in 1 hour', "
         "arXiv:1706.02677, 2017: Big Basin servers, 8 P100 with NVLink, one 50 Gbit Ethernet NIC; "
         "~90 % scaling efficiency from 8 to 256 GPUs; backprop of 32 images on one P100 takes 120 ms")
DDP_BENCH = ("PyTorch DDP benchmark, pytorch/pytorch benchmarks/distributed/ddp/README.md (PyTorch "
             "1.4, CUDA 10.0, NCCL): DGX-1 machines, 8 V100 joined by NVLink, 4 x 100 Gb/s InfiniBand "
             "per machine, batch 32 per GPU, p50 images/s per GPU against one GPU without DDP")
SEED = ("the seed study (Dorobisz et al., AGH 2019), 'Scalability for multiple nodes': ResNet-152, "
        "batch 32, 1077 min on 4 nodes, 696 min on 8 nodes = 1.55x for 2x nodes, 77 %")


@dataclass(frozen=True, slots=True)
class PublishedCase:
    key: str
    model: str  # zoo name
    published: float  # scaling efficiency against the baseline, 0..1
    nodes: int
    gpus_per_node: int
    baseline_nodes: int  # efficiency = (rate/GPU at `nodes`) / (rate/GPU at the baseline)
    baseline_gpus_per_node: int
    device: str
    intra_link: str
    inter_link: str
    batch: int  # per GPU
    samples_per_s: float | None  # one device, published; None = FLOPs x peak x efficiency
    bucketing: Bucketing
    algorithm: str
    role: str  # "calibrate", "validate" or "report"
    source: str
    zoo_overrides: dict = field(default_factory=dict)
    assumptions: str = ""
    nics_per_node: int = 1


def _horovod(model: str, rate: float, published: float, servers: int, role: str, source: str,
             **kw) -> PublishedCase:
    return PublishedCase(
        key=f"horovod-{servers * 4}-{model.split(':')[-1]}", model=model, published=published,
        nodes=servers, gpus_per_node=4, baseline_nodes=1, baseline_gpus_per_node=1, device="p100",
        intra_link="pcie3", inter_link="25gbe", batch=64, samples_per_s=rate, bucketing=HOROVOD,
        algorithm="ring", role=role, source=source,
        assumptions="4 GPUs per server on PCIe 3.0; NCCL 2 flat ring (2017: no tree, no hierarchical "
                    "all-reduce yet); Tensor Fusion at its 2017 defaults (64 MB, 5 ms); tf_cnn_benchmarks "
                    "batch 64 per GPU, as in Horovod's benchmark instructions", **kw)


_INCEPTION = {"aux_logits": False, "init_weights": False}  # TF-slim's InceptionV3: 23.8M parameters
CASES: tuple[PublishedCase, ...] = (
    _horovod("torchvision:inception_v3", 142, 0.90, 32, "calibrate", HOROVOD_README_2017, zoo_overrides=_INCEPTION),
    _horovod("resnet101", 129, 0.90, 32, "calibrate", HOROVOD_README_2017),
    _horovod("vgg16", 154, 0.79, 32, "calibrate", HOROVOD_README_2017),
    _horovod("torchvision:inception_v3", 142, 0.90, 128, "validate", HOROVOD_PAPER, zoo_overrides=_INCEPTION),
    _horovod("resnet101", 129, 0.90, 128, "validate", HOROVOD_PAPER),
    _horovod("vgg16", 154, 0.68, 128, "validate", HOROVOD_PAPER),
    PublishedCase(
        key="goyal-256-resnet50", model="resnet50-v1", published=0.90, nodes=32, gpus_per_node=8,
        baseline_nodes=1, baseline_gpus_per_node=8, device="p100", intra_link="nvlink1",
        inter_link="50gbe", batch=32, samples_per_s=32 / 0.180, bucketing=DDP, algorithm="hierarchical",
        role="report", source=GOYAL,
        assumptions="one step of 32 images = backprop 120 ms (the paper) + forward 60 ms (half the "
                    "backward, by FLOPs) = 178 images/s; reduce inside the server, all-reduce across "
                    "servers, broadcast back (the paper's 3-phase scheme), modelled as hierarchical; "
                    "Caffe2 reduces gradients as they are ready: DDP-like 25 MB buckets"),
    *(PublishedCase(
        key=f"ddp-{8 * n}-{m}", model=m, published=rate / alone, nodes=n, gpus_per_node=8,
        baseline_nodes=1, baseline_gpus_per_node=1, device="v100", intra_link="nvlink2",
        inter_link="ib-edr", nics_per_node=4, batch=32, samples_per_s=alone, bucketing=DDP,
        algorithm="auto", role="calibrate", source=DDP_BENCH,
        assumptions="fp32 (the benchmark sets no AMP); NCCL picks ring or tree (auto); DDP's default "
                    "25 MiB buckets; the one-GPU-with-DDP rows (319 and 187 images/s) set the global "
                    "framework cost per layer (terms.py), so these cases are calibration inputs")
      for m, alone, rates in (("resnet50", 329, {1: 307, 2: 306}), ("resnet101", 197, {1: 179, 2: 178}))
      for n, rate in rates.items()),
    PublishedCase(
        key="seed-8-resnet152", model="resnet152-v1", published=1077 / 696 / 2, nodes=8, gpus_per_node=1,
        baseline_nodes=4, baseline_gpus_per_node=1, device="k40", intra_link="pcie3", inter_link="ib-fdr",
        batch=32, samples_per_s=None, bucketing=HOROVOD, algorithm="ring", role="report-assumed", source=SEED,
        assumptions="hardware unstated; assumed: one Tesla K40 per node (the GPU nodes of AGH's "
                    "Prometheus cluster have K40s), InfiniBand FDR, Horovod ring; compute from FLOPs at "
                    "45 % of the K40's peak; the published times are whole trainings, so input, "
                    "evaluation and start-up are in them too"),
)


def case_profile(case: PublishedCase, base: ModelProfile) -> ModelProfile:
    """The network's profile (from its statistics) with the published single-device speed."""
    if case.samples_per_s is None:
        return base
    return replace(base, step_time_s=case.batch / case.samples_per_s, measured_batch=case.batch,
                   optimizer_s=None, source=case.source)


def efficiency(case: PublishedCase, profile: ModelProfile, catalogue: Catalogue,
               params: CommParams | None = None, terms: T.Terms = T.CATALOGUE) -> float:
    """The model's scaling efficiency for `case` (against its baseline) with the catalogue's links,
    `terms` (the documented defaults unless given) and `params`' overlap and overhead (none)."""
    params = params or CommParams()
    prof = case_profile(case, profile)
    device = catalogue.device(case.device)
    intra, inter = catalogue.link(case.intra_link), catalogue.link(case.inter_link)

    def per_gpu_rate(nodes: int, g: int) -> float:
        cluster = Cluster(device, g, nodes, intra, inter, case.nics_per_node, algorithm=case.algorithm)
        step = ddp_step_time(prof, cluster, case.batch, bucketing=case.bucketing, terms=terms,
                             overlap=params.overlap, overhead_s=params.overhead_s)
        return case.batch / step.step_s

    return per_gpu_rate(case.nodes, case.gpus_per_node) / per_gpu_rate(case.baseline_nodes,
                                                                        case.baseline_gpus_per_node)


# The DDP benchmark's one-GPU rows (s per step without DDP, with DDP on one GPU): the framework cost.
DDP_ONE_GPU = {"resnet50": (0.097, 0.100), "resnet101": (0.162, 0.171)}


def framework_cost(profiles: dict[str, ModelProfile], models=tuple(DDP_ONE_GPU)) -> float:
    """Seconds per gradient-owning layer that DDP adds on one GPU, pooled over `models`' rows."""
    extra = sum(DDP_ONE_GPU[m][1] - DDP_ONE_GPU[m][0] for m in models)
    return extra / sum(profiles[m].gradient_layers for m in models)


def fit_contention(cases: Sequence[PublishedCase], profiles: dict[str, ModelProfile], catalogue: Catalogue,
                   terms: T.Terms = T.CATALOGUE) -> float:
    """The contention that minimises the squared point errors of the `calibrate` cases given."""
    calib = [c for c in cases if c.role == "calibrate"]

    def sse(x: float) -> float:
        t = replace(terms, contention=x)
        return sum((efficiency(c, profiles[c.model], catalogue, terms=t) - c.published) ** 2 for c in calib)

    return float(minimize_scalar(sse, bounds=(0.0, 2.0), method="bounded", options={"xatol": 1e-3}).x)


def leave_one_out(case: PublishedCase, cases: Sequence[PublishedCase], profiles: dict[str, ModelProfile],
                  catalogue: Catalogue) -> float:
    """`case` predicted with every global default it helped set refitted without it: the contention
    without the case, the framework cost without its network's one-GPU rows (DDP cases)."""
    terms = T.CATALOGUE
    if case.source == DDP_BENCH:
        terms = replace(terms, framework_s_per_layer=framework_cost(
            profiles, tuple(m for m in DDP_ONE_GPU if m != case.model)))
    others = [c for c in cases if c.key != case.key and not (case.source == DDP_BENCH and c.model == case.model
                                                             and c.source == DDP_BENCH)]
    terms = replace(terms, contention=fit_contention(others, profiles, catalogue, terms))
    return efficiency(case, profiles[case.model], catalogue, terms=terms)


def reproduction(cases: Sequence[PublishedCase], profiles: dict[str, ModelProfile],
                 catalogue: Catalogue) -> list[dict]:
    """One row per case: published, predicted by the out-of-the-box model, its error in points, and
    for a case that set a global default (role calibrate) the leave-one-case-out prediction."""
    rows = []
    for c in cases:
        predicted = efficiency(c, profiles[c.model], catalogue)
        loo = leave_one_out(c, cases, profiles, catalogue) if c.role == "calibrate" else None
        held_out = predicted if loo is None else loo
        rows.append({"key": c.key, "model": c.model, "gpus": c.nodes * c.gpus_per_node,
                     "baseline_gpus": c.baseline_nodes * c.baseline_gpus_per_node, "role": c.role,
                     "published": c.published, "predicted": predicted,
                     "error_points": 100 * (predicted - c.published), "leave_one_out": loo,
                     "held_out_error_points": 100 * (held_out - c.published),
                     "inputs": (f"{c.nodes} x {c.gpus_per_node} {c.device}, {c.intra_link} inside, "
                                f"{c.nics_per_node} x {c.inter_link} between, {c.algorithm}, "
                                f"{c.bucketing.policy} buckets, batch {c.batch}, "
                                + (f"{c.samples_per_s:.0f} samples/s on one GPU" if c.samples_per_s
                                   else "compute from FLOPs")),
                     "source": c.source})
    return rows


@dataclass(frozen=True, slots=True)
class ErrorBand:
    points: float  # the largest |error| in points, leave-one-case-out for calibration cases
    clusters: int  # how many published cases it covers
    left_out: tuple[str, ...]  # cases outside the band's set (unknown hardware), by key

    def sentence(self) -> str:
        return (f"within \u00b1{self.points:.1f} points on {self.clusters} published clusters, "
                "leave-one-case-out (nnscale predict --published)")


def error_band(rows: Sequence[dict] | None = None) -> ErrorBand:
    """The error band the model carries, from the suite (rows of `reproduction`, by default the
    shipped suite with the shipped profiles). Cases with role "report-assumed" (hardware unstated,
    so assumed) are not in it; they are named."""
    rows = rows if rows is not None else suite_rows()
    inside = [r for r in rows if r["role"] != "report-assumed"]
    return ErrorBand(max(abs(r["held_out_error_points"]) for r in inside), len(inside),
                     tuple(r["key"] for r in rows if r["role"] == "report-assumed"))


PROFILES_FILE = "published_profiles.json"


@lru_cache(maxsize=1)
def shipped_profiles() -> dict[str, ModelProfile]:
    """The suite's networks as counted by nnscale.netstats, shipped as data so that the prediction
    layer (no torch) can run the suite; tests/predict/test_published.py checks them against netstats."""
    data = json.loads(resources.files("nnscale.predict").joinpath(PROFILES_FILE).read_text("utf-8"))
    return {name: ModelProfile(name, d["params"], d["forward_flops"], d["training_flops"],
                               layers=tuple(Layer(p, w) for p, w in d["layers"]), source=d["source"])
            for name, d in data.items()}


@lru_cache(maxsize=1)
def _suite_rows(catalogue_key: int) -> tuple:
    return tuple(reproduction(CASES, shipped_profiles(), shipped_catalogue()))


def suite_rows() -> list[dict]:
    """The shipped suite against the shipped catalogue (cached: a few seconds the first time)."""
    return list(_suite_rows(0))


def bandwidth_to_match(case: PublishedCase, profile: ModelProfile, catalogue: Catalogue,
                       params: CommParams | None = None) -> float | None:
    """The inter-node link rate (bytes/s, nominal) at which the model gives the published efficiency,
    or None if no rate between 10 Mb/s and 10 Tb/s does (then the network cannot explain it)."""
    def gap(log_bw: float) -> float:
        link = replace(catalogue.link(case.inter_link), bandwidth=10**log_bw)
        cat = Catalogue(catalogue.devices, {**catalogue.links, case.inter_link: link})
        return efficiency(case, profile, cat, params) - case.published

    lo, hi = log10(10e6 / 8), log10(10e12 / 8)
    if gap(lo) * gap(hi) > 0:
        return None
    return 10 ** brentq(gap, lo, hi, xtol=1e-4)
