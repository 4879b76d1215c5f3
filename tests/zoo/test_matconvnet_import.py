"""The MatConvNet importer: simplenn nets saved with scipy.io.savemat, as MATLAB would save them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.netstats import network_stats
from nnscale.zoo import create_model, model_info
from nnscale.zoo.import_layers import PaddedConv2d, PaddedPool


def cell(*structs: dict) -> np.ndarray:
    """A 1 x n MATLAB cell array of structs (savemat writes a dict as a struct)."""
    out = np.empty((1, len(structs)), dtype=object)
    for i, s in enumerate(structs):
        out[0, i] = s
    return out


def conv(h: int, w: int, c: int, k: int, **fields) -> dict:
    f = 1 / 100
    return {"type": "conv", "filters": f * np.random.randn(h, w, c, k).astype(np.float32),
            "biases": np.zeros((1, k), np.float32), "stride": 1, "pad": 0, **fields}


def pool(**fields) -> dict:
    return {"type": "pool", "method": "max", "pool": np.array([2.0, 2.0]), "stride": 2, "pad": 0,
            **fields}


def seed_lenet() -> np.ndarray:
    """The seed's `net.layers{end+1} = struct(...)` list, field for field."""
    return cell(conv(5, 5, 1, 20), pool(), conv(5, 5, 20, 50), pool(), conv(4, 4, 50, 500),
                {"type": "relu"}, conv(1, 1, 500, 10), {"type": "softmaxloss"})


@pytest.fixture
def lenet(tmp_path) -> str:
    path = tmp_path / "lenet.mat"
    scipy.io.savemat(path, {"net": {"layers": seed_lenet()}})
    return str(path)


def rows(name: str) -> list[tuple]:
    return [(r.name, r.type, r.output_shape, r.params, r.macs) for r in network_stats(name).layers]


def test_seed_lenet_equals_the_zoos(lenet):
    info = model_info(lenet)
    assert (info.family, info.input_shape, info.num_classes) == ("imported", (1, 28, 28), 10)
    imported, zoo = network_stats(lenet).to_dict(), network_stats("matconvnet-lenet").to_dict()
    assert imported == dict(zoo, model=lenet)  # every statistic, activation memory included
    assert rows(lenet) == rows("matconvnet-lenet")  # conv1, pool1, ... relu3, conv4: same table
    assert imported["params_total"] == 431_080 and imported["conv_depth"] == 4


def test_fields_as_variables_with_meta_input_size_and_weights_cell(tmp_path):
    # `save net.mat -struct net` (the published models), MatConvNet >= beta17's `weights` and
    # `meta.inputSize`, named layers, asymmetric pads, groups, dilation, lrn, dropout, softmax.
    path = tmp_path / "net.mat"
    weights = np.empty((1, 2), dtype=object)
    weights[0, 0] = np.zeros((3, 3, 2, 8), np.float32)  # depth 2 on 4 channels: 2 groups
    weights[0, 1] = np.zeros((8, 1), np.float32)
    layers = cell(
        conv(3, 3, 4, 4, name="c1", pad=np.array([0.0, 1, 1, 1])),
        {"type": "conv", "name": "c2", "weights": weights, "stride": 2, "pad": 1, "dilate": 2},
        {"type": "relu", "name": "r2", "leak": 0.2},
        {"type": "lrn", "name": "n2", "param": np.array([5.0, 2, 1e-4, 0.75])},
        pool(name="p2", method="avg", pool=3, pad=np.array([1.0, 0, 1, 0])),
        {"type": "dropout", "name": "d", "rate": 0.4},
        {"type": "softmax", "name": "prob"},
    )
    scipy.io.savemat(path, {"layers": layers, "meta": {"inputSize": np.array([32.0, 30, 4])}})
    assert model_info(str(path)).input_shape == (4, 32, 30)
    net = create_model(str(path))
    assert isinstance(net.c1, PaddedConv2d) and net.c1.pad == (1, 1, 0, 1)
    assert net.c2.groups == 2 and net.c2.dilation == (2, 2) and net.c2.stride == (2, 2)
    assert isinstance(net.r2, nn.LeakyReLU) and net.r2.negative_slope == 0.2
    assert net.n2.alpha == pytest.approx(5e-4) and net.n2.k == 2  # alpha * N: PyTorch divides by N
    assert isinstance(net.p2, PaddedPool) and net.d.p == 0.4
    out = net(torch.randn(2, 4, 32, 30))
    # c1: 32+1-3+1 = 31 by 30+2-3+1 = 30; c2 (5x5 dilated, stride 2): (31+2-5)//2+1 = 15 by 14;
    # p2: (15+1-3)//2+1 = 7 by (14+1-3)//2+1 = 7
    assert out.shape == (2, 8, 7, 7)
    assert torch.allclose(out.sum(1), torch.ones(2, 7, 7))


def test_input_inferred_from_the_filters_and_overridable(lenet):
    from nnscale.zoo.matconvnet_import import infer_input_shape, _read

    specs, declared = _read(lenet)
    assert declared is None and infer_input_shape(specs, lenet) == (1, 28, 28)
    published = Path(lenet).with_name("published.mat")  # the published models' field
    scipy.io.savemat(published, {"layers": seed_lenet(), "meta": {
        "normalization": {"imageSize": np.array([32.0, 32, 1, 1]), "averageImage": []}}})
    assert model_info(str(published)).input_shape == (1, 32, 32)
    assert network_stats(lenet, (1, 32, 32)).layers[-1].output_shape == (10, 2, 2)
    with torch.device("meta"):
        model = create_model(lenet, input_shape=(1, 36, 36))
    assert model.output_shapes == ((1, 10, 3, 3),)


def test_matlab_drops_trailing_singleton_dimensions(tmp_path):
    path = tmp_path / "one.mat"  # a 3x3x1x1 filter bank is saved by MATLAB as a 3x3 matrix
    layer = {"type": "conv", "filters": np.ones((3, 3)), "biases": np.zeros(1), "stride": 1, "pad": 0}
    scipy.io.savemat(path, {"net": {"layers": cell(layer)}})
    assert model_info(str(path)).input_shape == (1, 3, 3)
    assert network_stats(str(path)).params_total == 10


def test_not_a_simplenn_net(tmp_path):
    text = tmp_path / "text.mat"
    text.write_text("not a MAT-file")
    with pytest.raises(UserError, match="not a MATLAB .mat file"):
        model_info(str(text))
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"weights": np.ones(3)})
    with pytest.raises(UserError, match="not a MatConvNet simplenn network"):
        model_info(str(other))
    dag = tmp_path / "dag.mat"
    scipy.io.savemat(dag, {"vars": cell({"name": "x"}), "params": cell({"name": "w"}),
                           "layers": cell({"name": "conv1", "type": "dagnn.Conv", "block": {}})})
    with pytest.raises(UserError, match="DagNN"):
        model_info(str(dag))
    with pytest.raises(UserError, match="no such MatConvNet .mat file"):
        model_info(str(tmp_path / "missing.mat"))


def test_unsupported_layer_and_cli_exit_code(tmp_path, capsys, lenet):
    assert main(["stats", lenet, "--format", "csv"]) == 0
    assert "431080" in capsys.readouterr().out
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"net": {"layers": cell(conv(3, 3, 1, 4), {"type": "spnorm"})}})
    assert main(["stats", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layer 2" in err and "'spnorm' is not supported" in err
    small = tmp_path / "small.mat"
    scipy.io.savemat(small, {"net": {"layers": seed_lenet(),
                                     "meta": {"inputSize": np.array([8.0, 8, 1])}}})
    assert main(["stats", str(small)]) == 2
    assert "layer 3: the 5x5 conv does not fit its 2x2 input" in capsys.readouterr().err


# Hostile files: each is one line and exit code 2 from `nnscale stats FILE`. Before the checks a
# stride of 0 ended in ZeroDivisionError, text in stride/pad in ValueError, Inf in OverflowError.


def net_file(tmp_path, *layers, **extra) -> str:
    path = tmp_path / "hostile.mat"
    scipy.io.savemat(path, {"net": {"layers": cell(*layers), **extra}})
    return str(path)


INF = float("inf")
HOSTILE = {
    "conv stride 0": ((conv(5, 5, 1, 20, stride=0),), "`stride` must be 1 or 2 >= 1 integers"),
    "pool stride 0": ((conv(5, 5, 1, 8), pool(stride=np.array([0.0, 2]))), "`stride` must be"),
    "pool size 0": ((conv(5, 5, 1, 8), pool(pool=0)), "`pool` must be 1 or 2 >= 1 integers"),
    "dilate 0": ((conv(3, 3, 1, 8, dilate=0),), "`dilate` must be 1 or 2 >= 1 integers"),
    "text stride": ((conv(5, 5, 1, 20, stride="2"),), "`stride` must be numeric, not '2'"),
    "text pad": ((conv(5, 5, 1, 20, pad="same"),), "`pad` must be numeric, not 'same'"),
    "inf stride": ((conv(5, 5, 1, 20, stride=INF),), "`stride` must be 1 or 2 >= 1 integers"),
    "inf pad": ((conv(5, 5, 1, 20, pad=np.array([1.0, INF, 1, 1])),), "`pad` must be 1 or 4"),
    "nan pad": ((conv(5, 5, 1, 20, pad=float("nan")),), "`pad` must be 1 or 4 non-negative"),
    "huge pad": ((conv(5, 5, 1, 20, pad=1e30),), "at most 1048576"),
    "inf pool": ((conv(5, 5, 1, 8), pool(pool=INF)), "`pool` must be"),
    "text lrn": ((conv(5, 5, 1, 8), {"type": "lrn", "param": "five"}), "`param` must be numeric"),
    "inf lrn": ((conv(5, 5, 1, 8), {"type": "lrn", "param": np.array([INF, 1, 1e-4, 0.75])}),
                "`param` must be [N kappa alpha beta], finite"),
    "text leak": ((conv(5, 5, 1, 8), {"type": "relu", "leak": "lots"}), "`leak` must be numeric"),
    "inf leak": ((conv(5, 5, 1, 8), {"type": "relu", "leak": INF}), "`leak` must be a number"),
    "rate 2": ((conv(5, 5, 1, 8), {"type": "dropout", "rate": 2.0}),
               "`rate` must be a number from 0 to 1"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=str)
def test_hostile_layer_fields(tmp_path, capsys, case):
    layers, needle = HOSTILE[case]
    path = net_file(tmp_path, *layers)
    assert main(["stats", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"nnscale: error: {path}: ") and needle in err[0], err


@pytest.mark.parametrize("size,needle", [
    (np.array([INF, 28, 1]), "the input size [H W C] must be positive integers"),
    (np.array([28, 0, 1]), "the input size [H W C] must be positive integers"),
    ("28x28", "`inputSize` must be numeric, not '28x28'"),
])
def test_hostile_input_size(tmp_path, capsys, size, needle):
    path = net_file(tmp_path, conv(5, 5, 1, 8), meta={"inputSize": size})
    assert main(["stats", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
