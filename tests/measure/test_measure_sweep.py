"""Sweeps with a fake point runner (no workers): ordering, storing, the batch search, the knee,
resuming, the progress output, and tuning's candidates and choice."""

from __future__ import annotations

import io
import json

import pytest

from measure_helpers import SHORT, fake_point
from nnscale.errors import UserError
from nnscale.measure.progress import TerminalProgress
from nnscale.measure.runner import default_timeout_s
from nnscale.measure.sweep import SweepConfig, run_sweep
from nnscale.measure.tune import TuneConfig, candidates, run_tune
from nnscale.host import cpu_native


class FakeRunner:
    """Fits up to `max_fit` (OOM beyond); throughput saturates like a real net's."""

    def __init__(self, max_fit=10**9, fail=None, step_ms=None):
        self.max_fit, self.fail, self.step_ms = max_fit, fail or {}, step_ms
        self.calls = []

    def __call__(self, spec):
        w = spec.workload
        self.calls.append(w)
        if w.batch_size in self.fail:
            return fake_point(w, self.fail[w.batch_size])
        if w.batch_size > self.max_fit:
            return fake_point(w, "oom")
        step = None if self.step_ms is None else self.step_ms(w.batch_size)
        rate = None if step is None else 1000 * w.batch_size / step
        return fake_point(w, step_time_ms=step, samples_per_s=rate)


def config(**kw):
    kw.setdefault("model", "test-tiny-mlp")
    kw.setdefault("threads", 1)
    kw.setdefault("policy", SHORT)
    return SweepConfig(**kw)


def test_fixed_batches_are_measured_in_order_and_stored(store):
    runner = FakeRunner()
    result = run_sweep(config(modes=("inference", "training"), batches=(1, 2, 4)),
                       store, runner=runner, run="r")
    assert [(w.mode, w.batch_size) for w in runner.calls] == [
        ("inference", 1), ("inference", 2), ("inference", 4),
        ("training", 1), ("training", 2), ("training", 4)]
    stored = store.measurements("r")
    assert [m.workload.key() for m in stored] == [m.workload.key() for m in result.measurements]
    assert all(m.stats.timing.point_wall_s > 0 and m.stats.compute.flop_per_sample > 0 for m in stored)
    assert result.knees == {"inference": 4, "training": 4}
    notes = json.loads(store.run("r").notes)["sweep"]
    assert SweepConfig.from_dict(notes).batches == (1, 2, 4)


def test_auto_doubles_until_oom_then_bisects_to_the_largest_that_fits(store):
    runner = FakeRunner(max_fit=37, step_ms=lambda b: 1.0 + 0.01 * b)
    result = run_sweep(config(batches=None), store, runner=runner, run="auto")
    tried = [w.batch_size for w in runner.calls]
    assert tried[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert tried[7:] == [48, 40, 36, 38, 37]
    fits = [m.workload.batch_size for m in result.measurements if m.status == "ok"]
    assert max(fits) == 37
    assert sum(m.status == "oom" for m in store.measurements("auto")) == 4  # 64, 48, 40 and 38: all stored
    assert result.knees["inference"] is not None


def test_auto_stops_doubling_at_the_time_limit(store):
    runner = FakeRunner(step_ms=lambda b: 10.0 * b)  # 0.5 s budget / 10 iterations = 50 ms per step
    run_sweep(config(batches=None), store, runner=runner, run="slow")
    assert [w.batch_size for w in runner.calls] == [1, 2, 4, 8]  # 80 ms > 50 ms: no bisection


def test_auto_stops_at_an_error_without_bisecting(store):
    runner = FakeRunner(fail={8: "error"}, step_ms=lambda b: 1.0)
    run_sweep(config(batches=None, auto_max_batch=64), store, runner=runner, run="err")
    assert [w.batch_size for w in runner.calls] == [1, 2, 4, 8]


def test_auto_respects_the_largest_batch(store):
    runner = FakeRunner(step_ms=lambda b: 1.0)
    run_sweep(config(batches=None, auto_max_batch=16), store, runner=runner, run="cap")
    assert [w.batch_size for w in runner.calls] == [1, 2, 4, 8, 16]


class Interrupt(Exception):
    pass


def test_resume_skips_finished_points_and_remeasures_failed_ones(store):
    first = FakeRunner(fail={2: "timeout"})
    calls = []

    def dies_after_three(spec):
        if len(calls) == 3:
            raise Interrupt  # the sweep is killed while measuring the 4th point
        calls.append(spec)
        return first(spec)

    cfg = config(batches=(1, 2, 4, 8, 16))
    with pytest.raises(Interrupt):
        run_sweep(cfg, store, runner=dies_after_three, run="r")
    before = {m.workload.batch_size: m for m in store.measurements("r")}
    assert set(before) == {1, 2, 4} and before[2].status == "timeout"
    second = FakeRunner()
    run_sweep(cfg, store, runner=second, run="r", resume=True)
    assert [w.batch_size for w in second.calls] == [2, 8, 16]  # timeout again, and the two not done
    after = store.measurements("r")
    assert sorted(m.workload.batch_size for m in after) == [1, 2, 4, 8, 16]  # each exactly once
    by_batch = {m.workload.batch_size: m for m in after}
    assert by_batch[1].stats == before[1].stats and by_batch[2].status == "ok"


def test_run_name_taken_or_unknown_is_a_user_error_and_changes_nothing(store):
    run_sweep(config(batches=(1,)), store, runner=FakeRunner(), run="r")
    with pytest.raises(UserError, match="already exists"):
        run_sweep(config(batches=(1,)), store, runner=FakeRunner(), run="r")
    with pytest.raises(UserError, match="no run named 'nope'"):
        run_sweep(config(batches=(1,)), store, runner=FakeRunner(), run="nope", resume=True)
    assert [r.name for r in store.runs()] == ["r"] and len(store.measurements("r")) == 1


def test_bad_input_shape_is_refused_before_a_run_exists(store):
    with pytest.raises(UserError, match="does not fit"):
        run_sweep(config(batches=(1,), input_shape=(3, 4, 4)), store, runner=FakeRunner())
    assert store.runs() == []


def test_in_rounds_the_eta_counts_processes_and_a_studys_rows_name_the_network():
    out, err = io.StringIO(), io.StringIO()
    from nnscale.measure.sweep import workload, resolve

    cfg, _ = resolve(config(batches=(1, 2)))
    p = TerminalProgress(out, err, tty=False)
    p.with_model = True
    p.begin("sweeps", 2, per_point_s=10.0)
    w = workload(cfg, "inference", 1)
    p.point_start(w, detail="round 1, process 1")
    p.process_done(3.0, processes_left=5)  # 5 more processes at 3 s each
    p.point_start(w, detail="round 2, process 2")
    p.process_done(5.0, processes_left=4)  # mean 4 s
    p.point_start(w, detail="round 3, process 3")
    p.end()
    text = err.getvalue()
    assert "[0/2 done, process 2] measuring test-tiny-mlp inference bs 1 fp32 (round 2, process 2) · ETA 15s" in text
    assert "(round 3, process 3) · ETA 16s" in text
    assert out.getvalue().splitlines()[0].split()[:3] == ["network", "mode", "batch"]


def test_progress_prints_rows_and_eta():
    out, err = io.StringIO(), io.StringIO()
    from nnscale.measure.sweep import workload, resolve

    cfg, _ = resolve(config(batches=(1, 2)))
    p = TerminalProgress(out, err, tty=False)
    p.begin("sweep", 2, per_point_s=10.0)
    p.point_start(workload(cfg, "inference", 1))
    p.point_done(fake_point(workload(cfg, "inference", 1)), wall_s=4.0)
    p.point_start(workload(cfg, "inference", 2))
    p.point_done(fake_point(workload(cfg, "inference", 2), "oom"), wall_s=2.0)
    p.end()
    assert "ETA 20s" in err.getvalue() and "[2/2] measuring inference bs 2" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["mode", "batch", "config"]
    assert "oom" in lines[-1] and "fake oom" in lines[-1]

    tty = io.StringIO()
    p = TerminalProgress(io.StringIO(), tty, tty=True, refresh_s=60)
    p.begin("sweep", 4, per_point_s=10.0)
    p.point_start(workload(cfg, "inference", 1))
    p.end()
    # redrawn in place: carriage return and "erase line" (ECMA-48 EL 2), then the bar and counts
    assert "\r\x1b[2K" in tty.getvalue() and "━" in tty.getvalue()
    assert "0/4" in tty.getvalue() and "ETA 40s" in tty.getvalue()
    assert "\x1b[" not in err.getvalue()  # no terminal codes off a terminal


def test_default_timeout_covers_startup_compile_warmup_and_budget():
    assert default_timeout_s(SHORT) == 60 + 0.5 + 2 * 0.5
    assert default_timeout_s(SHORT, 300) == 60 + 300 + 0.5 + 2 * 0.5


def test_tune_candidates_on_this_cpu():
    configs, notes = candidates(TuneConfig("test-tiny-mlp", batches=(4,), threads=1))
    combos = [(c.precision, c.channels_last, c.compile) for c in configs]
    assert combos[0] == ("fp32", False, False)
    assert {p for p, _, _ in combos} == {p for p in ("fp32", "bf16", "fp16") if cpu_native(p)}
    n_precisions, n_compiles = len({p for p, _, _ in combos}), len({c for *_, c in combos})
    assert len(combos) == len(set(combos)) == n_precisions * 2 * n_compiles
    with pytest.raises(UserError, match="tf32"):
        candidates(TuneConfig("test-tiny-mlp", batches=(4,), precisions=("fp32", "tf32")))


def test_tune_picks_the_fastest_and_stores_failed_compiles(store):
    def runner(spec):
        w = spec.workload
        if w.compile:
            return fake_point(w, "error")  # a compiler failure: stored, tuning goes on
        speed = {"fp32": 1.0, "bf16": 2.0, "fp16": 0.5}[w.precision] * (1.5 if w.channels_last else 1.0)
        return fake_point(w, samples_per_s=100.0 * speed)

    cfg = TuneConfig("test-tiny-mlp", batches=(1, 4), threads=1, policy=SHORT,
                     precisions=("fp32", "bf16"), compile=(False, True))
    result = run_tune(cfg, store, runner=runner, run="t")
    assert len(store.measurements("t")) == 2 * 8
    for choice in result.choices:
        w = choice.best.workload
        assert (w.precision, w.channels_last, w.compile) == ("bf16", True, False)
        assert choice.speedup == pytest.approx(3.0)
        assert sum(m.status == "error" for m in choice.tried) == 4
