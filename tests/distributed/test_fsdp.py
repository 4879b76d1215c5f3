"""`nnscale scale --strategy fsdp` (FSDP2) beside DDP, for real: torchrun, gloo on loopback, 1 and 2
workers, test-wide-mlp (5.26M parameters: 21 MB, so parameters, gradients and momentum dominate a
step's memory). The point of sharding: at world size 2 every FSDP rank needs less memory than DDP's."""

from __future__ import annotations

import pytest

from nnscale.records import Workload
from nnscale.store import open_store

from ddp_helpers import run_cli

# xdist_group: the module's fixture launches torchrun once; one worker runs all its tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_fsdp")]

MODEL = "test-wide-mlp"
PARAMS = 5 * (1024 * 1024 + 1024) + 1024 * 10 + 10  # 5,258,250
ROOT_PARAMS = 1024 * 10 + 10  # the head: no block holds it, so the root's group does
PARTS = ("forward_ms", "backward_ms", "optimizer_ms", "comm_exposed_ms")


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("fsdp") / "fsdp.db")
    for strategy in ("ddp", "fsdp"):
        result, _ = run_cli("scale", MODEL, "--strategy", strategy, "--nproc", "1,2",
                            "--batch-per-worker", "4", "--threads-per-worker", "1", "--budget", "1",
                            "--launches", "1",  # the launches are test_scale_local's
                            "--db", db, "--run", "both", timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    with open_store(db, create=False) as store:
        stored = store.measurements("both")
    return {(p.workload.strategy, p.workload.world_size): p for p in stored}


def test_the_strategy_is_a_field_of_the_workload_and_of_its_key(points):
    assert sorted(points) == [("ddp", 1), ("ddp", 2), ("fsdp", 1), ("fsdp", 2)]
    ddp, fsdp = points["ddp", 2].workload, points["fsdp", 2].workload
    assert (ddp.framework, fsdp.framework) == ("torch", "torch")
    assert (ddp.engine, fsdp.engine) == ("torch-ddp", "torch-fsdp") and fsdp.ddp is None
    assert ddp.key() != fsdp.key()
    assert points["fsdp", 2].workload.strategy == "fsdp"
    # A one-process point (strategy "") keeps the key it had before the field existed.
    assert Workload("test-tiny-mlp", "training", 4, (3, 8, 8)).key() == "f277bca6b4892b38"


def test_fsdp_at_world_size_2_needs_less_memory_per_rank_than_ddp(points):
    ddp, fsdp = points["ddp", 2].stats, points["fsdp", 2].stats
    # What each rank holds, counted from its tensors: all of it under DDP, half under FSDP.
    assert ddp.distributed.param_bytes_per_rank == 4 * PARAMS
    assert fsdp.distributed.param_bytes_per_rank == 4 * PARAMS // 2  # every dim 0 is even: no padding
    assert fsdp.distributed.optimizer_state_bytes_per_rank == 4 * PARAMS // 2  # SGD momentum, sharded
    saved = min(ddp.distributed.per_rank_model_state_bytes) - max(fsdp.distributed.per_rank_model_state_bytes)
    assert saved == 3 * 4 * PARAMS // 2
    # Measured (peak resident set of the steps): every FSDP rank below every DDP rank, by at least
    # half of what sharding saves on parameters, gradients and momentum.
    peaks_ddp, peaks_fsdp = ddp.distributed.per_rank_peak_memory_bytes, fsdp.distributed.per_rank_peak_memory_bytes
    assert len(peaks_ddp) == len(peaks_fsdp) == 2 and None not in peaks_ddp + peaks_fsdp
    assert max(peaks_fsdp) < min(peaks_ddp) - saved / 2, (peaks_fsdp, peaks_ddp)
    # DDP's peak holds at least parameters, gradients, momentum and its gradient buckets.
    assert min(peaks_ddp) >= 4 * 4 * PARAMS * 0.9
    assert fsdp.compute.peak_memory_bytes == max(peaks_fsdp) and "VmHWM" in fsdp.distributed.memory_method


def test_fsdp_breakdown_names_its_collectives_and_adds_up(points):
    s = points["fsdp", 2].stats
    # Forward: the root's group and the 5 blocks are gathered; backward: the 5 blocks again
    # (resharded after forward), the root not; every group's gradients reduce-scattered once.
    assert (s.distributed.all_gathers, s.distributed.reduce_scatters) == (11, 6)
    assert s.distributed.bytes_reduce_scattered_per_step == 4 * PARAMS
    assert s.distributed.bytes_all_gathered_per_step == 4 * (2 * PARAMS - ROOT_PARAMS)
    # On CPU FSDP2's collectives block the training thread: all exposed, none overlapped.
    assert s.distributed.comm_total_ms == pytest.approx(s.distributed.all_gather_ms + s.distributed.reduce_scatter_ms, rel=1e-6)
    assert s.distributed.comm_exposed_ms == pytest.approx(s.distributed.comm_total_ms, rel=1e-6)
    assert s.distributed.comm_overlapped_ms == pytest.approx(0.0, abs=1e-6) and s.distributed.comm_total_ms > 0
    assert sum(getattr(s.distributed, k) for k in PARTS) == pytest.approx(s.distributed.breakdown_sum_ms)
    assert s.distributed.breakdown_sum_ms == pytest.approx(s.distributed.breakdown_step_ms)
    assert all(getattr(s.distributed, k) >= 0 for k in PARTS)
    assert s.distributed.fsdp_layout["blocks"] == 5 and "FSDP" in s.distributed.breakdown_method
    one = points["fsdp", 1].stats  # one rank: FSDP skips every collective
    assert (one.distributed.all_gathers, one.distributed.reduce_scatters, one.distributed.comm_total_ms) == (0, 0, 0)


def test_speedups_compare_within_one_strategy(points):
    two, one = points["fsdp", 2].stats, points["fsdp", 1].stats
    assert two.distributed.speedup_vs_1_worker == pytest.approx(two.throughput.samples_per_s / one.throughput.samples_per_s)
    assert points["ddp", 2].stats.distributed.speedup_vs_1_worker == pytest.approx(
        points["ddp", 2].stats.throughput.samples_per_s / points["ddp", 1].stats.throughput.samples_per_s)
