"""The study's prediction starts from a worker like the measured ones and names the cluster it
describes; the report shows it that way (issue 11, items 1, 6 and 7).

A stored run made up as the quick study leaves it on a 2-core machine: pytorch-mnist-net, batch 64,
world sizes 1 and 2, plus a 2-thread single-worker point of the same net (what the 1-worker
reference used to be) and a loopback all-reduce sweep from a known alpha and B.
"""

from __future__ import annotations

import pytest

from nnscale.predict.catalogue import Link
from nnscale.predict.comm import allreduce_time_s
from nnscale.records import ALLREDUCE, DISTRIBUTED, DDPOptions, Measurement, Workload
from nnscale.report import build_report
from nnscale.study.config import QUICK
from nnscale.study.runner import _predictions

from stored_points import store_points

NET, BATCH, SHAPE = "pytorch-mnist-net", 64, (1, 28, 28)
GRAD_BYTES = 1_724_320  # pytorch-mnist-net's fp32 gradients, one DDP bucket in torch 2.x
LOOPBACK = Link("truth", alpha_s=100e-6, bandwidth=1e9)
ONE_THREAD_MS, TWO_THREADS_MS, TWO_WORKERS_MS = 50.0, 30.0, 56.0
MEASURED_TIMELINE = {"step_ms": 56.0, "events": [
    {"kind": "forward", "name": "DistributedDataParallel.forward", "start_ms": 0.0, "dur_ms": 18.0, "lane": "compute"},
    {"kind": "backward", "name": "ConvolutionBackward0", "start_ms": 18.5, "dur_ms": 30.0, "lane": "compute"},
    {"kind": "allreduce", "name": "gloo:all_reduce", "start_ms": 49.0, "dur_ms": 5.0, "lane": "comm"},
    {"kind": "optimizer", "name": "Optimizer.step#SGD.step", "start_ms": 54.5, "dur_ms": 1.0, "lane": "compute"}]}


def _ddp(world: int, threads: int, step_ms: float, **stats) -> Measurement:
    w = Workload(NET, "training", BATCH, SHAPE, threads=threads, world_size=world, kind=DISTRIBUTED,
                 strategy="ddp", ddp=DDPOptions())
    return Measurement(w, "ok", samples_ms=(step_ms,) * 10,
                       stats={"step_time_ms": step_ms, "median_ms": step_ms, "nnodes": 1,
                              "samples_per_s": world * BATCH * 1e3 / step_ms, **stats})


def records() -> list[Measurement]:
    out = [_ddp(1, 2, TWO_THREADS_MS), _ddp(1, 1, ONE_THREAD_MS),
           _ddp(2, 1, TWO_WORKERS_MS, bytes_allreduced_per_step=GRAD_BYTES, nproc_per_node=2,
                worker="1 CPU thread pinned to core 0", step_timeline=MEASURED_TIMELINE,
                trace_file="/where/the/trace.json",
                ddp_logging={"rebuilt_bucket_sizes": str([GRAD_BYTES])})]
    for size in (1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22):
        w = Workload(ALLREDUCE, "training", 1, (), world_size=2, kind=ALLREDUCE, message_bytes=size)
        out.append(Measurement(w, "ok", stats={"size_bytes": size, "nnodes": 1,
                                               "time_ms": 1e3 * allreduce_time_s(size, 2, LOOPBACK)}))
    return out


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    db = store_points(str(tmp_path_factory.mktemp("cluster") / "c.db"), "quick-run", records())
    rows, notes = _predictions(QUICK, "quick-run", db, "cpu")
    return rows, notes


def test_the_measured_configuration_starts_from_a_one_thread_worker(predicted):
    rows, notes = predicted
    (two,) = [r for r in rows if r["cluster_kind"] == "measured" and r["gpus"] == 2]
    # Compute is the 1-thread worker's (50 ms), not the 2-thread point's (30 ms) ...
    assert two["compute_ms"] == pytest.approx(ONE_THREAD_MS, rel=1e-6)
    assert any("one worker of 1 CPU thread(s)" in n for n in notes), notes
    # ... and the buckets are those DDP built (one), so the latency is paid once.
    assert two["buckets"] == 1


def test_every_row_names_its_cluster(predicted):
    rows, _ = predicted
    mine = [r for r in rows if r["cluster_kind"] == "measured"]
    gpus = [r for r in rows if r["cluster_kind"] == "catalogue"]
    assert mine and gpus and len(mine) + len(gpus) == len(rows)
    assert {r["cluster"] for r in mine} == {
        "2 workers like the measured one (1 CPU thread each) per node, the measured link (this "
        "run's all-reduces at 2 workers, 1.0 KiB–4.0 MiB, interpolated; α-β fitted to them beyond) "
        "inside a node, 25 Gb/s Ethernet (RoCE) between nodes"}
    assert {r["cluster"] for r in gpus} == {
        "8 a100 GPUs per node, NVLink 3 (A100, 12 links) inside a node, InfiniBand HDR 4x, "
        "200 Gb/s between nodes"}
    assert max(r["gpus"] for r in gpus) == 1024 and min(r["gpus"] for r in gpus) == 8


def test_the_one_node_row_carries_the_models_timeline(predicted):
    rows, _ = predicted
    (two,) = [r for r in rows if r["cluster_kind"] == "measured" and r["gpus"] == 2]
    t = two["timeline"]
    kinds = [e["kind"] for e in t["events"]]
    assert kinds[0] == "forward" and kinds[-1] in ("optimizer", "other")
    assert kinds.count("allreduce") == two["buckets"] == 1
    assert kinds.count("backward") >= 4  # layer by layer
    assert t["step_ms"] == pytest.approx(two["step_ms"])
    assert not any("timeline" in r for r in rows if r["nodes"] > 1)


def test_the_report_says_which_cluster_and_draws_both_steps(predicted):
    rows, _ = predicted
    report = build_report(records(), {}, predictions=rows, title="t")
    cards = {h.label: h for h in report.highlights}
    assert "predicted on 1024 workers" in cards and "predicted on 1024 GPUs" in cards
    assert "workers like the measured one (1 CPU thread each)" in cards["predicted on 1024 workers"].detail
    assert "a100" in cards["predicted on 1024 GPUs"].detail
    assert "speedup on 2 CPU workers" in cards
    (table,) = [t for t in report.tables if t.id == "predictions"]
    for raw in table.raw:  # a GPU row is never compared with this machine's CPU workers
        if raw["cluster_kind"] == "catalogue":
            assert raw["measured_samples_per_s"] is None
    (two,) = [r for r in table.raw if r["cluster_kind"] == "measured" and r["gpus"] == 2]
    assert two["measured_samples_per_s"] == pytest.approx(2 * BATCH * 1e3 / TWO_WORKERS_MS)
    (plot,) = [p for p in report.plots if p.id == "timeline"]
    assert "measured (torch.profiler, rank 0)" in plot.svg and "predicted (the model" in plot.svg
    assert "/where/the/trace.json" in plot.caption and "1 CPU thread pinned to core 0" in plot.caption
    scaling = next(p for p in report.plots if p.id == "scaling")
    assert "A worker here: 1 CPU thread pinned to core 0" in scaling.caption


LOADED_MS = 55.0  # two one-worker copies at once, 10 % slower than the lone worker's 50 ms


def loaded_records() -> list[Measurement]:
    w = Workload(NET, "training", BATCH, SHAPE, threads=1, world_size=1, kind=DISTRIBUTED,
                 strategy="ddp", ddp=DDPOptions(), concurrent_copies=2)
    busy = Measurement(w, "ok", samples_ms=(LOADED_MS,) * 10,
                       stats={"step_time_ms": LOADED_MS, "median_ms": LOADED_MS, "nnodes": 1,
                              "samples_per_s": BATCH * 1e3 / LOADED_MS})
    return records() + [busy]


def test_the_loaded_reference_is_the_compute_of_two_workers_per_node(tmp_path):
    db = store_points(str(tmp_path / "l.db"), "quick-run", loaded_records())
    rows, notes = _predictions(QUICK, "quick-run", db, "cpu")
    mine = [r for r in rows if r["cluster_kind"] == "measured"]
    # Every row of the measured cluster has 2 workers per node: each computes 10 % slower, which
    # the co-location column carries; the lone 50 ms stays the compute and the baseline.
    for r in mine:
        assert r["compute_ms"] == pytest.approx(ONE_THREAD_MS, rel=1e-6)
        assert r["colocation_ms"] == pytest.approx(0.1 * ONE_THREAD_MS, rel=1e-6)
        assert r["loss_colocation"] == pytest.approx(100 * 0.1 * ONE_THREAD_MS / r["step_ms"], rel=1e-6)
    assert any(n.startswith("co-location: 2 copies") and "+10.0%" in n for n in notes), notes
    # Catalogue GPUs are never slowed by this machine's co-location.
    assert all(r["colocation_ms"] == 0 for r in rows if r["cluster_kind"] == "catalogue")
    report = build_report(loaded_records(), {}, predictions=rows, title="t")
    scaling = next(p for p in report.plots if p.id == "scaling")
    assert ("Loaded reference: 2 copies of the one-worker step at once, on the workers' cores and "
            "without communication, took 55.0 ms per step against 50.0 ms alone (+10%)") in scaling.caption
    (table,) = [t for t in report.tables if t.id == "predictions"]
    (two,) = [r for r in table.raw if r["cluster_kind"] == "measured" and r["gpus"] == 2]
    assert two["measured_samples_per_s"] == pytest.approx(2 * BATCH * 1e3 / TWO_WORKERS_MS)
