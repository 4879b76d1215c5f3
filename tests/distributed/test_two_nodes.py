"""Two nodes for real: two torchrun agents in two network namespaces joined by a veth pair.

The test (as root) creates namespaces nnsA-<id> and nnsB-<id>, a veth pair with 10.213.0.1/24 and
10.213.0.2/24 on its two ends and nothing else (no route leaves the pair), and runs one
`nnscale scale --nnodes 2` in each namespace; the rendezvous and gloo's traffic cross the veth. A
`tc tbf` token bucket on both ends caps the link at three rates, and the measured communication time
must grow as the cap tightens. Without permission for namespaces the test is skipped, with the
reason; under CI=true it fails instead. Namespaces are deleted in all cases (which deletes the veth
pair and its qdiscs with them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from nnscale.distributed.config import tbf_burst
from nnscale.store import open_store
from nnscale.records_stats import Stats

from ddp_helpers import cli_env, leftovers, new_mark, skip_or_fail

# xdist_group: the namespaces' addresses (ADDR) and PORT are fixed, shared with test_fsdp_two_nodes.py.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360), pytest.mark.xdist_group("netns")]

ADDR = {"a": "10.213.0.1", "b": "10.213.0.2"}
CAPS = ("1000mbit", "200mbit", "50mbit")  # loosest first
MODEL = "pytorch-mnist-net"  # 431K parameters: 1.7 MB of gradients, so bandwidth dominates latency
PORT = 29471
# The rounds across the two nodes (both run the same interleaved launches and combine the same
# results of rank 0) are checked at one cap; the others take one launch per point: each launch of
# two agents costs ~20 s here, and what grows with the cap is the communication time, not the
# rounds (6 launches before: 139 s of the suite's slowest test).
ROUNDS_CAP, ROUNDS = CAPS[0], 2


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def link():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        skip_or_fail("needs root and iproute2 (ip, tc) to create network namespaces")
    tag = uuid.uuid4().hex[:6]
    ns = {"a": f"nnsA-{tag}", "b": f"nnsB-{tag}"}
    dev = {"a": f"nnv{tag}a", "b": f"nnv{tag}b"}  # interface names: at most 15 characters
    made = []
    try:
        for side in "ab":
            _ip("netns", "add", ns[side])
            made.append(ns[side])
        _ip("link", "add", dev["a"], "type", "veth", "peer", "name", dev["b"])
        for side in "ab":
            _ip("link", "set", dev[side], "netns", ns[side])
            _ip("-n", ns[side], "addr", "add", f"{ADDR[side]}/24", "dev", dev[side])
            _ip("-n", ns[side], "link", "set", dev[side], "up")
            _ip("-n", ns[side], "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        skip_or_fail(f"cannot create network namespaces and a veth pair here: {e.stderr.strip()}")
    try:
        yield ns, dev
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _cap(ns: dict, dev: dict, rate: str) -> None:
    for side in "ab":  # tbf shapes what leaves an interface: cap both directions
        subprocess.run(["ip", "netns", "exec", ns[side], "tc", "qdisc", "replace", "dev", dev[side],
                        "root", "tbf", "rate", rate, "burst", tbf_burst(rate), "latency", "400ms"],
                       check=True, capture_output=True, timeout=30)


def run_agents(ns: dict, args: list[str], env: dict, timeout: float) -> list[tuple[str, str]]:
    """`nnscale ARGS --node-rank R` in namespace a (rank 0) and b (rank 1) at once; their
    (stdout, stderr), each asserted to have exited 0. Each "node" gets its own share of this
    machine's cores, as two machines would: nnscale splits the cores it is given
    (sched_getaffinity) among its workers and pins them there."""
    cores = sorted(os.sched_getaffinity(0))
    share = [set(cores[: max(1, len(cores) // 2)]), set(cores[len(cores) // 2:]) or set(cores)]
    procs = [subprocess.Popen(["ip", "netns", "exec", ns[side], sys.executable, "-m", "nnscale",
                               *args, "--node-rank", str(rank)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=lambda cpus=share[rank]: os.sched_setaffinity(0, cpus))
             for rank, side in enumerate("ab")]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def _two_agents(ns: dict, rate: str, db: str, mark: str, launches: int) -> tuple[dict, float]:
    common = ["scale", MODEL, "--bandwidth-cap", rate, "--nproc", "1", "--nnodes", "2", "--batch-per-worker",
              "8", "--budget", "1", "--breakdown-iters", "10", "--timeout", "90", "--launches", str(launches),
              "--rdzv-endpoint", f"{ADDR['a']}:{PORT}", "--db", db, "--run", "caps", "--format", "json"]
    env = cli_env(NNSCALE_TEST_MARK=mark)
    start = time.monotonic()
    outs = run_agents(ns, common, env, timeout=150)
    (point,) = json.loads(outs[0][0])
    (other,) = json.loads(outs[1][0])
    assert other["workload"]["world_size"] == 2  # node 1 sees the same result
    # Both nodes ran the same rounds, and each combined the same launches of rank 0.
    assert other["samples_ms"] == point["samples_ms"]
    s = Stats.from_dict(point["stats"])
    assert s.processes.processes == launches and len(s.launch.started_at_s) == launches
    return point, time.monotonic() - start


def test_two_namespaces_communication_grows_as_the_link_tightens(link, tmp_path):
    ns, dev = link
    db, mark = str(tmp_path / "nodes.db"), new_mark()
    comm = {}
    for rate in CAPS:
        _cap(ns, dev, rate)
        point, seconds = _two_agents(ns, rate, db, mark, ROUNDS if rate == ROUNDS_CAP else 1)
        s = Stats.from_dict(point["stats"])
        # Tagged with the layout and the cap, as nnscale.predict reads them; one run holds all three caps.
        w = point["workload"]
        assert (w["framework"], w["nnodes"], w["world_size"], w["strategy"]) == ("torch", 2, 2, "ddp")
        assert w["link_cap_bit_per_s"] == int(rate.removesuffix("mbit")) * 1e6
        # The rendezvous and gloo went over the veth pair, nowhere else.
        assert s.distributed.ddp_logging["master_addr"] in ADDR.values()
        assert s.distributed.ddp_logging["gloo_socket_ifname"] == dev["a"]
        comm[rate] = s.distributed.comm_total_ms
    assert comm["1000mbit"] < comm["200mbit"] < comm["50mbit"], comm
    # A 2-rank ring all-reduce sends the 1.7 MB of gradients once each way: 276 ms at 50 Mbit/s,
    # 14 ms at 1 Gbit/s, plus latency.
    assert comm["50mbit"] > 200.0 and comm["50mbit"] > 3 * comm["1000mbit"], comm
    assert leftovers(mark) == []
    with open_store(db, create=False) as store:
        assert len(store.measurements("caps")) == len(CAPS)


def test_unroutable_endpoint_is_a_clean_error(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        skip_or_fail("needs root and iproute2 to create a network namespace")
    name = f"nnsC-{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as e:
        skip_or_fail(f"cannot create a network namespace here: {e.stderr.strip()}")
    try:  # a namespace with nothing but a loopback that is down: no route to anywhere
        result = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-m", "nnscale", "scale", "test-tiny-mlp",
             "--nproc", "1", "--nnodes", "2", "--node-rank", "1", "--batch-per-worker", "4",
             "--rdzv-endpoint", "10.213.0.77:29400", "--db", str(tmp_path / "x.db")],
            env=cli_env(), capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0], lines
