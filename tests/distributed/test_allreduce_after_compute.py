"""All-reduces timed after compute (`nnscale allreduce --compute-before`): as a DDP step meets them."""

from __future__ import annotations

import time

import pytest
import torch

from nnscale.distributed.allreduce import AfterCompute
from nnscale.distributed.config import AllreduceConfig, Launching
from nnscale.errors import UserError
from nnscale.measure.methodology import CpuTimer
from nnscale.records import ALLREDUCE
from nnscale.store import open_store

from ddp_helpers import run_cli


def test_the_compute_runs_before_each_call_and_is_not_timed():
    timer = AfterCompute(CpuTimer(), 30.0, torch.device("cpu"))
    start = time.perf_counter()
    ms = timer.time_ms(lambda: time.sleep(0.002))
    wall_ms = 1e3 * (time.perf_counter() - start)
    assert 2.0 <= ms < 25.0  # the call alone
    assert wall_ms >= 32.0  # and the 30 ms of compute before it


@pytest.mark.parametrize("bad", [-1.0, 1001.0, float("nan"), True])
def test_compute_before_out_of_range_is_refused(bad):
    with pytest.raises(UserError, match="--compute-before"):
        AllreduceConfig(Launching(nproc=(2,)), (1024,), compute_before_ms=bad)


@pytest.mark.slow
def test_points_timed_after_compute_say_so_in_their_workload(tmp_path):
    db = tmp_path / "ar.db"
    result, _ = run_cli("allreduce", "--sizes", "4K", "--nproc", "2", "--threads-per-worker", "1",
                        "--budget", "0.6", "--launches", "2", "--compute-before", "50", "--db", str(db),
                        "--run", "ar")
    assert result.returncode == 0, result.stderr[-3000:]
    with open_store(str(db), create=False) as store:
        (p,) = store.measurements("ar")
    w, t = p.workload, p.stats.timing
    assert (w.kind, w.compute_before_ms, w.engine) == (ALLREDUCE, 50.0, "torch-gloo[compute_before=50ms]")
    # The compute is not in the times (a 4 KiB call on loopback is well under 50 ms) ...
    assert max(p.samples_ms) < 50.0
    # ... but it ran before every call, warm-up included: each launch has 0.3 s to measure and
    # 0.6 s to warm up, so at 50 ms a call at most ~18 calls (back to back: hundreds).
    assert t.warmup_iters + t.iterations <= 2 * (0.9 / 0.050 + 2)
