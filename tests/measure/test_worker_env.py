"""Every worker nnscale starts — a sweep's point worker and each torchrun rank of `scale` — gets one
environment (measure.runner.worker_env), and one GPU has one name in the rows both store."""

from __future__ import annotations

import importlib
from dataclasses import replace

from measure_helpers import fake_point

from nnscale.distributed import allreduce
from nnscale.distributed.config import AllreduceConfig, Launching, ScaleConfig
from nnscale.distributed.launch import _environment, launch_spec
from nnscale.measure.runner import THREAD_VARS, worker_env

SHARED = (*THREAD_VARS, "PYTHONHASHSEED", "PYTHONPATH")
# The module: the package nnscale.distributed exports a function of the same name (metrics.scaling).
scaling = importlib.import_module("nnscale.distributed.scaling")


def test_a_sweep_worker_and_a_torchrun_rank_get_the_same_variables(monkeypatch):
    for name in (*THREAD_VARS, "PYTHONHASHSEED"):
        monkeypatch.delenv(name, raising=False)
    sweep = worker_env(1)
    rank = _environment(launch_spec(Launching(nproc=(2,), device="cpu"), 2, {"kind": "ddp"},
                                    {"k": 1}), "launch-1")
    for name in SHARED:
        assert sweep[name] == rank[name], name
    assert rank["OPENBLAS_NUM_THREADS"] == rank["OMP_NUM_THREADS"] == "1"  # 2 ranks on 2 cores
    assert rank["NNSCALE_LAUNCH_ID"] == "launch-1"


def test_one_gpu_is_cuda_0_in_sweep_and_scale_rows_and_old_rows_still_join():
    cfg = ScaleConfig("test-tiny-mlp", Launching(nproc=(1, 2), device="cuda"), batch_per_worker=4)
    w = scaling.workload(cfg, 1)
    assert w.device == "cuda:0"  # what `sweep --device cuda` stores (validate.check_device)
    ar = AllreduceConfig(Launching(nproc=(2,), device="cuda"), (1024,))
    assert allreduce.workload(ar, 2, 1024).device == "cuda:0"
    old = fake_point(replace(w, device="cuda"))  # a row stored before, with device "cuda"
    assert scaling._same_series(old, cfg, w)
    assert not scaling._same_series(fake_point(replace(w, device="cpu")), cfg, w)
