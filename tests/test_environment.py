"""Environment capture, and that the pure layers load without a framework."""

from __future__ import annotations

import json
import subprocess
import sys

from nnscale.environment import capture_environment
from nnscale.environment import _env_vars


def test_capture_without_torch_is_json_and_complete(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("NCCL_SECRET_TOKEN", "hunter2")
    env = capture_environment(include_torch=False)
    assert json.loads(json.dumps(env)) == env
    assert env["host"] and env["python"]["version"].count(".") == 2
    assert env["cpu"]["logical_cores"] >= 1
    assert env["memory_bytes"] is None or env["memory_bytes"] > 2**20
    assert env["versions"]["nnscale"]
    assert env["env"]["OMP_NUM_THREADS"] == "3" and env["env"]["NCCL_DEBUG"] == "INFO"
    assert "NCCL_SECRET_TOKEN" not in env["env"]
    assert "torch" not in env
    git = env["git"]
    assert git is None or (len(git["commit"]) == 40 and git["dirty"] in (True, False, None))


def test_env_vars_skip_unrelated_names(monkeypatch):
    monkeypatch.setenv("HOME_SWEET_HOME", "x")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    picked = _env_vars()
    assert picked["CUDA_VISIBLE_DEVICES"] == "0,1" and "HOME_SWEET_HOME" not in picked


def test_stats_and_store_import_no_framework():
    code = (
        "import sys, nnscale.stats, nnscale.store, nnscale.environment; "
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_nvidia_driver_version_is_parsed(monkeypatch):
    from nnscale import environment

    for text, want in (
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 2023",
            "535.104.05",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build",
            "570.124.06",
        ),
    ):
        monkeypatch.setattr(environment, "_read", lambda path, text=text: text)
        assert environment._nvidia_driver() == want


def test_pending_writes_are_flushed_before_measuring(tmp_path):
    from nnscale.environment import check_interference, pending_writes_bytes

    with open(tmp_path / "dirty.bin", "wb") as f:  # 64 MiB of page cache, not written back yet
        f.write(b"\x01" * (64 << 20))
    before = pending_writes_bytes()
    found = check_interference(0.5)
    assert found["pending_writes_bytes"] >= 48 << 20 and before >= 48 << 20
    assert found["sync_s"] >= 0.0
    # sync(2) wrote them: what is pending now is what other processes dirtied since, not ours.
    assert pending_writes_bytes() < found["pending_writes_bytes"] - (32 << 20)
