"""The command line: outputs, and bad input as one line with exit code 2 and no traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnscale.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # The real entry point, from source as on a machine without an install (`PYTHONPATH=src`).
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "nnscale", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_models_from_source_lists_the_zoo():
    result = run_cli("models", "resnet50*", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"resnet50", "resnet50-v1"}
    assert rows["resnet50-v1"]["conv_depth"] == 49 and rows["resnet50"]["params"] == 25_557_032


def test_unknown_model_suggests(capsys):
    assert main(["stats", "alexnet-orignal"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean alexnet-original" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("size", ["abc", "3x224x224x3", "0x224x224", "-3x2x2", "", "3.5x224x224"])
def test_malformed_input_size(capsys, size):
    assert main(["stats", "resnet50", f"--input-size={size}"]) == 2
    err = capsys.readouterr().err
    assert "--input-size" in err and len(err.strip().splitlines()) == 1


def test_input_too_small_for_the_net():
    result = run_cli("stats", "alexnet-original", "--input-size", "3x32x32")
    assert_one_line_error(result, "does not fit alexnet-original", "3x227x227")


def test_wrong_channel_count_is_caught(capsys):
    assert main(["stats", "resnet50", "--input-size", "1x224x224"]) == 2
    assert "does not fit resnet50" in capsys.readouterr().err


def test_missing_timm_names_the_extra():
    pytest.importorskip("nnscale")  # always present; the branch below depends on timm
    try:
        import timm  # noqa: F401
    except ImportError:
        assert_one_line_error(run_cli("stats", "timm:resnet18"), "nnscale[timm]")
    else:
        pytest.skip("timm is installed here; the missing-extra path cannot be shown")


def test_argparse_errors_are_one_line():
    assert_one_line_error(run_cli("stats", "resnet50", "--format", "xml"), "invalid choice")
    assert_one_line_error(run_cli("frobnicate"), "invalid choice")


def test_stats_per_layer_csv(capsys):
    assert main(["stats", "pytorch-mnist-net", "--per-layer", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "name,type,output_shape,params,macs,macs_share"
    assert lines[1].startswith("conv1,Conv2d,20x24x24,520,288000,")  # 24*24*20*25 MACs


def test_stats_table_shows_depth_and_memory(capsys):
    assert main(["stats", "googlenet"]) == 0
    out = capsys.readouterr().out
    assert "depth in conv layers (longest path)" in out and " 21" in out and "MiB" in out


def test_paper_table_beside_the_seed(capsys):
    assert main(["stats", "--paper", "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["alexnet-original"]["macs"] == 724_406_816 and rows["alexnet-original"]["seed_macs"] == 724e6
    assert rows["inception-v1-original"]["conv_depth"] == rows["inception-v1-original"]["seed_conv_layers"]
    assert "1.43G cannot be reproduced" in rows["inception-v1-original"]["note"]
    assert "v1.5" in rows["resnet50"]["note"]


def test_stats_needs_a_model_or_paper(capsys):
    assert main(["stats"]) == 2
    assert main(["stats", "resnet50", "--paper"]) == 2
