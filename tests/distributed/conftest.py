"""Fixtures shared by modules of tests/distributed.

`local_scale`: one `nnscale scale test-tiny-resnet --nproc 1,2` on this machine, 3 launches per
world size (the default), interleaved. test_scale_local.py checks its points, rounds and breakdown;
test_pinning_trace.py checks, on the same points, the cores each rank was given and the one traced
step. Each module ran its own before (6 launches and 2 launches, ~90 s and ~30 s of the suite on 2
cores); what they check is not changed by sharing: no --threads-per-worker, so the split is
nnscale's own (1 thread per worker on 2 cores, as the local test asked for explicitly), and the
trace is taken in round 1 whatever the number of launches. Both modules carry the xdist group
"test_scale_local", so that one xdist worker runs the launch once, for both.
"""

from __future__ import annotations

import pytest

from ddp_helpers import scale_run


@pytest.fixture(scope="session")
def local_scale(tmp_path_factory):
    """(result, points, db) of the shared run "local": one point per world size, 1 then 2."""
    return scale_run(tmp_path_factory, "local", "test-tiny-resnet", "--nproc", "1,2",
                     "--batch-per-worker", "16", "--budget", "2", timeout=420)  # 6 launches, ~90 s when quiet
