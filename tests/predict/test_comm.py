"""Alpha-beta all-reduce costs: the formulas, and their limits."""

import math

import pytest

from nnscale.predict.catalogue import Link
from nnscale.predict.comm import allreduce_time_s, cluster_allreduce, ring_allreduce, tree_allreduce

LINK = Link("l", alpha_s=10e-6, bandwidth=10e9)
FAST = Link("nv", alpha_s=3e-6, bandwidth=100e9)
SLOW = Link("eth", alpha_s=15e-6, bandwidth=2e9)


def test_ring_formula():
    # 2(p-1) alpha + 2(p-1)/p n/B, Thakur et al. 2005
    n, p = 100e6, 8
    assert allreduce_time_s(n, p, LINK) == pytest.approx(2 * 7 * 10e-6 + 2 * 7 / 8 * n / 10e9)


def test_tree_formula():
    assert allreduce_time_s(64e6, 16, LINK, "tree") == pytest.approx(2 * 4 * 10e-6 + 2 * 64e6 / 10e9)
    assert sum(tree_allreduce(1, 5, 1.0, 1e12)) == pytest.approx(2 * 3)  # ceil(log2 5) = 3 hops


def test_one_rank_or_no_bytes_costs_nothing():
    for algo in ("ring", "tree", "auto"):
        assert allreduce_time_s(1e9, 1, LINK, algo) == 0
        assert allreduce_time_s(0, 64, LINK, algo) == 0
    assert cluster_allreduce(1e9, 1, 1, FAST, None).total_s == 0


def test_infinite_bandwidth_leaves_only_latency():
    ideal = Link("ideal", alpha_s=5e-6, bandwidth=math.inf)
    lat, bw = ring_allreduce(1e12, 32, ideal.alpha_s, ideal.bandwidth)
    assert bw == 0 and lat == pytest.approx(2 * 31 * 5e-6)


def test_alpha_only_regime_small_messages():
    # 4 bytes: the bandwidth term is negligible, time = 2(p-1) alpha, linear in p
    t = [allreduce_time_s(4, p, LINK) for p in (2, 4, 8)]
    assert t == pytest.approx([2 * 10e-6, 6 * 10e-6, 14 * 10e-6], rel=1e-4)


def test_bandwidth_term_saturates_with_p():
    # 2(p-1)/p -> 2: a ring's big-message time hardly grows beyond a few ranks (Patarasuk & Yuan)
    t8, t1024 = (allreduce_time_s(1e9, p, Link("b", 0.0, 1e9)) for p in (8, 1024))
    assert t1024 / t8 == pytest.approx((2 * 1023 / 1024) / (2 * 7 / 8))


def test_auto_picks_the_faster():
    small = allreduce_time_s(1024, 512, LINK, "auto")
    assert small == allreduce_time_s(1024, 512, LINK, "tree") < allreduce_time_s(1024, 512, LINK, "ring")
    big = allreduce_time_s(1e9, 4, LINK, "auto")
    assert big == allreduce_time_s(1e9, 4, LINK, "ring")


def test_flat_ring_on_a_cluster_runs_at_the_slowest_link():
    c = cluster_allreduce(1e9, 8, 4, FAST, SLOW, algorithm="ring")
    assert c.bottleneck == "eth"
    assert c.latency_s == pytest.approx(2 * 31 * 15e-6)
    assert c.bandwidth_s == pytest.approx(2 * 31 / 32 * 1e9 / 2e9)
    two_nics = cluster_allreduce(1e9, 8, 4, FAST, SLOW, nics_per_node=2, algorithm="ring")
    assert two_nics.bandwidth_s == pytest.approx(c.bandwidth_s / 2)


def test_hierarchical_is_rs_inside_allreduce_across_ag_inside():
    n, g, nodes = 1e9, 8, 4
    c = cluster_allreduce(n, g, nodes, FAST, SLOW, algorithm="hierarchical")
    inside = 2 * ((g - 1) * 3e-6 + (g - 1) / g * n / 100e9)
    across = 2 * (nodes - 1) * 15e-6 + 2 * (nodes - 1) / nodes * (n / g) / (2e9 / g)
    assert c.total_s == pytest.approx(inside + across)
    # Fewer slow-link latencies than a flat ring over 32 ranks
    assert c.latency_s < cluster_allreduce(n, g, nodes, FAST, SLOW, algorithm="ring").latency_s


def test_one_node_uses_the_intra_link_only():
    assert cluster_allreduce(1e8, 8, 1, FAST, None).bottleneck == "nv"
    assert cluster_allreduce(1e8, 1, 8, FAST, SLOW).bottleneck == "eth"


def test_hierarchical_on_one_link_is_refused():
    with pytest.raises(ValueError, match="hierarchical needs a cluster"):
        allreduce_time_s(1e6, 4, LINK, "hierarchical")


# --- a link measured on this machine: its own curve where it was measured ---------------------

MEASURED = Link("fitted:r", alpha_s=100e-6, bandwidth=1e9,
                measured=((2, 1e6, 3.0e-3), (2, 4e6, 6.0e-3), (2, 4e6, 8.0e-3), (4, 1e6, 9.0e-3)))


def test_a_measured_link_is_interpolated_linearly_between_its_sizes_at_its_ranks():
    from nnscale.predict.comm import measured_time_s

    assert measured_time_s(1e6, 2, MEASURED) == pytest.approx(3.0e-3)
    # 4 MB twice: their mean, 7 ms; halfway in n between 1 MB and 4 MB: halfway in time.
    assert measured_time_s(4e6, 2, MEASURED) == pytest.approx(7.0e-3)
    assert measured_time_s(2.5e6, 2, MEASURED) == pytest.approx(5.0e-3)
    # Outside the measured sizes, at other ranks, or at ranks with one size only: no measurement.
    assert measured_time_s(5e6, 2, MEASURED) is None and measured_time_s(0.5e6, 2, MEASURED) is None
    assert measured_time_s(2e6, 8, MEASURED) is None and measured_time_s(1e6, 4, MEASURED) is None


def test_an_alpha_beta_curve_measured_is_recovered_exactly_between_its_sizes():
    from nnscale.predict.comm import measured_time_s

    sizes = (16e3, 64e3, 1e6, 4e6)
    link = Link("fitted:ab", 50e-6, 2e9, measured=tuple((2, n, sum(ring_allreduce(n, 2, 50e-6, 2e9)))
                                                        for n in sizes))
    for n in (20e3, 300e3, 1.72e6, 3.9e6):
        assert measured_time_s(n, 2, link) == pytest.approx(sum(ring_allreduce(n, 2, 50e-6, 2e9)))


def test_the_measured_curve_stands_for_every_algorithm_where_it_applies_and_nowhere_else():
    ab = sum(ring_allreduce(2.5e6, 2, MEASURED.alpha_s, MEASURED.bandwidth))
    for algo in ("ring", "tree", "auto"):
        assert allreduce_time_s(2.5e6, 2, MEASURED, algo) == pytest.approx(5.0e-3)
        c = cluster_allreduce(2.5e6, 2, 1, MEASURED, None, algorithm=algo)
        assert c.total_s == pytest.approx(5.0e-3) and c.latency_s == pytest.approx(2 * MEASURED.alpha_s)
    # Beyond the sizes, or at a world size it was not measured at: the alpha-beta line.
    assert allreduce_time_s(8e6, 2, MEASURED) == pytest.approx(sum(ring_allreduce(8e6, 2, 100e-6, 1e9)))
    assert cluster_allreduce(2.5e6, 8, 1, MEASURED, None).total_s == pytest.approx(
        sum(ring_allreduce(2.5e6, 8, 100e-6, 1e9)))
    # One measured worker per node across 2 nodes: the inter link's curve, with one NIC per node only.
    assert cluster_allreduce(2.5e6, 1, 2, FAST, MEASURED).total_s == pytest.approx(5.0e-3)
    assert cluster_allreduce(2.5e6, 1, 2, FAST, MEASURED, nics_per_node=2).total_s == pytest.approx(
        sum(ring_allreduce(2.5e6, 2, 100e-6, 2e9)))
    # Two workers on each of 2 nodes cross both links: no single measured curve describes that.
    four = Link("fitted:4", 100e-6, 1e9, measured=((4, 1e6, 3.0e-3), (4, 4e6, 6.0e-3)))
    assert cluster_allreduce(2.5e6, 4, 1, four, None).total_s == pytest.approx(4.5e-3)
    mixed = cluster_allreduce(2.5e6, 2, 2, four, four)
    assert mixed.total_s == pytest.approx(sum(ring_allreduce(2.5e6, 4, 100e-6, 1e9)))
    assert ab != pytest.approx(5.0e-3)
