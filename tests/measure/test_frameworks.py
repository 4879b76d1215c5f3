"""Framework selection at the edge: not installed, unknown, what each framework can run; and the
framework in tune's candidates, a study's sweeps, `nnscale results` and the report's plot."""

from __future__ import annotations

import importlib.util

import pytest
from measure_helpers import fake_point

from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.measure.frameworks import (
    check_framework,
    keras_twins,
    parse_frameworks,
)
from nnscale.measure.tune import TuneConfig, candidates
from nnscale.records import Workload
from nnscale.store import open_store


def hide(monkeypatch, *modules: str) -> None:
    """Make `modules` look not installed to find_spec (what the parent checks before any worker)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name in modules else real(name, *a, **k))


@pytest.mark.parametrize("framework, module, extra", [
    ("tensorflow", "tensorflow", "tensorflow"), ("jax", "jax", "jax"),
    ("onnxruntime", "onnxruntime", "onnx"), ("tensorflow", "keras", "tensorflow"),
])
def test_not_installed_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, framework, module, extra):
    hide(monkeypatch, module)
    code = main(["sweep", "test-tiny-mlp", "--framework", framework, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"framework {framework!r} is not installed: pip install 'nnscale[{extra}]'" in err
    assert not (tmp_path / "r.db").exists()


def test_unknown_framework_on_the_command_line_and_in_a_study(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "test-tiny-mlp", "--framework", "caffe"])
    assert exit_.value.code == 2 and "invalid choice: 'caffe'" in capsys.readouterr().err
    study = tmp_path / "s.yaml"
    study.write_text("nets: [test-tiny-mlp]\nframeworks: [torch, mxnet]\n")
    assert main(["run", "--study", str(study), "--db", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown framework value 'mxnet'; accepted: torch, tensorflow, jax, onnxruntime" in err
    with pytest.raises(UserError, match="unknown framework 'x'"):
        parse_frameworks("torch,x")


def test_compile_per_framework():
    assert check_framework("jax", ("inference",), "fp32", False, False) is True  # always jitted
    assert check_framework("tensorflow", ("training",), "bf16", False, True) is True  # XLA
    assert check_framework("tensorflow", ("training",), "fp32", False, False) is False
    assert check_framework("torch", ("training",), "fp16", True, True) is True


def test_keras_names_are_read_without_importing_keras():
    names = keras_twins()  # the zoo's ModelInfo.keras_twin, set at registration: no keras import
    assert {"resnet50-v1", "tf-mnist-convnet", "test-tiny-mlp"} <= set(names)


def test_tune_candidates_per_framework(monkeypatch):
    monkeypatch.setattr("nnscale.measure.tune.default_precisions", lambda device: ("fp32", "bf16"))
    tf, _ = candidates(TuneConfig("test-tiny-mlp", framework="tensorflow"))
    assert [(c.precision, c.channels_last, c.compile) for c in tf] == [
        ("fp32", False, False), ("bf16", False, False), ("fp32", False, True), ("bf16", False, True)]
    jax, _ = candidates(TuneConfig("test-tiny-mlp", framework="jax", modes=("training",)))
    assert [(c.precision, c.compile) for c in jax] == [("fp32", True), ("bf16", True)]
    ort, _ = candidates(TuneConfig("test-tiny-mlp", framework="onnxruntime"))
    assert [(c.precision, c.compile, c.framework) for c in ort] == [("fp32", False, "onnxruntime")]


def test_results_group_by_framework(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    with open_store(db) as store:
        run = store.create_run("fw")
        for fw, b in (("torch", 1), ("jax", 1), ("torch", 8), ("jax", 8)):
            w = Workload("test-tiny-mlp", "inference", b, (3, 8, 8), framework=fw, compile=fw == "jax")
            store.add_measurement(run, fake_point(w))
    assert main(["results", "fw", "--db", db]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[1] for line in out.splitlines() if line.startswith("test-tiny-mlp")]
    assert rows == ["torch", "torch", "jax", "jax"]
    assert "knee test-tiny-mlp jax inference cpu fp32 compile: batch" in out
    assert "knee test-tiny-mlp inference cpu fp32: batch" in out


def test_framework_plot_keeps_jitted_jax_beside_eager_torch():
    from nnscale.report.plots_batch import framework_plot

    ms = []
    for fw, comp in (("torch", False), ("torch", True), ("jax", True), ("tensorflow", False),
                     ("tensorflow", True)):
        for b in (1, 4, 16):
            w = Workload("resnet50-v1", "inference", b, (3, 224, 224), framework=fw, compile=comp)
            ms.append(fake_point(w))
    (plot,) = framework_plot(ms)
    for fw in ("torch", "jax", "tensorflow"):
        assert fw in plot.svg


def test_study_sweeps_per_framework_skip_what_a_framework_cannot_run(monkeypatch):
    from nnscale.study import runner, sweeps
    from nnscale.study.config import study_from_dict

    study = study_from_dict({"nets": ["test-tiny-mlp", "vgg16"], "modes": ["inference", "training"],
                             "batches": [1, 2], "frameworks": ["torch", "jax", "onnxruntime"]}, "s.yaml")
    study, notes = runner.check_frameworks(study)
    assert any("onnxruntime: no training" in n for n in notes)
    assert any("jax: no Keras definition of vgg16" in n for n in notes)
    from nnscale.measure.methodology import MeasurePolicy
    from nnscale.measure.progress import NullProgress

    specs = []
    # What would be measured (the rounds' points), not the measuring itself.
    monkeypatch.setattr(sweeps, "start_recording", lambda *a, **k: (None, "r", None))
    monkeypatch.setattr(sweeps, "measure_in_rounds", lambda s, *a, **k: specs.extend(s))
    sweeps.run_sweeps(study, None, "r", "cpu", list(runner.planned_sweeps(study)), None,
                      MeasurePolicy(), NullProgress())
    seen = sorted({(p.workload.framework, p.workload.model, p.workload.mode, p.workload.compile)
                   for p in specs})
    assert ("jax", "test-tiny-mlp", "training", True) in seen
    assert ("onnxruntime", "vgg16", "inference", False) in seen
    assert not [s for s in seen if s[0] == "onnxruntime" and s[2] == "training"]
    assert not [s for s in seen if s[0] == "jax" and s[1] == "vgg16"]
    assert len(seen) == 4 + 2 + 2
    assert runner.sweep_points(study) == 2 * len(seen) == len(specs)  # two batches per sweep


def test_framework_nets_limit_the_other_frameworks_not_torch(monkeypatch):
    from nnscale.study import runner
    from nnscale.study.config import study_from_dict

    study = study_from_dict({"nets": ["test-tiny-mlp", "test-tiny-resnet"], "modes": ["inference"],
                             "batches": [1, 2, 4], "frameworks": ["torch", "onnxruntime"],
                             "framework_nets": ["test-tiny-resnet"]}, "s.yaml")
    seen = [(fw, net) for fw, net, *_ in runner.planned_sweeps(study)]
    assert seen == [("torch", "test-tiny-mlp"), ("torch", "test-tiny-resnet"),
                    ("onnxruntime", "test-tiny-resnet")]
    assert runner.sweep_points(study) == 3 * 3


def test_framework_nets_must_be_among_the_nets():
    from nnscale.study.config import study_from_dict

    with pytest.raises(UserError, match="framework_nets 'vgg16' is not in nets"):
        study_from_dict({"nets": ["test-tiny-mlp"], "framework_nets": ["vgg16"]}, "s.yaml")


def test_a_builtin_study_runs_without_a_missing_framework_and_says_so(monkeypatch):
    """A study file's framework must be installed; `quick` goes on with the ones that are."""
    from dataclasses import replace

    from nnscale.measure import frameworks
    from nnscale.study import runner
    from nnscale.study.config import QUICK, study_from_dict

    real = frameworks.importlib.util.find_spec
    monkeypatch.setattr(frameworks.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    study, notes = runner.check_frameworks(replace(QUICK, frameworks=("torch", "tensorflow")))
    assert study.frameworks == ("torch",)
    assert notes == ["framework 'tensorflow' is not installed: pip install 'nnscale[tensorflow]'; "
                     "the study runs without it"]
    strict = study_from_dict({"nets": ["test-tiny-mlp"], "frameworks": ["torch", "tensorflow"]}, "s.yaml")
    with pytest.raises(UserError, match=r"pip install 'nnscale\[tensorflow\]'"):
        runner.check_frameworks(strict)
