"""FSDP across two "nodes" for real: the two network namespaces and veth pair of test_two_nodes.py,
one `nnscale scale --strategy fsdp --nnodes 2` in each, a `tc tbf` cap on the link. FSDP's
all-gathers and reduce-scatters cross the veth, so their time must grow as the cap tightens."""

from __future__ import annotations

import json

import pytest

from nnscale.store import open_store
from nnscale.records_stats import Stats

from ddp_helpers import cli_env, leftovers, new_mark
from test_two_nodes import ADDR, _cap, link, run_agents  # noqa: F401 - `link` is the namespaces fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420), pytest.mark.xdist_group("netns")]  # 3 min here under a load of 10

MODEL = "pytorch-mnist-net"  # 431K parameters, 1.7 MB: bandwidth dominates latency under a cap
PARAMS = 431_080
PORT = 29473
CAPS = ("1000mbit", "50mbit")


def _two_fsdp_agents(ns: dict, rate: str, db: str, mark: str) -> dict:
    common = ["scale", MODEL, "--strategy", "fsdp", "--bandwidth-cap", rate, "--nproc", "1",
              "--nnodes", "2", "--batch-per-worker", "8", "--budget", "1", "--timeout", "90",
              "--launches", "1",  # rounds across nodes: test_two_nodes
              "--rdzv-endpoint", f"{ADDR['a']}:{PORT}", "--db", db, "--run", "fsdp-caps",
              "--format", "json"]
    outs = run_agents(ns, common, cli_env(NNSCALE_TEST_MARK=mark), timeout=200)
    (point,) = json.loads(outs[0][0])
    return point


def test_fsdp_collectives_slow_down_as_the_link_tightens(link, tmp_path):  # noqa: F811
    ns, dev = link
    db, mark = str(tmp_path / "fsdp-nodes.db"), new_mark()
    comm = {}
    for rate in CAPS:
        _cap(ns, dev, rate)
        point = _two_fsdp_agents(ns, rate, db, mark)
        s, w = Stats.from_dict(point["stats"]), point["workload"]
        assert (w["strategy"], w["framework"], w["nnodes"]) == ("fsdp", "torch", 2)
        assert w["link_cap_bit_per_s"] == int(rate.removesuffix("mbit")) * 1e6
        assert w["world_size"] == 2
        assert s.distributed.bytes_reduce_scattered_per_step == 4 * PARAMS
        assert s.distributed.param_bytes_per_rank == 4 * PARAMS // 2
        comm[rate] = s.distributed.all_gather_ms + s.distributed.reduce_scatter_ms
    # Per step each rank sends half of the all-gathered bytes (2 x 1.7 MB: forward and backward)
    # and half of the reduce-scattered 1.7 MB: about 2.6 MB, 0.4 s at 50 Mbit/s, 21 ms at 1 Gbit/s.
    assert comm["50mbit"] > 250.0 and comm["50mbit"] > 3 * comm["1000mbit"], comm
    assert leftovers(mark) == []
    with open_store(db, create=False) as store:
        assert len(store.measurements("fsdp-caps")) == len(CAPS)
