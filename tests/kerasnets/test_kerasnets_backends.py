"""The same definitions under the other Keras backend, in a subprocess (Keras picks its backend once
per process): the small nets compute the torch zoo's outputs there too, and importing and building
loads no torch and leaves KERAS_BACKEND alone. The LRN and max pool layers are checked there too."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kerasnets_support import (
    assert_close,
    keras_model,
    nchw_to_nhwc,
    randomise_batch_norm,
    require_keras,
    sample_input,
    torch_forward,
    torch_model,
    torch_weights_for_keras,
)

keras = require_keras()

from nnscale.zoo import model_info

# name -> (input size, kernel, stride, padding, ceil_mode): resnet's -inf padded pool, a ceil-mode
# pool that SAME matches and one it does not.
POOLS = {"resnet": (14, 3, 2, 1, False), "same": (14, 3, 2, 0, True), "ceil": (9, 3, 2, 1, True)}
NAMES = ["caffe-conv", "tf-mnist-convnet", "matconvnet-lenet", "pytorch-mnist-net",
         "test-tiny-resnet", "test-tiny-mlp"]  # fmt: skip

# Run by the subprocess: build each model, load the weights, run the inputs, report.
CHILD = r"""
import json, os, sys
import numpy as np
from nnscale.kerasnets import create_keras_model, list_keras_models
import keras

data = np.load(sys.argv[1])
report = {"backend": keras.backend.backend(), "env": os.environ.get("KERAS_BACKEND"),
          "torch": "torch" in sys.modules, "models": {}}
names = json.loads(sys.argv[2])
assert set(names) <= set(list_keras_models())
for name in names:
    model = create_keras_model(name)
    for layer in model.layers:
        n = sum(1 for key in data.files if key.startswith(f"{name}/{layer.name}/"))
        if n:
            layer.set_weights([data[f"{name}/{layer.name}/{i}"] for i in range(n)])
    out = keras.ops.convert_to_numpy(model(data[f"{name}/input"], training=False))
    np.save(os.path.join(sys.argv[3], name + ".npy"), out)
    report["models"][name] = {
        "trainable": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        "output_shape": list(out.shape),
    }
from nnscale.kerasnets.layers import LocalResponseNorm, max_pool2d
lrn_in = data["layers/lrn_input"]
lrn = LocalResponseNorm(size=5, alpha=0.1, beta=0.75, k=2.0)
np.save(os.path.join(sys.argv[3], "lrn.npy"), keras.ops.convert_to_numpy(lrn(lrn_in)))
for key, (kernel, stride, padding, ceil_mode) in json.loads(sys.argv[4]).items():
    x = data[f"layers/pool_input/{key}"]
    inputs = keras.Input(shape=x.shape[1:])
    pool = keras.Model(inputs, max_pool2d(inputs, kernel, stride, padding=padding,
                                          ceil_mode=ceil_mode, name="pool"))
    np.save(os.path.join(sys.argv[3], f"pool_{key}.npy"), keras.ops.convert_to_numpy(pool(x)))
report["torch"] = report["torch"] or "torch" in sys.modules
print(json.dumps(report))
"""


def _other_backend() -> str:
    return "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"


def test_small_nets_under_the_other_backend(tmp_path: Path) -> None:
    other = _other_backend()
    if importlib.util.find_spec(other) is None:
        reason = f"the {other} backend is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must test both Keras backends", pytrace=False)
        pytest.skip(reason)
    arrays, expected = {}, {}
    for name in NAMES:
        net, knet = torch_model(name), keras_model(name)
        randomise_batch_norm(net)
        for layer, weights in torch_weights_for_keras(net, knet).items():
            arrays.update({f"{name}/{layer}/{i}": w for i, w in enumerate(weights)})
        x = sample_input(model_info(name).input_shape)
        arrays[f"{name}/input"] = nchw_to_nhwc(x)
        expected[name] = (torch_forward(net, x), sum(p.numel() for p in net.parameters()))
    rng = np.random.default_rng(3)
    lrn_input = (10 * rng.standard_normal((2, 7, 3, 4))).astype(np.float32)  # NCHW
    arrays["layers/lrn_input"] = nchw_to_nhwc(lrn_input)
    lrn_expected = torch.nn.LocalResponseNorm(5, alpha=0.1, beta=0.75, k=2.0)(
        torch.from_numpy(lrn_input)
    ).numpy()
    pool_expected = {}
    for key, (size, kernel, stride, padding, ceil_mode) in POOLS.items():
        x = -np.abs(rng.standard_normal((1, 3, size, size))).astype(np.float32) - 0.1
        arrays[f"layers/pool_input/{key}"] = nchw_to_nhwc(x)
        pool_expected[key] = torch.nn.functional.max_pool2d(
            torch.from_numpy(x), kernel, stride, padding, ceil_mode=ceil_mode
        ).numpy()
    np.savez(tmp_path / "data.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "2"}
    (tmp_path / "child.py").write_text(CHILD)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "data.npz"), json.dumps(NAMES),
         str(tmp_path), json.dumps({k: v[1:] for k, v in POOLS.items()})],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["backend"] == other and report["env"] == other
    assert not report["torch"], "building the Keras models imported torch"
    for name in NAMES:
        torch_out, params = expected[name]
        assert report["models"][name]["trainable"] == params
        assert_close(np.load(tmp_path / f"{name}.npy"), torch_out)
    assert_close(np.load(tmp_path / "lrn.npy"), lrn_expected)
    for key, torch_out in pool_expected.items():
        got = np.load(tmp_path / f"pool_{key}.npy")
        np.testing.assert_array_equal(got, nchw_to_nhwc(torch_out))
