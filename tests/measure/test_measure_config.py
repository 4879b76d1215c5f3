"""`MeasureConfig` (measure/config.py): sweep and tune share one base, checked when a config is made
(from Python, the CLI or a stored run alike), and a stored config reads back equal."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from nnscale.errors import UserError
from nnscale.measure.config import MeasureConfig
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.sweep import SweepConfig
from nnscale.measure.tune import TUNE_POLICY, TuneConfig

SHARED = ("model", "modes", "device", "threads", "input_shape", "framework", "policy", "timeout_s",
          "compile_timeout_s", "memory_cap_bytes", "interference_max")


@pytest.mark.parametrize("cls", [SweepConfig, TuneConfig])
@pytest.mark.parametrize("bad, match", [
    (dict(timeout_s=float("inf")), "--timeout"),
    (dict(compile_timeout_s=0.0), "--compile-timeout"),
    (dict(modes=("sleeping",)), "bad modes"),
    (dict(modes=()), "bad modes"),
    (dict(memory_cap_bytes=0), "bad memory_cap_bytes"),
    (dict(interference_max=1.5), "interference"),
])
def test_both_configs_check_the_shared_fields_when_made(cls, bad, match):
    with pytest.raises(UserError, match=match):
        cls("test-tiny-mlp", **bad)


def test_the_shared_fields_are_one_base_with_each_commands_defaults():
    assert tuple(f.name for f in fields(MeasureConfig)) == SHARED
    for cls in (SweepConfig, TuneConfig):
        assert issubclass(cls, MeasureConfig)
        assert tuple(f.name for f in fields(cls))[:len(SHARED)] == SHARED
    assert (SweepConfig("m").policy, SweepConfig("m").compile_timeout_s) == (MeasurePolicy(), 600.0)
    assert (TuneConfig("m").policy, TuneConfig("m").compile_timeout_s) == (TUNE_POLICY, 300.0)
    with pytest.raises(AttributeError):  # slotted: a misspelt field is an error, not a new one
        object.__setattr__(SweepConfig("m"), "batchez", (1,))


@pytest.mark.parametrize("config", [
    SweepConfig("test-tiny-mlp", modes=("inference", "training"), batches=(1, 4), input_shape=(8,),
                precision="bf16", memory_cap_bytes=1 << 30, timeout_s=30.0),
    TuneConfig("test-tiny-mlp", batches=(2,), precisions=("fp32", "bf16"), compile=(False,),
               channels_last=(False,), input_shape=(8,), threads=2),
])
def test_a_stored_config_reads_back_equal(config):
    stored = json.loads(json.dumps(config.to_dict()))  # as a run's notes hold it: lists, not tuples
    assert type(config).from_dict(stored) == config
    assert type(config).from_dict(dict(stored, added_by_a_newer_release=1)) == config


def test_a_tune_candidate_is_a_sweep_of_the_same_shared_fields():
    tune = TuneConfig("test-tiny-mlp", batches=(2,), threads=3, timeout_s=20.0, interference_max=0.5)
    assert SweepConfig(**tune.shared()).shared() == tune.shared()
    assert tune.shared()["policy"] == TUNE_POLICY
