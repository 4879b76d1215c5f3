"""Every world size's workers get the same resources, read back from the ranks themselves, and one
step of each point is traced with torch.profiler: 1 and 2 real gloo workers through torchrun.

No --threads-per-worker: the split is nnscale's own. With 2 usable cores that is 1 thread per
worker for 1 and for 2 workers, the 1-worker reference included (issue 11: it had 2 threads).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddp_helpers import breakdown_launch, skip_or_fail

# xdist_group: the run is test_scale_local's (conftest.py, `local_scale`): one worker launches it
# once for both modules.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_scale_local")]


@pytest.fixture(scope="module")
def scaled(local_scale):
    _, points, db = local_scale
    return db, points


def test_every_world_size_gets_the_largest_ones_share_pinned_and_disjoint(scaled):
    _, points = scaled
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        skip_or_fail("needs 2 usable cores to pin 2 workers apart")
    share = len(cores) // 2
    one, two = points
    for p in (one, two):
        s = p.stats
        assert p.workload.threads == share  # one name: the workload says what each worker ran with
        # What each rank read in its own process after setup: torch threads and its affinity.
        assert s.distributed.per_rank_threads == (share,) * p.workload.world_size
        for cpus in s.distributed.per_rank_cpus:
            assert len(cpus) == share and set(cpus) <= set(cores)
    a, b = two.stats.distributed.per_rank_cpus
    assert not set(a) & set(b), (a, b)  # disjoint cores
    assert one.stats.distributed.per_rank_cpus == (a,)  # the reference is rank 0 of the larger world, alone
    assert two.stats.distributed.worker == f"{share} CPU thread{'s' if share > 1 else ''} pinned to " \
                                  f"core{'s' if share > 1 else ''} {','.join(map(str, a))}"
    # Speedup is against the same kind of worker.
    assert two.stats.distributed.speedup_vs_1_worker == pytest.approx(
        two.stats.throughput.samples_per_s / one.stats.throughput.samples_per_s)


def test_one_step_is_traced_beside_the_store_with_every_kind_of_event(scaled):
    db, points = scaled
    two = points[1]
    path = Path(two.stats.distributed.trace_file)
    assert path.parent == db.parent / f"{db.name}.traces" and path.is_file()
    trace = json.loads(path.read_text())  # Chrome trace JSON, as Perfetto reads it
    names = {e.get("name") for e in trace["traceEvents"]}
    assert "DistributedDataParallel.forward" in names and "gloo:all_reduce" in names
    assert any(str(n).startswith("autograd::engine::evaluate_function: ConvolutionBackward0")
               for n in names)
    timeline = two.stats.distributed.step_timeline
    kinds = [e["kind"] for e in timeline["events"]]
    assert {"forward", "backward", "allreduce", "optimizer"} <= set(kinds)
    # In the order a step runs: forward first, the optimizer after the last backward op.
    assert kinds[0] == "forward"
    last_back = max(i for i, k in enumerate(kinds) if k == "backward")
    assert kinds.index("optimizer") > last_back
    assert 0 < timeline["step_ms"] and all(0 <= e["start_ms"] <= timeline["step_ms"] + 1e-6
                                           for e in timeline["events"])
    assert [e["lane"] for e in timeline["events"] if e["kind"] == "allreduce"] == ["comm"] * \
        kinds.count("allreduce")
    # The traced steps are not measured ones: the breakdown still holds only the measured steps
    # (of the launch it comes from; the point has one per round).
    assert two.stats.distributed.breakdown_iters == \
        two.stats.processes.process_iterations[breakdown_launch(two)]
