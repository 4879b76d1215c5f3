"""Predictions from nnscale's own inputs: a network's counted profile, a run's measured step time and
fitted communication, fed to the pure model in `nnscale.predict`. Shared by `nnscale predict` and
the study (`nnscale run`); this layer may count networks with torch, `nnscale.predict` may not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from nnscale.errors import UserError
from nnscale.format import binary_bytes, si
from nnscale.predict import calibrate, published, stateff, terms
from nnscale.predict.catalogue import Catalogue, Device, Link, load_catalogue
from nnscale.predict.model import (DEFAULT_EFFICIENCY, Bucketing, Cluster, Layer, ModelProfile, per_gpu_batch,
                                   predict)
from nnscale.predict.points import jitter_samples_s, measured_bucketing
from nnscale.predict.leave_one_out import Validation, validate_leave_one_out
from nnscale.records import ALLREDUCE, MEASURED_STATUSES

DEFAULT_NODES = "1,2,4,...,128"


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """What `nnscale predict MODEL` is asked (the CLI's options, with the same defaults)."""

    model: str
    device: str
    gpus_per_node: int = 8
    nodes: str = DEFAULT_NODES
    intra_link: str | None = None
    inter_link: str | None = None
    nics_per_node: int | None = None
    algorithm: str = "auto"
    batch_per_gpu: int | None = None
    precision: str = "fp32"
    dataset_size: int | None = None
    epochs: float = 1.0
    fusion: str = "ddp"
    bucket_mb: float = 25.0
    first_bucket_mb: float = 1.0
    grad_bytes: int = 4
    efficiency: float | None = None
    samples_per_s: float | None = None
    overlap: float | None = None
    overhead_ms: float | None = None
    input_size: str | None = None
    catalogue: str | None = None
    store: str | None = None
    global_batch: int | None = None
    noise_scale: float | None = None

    @classmethod
    def from_namespace(cls, args) -> PredictRequest:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def parse_nodes(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]. With '...' the list goes on to its last number: geometrically when the
    first three numbers are ('1,2,4,...,128' doubles), else in steps of the last two ('8,16,...,64')."""
    parts = [p.strip() for p in text.replace("…", "...").split(",") if p.strip()]
    try:
        if "..." in parts:
            i = parts.index("...")
            head, last = [int(p) for p in parts[:i]], int(parts[i + 1])
            if len(head) < 2 or i + 2 != len(parts) or not 0 < head[-2] < head[-1] <= last:
                raise ValueError
            geometric = len(head) >= 3 and head[-1] * head[-3] == head[-2] ** 2
            nodes = list(head)
            while True:
                nxt = nodes[-1] * head[-1] // head[-2] if geometric else nodes[-1] + head[-1] - head[-2]
                if nxt > last:
                    break
                nodes.append(nxt)
            if nodes[-1] != last:
                nodes.append(last)
        else:
            nodes = [int(p) for p in parts]
    except (ValueError, IndexError):
        raise UserError(f"malformed --nodes {text!r}: give whole numbers like 1,2,4,8 or 1,2,4,...,128") from None
    if not nodes or any(n < 1 for n in nodes):
        raise UserError(f"malformed --nodes {text!r}: node counts must be >= 1")
    return sorted(set(nodes))


def model_profile(name: str, input_shape=None, bytes_per_grad: int = 4, **overrides) -> ModelProfile:
    """A network's profile from its statistics: parameters, FLOPs, per-layer parameters and MACs."""
    from nnscale.netstats import network_stats

    s = network_stats(name, input_shape, **overrides)
    layers = tuple(Layer(params=r.params, work=r.macs) for r in s.layers)
    return ModelProfile(name, s.params_total, s.forward_flops, s.training_flops, bytes_per_grad,
                        layers=layers, source=f"nnscale stats {name}")


def _open_records(run: str, store: str | None):
    from nnscale.store import open_store

    with open_store(store, create=False) as db:
        return db.measurements(run)


def worker_threads(records, model: str) -> int | None:
    """Threads per worker of RUN's data-parallel training points of `model` (the largest world
    size's), None when it has none or they did not set threads."""
    multi = [m for m in records if m.status in MEASURED_STATUSES and m.workload.model == model
             and m.workload.mode == "training" and m.workload.world_size > 1 and m.workload.threads]
    return max(multi, key=lambda m: m.workload.world_size).workload.threads if multi else None


def measured_profile(records, run: str, profile: ModelProfile, batch: int | None,
                     precision: str | None = None) -> ModelProfile:
    """`profile` with the single-device step time of RUN's world_size = 1 training point of the model
    (at `batch`, or the nearest batch measured)."""
    singles = [m for m in records if m.status in MEASURED_STATUSES and m.workload.model == profile.name
               and m.workload.mode == "training" and m.workload.world_size == 1 and not m.workload.loaded
               and (precision is None or m.workload.precision == precision) and calibrate.step_time_s(m)]
    if not singles:
        models = sorted({m.workload.model for m in records if m.workload.world_size == 1})
        raise UserError(f"run {run!r} has no single-device training point of {profile.name}"
                        f"{' in ' + precision if precision else ''}; it has: {', '.join(models) or 'none'}")
    want = batch or max(m.workload.batch_size for m in singles)
    workers = worker_threads(records, profile.name)
    # The same per-worker resources first: a prediction of the run's data-parallel points must start
    # from the compute of one of *their* workers (issue 11: a 2-thread reference against 1-thread
    # workers gave +102 %); then a DDP world-size-1 point (it pays DDP's hooks, as the workers do);
    # then the nearest batch.
    m = min(singles, key=lambda m: (workers is not None and m.workload.threads != workers,
                                    m.workload.strategy != "ddp",
                                    abs(math.log(m.workload.batch_size / want)), -m.workload.batch_size))
    opt = m.stats.distributed.optimizer_ms if m.stats.distributed else None
    sweep: dict[int, float] = {}  # one worker's step at every batch the run measured (strong scaling)
    for x in singles:
        if x.workload.precision == m.workload.precision and x.workload.threads == m.workload.threads:
            sweep.setdefault(x.workload.batch_size, calibrate.step_time_s(x))
    out = replace(profile, step_time_s=calibrate.step_time_s(m), measured_batch=m.workload.batch_size,
                  optimizer_s=opt / 1e3 if isinstance(opt, (int, float)) else None, source=f"measured:{run}",
                  sweep=tuple(sorted(sweep.items())), samples_s=jitter_samples_s(m))
    return replace(out, loaded_factor=calibrate.loaded_factors(records, m))


def fitted_links(fit: calibrate.FitResult, run: str) -> tuple[Link | None, Link | None, float | None]:
    """What a fit says about the links of a cluster (docs/prediction.md, "From a fit to a cluster"):
    the intra-node link class (loopback) as the link inside a node; the inter-node class as the link
    between nodes when its own uncapped B was measured; and the cap efficiency, the fraction of a
    capped Ethernet link's rate the measured software's all-reduce payload got, for a named link."""
    free, p = set(fit.free), fit.params
    # Each with the run's uncapped all-reduces on it, which it is interpolated from at their world
    # size (comm.measured_time_s); the fitted line beyond.
    intra = p.link(name=f"fitted:{run}") if {"alpha_s", "bandwidth"} <= free else None
    inter = (p.link(name=f"fitted-inter:{run}", inter=True)
             if {"inter_alpha_s", "inter_bandwidth"} <= free else None)
    return intra, inter, p.cap_efficiency if "cap_efficiency" in free else None


def _inter_link(catalogue: Catalogue, name: str | None, fitted: Link | None, efficiency: float | None,
                notes: list[str]) -> Link | None:
    """The named catalogue link, at the measured cap efficiency when the run measured one (its alpha
    stays the catalogue's: a fitted alpha at p = 2 also holds the per-call host cost, which a ring of
    p ranks pays once, not 2(p-1) times); else the link fitted to the run (None without either)."""
    if not name:
        return fitted
    link = catalogue.link(name)
    if efficiency is None:
        return link
    notes.append(f"inter-node link: {link.name} at the measured cap efficiency {efficiency:.3f} "
                 f"(catalogue {link.efficiency:g}): {efficiency * link.bandwidth / 1e9:.3g} GB/s")
    return replace(link, efficiency=efficiency)


def prediction_report(args: PredictRequest) -> dict:
    """Everything `nnscale predict MODEL` prints, as data: inputs, provenance notes and rows."""
    from nnscale.netstats import parse_input_size
    from nnscale.zoo import model_info

    catalogue = load_catalogue(args.catalogue)
    nodes = parse_nodes(args.nodes)
    # Bad strong-scaling or statistical-efficiency input fails before the network is counted.
    noise = stateff.noise_scale_for(args.model, args.noise_scale)
    if args.global_batch is not None:
        if args.batch_per_gpu is not None:
            raise UserError("give --global-batch (strong scaling) or --batch-per-gpu (weak scaling), not both")
        for n in nodes:
            per_gpu_batch(args.global_batch, n * args.gpus_per_node)
    if not args.device:
        raise UserError("predict needs --device (see `nnscale predict --list`) or measured:RUN")
    shape = parse_input_size(args.input_size, model_info(args.model).input_shape) if args.input_size else None
    profile = model_profile(args.model, shape, args.grad_bytes)
    notes, params = [], calibrate.CommParams(overlap=1.0, overhead_s=0.0)
    fitted_intra = fitted_inter = None
    fitted_efficiency = None
    worker, run_bucketing = None, None
    measured = args.device.startswith("measured:")
    if measured:
        run = args.device.split(":", 1)[1]
        records = _open_records(run, args.store)
        profile = measured_profile(records, run, profile, args.batch_per_gpu, args.precision)
        device = Device(args.device, f"as measured in run {run}", {}, math.inf, math.inf)
        batch = args.batch_per_gpu or profile.measured_batch
        threads = worker_threads(records, profile.name)
        worker, run_bucketing = measured_worker(records, profile.name)
        worker = worker or f"as in run {run}"
        notes.append(f"compute: measured, {1e3 * profile.step_time_s:.2f} ms per step at batch "
                     f"{profile.measured_batch} (run {run})"
                     + (f", one worker of {threads} CPU thread(s) as in the run's data-parallel points"
                        if threads else ""))
        for n, factor in profile.loaded_factor:
            notes.append(f"co-location: {n} copies of that step at once on the workers' cores "
                         f"(the run's loaded reference) computed {factor - 1:+.1%} against it alone; "
                         f"applied to nodes of {n} workers")
        try:
            fit = calibrate.fit(records, {profile.name: profile}, run=f"run {run}")
        except UserError as exc:
            notes.append(f"communication: catalogue values ({exc})")
        else:
            params = fit.params
            fitted_intra, fitted_inter, fitted_efficiency = fitted_links(fit, run)
            notes.append(f"communication: {fit.source}, fitted {', '.join(fit.free)}: "
                         f"{calibrate.describe(params, fit.free)}; residuals rms {100 * fit.rms:.1f} %, "
                         f"max {100 * fit.max_abs:.1f} %")
    else:
        device = catalogue.device(args.device)
        batch = args.batch_per_gpu or 32
        if args.samples_per_s:
            profile = replace(profile, step_time_s=batch / args.samples_per_s, measured_batch=batch)
            notes.append(f"compute: given, {args.samples_per_s:g} samples/s on one {device.name}")
        else:
            eff = args.efficiency or DEFAULT_EFFICIENCY
            notes.append(f"compute: {si(profile.training_flops)}FLOP per sample at {eff:.0%} of the "
                         f"{device.name}'s {args.precision} peak ({si(device.peak(args.precision))}FLOP/s)")
            if args.efficiency is None and args.precision != "fp32":
                notes.append(f"  caution: {DEFAULT_EFFICIENCY:.0%} is an fp32 figure (docs/prediction.md); "
                             "tensor-core training usually reaches less: give --efficiency or --samples-per-s")
        notes.append("communication: catalogue values, no measurements")
    if args.overlap is not None or args.overhead_ms is not None:
        params = replace(params, overlap=params.overlap if args.overlap is None else args.overlap,
                         overhead_s=params.overhead_s if args.overhead_ms is None else args.overhead_ms / 1e3)
        notes.append(f"given: overlap {params.overlap:g}, overhead {1e3 * params.overhead_s:g} ms")
    if not 0 <= params.overlap <= 1 or params.overhead_s < 0:
        raise UserError(f"--overlap must be in [0, 1] and --overhead-ms >= 0, got {params.overlap:g}, "
                        f"{1e3 * params.overhead_s:g}")
    intra = (catalogue.link(args.intra_link) if args.intra_link
             else fitted_intra or (catalogue.link(device.intra_link) if device.intra_link else None))
    inter_name, nics = args.inter_link, args.nics_per_node or 1
    if not inter_name and device.inter_link and max(nodes) > 1:  # the device's reference system
        inter_name, nics = device.inter_link, args.nics_per_node or device.nics_per_node
        notes.append(f"inter-node link: {nics} x {inter_name} per node, the {device.name}'s reference "
                     "system (catalogue); give --inter-link / --nics-per-node for another")
    inter = _inter_link(catalogue, inter_name, fitted_inter or fitted_intra, fitted_efficiency, notes)
    if intra is None and args.gpus_per_node > 1:
        raise UserError("give --intra-link for more than one GPU per node; known links: "
                        + ", ".join(sorted(catalogue.links)))
    if inter is None and max(nodes) > 1:
        raise UserError("give --inter-link for more than one node; known links: "
                        + ", ".join(sorted(catalogue.links)))
    cluster = Cluster(device, args.gpus_per_node, 1, intra or inter or Link("none", 0.0, math.inf), inter,
                      nics, args.algorithm)
    bucketing = Bucketing(args.fusion, args.bucket_mb, args.first_bucket_mb)
    if run_bucketing is not None and bucketing == Bucketing():
        # The buckets DDP really built in the run (its log), as the fit used them: each bucket pays
        # the latency once, and torch 2.x put pytorch-mnist-net in one bucket where the nominal
        # 1 MiB first-bucket rule gives two (points.measured_bucketing).
        bucketing = run_bucketing
        notes.append(f"buckets: as DDP built them in the run, first {bucketing.first_bucket_mb:.2f} MiB, "
                     f"then {bucketing.bucket_mb:g} MiB")
    # Catalogue devices get the documented terms; a measured device the fitted ones (its overlap and
    # overhead hold what contention and framework cost on that machine) and its measured spread.
    step_terms = terms.NONE if measured else terms.CATALOGUE
    if measured:
        notes.append(f"synchronisation: expected max of N workers from {len(profile.samples_s)} measured "
                     "step samples" if len(profile.samples_s) >= 2 else "synchronisation: no samples stored")
    else:
        notes.append(f"terms: contention {step_terms.contention:g}, step jitter {step_terms.jitter_cv:.1%}, "
                     f"framework {1e6 * step_terms.framework_s_per_layer:.0f} us per layer, kernel launch "
                     f"{1e6 * step_terms.launch_s_per_kernel:.1f} us (docs/prediction.md)")
    if args.global_batch is not None:
        if measured and len(profile.sweep) < 2:
            raise UserError(f"strong scaling from run {run!r} needs one-worker points at several batches "
                            f"(it has batch {profile.measured_batch} only): run `nnscale sweep` over the "
                            "per-worker batches first, or predict weak scaling without --global-batch")
        batch = args.global_batch // (args.gpus_per_node * min(nodes))
    epochs_at = None
    if noise is not None and args.dataset_size:
        epochs_at = lambda g: stateff.epochs_needed(args.epochs, g, noise)  # noqa: E731
        notes.append(f"statistical efficiency: gradient noise scale {noise:,.0f} samples "
                     f"({'given' if args.noise_scale else 'shipped ResNet-50/ImageNet calibration'}), "
                     f"{args.epochs:g} epochs at global batch {stateff.REFERENCE_BATCH} (McCandlish et al. 2018)")
    band = published.error_band()
    notes.append(f"error band: {band.sentence()}")
    rows = predict(profile, cluster, nodes, batch, global_batch=args.global_batch,
                   dataset_size=args.dataset_size, epochs=args.epochs, epochs_at=epochs_at,
                   precision=args.precision, bucketing=bucketing, overlap=params.overlap,
                   overhead_s=params.overhead_s, efficiency=args.efficiency or DEFAULT_EFFICIENCY,
                   terms=step_terms)
    links = f"{intra.name if intra else '-'} inside, {inter.name if inter else '-'} between nodes"
    named = cluster_name(device, args.gpus_per_node, intra, inter, worker,
                         max(nodes) > 1 or not args.device.startswith("measured:"))
    # The step of one node drawn as the model computes it (report.timeline), for the
    # configuration a run can also measure: one node.
    timelines = {}
    for r in rows:
        if r.nodes == 1:
            t = predicted_timeline(profile, cluster.with_nodes(1), batch, bucketing,
                                   precision=args.precision,
                                   efficiency=args.efficiency or DEFAULT_EFFICIENCY)
            if r.step_ms > t["step_ms"] + 1e-9:  # overhead and communication the model does not hide
                t["events"].append({"kind": "other", "name": "overhead + comm not hidden",
                                    "start_ms": t["step_ms"], "dur_ms": r.step_ms - t["step_ms"],
                                    "lane": "compute"})
                t["step_ms"] = r.step_ms
            timelines[r.gpus] = t
    inputs = {"model": args.model, "device": device.name, "gpus_per_node": args.gpus_per_node,
              "cluster": named,
              "cluster_kind": "measured" if args.device.startswith("measured:") else "catalogue",
              "links": links, "algorithm": args.algorithm, "batch_per_gpu": batch,
              "precision": args.precision, "params": profile.params,
              "gradient_bytes": profile.grad_bytes, "bucketing": f"{args.fusion} {args.bucket_mb:g} MiB",
              "overlap": params.overlap, "overhead_ms": 1e3 * params.overhead_s,
              "global_batch": args.global_batch, "noise_scale": noise,
              "terms": {"contention": step_terms.contention, "jitter_cv": step_terms.jitter_cv,
                        "framework_s_per_layer": step_terms.framework_s_per_layer,
                        "launch_s_per_kernel": step_terms.launch_s_per_kernel}}
    error = {"points": band.points, "clusters": band.clusters, "left_out": list(band.left_out),
             "text": band.sentence()}
    return {"inputs": inputs, "notes": notes, "error_band": error, "rows": [r.to_dict() for r in rows],
            "timelines": timelines}


def measured_worker(records, model: str):
    """(what one worker of RUN's largest data-parallel point of `model` was, in words; the buckets
    DDP built there), or (None, None) without such a point."""
    multi = [m for m in records if m.status in MEASURED_STATUSES and m.workload.model == model
             and m.workload.mode == "training" and m.workload.world_size > 1]
    if not multi:
        return None, None
    m = max(multi, key=lambda m: m.workload.world_size)
    w = m.workload
    d = m.stats.distributed
    words = d.worker if d and isinstance(d.worker, str) else None
    if w.device == "cpu":  # "1 CPU thread pinned to core 0" names one worker; a cluster has many
        words = f"{w.threads} CPU thread{'s' if w.threads != 1 else ''} each" if w.threads else "CPU"
    return words or w.device, measured_bucketing(m)


def _link_words(link: Link | None) -> str:
    if link is None:
        return "-"
    if link.name.startswith("fitted"):
        sizes = sorted({n for _, n, _ in link.measured})
        if not sizes:
            return "the measured link (α-β fitted to this run's all-reduces)"
        ranks = ", ".join(str(r) for r in sorted({r for r, _, _ in link.measured}))
        return (f"the measured link (this run's all-reduces at {ranks} workers, "
                f"{binary_bytes(int(sizes[0]))}–{binary_bytes(int(sizes[-1]))}, interpolated; "
                "α-β fitted to them beyond)")
    return link.description or link.name


def cluster_name(device: Device, per_node: int, intra: Link | None, inter: Link | None,
                 worker: str | None, multi_node: bool) -> str:
    """The cluster a prediction describes, in words: which workers, how many per node, joined by
    which links. Never a bare GPU count: a run's CPU workers predict CPU workers like them."""
    unit = (f"workers like the measured one ({worker})" if worker
            else f"{device.name} GPUs" if device.name != "cpu-generic" else "CPU servers")
    parts = [f"{per_node} {unit} per node"]
    if per_node > 1:
        parts.append(f"{_link_words(intra)} inside a node")
    if multi_node:
        parts.append(f"{_link_words(inter)} between nodes")
    return ", ".join(parts)


def predicted_timeline(profile: ModelProfile, cluster: Cluster, batch: int,
                       bucketing: Bucketing = Bucketing(), **compute_kw) -> dict:
    """The model's step as a timeline, in the format report.timeline draws ({"step_ms", "events"}):
    forward; backward layer by layer (each layer's share of the work, last layer first); each DDP
    bucket's all-reduce, launched when its last gradient is ready and after the previous bucket
    (one communication stream, model.ddp_step_time); the optimizer once backward and the last
    bucket are done. It reads the model's own pieces (compute_times, buckets, cluster_allreduce),
    so it draws what the model computes, not a second model."""
    from nnscale.predict.comm import cluster_allreduce
    from nnscale.predict.model import UNIFORM_LAYERS, buckets, compute_times

    fwd, bwd, opt = compute_times(profile, cluster.device, batch, **compute_kw)
    events = [{"kind": "forward", "name": "forward", "start_ms": 0.0, "dur_ms": 1e3 * fwd,
               "lane": "compute"}]
    layers = profile.layers or tuple(Layer(1, 1.0) for _ in range(UNIFORM_LAYERS))
    total = sum(layer.work for layer in layers) or 1.0
    clock = fwd
    for i, layer in reversed(list(enumerate(layers))):
        share = bwd * layer.work / total
        if share > 0:
            events.append({"kind": "backward", "name": f"layer {i}", "start_ms": 1e3 * clock,
                           "dur_ms": 1e3 * share, "lane": "compute"})
        clock += share
    end = fwd + bwd
    free = 0.0
    if cluster.world_size > 1:
        for j, (size, ready) in enumerate(buckets(profile, bwd, bucketing)):
            cost = cluster_allreduce(size, cluster.gpus_per_node, cluster.nodes, cluster.intra,
                                     cluster.inter, cluster.nics_per_node, cluster.algorithm).total_s
            start = max(free, fwd + ready)
            free = start + cost
            events.append({"kind": "allreduce", "name": f"bucket {j} ({size / 2**20:.2f} MiB)",
                           "start_ms": 1e3 * start, "dur_ms": 1e3 * cost, "lane": "comm"})
    opt_start = max(end, free)
    events.append({"kind": "optimizer", "name": "optimizer", "start_ms": 1e3 * opt_start,
                   "dur_ms": 1e3 * opt, "lane": "compute"})
    return {"step_ms": 1e3 * (opt_start + opt), "events": events}


def validate_stored_run(runs: str | list[str], store: str | None = None) -> Validation:
    """Leave-one-out over the points of one or more stored runs (pooled, e.g. one run per bandwidth
    cap), with each zoo model's real per-layer profile. The hook for validating real measurements."""
    runs = [runs] if isinstance(runs, str) else list(runs)
    records = [m for run in runs for m in _open_records(run, store)]
    profiles = {}
    for name in {m.workload.model for m in records if m.workload.kind != ALLREDUCE}:
        try:
            profiles[name] = model_profile(name)
        except UserError:
            pass  # not a zoo model: the points fall back to bytes_allreduced_per_step
    return validate_leave_one_out(records, profiles, run="+".join(runs))


def published_profiles() -> dict[str, ModelProfile]:
    """The published cases' networks, each counted once."""
    out: dict[str, ModelProfile] = {}
    for c in published.CASES:
        if c.model not in out:
            out[c.model] = model_profile(c.model, **c.zoo_overrides)
    return out
