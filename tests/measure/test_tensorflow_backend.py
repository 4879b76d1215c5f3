"""The TensorFlow backend: real points in workers (tf.function with and without XLA), the training
step really trains, and the options TensorFlow cannot take are one-line errors."""

from __future__ import annotations

import pytest
from framework_helpers import in_fresh_process, needed, nnscale, stored
from nnscale.records_stats import Stats

from nnscale.cli import main

pytestmark = pytest.mark.slow


tensorflow_installed = needed("tensorflow")


def test_sweep_both_modes_with_and_without_xla(tmp_path):
    db = str(tmp_path / "r.db")
    common = ("--framework", "tensorflow", "--batch", "8", "--budget", "0.5", "--warmup", "0.3", "--processes", "1",
              "--max-processes", "1", "--threads", "1", "--db", db)
    out = nnscale("sweep", "test-tiny-mlp", "--mode", "both", "--run", "tf", *common)
    assert out.returncode == 0, out.stderr
    out = nnscale("sweep", "test-tiny-mlp", "--mode", "training", "--compile", "--resume", "tf", *common[:-2],
                  "--db", db)
    assert out.returncode == 0, out.stderr
    points = stored(db)
    assert len(points) == 3
    modes = set()
    for p in points:
        w, s = p["workload"], Stats.from_dict(p["stats"])
        assert w["framework"] == "tensorflow" and p["status"] in ("ok", "unstable"), p["error"]
        assert s.throughput.samples_per_s > 0 and len(p["samples_ms"]) >= 2
        assert s.host.framework_version.startswith("2.") and s.host.keras_version.startswith("3.")
        assert s.host.tf_intra_op_threads == 1 and s.host.tf_inter_op_threads == 1
        assert s.host.data_layout == "NHWC" and s.compute.peak_memory_bytes is not None
        modes.add((w["mode"], s.host.framework_mode))
        if w["compile"]:
            assert s.timing.compile_s > 0  # the first call (trace + XLA compile), never a sample
    assert modes == {("inference", "tf.function"), ("training", "tf.function"),
                     ("training", "tf.function+xla")}


def test_training_step_updates_the_weights_and_is_deterministic():
    code = """
import json
from nnscale.measure.backends.tensorflow import TensorFlowBackend
from nnscale.records import Workload
w = Workload("test-tiny-mlp", "training", 4, (3, 8, 8), threads=1, framework="tensorflow", compile=True)
b = TensorFlowBackend()
p = b.prepare(w, seed=0)
before = [v.numpy().copy() for v in b.model.trainable_variables]
losses = [float(p.step()) for _ in range(3)]
after = [v.numpy() for v in b.model.trainable_variables]
import sys
print(json.dumps({"losses": losses, "changed": [bool(abs(a - c).max() > 0) for a, c in zip(before, after)],
                  "torch": "torch" in sys.modules}))
"""
    out = in_fresh_process(code)
    assert all(out["changed"])  # every weight moved: gradients reach every layer
    assert out["losses"][2] < out["losses"][0]  # SGD on a fixed batch lowers the loss
    assert not out["torch"]  # a TensorFlow point does not load torch


@pytest.mark.parametrize("args, message", [
    (("--channels-last",), "--channels-last is torch's memory-format switch"),
    (("--mode", "training", "--precision", "fp16"), "fp16 training with framework 'tensorflow'"),
    (("--input-size", "3x16x16"), "--input-size is not supported with framework 'tensorflow'"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["sweep", "test-tiny-mlp", "--framework", "tensorflow", *args, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()
