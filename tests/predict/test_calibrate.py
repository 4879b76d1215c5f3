"""Calibration and leave-one-out validation on runs generated from a known truth plus 2 % noise."""

from dataclasses import replace

import pytest
from synthetic_runs import TRUTH, synthetic_records

from nnscale.errors import UserError
from nnscale.predict.calibrate import (
    CAP_KEYS,
    CommParams,
    Point,
    default_free,
    extract_points,
    fit,
    predict_point,
)
from nnscale.predict.validate import TARGET, markdown, validate_leave_one_out
from nnscale.records import Measurement, Workload


def test_points_are_read_like_the_distributed_records(records, net):
    points, skipped = extract_points(records, {net.name: net})
    kinds = [p.kind for p in points]
    assert kinds.count("allreduce") == 16 and kinds.count("step") == 8 and not skipped
    capped = [p for p in points if p.cap]
    assert {round(p.cap * 8) for p in capped} == {int(1e9), int(200e6), int(50e6)}
    step = next(p for p in points if p.kind == "step")
    assert step.profile.step_time_s == pytest.approx({8: 0.045, 32: 0.160}[step.batch], rel=0.1)
    assert "bandwidth_cap_bit_per_s" in CAP_KEYS


def test_noise_free_fit_recovers_the_truth(net):
    fitted = fit(synthetic_records(noise=0.0), {net.name: net})
    assert fitted.free == ("alpha_s", "bandwidth", "overlap", "overhead_s")
    p = fitted.params
    assert p.alpha_s == pytest.approx(TRUTH.alpha_s, rel=1e-3)
    assert p.bandwidth == pytest.approx(TRUTH.bandwidth, rel=1e-3)
    assert p.overlap == pytest.approx(TRUTH.overlap, abs=2e-3)
    assert p.overhead_s == pytest.approx(TRUTH.overhead_s, abs=1e-5)
    assert fitted.max_abs < 1e-6 and len(fitted.residuals) == 24


def test_noisy_fit_reports_residuals(records, net):
    fitted = fit(records, {net.name: net}, run="run synth")
    assert fitted.params.bandwidth == pytest.approx(TRUTH.bandwidth, rel=0.15)
    assert fitted.params.alpha_s == pytest.approx(TRUTH.alpha_s, rel=0.15)
    assert 0.005 < fitted.rms < 0.04  # about the 2 % noise
    assert len(fitted.labels) == len(fitted.residuals) and "24 points of run synth" in fitted.source


def test_without_profiles_bytes_per_step_give_a_uniform_profile(records):
    fitted = fit(records)  # no per-layer table: gradients assumed to arrive evenly
    assert fitted.rms < 0.06


def test_leave_one_out_within_ten_percent(records, net):
    v = validate_leave_one_out(records, {net.name: net}, run="synth")
    assert len(v.rows) == 24 and v.passed
    assert v.max_abs_error <= TARGET, markdown(v)
    assert {r.kind for r in v.rows} == {"allreduce", "step"}
    table = markdown(v)
    assert table.count("\n| ") == 24 + 1 and "within the 10 % target" in table


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leave_one_out_holds_for_other_noise_draws(net, seed):
    v = validate_leave_one_out(synthetic_records(seed=seed), {net.name: net})
    assert v.max_abs_error <= TARGET


def test_the_cap_is_a_series_cost():
    p = CommParams(alpha_s=0.0, bandwidth=1e9)
    capped = Point("allreduce", "", 2, 1.0, size_bytes=1e8, cap=1e8)
    assert predict_point(p, capped) == pytest.approx(1e8 / 1e9 + 1e8 / 1e8)


def test_free_parameters_never_outnumber_points():
    ar = [Point("allreduce", "", 2, 1e-3, size_bytes=s) for s in (1e3, 1e6)]
    assert default_free(ar) == ("alpha_s", "bandwidth")
    assert default_free(ar[:1]) == ()
    step = Point("step", "", 2, 0.1)
    assert default_free(ar + [step]) == ("alpha_s", "bandwidth", "overlap")
    assert default_free([step, step, step]) == ("bandwidth", "overlap", "overhead_s")


def test_a_run_with_no_usable_points_is_a_user_error(records):
    singles = [m for m in records if m.workload.world_size == 1]
    failed = [Measurement(Workload("allreduce", "training", 1, (4,), world_size=2), "error", error="boom")]
    for bad in (singles, failed, []):
        with pytest.raises(UserError, match="no usable points for calibration") as exc:
            fit(bad, run="run empty")
        assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="leave-one-out needs at least 3"):
        validate_leave_one_out(records[:3])


def test_unstable_points_count_and_errors_do_not(records, net):
    marked = [replace(m, status="unstable") if i % 2 else m for i, m in enumerate(records)]
    assert len(extract_points(marked, {net.name: net})[0]) == 24
    broken = [replace(m, status="timeout") if m.workload.model == "allreduce" else m for m in records]
    points, skipped = extract_points(broken, {net.name: net})
    assert len(points) == 8 and sum("status timeout" in s for s in skipped) == 16
