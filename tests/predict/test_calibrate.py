"""Calibration on runs generated from a known per-link truth plus 2 %
noise (synthetic_runs.py: loopback alpha 50 us, B 2 GB/s; a veth pair alpha 300 us at tbf caps of
1000/200/50 Mbit/s with 93 % efficiency; overlap 0.6; overhead 2 ms)."""

import math
from dataclasses import replace

import pytest
from synthetic_runs import TRUTH, synthetic_records

from nnscale.errors import UserError
from nnscale.predict.calibrate import (
    CommParams,
    Point,
    default_free,
    extract_points,
    fit,
    predict_point,
    tbf_credit_s,
)
from nnscale.predict.model import Bucketing
from nnscale.predict.points import measured_bucketing
from nnscale.predict.leave_one_out import validate_leave_one_out
from nnscale.records import ALLREDUCE, DDPOptions, Measurement, Workload


def test_points_are_read_like_the_distributed_records(records, net):
    points, skipped = extract_points(records, {net.name: net})
    kinds = [p.kind for p in points]
    assert kinds.count("allreduce") == 16 and kinds.count("step") == 8 and not skipped
    capped = [p for p in points if p.cap]
    assert {round(p.cap * 8) for p in capped} == {int(1e9), int(200e6), int(50e6)}
    assert all(p.inter for p in capped) and not any(p.inter for p in points if p.cap is None)
    step = next(p for p in points if p.kind == "step")
    assert step.profile.step_time_s == pytest.approx({8: 0.045, 32: 0.160}[step.batch], rel=0.1)
    assert {m.workload.link_cap_bit_per_s for m in records} == {None, 1e9, 200e6, 50e6}  # the cap is a field


def test_noise_free_fit_recovers_the_truth(net):
    fitted = fit(synthetic_records(noise=0.0), {net.name: net})
    # The veth's own uncapped rate was never measured: not fitted, left at inf.
    assert fitted.free == ("alpha_s", "bandwidth", "inter_alpha_s", "cap_efficiency", "overlap", "overhead_s")
    p = fitted.params
    assert p.alpha_s == pytest.approx(TRUTH.alpha_s, rel=1e-3)
    assert p.bandwidth == pytest.approx(TRUTH.bandwidth, rel=1e-3)
    assert p.inter_alpha_s == pytest.approx(TRUTH.inter_alpha_s, rel=1e-3)
    assert p.inter_bandwidth == math.inf
    assert p.cap_efficiency == pytest.approx(TRUTH.cap_efficiency, rel=1e-3)
    assert p.overlap == pytest.approx(TRUTH.overlap, abs=2e-3)
    assert p.overhead_s == pytest.approx(TRUTH.overhead_s, abs=1e-5)
    assert fitted.max_abs < 1e-6 and len(fitted.residuals) == 24


def test_noisy_fit_recovers_the_truth_within_the_noise(records, net):
    fitted = fit(records, {net.name: net}, run="run synth")
    p = fitted.params
    # Stated tolerances for 2 % lognormal noise on 24 points (seed 0): B, alpha of each link and the
    # efficiency within 15 %, overlap within 0.15, overhead within 1 ms.
    assert p.bandwidth == pytest.approx(TRUTH.bandwidth, rel=0.15)
    assert p.alpha_s == pytest.approx(TRUTH.alpha_s, rel=0.15)
    assert p.inter_alpha_s == pytest.approx(TRUTH.inter_alpha_s, rel=0.15)
    assert p.cap_efficiency == pytest.approx(TRUTH.cap_efficiency, rel=0.05)
    assert p.overlap == pytest.approx(TRUTH.overlap, abs=0.15)
    assert p.overhead_s == pytest.approx(TRUTH.overhead_s, abs=1e-3)
    assert 0.005 < fitted.rms < 0.04  # about the 2 % noise
    assert len(fitted.labels) == len(fitted.residuals) and "24 points of run synth" in fitted.source


def test_without_profiles_bytes_per_step_give_a_uniform_profile(records):
    fitted = fit(records)  # no per-layer table: gradients assumed to arrive evenly
    assert fitted.rms < 0.06


def test_the_cap_and_the_path_are_one_pipeline():
    # min(path B, efficiency x cap): the slower stage sets the rate, never the series sum.
    p = CommParams(alpha_s=0.0, bandwidth=1e9, inter_alpha_s=0.0, cap_efficiency=0.9)
    capped = Point("allreduce", "", 2, 1.0, size_bytes=1e8, cap=1e8)
    assert predict_point(p, capped) == pytest.approx(1e8 / (0.9 * 1e8))
    fast_cap = Point("allreduce", "", 2, 1.0, size_bytes=1e8, cap=1e10)
    assert predict_point(p, fast_cap) == pytest.approx(1e8 / 1e9)
    # An inter-node point uses the inter-node class; its path B is inf until measured uncapped.
    veth = Point("allreduce", "", 2, 1.0, size_bytes=1e8, cap=1e10, inter=True)
    assert predict_point(p, veth) == pytest.approx(1e8 / (0.9 * 1e10))
    assert predict_point(replace(p, inter_alpha_s=1e-3), replace(veth, size_bytes=0.0)) == 0.0


def test_each_link_class_has_its_own_latency():
    p = CommParams(alpha_s=50e-6, bandwidth=math.inf, inter_alpha_s=300e-6, cap_efficiency=1.0)
    small = Point("allreduce", "", 2, 1.0, size_bytes=4.0, cap=None)
    assert predict_point(p, small) == pytest.approx(2 * 50e-6)  # ring, p = 2: 2(p-1) alpha
    assert predict_point(p, replace(small, inter=True)) == pytest.approx(2 * 300e-6)


def test_free_parameters_never_outnumber_points():
    ar = [Point("allreduce", "", 2, 1e-3, size_bytes=s) for s in (1e3, 1e6)]
    assert default_free(ar) == ("alpha_s", "bandwidth")
    assert default_free(ar[:1]) == ()
    assert default_free(ar + ar) == ("alpha_s", "bandwidth")  # repeats pin nothing new
    step = Point("step", "", 2, 0.1)
    assert default_free(ar + [step]) == ("alpha_s", "bandwidth", "overlap")
    assert default_free([step, step, step]) == ("bandwidth", "overlap", "overhead_s")
    veth = [Point("allreduce", "", 2, 1e-3, size_bytes=s, cap=c, inter=True) for s, c in ((1e3, 1e8), (1e6, 1e7))]
    assert default_free(veth) == ("inter_alpha_s", "cap_efficiency")
    assert default_free(ar + veth + [step, step]) == (
        "alpha_s", "bandwidth", "inter_alpha_s", "cap_efficiency", "overlap", "overhead_s")
    capped_steps = [replace(step, cap=1e8, inter=True)] * 4
    assert default_free(capped_steps) == ("inter_alpha_s", "cap_efficiency", "overlap", "overhead_s")


def test_ddp_bucket_layout_comes_from_ddp_logging():
    # torch 2.x built one 1724320-byte bucket for pytorch-mnist-net (real run, docs/benchmarks.md);
    # the nominal 1 MiB first bucket would make two calls, each paying the latency.
    def point(bucket_mb: float, stats: dict) -> Measurement:
        w = Workload("pytorch-mnist-net", "training", 64, (1, 28, 28), world_size=2, kind="distributed",
                     strategy="ddp", ddp=DDPOptions(bucket_mb=bucket_mb))
        return Measurement(w, "ok", stats=stats)

    b = measured_bucketing(point(25.0, {"ddp_logging": {"rebuilt_bucket_sizes": "1724320"}}))
    assert b.bucket_mb == 25.0 and b.first_bucket_mb * 2**20 == pytest.approx(1724320)
    assert measured_bucketing(point(4.0, {})).first_bucket_mb == 1.0


def test_a_run_with_no_usable_points_is_a_user_error(records):
    singles = [m for m in records if m.workload.world_size == 1]
    failed = [Measurement(Workload(ALLREDUCE, "training", 1, (), world_size=2, kind=ALLREDUCE, message_bytes=16),
                          "error", error="boom")]
    for bad in (singles, failed, []):
        with pytest.raises(UserError, match="no usable points for calibration") as exc:
            fit(bad, run="run empty")
        assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="leave-one-out needs at least 3"):
        validate_leave_one_out(records[:3])


def test_unstable_points_count_and_errors_do_not(records, net):
    marked = [replace(m, status="unstable") if i % 2 else m for i, m in enumerate(records)]
    assert len(extract_points(marked, {net.name: net})[0]) == 24
    broken = [replace(m, status="timeout") if m.workload.kind == ALLREDUCE else m for m in records]
    points, skipped = extract_points(broken, {net.name: net})
    assert len(points) == 8 and sum("status timeout" in s for s in skipped) == 16


def test_tbf_credit_is_the_bucket_or_the_idle_time_whichever_is_less():
    # 1.72 MB through a 1000 Mbit/s tbf (125e6 B/s), efficiency 0.956, bucket 1000kbit as tc reads it
    # (1,024,000 bit = 128,000 B), veth path not measured (inf): the first 128 kB go at path speed,
    # saving b / r = 128000 / 125e6 = 1.024 ms of the 1.72e6 / (0.956 x 125e6) = 14.4 ms.
    assert tbf_credit_s(1.72e6, 125e6, 128_000, 0.956, math.inf, idle_s=0.02) == pytest.approx(1.024e-3)
    # Only 0.2 ms idle since the last transfer: the bucket holds 0.2 ms of tokens.
    assert tbf_credit_s(1.72e6, 125e6, 128_000, 0.956, math.inf, idle_s=2e-4) == pytest.approx(2e-4)
    # A transfer smaller than the bucket goes at path speed: it saves its whole time at the cap less
    # its time on the path, 16384 / (0.956 x 125e6) - 16384 / 1e9 = 0.137 - 0.016 ms.
    small = tbf_credit_s(16384, 125e6, 128_000, 0.956, 1e9, idle_s=1.0)
    assert small == pytest.approx(16384 / (0.956 * 125e6) - 16384 / 1e9)
    # A path slower than the cap: the cap never binds, nothing to save.
    assert tbf_credit_s(1e6, 125e6, 128_000, 0.956, 50e6, idle_s=1.0) == 0.0


def test_a_recorded_bucket_shortens_a_step_once_and_leaves_all_reduces_alone(net):
    p = replace(TRUTH, overlap=1.0)
    prof = replace(net, step_time_s=0.045, measured_batch=8)
    step = Point("step", "", 2, 1.0, cap=25e6, profile=prof, batch=8, bucketing=Bucketing(), inter=True)
    with_bucket = replace(step, burst=25e3)  # 1 ms of tokens at 200 Mbit/s
    # DDP's buckets: small-net's 4.9 MB make a 1 MiB-capped first bucket and a second one; the link
    # idles through the forward (and the optimizer) before the first, so the bucket is full: the
    # step is 1 ms shorter, once (the second call follows the first at once: no tokens left).
    assert predict_point(p, step) - predict_point(p, with_bucket) == pytest.approx(1e-3, rel=1e-6)
    # Back-to-back all-reduce calls refill the bucket only between calls: no credit.
    ar = Point("allreduce", "", 2, 1.0, size_bytes=1e6, cap=25e6, inter=True)
    assert predict_point(p, replace(ar, burst=25e3)) == predict_point(p, ar)


def test_the_bucket_is_read_from_the_stats_and_fitted_through(net):
    burst_s = 1.024e-3
    records = synthetic_records(noise=0.0, burst_s=burst_s)
    points, _ = extract_points(records, {net.name: net})
    capped = [pt for pt in points if pt.cap is not None]
    assert capped and all(pt.burst == pytest.approx(burst_s * pt.cap) for pt in capped)
    assert all(pt.burst is None for pt in points if pt.cap is None)
    fitted = fit(records, {net.name: net})  # the same truth, now with the bucket: recovered
    assert fitted.max_abs < 1e-6
    assert fitted.params.cap_efficiency == pytest.approx(TRUTH.cap_efficiency, rel=1e-3)
    assert fitted.params.overhead_s == pytest.approx(TRUTH.overhead_s, abs=1e-5)


def test_a_step_is_predicted_over_the_calls_measured_after_compute_where_there_are_some():
    from nnscale.predict.calibrate import measured_calls
    from nnscale.predict.model import Layer, ModelProfile

    def ar(size, seconds, after=0.0, cap=None):
        return Point(ALLREDUCE, f"ar {size}", 2, seconds, size_bytes=size, cap=cap, compute_before_ms=after)

    calls = [ar(1e6, 1e-3), ar(4e6, 3e-3), ar(1e6, 4e-3, 20.0), ar(4e6, 6e-3, 20.0), ar(1e6, 9e-3, cap=1e8),
             ar(4e6, 33e-3, cap=1e8)]
    kept = measured_calls(calls)
    # Loopback has calls after compute: only those; the capped link has back-to-back calls only.
    assert set(kept) == {(False, None, 2, 1e6, 4e-3), (False, None, 2, 4e6, 6e-3),
                         (False, 1e8, 2, 1e6, 9e-3), (False, 1e8, 2, 4e6, 33e-3)}
    # One bucket of 2.5 MB (625,000 fp32 gradients), ready at the end of backward: fully exposed.
    net = ModelProfile("one-bucket", params=625_000, forward_flops=1.0, training_flops=3.0,
                       layers=(Layer(625_000, 1.0),), step_time_s=0.020, measured_batch=8)
    step = Point("step", "s", 2, 0.026, profile=net, batch=8, bucketing=Bucketing(first_bucket_mb=25.0))
    params = CommParams(alpha_s=100e-6, bandwidth=1e9, overlap=0.0, measured=kept)
    line = predict_point(replace(params, measured=()), step)
    curve = predict_point(params, step)
    assert curve - line == pytest.approx(5.0e-3 - (2 * 100e-6 + 2.5e6 / 1e9), rel=1e-6)  # 5 ms: 4 + 2 x 1.5/3
    # The all-reduce points themselves stay on the fitted line: it is what stands beyond them.
    assert predict_point(params, calls[2]) == pytest.approx(2 * 100e-6 + 1e6 / 1e9)


def test_the_fit_carries_its_all_reduces_to_the_links_it_predicts_over(records, net):
    fitted = fit(records, {net.name: net})
    ar = [m for m in records if m.workload.kind == ALLREDUCE and m.workload.link_cap_bit_per_s is None]
    link = fitted.params.link()
    assert sorted(n for _, n, _ in link.measured) == sorted(m.stats.allreduce.size_bytes for m in ar)
    assert fitted.params.link(curve=False).measured == ()
