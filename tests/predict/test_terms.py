"""The terms beyond the alpha-beta timeline, at their limits (terms.py, docs/prediction.md)."""

import math
import statistics

import pytest

from nnscale.predict import terms as T
from nnscale.predict.catalogue import Link, load_catalogue
from nnscale.predict.model import Cluster, Layer, ModelProfile, ddp_step_time, predict

CAT = load_catalogue()
IDEAL = Link("ideal", alpha_s=0.0, bandwidth=math.inf)
SLOW = Link("slow", alpha_s=0.0, bandwidth=1e9)


def net(**kw) -> ModelProfile:
    layers = tuple(Layer(250_000, 1.0) for _ in range(100))  # 100 MB of fp32 gradients
    return ModelProfile("r", 25_000_000, 4e9, 12e9, step_time_s=0.2, measured_batch=32, layers=layers, **kw)


def cluster(g=8, nodes=1, link=SLOW) -> Cluster:
    return Cluster(CAT.device("h100"), g, nodes, link, link)


def test_one_worker_adds_nothing():
    s = ddp_step_time(net(samples_s=(0.19, 0.2, 0.3)), cluster(1), 32, terms=T.CATALOGUE)
    assert s.step_s == pytest.approx(0.2) and s.contention_s == s.sync_s == s.framework_s == 0
    assert T.sync_cost_s(0.2, 1, 0.5) == 0 and T.expected_max_normal(1) == 0


def test_zero_jitter_gives_no_straggler_cost():
    assert T.sync_cost_s(0.2, 1024, 0.0) == 0
    assert T.expected_max_empirical([0.2] * 50, 1024) == 0  # every sample the same
    s = ddp_step_time(net(), cluster(), 32, terms=T.Terms(contention=0, jitter_cv=0, framework_s_per_layer=0))
    assert s.sync_s == 0


def test_straggler_cost_grows_with_workers():
    # E[max of 2 standard normals] = 1/sqrt(pi) exactly; Blom's approximation is within 1 %
    assert T.expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=0.01)
    costs = [T.sync_cost_s(0.1, n, 0.01) for n in (2, 8, 64, 512)]
    assert costs == sorted(costs) and costs[-1] == pytest.approx(0.1 * 0.01 * 3.04, rel=0.02)
    samples = [0.1, 0.1, 0.1, 0.1, 0.2]  # one slow step in five
    # the chance that none of n workers draws the slow step is (4/5)^n
    assert T.expected_max_empirical(samples, 8) == pytest.approx(0.1 * (1 - 0.8**8))
    assert T.expected_max_empirical(samples, 10_000) == pytest.approx(0.1)  # bounded by the samples
    assert statistics.median(samples) + T.expected_max_empirical(samples, 1) == 0.1


def test_infinite_bandwidth_with_contention_0_scales_linearly():
    no_cost = T.Terms(contention=0.0, jitter_cv=0.0, framework_s_per_layer=0.0, launch_s_per_kernel=0.0)
    for r in predict(net(), cluster(link=IDEAL), [1, 16, 128], 32, terms=no_cost):
        assert r.efficiency == pytest.approx(1.0) and r.speedup == pytest.approx(r.gpus)
    # with contention but nothing to communicate, still linear
    for r in predict(net(), cluster(link=IDEAL), [1, 128], 32, terms=T.Terms(contention=1.0, jitter_cv=0.0,
                                                                               framework_s_per_layer=0.0)):
        assert r.contention_ms == pytest.approx(0.0) and r.efficiency == pytest.approx(1.0)


def test_contention_slows_backward_by_the_overlapped_share():
    # 100 MB at 1 GB/s over 2 ranks = 0.1 s of communication inside a 0.133 s backward
    plain = ddp_step_time(net(), cluster(2), 32, terms=T.NONE)
    slowed = ddp_step_time(net(), cluster(2), 32, terms=T.Terms(contention=0.5, jitter_cv=0, framework_s_per_layer=0))
    assert plain.contention_s == 0 and 0 < slowed.contention_s <= 0.5 * plain.comm_s
    assert slowed.step_s > plain.step_s
    # communication-bound (overlap far larger than backward): contention hides behind the link
    line = T.Timeline(1.0)
    line.add(0.0, 10.0)
    assert line.wall(1.0) == pytest.approx(2.0) and line.wall(6.0) == pytest.approx(11.0)


def test_framework_cost_per_layer_and_only_with_more_than_one_worker():
    s = ddp_step_time(net(), cluster(2, link=IDEAL), 32, terms=T.Terms(0, 0, 38e-6))
    assert s.framework_s == pytest.approx(100 * 38e-6)


def test_strong_scaling_interpolates_the_sweep_in_log_batch():
    sweep = ((8, 0.050), (32, 0.160))
    p = net(sweep=sweep)
    # per-sample 6.25 ms at 8, 5 ms at 32: at 16 (half-way in log batch) sqrt(6.25 x 5) = 5.59 ms
    assert p.measured_step_s(16) == pytest.approx(16 * math.sqrt(0.050 / 8 * 0.160 / 32))
    assert p.measured_step_s(32) == pytest.approx(0.2)  # the measured batch keeps its own step
    with pytest.raises(Exception, match="outside"):
        p.measured_step_s(64)
    rows = predict(p, cluster(2, link=IDEAL), [1, 2], 32, global_batch=32, terms=T.NONE)
    assert [r.batch_per_gpu for r in rows] == [16, 8] and rows[-1].compute_efficiency < 1.0
    assert rows[-1].loss_batch > 0


def test_auto_rings_inside_a_node_and_may_tree_across_nodes():
    # NCCL's tree spans nodes; one node of 8 NVLink GPUs always rings, even where a tree would be cheaper
    from nnscale.predict.comm import cluster_allreduce

    nv, ib = CAT.link("nvlink4"), CAT.link("ib-ndr")
    assert cluster_allreduce(25 * 2**20, 8, 1, nv, None, 1, "auto").algorithm == "ring"
    assert cluster_allreduce(25 * 2**20, 8, 1, nv, None, 1, "tree").total_s < \
        cluster_allreduce(25 * 2**20, 8, 1, nv, None, 1, "ring").total_s
    # many nodes, a small message: the tree's log2 latency wins
    assert cluster_allreduce(64e3, 8, 128, nv, ib, 8, "auto").algorithm == "tree"
    rows = predict(net(), Cluster(CAT.device("h100"), 8, 1, nv, ib, 8, "auto"), [1, 2], 32)
    assert rows[0].algorithm == "ring" and rows[0].bottleneck == "nvlink4"


NO_TERMS = T.Terms(contention=0.0, jitter_cv=0.0, framework_s_per_layer=0.0, launch_s_per_kernel=0.0)


def test_co_location_slows_the_compute_of_exactly_the_measured_workers_per_node():
    busy = net(loaded_factor=((2, 1.25),))
    # 2 workers per node on an ideal link: the step is the loaded compute, 1.25 x 0.2 s, and the
    # whole loss is co-location: 100 x 0.05 / 0.25 = 20 points, efficiency 0.8.
    s = ddp_step_time(busy, cluster(2, link=IDEAL), 32, terms=NO_TERMS)
    assert s.compute_s == pytest.approx(0.2) and s.colocation_s == pytest.approx(0.05)
    assert s.step_s == pytest.approx(0.25) and s.limited_by() == "co-location"
    one, two, r = predict(busy, cluster(2, link=IDEAL), [1, 2, 8], 32, terms=NO_TERMS)
    for row in (one, two, r):
        assert row.efficiency == pytest.approx(0.8) and row.loss_colocation == pytest.approx(20.0)
        assert row.colocation_ms == pytest.approx(50.0) and row.compute_ms == pytest.approx(200.0)
    # one worker alone, or a node of a count that was not measured, adds nothing
    assert ddp_step_time(busy, cluster(1), 32, terms=NO_TERMS).colocation_s == 0
    assert ddp_step_time(busy, cluster(8, link=IDEAL), 32, terms=NO_TERMS).colocation_s == 0
    assert ddp_step_time(busy, cluster(1, nodes=4, link=IDEAL), 32, terms=NO_TERMS).colocation_s == 0


def test_co_located_backward_makes_the_buckets_ready_later():
    # The same link, slowed compute: the last bucket's call starts later, so a link that hid its
    # communication behind a 0.2 s step still hides it (never more exposed by slower compute).
    lone = ddp_step_time(net(), cluster(2), 32, terms=NO_TERMS)
    busy = ddp_step_time(net(loaded_factor=((2, 1.5),)), cluster(2), 32, terms=NO_TERMS)
    assert busy.comm_s == pytest.approx(lone.comm_s)
    assert busy.exposed_s <= lone.exposed_s + 1e-12
    assert busy.colocation_s == pytest.approx(0.5 * lone.compute_s)


@pytest.mark.parametrize("bad", [((1, 1.2),), ((2, 0.0),), ((2, math.nan),)])
def test_a_co_location_factor_needs_two_workers_and_a_positive_ratio(bad):
    from nnscale.errors import UserError

    with pytest.raises(UserError, match="co-location factor"):
        net(loaded_factor=bad)
