"""The ONNX Runtime backend exports into a temporary directory of its own under a fixed name: a
model named by an absolute or a ../ prototxt path must not make it write next to that file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from framework_helpers import need

from nnscale.records import Workload

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).resolve().parents[2] / "src" / "nnscale" / "zoo" / "fixtures" / "conv.prototxt"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("form", ["absolute", "dotdot"])
def test_export_stays_in_its_temporary_directory(tmp_path, monkeypatch, form):
    need("onnxruntime")
    from nnscale.measure.backends.onnxruntime import OnnxRuntimeBackend
    from nnscale.zoo import model_info

    nets, temp, work = tmp_path / "nets", tmp_path / "tmp", tmp_path / "w1" / "w2"
    for d in (nets, temp, work):
        d.mkdir(parents=True)
    shutil.copy(FIXTURE, nets / "conv.prototxt")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(work)
    # From the temporary directory tmp/nnscale-onnx-X, ../../nets/… is tmp_path/nets as well.
    model = str(nets / "conv.prototxt") if form == "absolute" else "../../nets/conv.prototxt"
    w = Workload(model, "inference", 1, model_info(model).input_shape, framework="onnxruntime",
                 threads=1)
    backend = OnnxRuntimeBackend()
    prepared = backend.prepare(w)
    prepared.step()
    backend.close()
    written = _files(nets) | _files(temp) | _files(work) | _files(tmp_path / "w1")
    assert written == {"conv.prototxt"}, written
    assert not list(tmp_path.rglob("*.onnx"))
