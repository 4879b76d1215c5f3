"""Alpha-beta cost of an all-reduce of n bytes over p ranks: ring, tree and hierarchical.

The alpha-beta (Hockney) model: sending m bytes over a link costs alpha + m / B. Costs of the
collectives, from R. Thakur, R. Rabenseifner, W. Gropp, "Optimization of collective communication
operations in MPICH", IJHPCA 19(1), 2005, §4 (the reduction's own compute, their gamma term, is
folded into B here, as nccl-tests do):

- ring all-reduce = reduce-scatter + all-gather, each p-1 steps moving n/p bytes per step:
      T_ring = 2(p-1) alpha + 2 (p-1)/p * n / B
  Its bandwidth term is the lower bound for any all-reduce on a ring-connected network (P. Patarasuk,
  X. Yuan, "Bandwidth optimal all-reduce algorithms for clusters of workstations", JPDC 69(2), 2009).
  nccl-tests' PERFORMANCE.md defines bus bandwidth the same way: busbw = algbw * 2(p-1)/p.
- reduce-scatter, all-gather alone (ring): (p-1) alpha + (p-1)/p * n / B
- tree: a pipelined double binary tree (P. Sanders, J. Speck, J. L. Träff, "Two-tree algorithms for
  full bandwidth broadcast, reduction and scan", Parallel Computing 35(12), 2009; NCCL's tree since
  2.4): reduce up and broadcast down, each ceil(log2 p) hops deep, each moving n bytes:
      T_tree = 2 ceil(log2 p) alpha + 2 n / B   (the pipeline's fill term is neglected)
- hierarchical (g ranks per node, N nodes): reduce-scatter inside the node, all-reduce of the n/g
  shard across nodes (g such rings share the node's NICs), all-gather inside the node:
      T_hier = 2 [(g-1) alpha_i + (g-1)/g * n / B_i] + 2(N-1) alpha_e + 2 (N-1)/N * n / B_node
  where B_node = NICs per node x NIC bandwidth: g concurrent rings of n/g bytes move
  g * 2(N-1)/N * n/g bytes through the node's NICs.

A link measured on this machine (a fitted link with its run's all-reduces, `Link.measured`) is
taken at its word where it was measured: at the measured number of ranks, between its smallest and
largest size, `measured_time_s` interpolates the measured times linearly in n: between two measured
sizes the call is alpha + n / B with the alpha and B those two give (the Hockney model fitted
locally, exact where the whole curve is one alpha-beta line). Gloo's
loopback calls on the 2-core VMs are not alpha + n/B there: a share of them wait for a sleeping
peer, and that share grows with the size (docs/benchmarks.md, "Where the report's local prediction
misses"), so the fitted line was 37 % under the measured curve at DDP's 1.72 MB bucket. Beyond the
measured sizes or ranks the alpha-beta line stands.

On a cluster a flat ring or tree runs over both links, and its synchronous steps go at the pace of
the slowest: alpha = max(alpha_i, alpha_e), B = min(B_i, B_node). Bandwidths are the links'
effective (efficiency x nominal) per-direction rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnscale.predict.catalogue import Link

ALGORITHMS = ("ring", "tree", "hierarchical", "auto")


@dataclass(frozen=True, slots=True)
class CommCost:
    """One all-reduce: its latency (alpha) and bandwidth (beta) parts, in seconds."""

    latency_s: float
    bandwidth_s: float
    algorithm: str
    bottleneck: str  # the link that sets the bandwidth term

    @property
    def total_s(self) -> float:
        return self.latency_s + self.bandwidth_s


def _check(n_bytes: float, p: int) -> None:
    if n_bytes < 0 or p < 1:
        raise ValueError(f"need n_bytes >= 0 and p >= 1, got {n_bytes}, {p}")


def ring_allreduce(n_bytes: float, p: int, alpha_s: float, bandwidth: float) -> tuple[float, float]:
    """(latency, bandwidth) seconds of a ring all-reduce: 2(p-1) alpha, 2(p-1)/p n/B."""
    _check(n_bytes, p)
    if p == 1 or n_bytes == 0:
        return 0.0, 0.0
    return 2 * (p - 1) * alpha_s, 2 * (p - 1) / p * n_bytes / bandwidth


def tree_allreduce(n_bytes: float, p: int, alpha_s: float, bandwidth: float) -> tuple[float, float]:
    """(latency, bandwidth) seconds of a pipelined double-binary-tree all-reduce."""
    _check(n_bytes, p)
    if p == 1 or n_bytes == 0:
        return 0.0, 0.0
    return 2 * math.ceil(math.log2(p)) * alpha_s, 2 * n_bytes / bandwidth


def ring_half(n_bytes: float, p: int, alpha_s: float, bandwidth: float) -> tuple[float, float]:
    """(latency, bandwidth) seconds of a ring reduce-scatter (or all-gather): half a ring all-reduce."""
    lat, bw = ring_allreduce(n_bytes, p, alpha_s, bandwidth)
    return lat / 2, bw / 2


def measured_time_s(n_bytes: float, p: int, link: Link) -> float | None:
    """Seconds of an all-reduce of `n_bytes` over `p` ranks, interpolated linearly between the two
    all-reduces measured on `link` at p ranks whose sizes bracket it (module docstring); None
    outside them (fewer than two sizes at p, or n outside [smallest, largest]). Repeated sizes
    count by their mean."""
    by_size: dict[float, list[float]] = {}
    for ranks, size, seconds in link.measured:
        if ranks == p and size > 0 and seconds > 0:
            by_size.setdefault(float(size), []).append(seconds)
    curve = sorted((size, sum(ts) / len(ts)) for size, ts in by_size.items())
    if len(curve) < 2 or not curve[0][0] <= n_bytes <= curve[-1][0]:
        return None
    for (s0, t0), (s1, t1) in zip(curve, curve[1:]):
        if n_bytes <= s1:
            return t0 + (n_bytes - s0) * (t1 - t0) / (s1 - s0)
    return None  # unreachable: n_bytes <= the largest size


def _measured_cost(n_bytes: float, p: int, link: Link, algorithm: str) -> CommCost | None:
    """The measured curve's cost, split as the alpha-beta ring would split it (its latency part,
    at most the whole), or None where the link has no measurement (measured_time_s)."""
    t = measured_time_s(n_bytes, p, link)
    if t is None:
        return None
    lat, _ = ring_allreduce(n_bytes, p, link.alpha_s, link.effective_bandwidth)
    return CommCost(min(lat, t), t - min(lat, t), algorithm, link.name)


def allreduce_time_s(n_bytes: float, p: int, link: Link, algorithm: str = "ring") -> float:
    """Seconds for an all-reduce of `n_bytes` over `p` ranks all joined by `link` (ring or tree);
    where the link measured such calls, the measured curve (measured_time_s)."""
    measured = measured_time_s(n_bytes, p, link)  # None for p = 1 or no bytes: nothing measured there
    if measured is not None and algorithm in ALGORITHMS:
        return measured
    if algorithm == "ring":
        return sum(ring_allreduce(n_bytes, p, link.alpha_s, link.effective_bandwidth))
    if algorithm == "tree":
        return sum(tree_allreduce(n_bytes, p, link.alpha_s, link.effective_bandwidth))
    if algorithm == "auto":
        return min(allreduce_time_s(n_bytes, p, link, a) for a in ("ring", "tree"))
    raise ValueError(f"algorithm {algorithm!r}: one link takes ring, tree or auto; "
                     "hierarchical needs a cluster (cluster_allreduce)")


def cluster_allreduce(n_bytes: float, gpus_per_node: int, nodes: int, intra: Link,
                      inter: Link | None, nics_per_node: int = 1, algorithm: str = "ring") -> CommCost:
    """An all-reduce over `nodes` x `gpus_per_node` ranks: intra-node `intra`, inter-node `inter`."""
    g, big_n = gpus_per_node, nodes
    p = g * big_n
    # One link between every rank, measured at these ranks: whatever the algorithm, what ran there.
    if algorithm in ALGORITHMS:
        single = intra if big_n == 1 else inter if g == 1 and nics_per_node == 1 else None
        measured = _measured_cost(n_bytes, p, single, algorithm) if single is not None else None
        if measured is not None:
            return measured
    if algorithm == "auto":  # NCCL picks the algorithm its own alpha-beta model says is fastest
        # NCCL's tree spans nodes; inside one node it is a chain, so one node always rings (S. Jeaugey,
        # "Massively Scale Your Deep Learning Training with NCCL 2.4", NVIDIA blog, 2019).
        algos = ("ring", "tree") if big_n > 1 else ("ring",)
        costs = [cluster_allreduce(n_bytes, g, big_n, intra, inter, nics_per_node, a) for a in algos]
        return min(costs, key=lambda c: c.total_s)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if big_n > 1 and inter is None:
        raise ValueError("an inter-node link is needed for more than one node")
    b_node = inter.effective_bandwidth * nics_per_node if big_n > 1 else math.inf
    if algorithm == "hierarchical" and g > 1 and big_n > 1:
        rs_lat, rs_bw = ring_half(n_bytes, g, intra.alpha_s, intra.effective_bandwidth)
        # The inter-node ring on the n/g shard; g of them share B_node, i.e. B_node/g each.
        ar_lat, ar_bw = ring_allreduce(n_bytes / g, big_n, inter.alpha_s, b_node / g)
        return CommCost(2 * rs_lat + ar_lat, 2 * rs_bw + ar_bw, algorithm,
                        inter.name if ar_bw >= 2 * rs_bw else intra.name)
    # Flat ring or tree over every rank: steps at the pace of the slowest link on the path.
    if big_n == 1:
        alpha, bw, name = intra.alpha_s, intra.effective_bandwidth, intra.name
    elif g == 1:
        alpha, bw, name = inter.alpha_s, b_node, inter.name
    else:
        alpha = max(intra.alpha_s, inter.alpha_s)
        bw, name = min((intra.effective_bandwidth, intra.name), (b_node, inter.name))
    flat = "ring" if algorithm == "hierarchical" else algorithm  # one level: hierarchical is a ring
    lat, bw_s = (ring_allreduce if flat == "ring" else tree_allreduce)(n_bytes, p, alpha, bw)
    return CommCost(lat, bw_s, algorithm, name)
