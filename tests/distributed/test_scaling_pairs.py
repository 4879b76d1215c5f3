"""Paired per-round speedups (distributed/scaling.py) from stored launch medians and start times:
paired only when the two points were launched in the same interleaved rounds."""

from __future__ import annotations

import pytest

from nnscale.distributed.scaling import launch_rates, paired_speedups
from nnscale.records import DISTRIBUTED, Measurement, Workload
from nnscale.records_stats import Launch, Processes, Stats, Timing


def _point(world: int, medians_ms: tuple[float, ...], starts: tuple[float, ...] | None) -> Measurement:
    w = Workload("test-tiny-mlp", "training", 8, (3, 8, 8), world_size=world, kind=DISTRIBUTED,
                 strategy="ddp")
    stats = Stats(timing=Timing(median_ms=sum(medians_ms) / len(medians_ms)),
                  processes=Processes(processes=len(medians_ms), process_medians_ms=medians_ms),
                  launch=Launch(backend="gloo", started_at_s=starts))
    return Measurement(w, "ok", samples_ms=medians_ms, stats=stats)


def test_each_round_over_the_same_rounds_reference():
    one = _point(1, (10.0, 12.0, 11.0), (0.0, 20.0, 40.0))
    two = _point(2, (16.0, 15.0, 20.0), (10.0, 30.0, 50.0))  # 1, 2, 1, 2, 1, 2
    assert launch_rates(two) == pytest.approx([16000 / 16, 16000 / 15, 16000 / 20])
    assert paired_speedups(two, one) == pytest.approx((2 * 10 / 16, 2 * 12 / 15, 2 * 11 / 20))
    assert paired_speedups(one, one) == pytest.approx((1.0, 1.0, 1.0))


@pytest.mark.parametrize("starts", [
    (100.0, 110.0, 120.0),  # all after the reference's last round (a resumed run's reference)
    (10.0, 15.0, 50.0),  # rounds 1 and 2 both between the reference's rounds 1 and 2
    None,  # a row stored before the start times
    (10.0, 30.0),  # fewer rounds than the reference
])
def test_not_the_same_rounds_is_not_paired(starts):
    one = _point(1, (10.0, 12.0, 11.0), (0.0, 20.0, 40.0))
    medians = (16.0, 15.0, 20.0)[:len(starts) if starts else 3]
    assert paired_speedups(_point(2, medians, starts), one) is None


def test_one_launch_pairs_its_single_round():
    one, two = _point(1, (10.0,), (0.0,)), _point(2, (16.0,), (10.0,))
    one = Measurement(one.workload, "ok", one.samples_ms, stats=Stats(
        timing=one.stats.timing, launch=one.stats.launch))  # one launch: no process medians stored
    assert paired_speedups(two, one) == pytest.approx((2 * 10 / 16,))
