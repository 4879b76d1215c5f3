"""`nnscale scale --loaded-reference`: the one-worker step run as N independent copies at once on
the cores N workers get, through torchrun (real gloo ranks), stored as its own point beside the
world sizes, and read by `nnscale predict measured:RUN` as the compute of N co-located workers.
"""

from __future__ import annotations

import json
import os

import pytest

from ddp_helpers import run_cli, scale_run, skip_or_fail

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    if len(os.sched_getaffinity(0)) < 2:
        skip_or_fail("needs 2 usable cores to pin 2 copies apart")
    return scale_run(tmp_path_factory, "loaded", "test-tiny-resnet", "--nproc", "1,2",
                     "--batch-per-worker", "8", "--budget", "1", "--launches", "1",
                     "--loaded-reference", "--no-trace", timeout=300)


def test_the_loaded_reference_is_a_world_size_1_point_of_two_copies_on_the_workers_cores(loaded):
    result, points, _ = loaded
    by = {(p.workload.world_size, p.workload.concurrent_copies): p for p in points}
    assert sorted(by) == [(1, 1), (1, 2), (2, 1)], sorted(by)
    lone, busy, two = by[(1, 1)], by[(1, 2)], by[(2, 1)]
    assert busy.status in ("ok", "unstable") and busy.workload.loaded
    assert busy.workload.engine == "torch-ddp[concurrent=2]"
    assert busy.workload.key() not in (lone.workload.key(), two.workload.key())
    assert busy.workload.batch_size == two.workload.batch_size == 8
    assert busy.workload.threads == two.workload.threads
    d = busy.stats.distributed
    # Both copies ran, each on the cores the same rank of the 2-worker point had.
    assert len(d.per_rank_step_ms) == 2
    assert d.per_rank_cpus == two.stats.distributed.per_rank_cpus
    assert not set(d.per_rank_cpus[0]) & set(d.per_rank_cpus[1])
    # ... and never exchanged a gradient: DDP ran over a group of one rank, as at world size 1.
    assert d.ddp_logging.get("world_size") == 1, d.ddp_logging
    assert two.stats.distributed.ddp_logging.get("world_size") == 2
    # The 2-worker point's speedup is against the lone worker, not against the loaded copies.
    assert d.speedup_vs_1_worker is None
    assert two.stats.distributed.speedup_vs_1_worker == pytest.approx(
        two.stats.throughput.samples_per_s / lone.stats.throughput.samples_per_s)
    assert "loaded reference: 2 one-worker copies at once, batch 8" in result.stdout


def test_predict_reads_the_loaded_reference_as_the_compute_of_two_workers_per_node(loaded):
    _, points, db = loaded
    by = {(p.workload.world_size, p.workload.concurrent_copies): p for p in points}
    # the copies' compute over the lone worker's, each from its breakdown (points.loaded_ratio)
    busy, lone = by[(1, 2)].stats.distributed, by[(1, 1)].stats.distributed
    factor = ((busy.forward_ms + busy.backward_ms + busy.optimizer_ms)
              / (lone.forward_ms + lone.backward_ms + lone.optimizer_ms))
    result, _ = run_cli("predict", "test-tiny-resnet", "--device", "measured:loaded", "--store",
                        str(db), "--gpus-per-node", "2", "--nodes", "1", "--intra-link", "pcie4",
                        "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert any(n.startswith("co-location: 2 copies") and f"{factor - 1:+.1%}" in n
               for n in out["notes"]), out["notes"]
    row = out["rows"][0]
    assert row["gpus"] == 2
    assert row["colocation_ms"] == pytest.approx((factor - 1) * row["compute_ms"], rel=1e-6)
