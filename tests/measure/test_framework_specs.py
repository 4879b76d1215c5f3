"""Every list of frameworks agrees with the specs: the command line's choices, a study's, the
backends each spec names, and the rules each spec answers through `allows`."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from nnscale.cli import build_parser
from nnscale.measure.backends.base import Backend
from nnscale.measure.frameworks import FRAMEWORKS, SPECS, keras_twins
from nnscale.study import config as study_config


def _framework_option(command: str) -> argparse.Action | None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return next((a for a in sub.choices[command]._actions if "--framework" in a.option_strings), None)


def test_command_line_choices_are_the_specs():
    for command in ("sweep", "tune"):
        assert tuple(_framework_option(command).choices) == FRAMEWORKS == tuple(SPECS)
    scale = _framework_option("scale")  # DDP/FSDP are torch's: a spec'd framework, checked later
    assert scale.choices is None and scale.default in SPECS
    assert _framework_option("run") is None  # a study names its frameworks in its file
    assert study_config.BUILTIN["quick"].frameworks == FRAMEWORKS


def test_unknown_framework_in_a_study_lists_the_specs(tmp_path):
    with pytest.raises(Exception, match="accepted: " + ", ".join(FRAMEWORKS)):
        study_config.study_from_dict({"nets": ["test-tiny-mlp"], "frameworks": ["caffe"]}, "s.yaml")


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_each_spec_names_its_backend(name):
    spec = SPECS[name]
    module, _, cls = spec.backend.partition(":")
    backend = getattr(importlib.import_module(module), cls)  # the class only: no framework loads
    assert issubclass(backend, Backend) and backend.framework == name == spec.name
    assert spec.run_name(False) and spec.run_name(True)
    assert bool(spec.compile_label) == (not spec.compile_refused)


def test_the_backends_package_has_one_module_per_spec():
    import nnscale.measure.backends as package

    modules = {p.stem for p in Path(package.__file__).parent.glob("*.py")}
    shared = {"__init__", "base", "keras_common"}
    named = {SPECS[n].backend.partition(":")[0].rpartition(".")[2] for n in FRAMEWORKS}
    assert modules - shared == named == set(FRAMEWORKS)


def test_the_rules_are_asked_of_the_spec():
    torch, tf, jax, ort = (SPECS[n] for n in ("torch", "tensorflow", "jax", "onnxruntime"))
    assert torch.allows("training", "fp16", "cuda:0") is None
    for spec in (tf, jax):  # no loss scaling: fp16 inference only
        assert spec.allows("inference", "fp16", "cpu") is None
        assert "needs loss scaling" in spec.allows("training", "fp16", "cpu")
    assert ort.allows("training", "fp32") == ("framework 'onnxruntime' runs inference only, not "
                                              "training (ONNX Runtime is an inference engine)")
    assert "use fp32" in ort.allows("inference", "bf16")
    assert "not tpu" in torch.allows("inference", "fp32", "tpu")
    assert [n for n in FRAMEWORKS if SPECS[n].keras_twin] == ["tensorflow", "jax"]
    assert {"resnet50-v1", "tf-mnist-convnet", "test-tiny-mlp"} <= set(keras_twins())
