"""The ONNX Runtime backend: the export matches torch, a real point in a worker records opset and
providers, and training is refused with a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from framework_helpers import need, nnscale, stored

from nnscale.cli import main
from nnscale.records import Workload
from nnscale.records_stats import Stats

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def onnxruntime_installed():
    need("onnxruntime")


def test_export_gives_the_outputs_of_torch(tmp_path):
    import onnxruntime as ort
    import torch

    from nnscale.measure.backends.onnxruntime import OPSET, export_onnx
    from nnscale.zoo import create_model

    w = Workload("pytorch-mnist-net", "inference", 3, (1, 28, 28), framework="onnxruntime")
    path = str(tmp_path / "m.onnx")
    info = export_onnx(w, path, seed=0)
    assert info["onnx_opset"] == OPSET and info["onnx_exporter"] in ("dynamo", "torchscript")
    torch.manual_seed(0)  # export_onnx builds the model from the same seed
    model = create_model("pytorch-mnist-net").eval()
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_sweep_stores_opset_and_providers(tmp_path):
    db = str(tmp_path / "r.db")
    out = nnscale("sweep", "pytorch-mnist-net", "--framework", "onnxruntime", "--batch", "4",
                  "--budget", "0.5", "--warmup", "0.3", "--processes", "1", "--max-processes", "1",
                  "--threads", "1", "--db", db)
    assert out.returncode == 0, out.stderr
    (p,) = stored(db)
    s = Stats.from_dict(p["stats"])
    assert p["workload"]["framework"] == "onnxruntime" and p["status"] in ("ok", "unstable"), p["error"]
    assert s.throughput.samples_per_s > 0 and len(p["samples_ms"]) >= 2
    assert s.host.onnx_opset >= 17 and s.host.ort_providers == "CPUExecutionProvider"
    assert s.host.ort_intra_op_threads == 1 and s.host.framework_mode == "InferenceSession"
    assert s.host.framework_version and s.host.onnx_export_s > 0


@pytest.mark.parametrize("args, message", [
    (("--mode", "training"), "framework 'onnxruntime' runs inference only, not training"),
    (("--compile",), "--compile has no meaning with 'onnxruntime'"),
    (("--precision", "bf16"), "precision bf16 is not supported with framework 'onnxruntime'"),
])
def test_unsupported_options_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["sweep", "pytorch-mnist-net", "--framework", "onnxruntime", *args,
                 "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()
