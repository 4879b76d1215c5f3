"""`nnscale device`: measures GEMM peaks and bandwidth once, caches them per machine under
XDG_CACHE_HOME, reuses the cache, re-measures on --refresh; MFU uses the cached peak."""

from __future__ import annotations

import json

import pytest

from nnscale.cli import main
from nnscale.measure.device import cache_path, cached_profile, device_name
from nnscale.measure.recorder import peak_lookup
from nnscale.records import Measurement, Workload


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def measure(capsys, *extra):
    assert main(["device", "--precision", "fp32,bf16", "--seconds", "0.05", "--threads", "1",
                 "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_measures_once_then_uses_the_cache(capsys, tmp_path):
    first = measure(capsys)
    assert not first["cached"] and first["cache"] == str(tmp_path / "cache" / "nnscale" / "device-peaks.json")
    assert set(first["gemm_flop_per_s"]) == {"fp32", "bf16"}
    assert all(v > 1e8 for v in first["gemm_flop_per_s"].values())  # any CPU does 0.1 GFLOP/s
    assert first["bandwidth_bytes_per_s"] > 1e8
    second = measure(capsys)
    assert second["cached"] and second["measured_utc"] == first["measured_utc"]
    third = measure(capsys, "--refresh")
    assert not third["cached"] and third["measured_utc"] != first["measured_utc"]
    profile = cached_profile(device_name("cpu"))
    assert profile is not None and profile.gemm_flop_per_s == third["gemm_flop_per_s"]

    w = Workload("test-tiny-mlp", "inference", 1, (3, 8, 8), precision="bf16")
    m = Measurement(w, "ok", stats={"samples_per_s": 1.0, "device_name": device_name("cpu")})
    assert peak_lookup()(m) == third["gemm_flop_per_s"]["bf16"]


def test_table_output_and_a_damaged_cache(capsys):
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text("{not json")
    assert main(["device", "--precision", "fp32", "--seconds", "0.05", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "GEMM fp32" in out and "memory copy" in out and "measured in" in out
    assert json.loads(cache_path().read_text())  # rewritten whole


@pytest.mark.parametrize("argv,needle", [
    (["--precision", "tf32"], "tf32"), (["--precision", "fp8"], "unknown precision"),
    (["--device", "tpu"], "unknown device"), (["--seconds", "0"], "--seconds"),
])
def test_bad_input(capsys, argv, needle):
    assert main(["device", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
