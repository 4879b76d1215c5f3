"""The JAX backend: real points in workers (always jax.jit), the stateless training step really
trains, and the options JAX cannot take are one-line errors."""

from __future__ import annotations

import pytest
from framework_helpers import in_fresh_process, needed, nnscale, stored
from nnscale.records_stats import Stats

from nnscale.cli import main

pytestmark = pytest.mark.slow


jax_installed = needed("jax")


def test_sweep_both_modes_is_jitted_and_stored(tmp_path):
    db = str(tmp_path / "r.db")
    out = nnscale("sweep", "test-tiny-mlp", "--framework", "jax", "--mode", "both", "--batch", "8",
                  "--budget", "0.5", "--warmup", "0.3", "--processes", "1", "--max-processes", "1",
                  "--threads", "1", "--db", db)
    assert out.returncode == 0, out.stderr
    points = stored(db)
    assert [p["workload"]["mode"] for p in points] == ["inference", "training"]
    for p in points:
        w, s = p["workload"], Stats.from_dict(p["stats"])
        assert w["framework"] == "jax" and p["status"] in ("ok", "unstable"), p["error"]
        assert w["compile"] is True  # JAX only runs jitted: stored as what ran
        assert s.host.framework_mode == "jax.jit" and s.timing.compile_s > 0
        assert s.throughput.samples_per_s > 0 and len(p["samples_ms"]) >= 2
        assert s.host.jax_platform == "cpu" and "intra_op_parallelism_threads=1" in s.host.xla_flags
        assert s.host.framework_version and s.host.keras_version.startswith("3.")


def test_training_step_updates_the_weights():
    code = """
import json, sys
import numpy as np
from nnscale.measure.backends.jax import JaxBackend
from nnscale.records import Workload
w = Workload("test-tiny-mlp", "training", 4, (3, 8, 8), threads=1, framework="jax", compile=True)
b = JaxBackend()
p = b.prepare(w, seed=0)
before = [np.asarray(v) for v in b.state[0]]
losses = [float(p.step()) for _ in range(3)]
after = [np.asarray(v) for v in b.state[0]]
print(json.dumps({"losses": losses, "changed": [bool(abs(a - c).max() > 0) for a, c in zip(before, after)],
                  "keras": __import__("keras").backend.backend(), "torch": "torch" in sys.modules}))
"""
    out = in_fresh_process(code)
    assert out["keras"] == "jax"
    assert all(out["changed"]) and out["losses"][2] < out["losses"][0]
    assert not out["torch"]


@pytest.mark.parametrize("args, message", [
    (("--channels-last",), "--channels-last is torch's memory-format switch"),
    (("--model-less",), None),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    if message is None:  # a net Keras has no twin of
        argv = ["sweep", "vgg16", "--framework", "jax"]
        message = "framework 'jax' has no Keras definition of 'vgg16'"
    else:
        argv = ["sweep", "test-tiny-mlp", "--framework", "jax", *args]
    code = main([*argv, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
