"""The arithmetic: nccl-tests bandwidths, speedup/efficiency, time to train, the breakdown's parts."""

import math

import pytest

from nnscale.distributed.ddp_step import breakdown
from nnscale.distributed.metrics import (algbw_gb_per_s, busbw_gb_per_s, parse_sizes, scaling,
                                         straggler_stats, summarize_breakdown, time_to_train_min)


def test_bandwidths_follow_nccl_tests():
    # nccl-tests PERFORMANCE.md: algbw = S/t; all-reduce busbw = algbw * 2(n-1)/n.
    assert algbw_gb_per_s(10**9, 1000.0) == pytest.approx(1.0)
    assert busbw_gb_per_s(10**9, 1000.0, 8) == pytest.approx(2 * 7 / 8)
    assert busbw_gb_per_s(10**9, 500.0, 2) == pytest.approx(2.0)
    assert busbw_gb_per_s(10**9, 500.0, 1) == 0.0  # nothing leaves a single rank


def test_speedup_and_efficiency():
    # The seed's figure: 8 nodes vs 4 nodes, 1.55x for 2x the nodes -> 77 % efficiency.
    speedup, eff = scaling(155.0, 8, 100.0, 4)
    assert speedup == pytest.approx(1.55) and eff == pytest.approx(0.775)
    assert scaling(100.0, 2, None, None) == (None, None)


def test_time_to_train_counts_whole_steps():
    # 1,281,167 images at global batch 256: 5005 steps per epoch (the last one partial).
    assert time_to_train_min(60.0, 256, 1_281_167, 90) == pytest.approx(90 * 5005 * 60 / 60_000)
    assert time_to_train_min(1000.0, 10, 10, 1) == pytest.approx(1000 / 60_000)


def test_sizes():
    assert parse_sizes("1K..8K") == [1024, 2048, 4096, 8192]
    assert parse_sizes("1K..256M")[-1] == 256 * 2**20 and len(parse_sizes("1K..256M")) == 19
    assert parse_sizes("64K,1K,1M") == [1024, 65536, 2**20]
    for bad in ("", "0K", "8K..1K", "1X", "K"):
        with pytest.raises(ValueError):
            parse_sizes(bad)


def test_breakdown_parts_add_up_to_the_step():
    # forward ends at 10, two buckets ready at 15 and 20 (all gradients by 20), their all-reduces
    # done at 19 and 26; backward returns at 27; optimizer ends at 30.
    parts = breakdown(10.0, 27.0, 30.0, [(15.0, 19.0), (20.0, 26.0)], nbytes=800)
    assert parts["comm_exposed_ms"] == pytest.approx(6.0)  # 20 -> 26, the wait for the last bucket
    assert parts["comm_total_ms"] == pytest.approx(10.0)  # [15,19] and [20,26]
    assert parts["comm_overlapped_ms"] == pytest.approx(4.0)
    assert parts["backward_ms"] == pytest.approx(17.0 - 6.0)
    total = sum(parts[k] for k in ("forward_ms", "backward_ms", "optimizer_ms", "comm_exposed_ms"))
    assert total == pytest.approx(parts["step_ms"]) == pytest.approx(30.0)
    assert parts["bytes_allreduced"] == 800 and parts["buckets"] == 2


def test_breakdown_overlapping_buckets_and_no_wait():
    # Overlapping intervals count once; a last bucket done before backward's end is not exposed
    # beyond backward's return.
    parts = breakdown(1.0, 5.0, 6.0, [(2.0, 4.0), (3.0, 4.5)], nbytes=0)
    assert parts["comm_total_ms"] == pytest.approx(2.5)
    assert parts["comm_exposed_ms"] == pytest.approx(1.5)
    parts = breakdown(1.0, 5.0, 6.0, [], nbytes=0)
    assert parts["comm_exposed_ms"] == 0.0 and parts["backward_ms"] == 4.0


def test_summary_and_stragglers():
    its = [breakdown(1.0, 3.0, 4.0, [(2.0, 2.5)], 8), breakdown(2.0, 5.0, 6.0, [(4.0, 4.5)], 8),
           breakdown(1.0, 4.0, 5.0, [(3.0, 3.5)], 8)]
    s = summarize_breakdown(its)  # 4 iterations would drop the fastest and the slowest
    assert s["forward_ms"] == pytest.approx(4 / 3) and s["step_ms"] == pytest.approx(5.0)
    assert s["breakdown_sum_ms"] == pytest.approx(
        s["forward_ms"] + s["backward_ms"] + s["optimizer_ms"] + s["comm_exposed_ms"])
    st = straggler_stats([10.0, 10.0, 15.0, 10.0])
    assert st["slowest_rank"] == 2 and st["straggler_ratio"] == pytest.approx(1.5)
    assert math.isnan(straggler_stats([0.0, 0.0])["straggler_ratio"])
