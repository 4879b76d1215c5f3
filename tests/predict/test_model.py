"""The data-parallel step model: limits, DDP buckets, Horovod fusion, rows, speed and bad input."""

import math
import time
from dataclasses import replace

import pytest

from nnscale.errors import UserError
from nnscale.predict.catalogue import Link, load_catalogue
from nnscale.predict.model import (
    DDP,
    HOROVOD,
    MIB,
    Bucketing,
    Cluster,
    Layer,
    ModelProfile,
    buckets,
    ddp_step_time,
    gradient_arrivals,
    predict,
)

CAT = load_catalogue()
H100 = CAT.device("h100")
IDEAL = Link("ideal", alpha_s=0.0, bandwidth=math.inf)


def resnet_like(step_s=0.2) -> ModelProfile:
    # 100 layers of 250k parameters (100 MB of fp32 gradients), equal work each
    layers = tuple(Layer(250_000, 1.0) for _ in range(100))
    return ModelProfile("r", 25_000_000, 4e9, 12e9, step_time_s=step_s, measured_batch=32, layers=layers)


def cluster(nodes=1, g=8, intra=None, inter=None, algo="ring") -> Cluster:
    return Cluster(H100, g, nodes, intra or CAT.link("nvlink4"), inter or CAT.link("ib-ndr"), algorithm=algo)


def test_one_device_has_no_communication():
    s = ddp_step_time(resnet_like(), cluster(1, 1), 32, overhead_s=0.01)
    assert s.comm_s == s.exposed_s == s.overhead_s == 0 and s.buckets == 0
    assert s.step_s == pytest.approx(0.2) and s.limited_by() == "compute"


def test_infinite_bandwidth_and_no_latency_scale_linearly():
    rows = predict(resnet_like(), cluster(intra=IDEAL, inter=IDEAL), [1, 4, 128], 32)
    for r in rows:
        assert r.efficiency == pytest.approx(1.0) and r.speedup == pytest.approx(r.gpus)
        assert r.limited_by == "compute"


def test_alpha_only_regime_grows_with_p():
    latency_only = Link("lat", alpha_s=50e-6, bandwidth=math.inf)
    rows = predict(resnet_like(0.01), cluster(g=1, intra=latency_only, inter=latency_only),
                   [2, 64, 1024], 32, overlap=0.0)
    # no overlap: exposed = buckets x 2(p-1) alpha
    for r in rows:
        assert r.exposed_ms == pytest.approx(1e3 * r.buckets * 2 * (r.gpus - 1) * 50e-6)
    assert rows[-1].limited_by == "latency" and rows[0].efficiency > rows[-1].efficiency


def test_overlap_zero_exposes_all_and_one_hides_what_fits():
    slow = Link("slow", alpha_s=0.0, bandwidth=1e9)
    none = ddp_step_time(resnet_like(), cluster(g=2, intra=slow), 32, overlap=0.0)
    full = ddp_step_time(resnet_like(), cluster(g=2, intra=slow), 32, overlap=1.0)
    assert none.exposed_s == pytest.approx(none.comm_s)
    assert full.exposed_s < none.exposed_s
    # 100 MB at 1 GB/s ring over 2 = 0.1 s, inside a ~0.133 s backward: only the tail is exposed
    assert none.comm_s == pytest.approx(100e6 / 1e9)
    assert 0 < full.exposed_s < 0.03


def test_ddp_buckets_reverse_order_first_bucket_small():
    prof = resnet_like()
    plan = buckets(prof, backward_s=1.0, bucketing=DDP)
    sizes = [b for b, _ in plan]
    assert sizes[0] == 2_000_000  # 1 MB layers: one is under the 1 MiB first-bucket cap, two reach it
    assert all(s >= 25 * MIB for s in sizes[1:-1])  # then buckets close once they reach 25 MiB
    assert sum(sizes) == pytest.approx(prof.grad_bytes)
    ready = [t for _, t in plan]
    assert ready == sorted(ready) and ready[-1] == pytest.approx(1.0)


def test_gradients_arrive_last_layer_first():
    prof = ModelProfile("m", 300, 1, 3, layers=(Layer(100, 8.0), Layer(0, 1.0), Layer(200, 1.0)))
    arrivals = gradient_arrivals(prof, backward_s=1.0)
    assert arrivals == [(800, pytest.approx(0.1)), (400, pytest.approx(1.0))]


def test_horovod_fuses_what_is_ready_when_the_link_frees():
    prof = resnet_like(0.2)
    slow = Link("slow", alpha_s=1e-3, bandwidth=1e9)
    ddp = ddp_step_time(prof, cluster(g=4, intra=slow), 32, bucketing=Bucketing("ddp", 64, 64))
    hvd = ddp_step_time(prof, cluster(g=4, intra=slow), 32, bucketing=HOROVOD)
    assert hvd.comm_s > 0 and hvd.buckets >= 2
    # every fused call is at most 64 MB, and all gradients are reduced
    assert hvd.comm_s - hvd.comm_latency_s == pytest.approx(ddp.comm_s - ddp.comm_latency_s)


def test_measured_compute_scales_with_batch_and_flops_path_uses_peak():
    prof = resnet_like(0.2)
    assert ddp_step_time(prof, cluster(1, 1), 64).compute_s == pytest.approx(0.4)
    flops = replace(prof, step_time_s=None, measured_batch=None)
    s = ddp_step_time(flops, cluster(1, 1), 32, precision="bf16", efficiency=0.5)
    assert s.forward_s + s.backward_s == pytest.approx(12e9 * 32 / (989.5e12 * 0.5))
    assert s.forward_s / (s.forward_s + s.backward_s) == pytest.approx(1 / 3)


def test_rows_and_time_to_train():
    rows = predict(resnet_like(), cluster(), [1, 2], 32, dataset_size=1_281_167, epochs=90)
    r = rows[0]
    assert r.gpus == 8 and r.global_batch == 256
    assert r.time_to_train_s == pytest.approx(1_281_167 * 90 / r.samples_per_s)
    assert rows[1].samples_per_s > rows[0].samples_per_s


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_1024_gpus_predicted_in_under_a_second():
    # 400 layers, 12 node counts up to 128 x 8 GPUs, every algorithm
    prof = ModelProfile("big", 60_000_000, 11e9, 33e9, step_time_s=0.3, measured_batch=32,
                        layers=tuple(Layer(150_000, 1.0) for _ in range(400)))
    nodes = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128]
    start = time.perf_counter()
    for algo in ("ring", "tree", "hierarchical", "auto"):
        for bucketing in (DDP, HOROVOD):
            rows = predict(prof, cluster(algo=algo), nodes, 32, bucketing=bucketing)
    elapsed = time.perf_counter() - start
    assert rows[-1].gpus == 1024
    assert elapsed < 1.0, f"{elapsed:.3f} s for 8 sweeps to 1024 GPUs"


@pytest.mark.parametrize("bad", [
    lambda: ModelProfile("m", 0, 1, 3),
    lambda: ModelProfile("m", -5, 1, 3),
    lambda: ModelProfile("m", 10, 5, 3),
    lambda: Cluster(H100, 0, 1, IDEAL),
    lambda: Cluster(H100, 8, 2, IDEAL, None),
    lambda: Cluster(H100, 8, 1, IDEAL, algorithm="magic"),
    lambda: predict(resnet_like(), cluster(), [0, 2], 32),
    lambda: predict(resnet_like(), cluster(), [1], 0),
    lambda: predict(resnet_like(), cluster(), [1], 32, dataset_size=-1),
    lambda: ddp_step_time(resnet_like(), cluster(), 32, overlap=1.5),
    lambda: Bucketing("ddp", bucket_mb=0),
    lambda: Link("x", alpha_s=-1.0, bandwidth=1e9),
    lambda: Link("x", alpha_s=0.0, bandwidth=0.0),
])
def test_bad_sizes_are_user_errors(bad):
    with pytest.raises(UserError):
        bad()
