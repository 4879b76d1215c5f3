"""1 and 2 gloo workers on CPU, for real, through torchrun, from an uninstalled source tree."""

from __future__ import annotations

import pytest

from ddp_helpers import scale_run
from nnscale.records import DISTRIBUTED, DDPOptions

# xdist_group: the module's fixture launches torchrun once; one worker runs all its tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_scale_local")]

PARTS = ("forward_ms", "backward_ms", "optimizer_ms", "comm_exposed_ms")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    # One thread per worker: a 2-core machine shared with other jobs makes 2-thread OpenMP
    # barriers spin against the other load, which is noise and not what is tested here.
    result, points, _ = scale_run(tmp_path_factory, "local", "test-tiny-resnet", "--nproc", "1,2",
                                  "--batch-per-worker", "16", "--threads-per-worker", "1",
                                  "--budget", "2")
    return result, points


def test_one_point_per_world_size_with_speedup(scaled):
    result, points = scaled
    assert [p.workload.world_size for p in points] == [1, 2]
    one, two = points
    assert {p.status for p in points} <= {"ok", "unstable"}
    assert (one.workload.framework, one.workload.engine) == ("torch", "torch-ddp")
    assert one.workload.kind == DISTRIBUTED and one.workload.ddp == DDPOptions()
    assert one.workload.batch_size == 16
    assert one.stats.distributed.speedup_vs_1_worker == pytest.approx(1.0)
    assert one.stats.distributed.efficiency_vs_1_worker == pytest.approx(1.0)
    s = two.stats
    assert s.distributed.global_batch == 32 and s.distributed.scaling == "weak" and s.launch.backend == "gloo"
    assert s.throughput.samples_per_s == pytest.approx(32 * 1000 / s.timing.median_ms)
    assert s.distributed.samples_per_s_per_worker == pytest.approx(s.throughput.samples_per_s / 2)
    assert s.distributed.speedup_vs_1_worker == pytest.approx(s.throughput.samples_per_s / one.stats.throughput.samples_per_s)
    assert s.distributed.efficiency_vs_1_worker == pytest.approx(s.distributed.speedup_vs_1_worker / 2)
    assert "world size 1" in s.distributed.baseline_1_worker
    assert s.distributed.speedup_vs_1_node is None  # a single node: no node baseline
    assert len(two.samples_ms) == s.timing.iterations >= 10
    assert s.distributed.breakdown_iters == s.timing.iterations and "inline" in s.distributed.breakdown_method


def test_breakdown_adds_up_to_the_measured_step(scaled):
    _, points = scaled
    for p in points:
        s = p.stats
        total = sum(getattr(s.distributed, k) for k in PARTS)
        assert total == pytest.approx(s.distributed.breakdown_sum_ms)
        assert abs(total - s.timing.median_ms) <= 0.10 * s.timing.median_ms, (
            p.workload.world_size, {k: getattr(s.distributed, k) for k in PARTS}, s.timing.median_ms)
        assert all(getattr(s.distributed, k) >= 0 for k in PARTS + ("comm_total_ms", "comm_overlapped_ms"))
        assert s.distributed.comm_total_ms == pytest.approx(s.distributed.comm_exposed_ms + s.distributed.comm_overlapped_ms)


def test_bytes_ranks_and_ddp_logging(scaled):
    _, points = scaled
    two = points[1].stats
    params = 3 * 8 * 9 + 2 * 8 + 4 * (8 * 8 * 9 + 2 * 8) + 8 * 10 + 10  # test-tiny-resnet
    assert two.distributed.bytes_allreduced_per_step == 4 * params  # fp32 gradients, no compression
    assert two.distributed.ddp_logging["total_parameter_size_bytes"] == 4 * params
    assert two.distributed.ddp_logging["backend_name"] == "gloo"
    assert len(two.distributed.per_rank_step_ms) == len(two.distributed.per_rank_compute_ms) == 2
    assert two.distributed.slowest_rank in (0, 1) and two.distributed.straggler_ratio >= 1.0
    assert two.distributed.per_rank_host[0]


def test_table_and_time_to_train(scaled):
    result, points = scaled
    assert "speedup vs 1 worker" in result.stdout and "time [min]" in result.stdout
    assert "stored (run 'local'" in result.stdout
    for p in points:
        s = p.stats
        steps = -(-1_281_167 // s.distributed.global_batch)
        assert s.distributed.time_to_train_min == pytest.approx(90 * steps * s.timing.median_ms / 60_000)
