"""Published data-parallel scaling results, with the inputs nnscale uses to reproduce them.

Every input is either from the catalogue (with its source), from the publication itself, or a stated
assumption. The model is then run from the published hardware; the single parameter no data sheet
gives, the overlap of communication with backward, is fitted to the three 128-GPU Horovod results
(role "calibrate") and the 512-GPU results of the paper (role "validate") are predicted with it.
Other results (role "report") are shown beside both the catalogue-only and the calibrated model.
docs/prediction.md explains each case; tests/predict/test_published.py holds the model to them.

Single-GPU speeds are TensorFlow's published tf_cnn_benchmarks figures for one P100 of an NVIDIA
DGX-1, synthetic data, batch 64, May 2017 (tensorflow/docs, site/en/r1/guide/performance/
benchmarks.md, "Training synthetic data"): InceptionV3 142, ResNet-50 219, ResNet-152 91.8, VGG16
154 images/s. ResNet-101 is not in that table: its time per image is interpolated linearly in
MACs between ResNet-50 and ResNet-152 (4.09, 7.80, 11.51 GMACs, torchvision's published counts):
1/219 + (7.80-4.09)/(11.51-4.09) * (1/91.8 - 1/219) = 7.73 ms -> 129 images/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from math import log10

from scipy.optimize import brentq

from nnscale.predict.calibrate import CommParams, FitResult, least_squares_fit
from nnscale.predict.catalogue import Catalogue
from nnscale.predict.model import DDP, HOROVOD, Bucketing, Cluster, ModelProfile, ddp_step_time

HOROVOD_PAPER = ("A. Sergeev, M. Del Balso, 'Horovod: fast and easy distributed deep learning in "
                 "TensorFlow', arXiv:1802.05799, 2018, Fig. 6; Horovod README/docs/benchmarks: "
                 "'128 servers with 4 Pascal GPUs each connected by RoCE-capable 25 Gbit/s network'")
HOROVOD_README_2017 = ("Horovod README, 2017 revision (kept in forks, e.g. github.com/alsrgv/horovod): "
                       "'32 servers with 4 Pascal GPUs each ... 25 Gbit/s ... 90% for Inception V3 and "
                       "ResNet-101, and 79% for VGG-16'")
GOYAL = ("P. Goyal et al., 'Accurate, large minibatch SGD: training ImageNet in 1 hour', "
         "arXiv:1706.02677, 2017: Big Basin servers, 8 P100 with NVLink, one 50 Gbit Ethernet NIC; "
         "~90 % scaling efficiency from 8 to 256 GPUs; backprop of 32 images on one P100 takes 120 ms")
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
    PublishedCase(
        key="seed-8-resnet152", model="resnet152-v1", published=1077 / 696 / 2, nodes=8, gpus_per_node=1,
        baseline_nodes=4, baseline_gpus_per_node=1, device="k40", intra_link="pcie3", inter_link="ib-fdr",
        batch=32, samples_per_s=None, bucketing=HOROVOD, algorithm="ring", role="report", source=SEED,
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
               params: CommParams | None = None) -> float:
    """The model's scaling efficiency for `case` (against its baseline), with `params`' overlap and
    overhead and the catalogue's links."""
    params = params or CommParams()
    prof = case_profile(case, profile)
    device = catalogue.device(case.device)
    intra, inter = catalogue.link(case.intra_link), catalogue.link(case.inter_link)

    def per_gpu_rate(nodes: int, g: int) -> float:
        cluster = Cluster(device, g, nodes, intra, inter, algorithm=case.algorithm)
        step = ddp_step_time(prof, cluster, case.batch, bucketing=case.bucketing,
                             overlap=params.overlap, overhead_s=params.overhead_s)
        return case.batch / step.step_s

    return per_gpu_rate(case.nodes, case.gpus_per_node) / per_gpu_rate(case.baseline_nodes,
                                                                        case.baseline_gpus_per_node)


def calibrate_overlap(cases: Sequence[PublishedCase], profiles: dict[str, ModelProfile],
                      catalogue: Catalogue) -> FitResult:
    """Fit the overlap to the `calibrate` cases (least squares on predicted / published - 1)."""
    calib = [c for c in cases if c.role == "calibrate"]
    return least_squares_fit(
        calib, lambda q, c: efficiency(c, profiles[c.model], catalogue, q), CommParams(overlap=1.0),
        ("overlap",), source="Horovod's 128-GPU results", measured=lambda c: c.published)


def reproduction(cases: Sequence[PublishedCase], profiles: dict[str, ModelProfile],
                 catalogue: Catalogue) -> tuple[list[dict], FitResult]:
    """One row per case: published, catalogue-only (overlap 1) and calibrated predictions."""
    fitted = calibrate_overlap(cases, profiles, catalogue)
    rows = []
    for c in cases:
        plain = efficiency(c, profiles[c.model], catalogue)
        calibrated = efficiency(c, profiles[c.model], catalogue, fitted.params)
        rows.append({"key": c.key, "model": c.model, "gpus": c.nodes * c.gpus_per_node,
                     "baseline_gpus": c.baseline_nodes * c.baseline_gpus_per_node, "role": c.role,
                     "published": c.published, "catalogue_only": plain, "calibrated": calibrated,
                     "error_points": 100 * (calibrated - c.published)})
    return rows, fitted


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
