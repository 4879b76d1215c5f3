"""The Caffe importer: the seed's conv.prototxt, the papers' nets as prototxt, layers, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.netstats import network_stats
from nnscale.zoo import create_model, model_info
from nnscale.zoo import caffe_import
from nnscale.zoo.import_layers import _torch_pool_size, make_pool, pool_output_size
from nnscale.zoo.prototxt import PrototxtError, parse

FIXTURES = Path(caffe_import.__file__).parent / "fixtures"
SEED = Path(__file__).resolve().parents[3] / "shared" / "seed"
SAME = ("params_total", "params_weights", "macs", "forward_flops", "training_flops",
        "conv_layers", "conv_depth", "fc_layers")


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.prototxt")


def test_seed_conv_prototxt_gives_the_slide_layer():
    path = fixture("conv")
    if SEED.is_dir():  # the fixture is the slide's text, verbatim
        talk = "\n".join(p.read_text() for p in SEED.glob("*.txt"))
        assert Path(path).read_text().strip() in talk
    info = model_info(path)
    assert (info.family, info.input_shape, info.num_classes) == ("imported", (1, 100, 100), 3)
    stats = network_stats(path)
    assert [(r.name, r.type, r.output_shape, r.params) for r in stats.layers] == [
        ("conv", "Conv2d", (3, 96, 96), 78)]
    seed = network_stats("caffe-conv")
    assert all(getattr(stats, k) == getattr(seed, k) for k in SAME)


@pytest.mark.parametrize("fixture_name, zoo, params, macs, convs, depth, fcs", [
    ("alexnet", "alexnet-original", 60_965_224, 724_406_816, 5, 5, 3),
    ("googlenet", "inception-v1-original", 6_998_552, 1_582_671_872, 57, 21, 1),
    ("resnet50", "resnet50-v1", 25_557_032, 3_857_973_248, 53, 49, 1),
])
def test_paper_prototxt_equals_the_zoo_original(fixture_name, zoo, params, macs, convs, depth, fcs):
    imported, original = network_stats(fixture(fixture_name)), network_stats(zoo)
    assert imported.input_shape == original.input_shape
    assert (imported.params_total, imported.macs, imported.conv_layers, imported.conv_depth,
            imported.fc_layers) == (params, macs, convs, depth, fcs)
    for key in SAME:
        assert getattr(imported, key) == getattr(original, key), key


def test_layer_names_and_shapes_read_like_the_prototxt():
    rows = {r.name: (r.type, r.output_shape) for r in network_stats(fixture("googlenet")).layers}
    assert rows["conv1_7x7_s2"] == ("Conv2d", (64, 112, 112))
    assert rows["pool1_3x3_s2"] == ("MaxPool2d", (64, 56, 56))  # Caffe rounds up: 111/2 -> 56
    assert rows["inception_3a_5x5"] == ("Conv2d", (32, 28, 28))
    assert rows["inception_3a_output"] == ("Concat", (256, 28, 28))
    assert rows["pool4_3x3_s2"] == ("MaxPool2d", (832, 7, 7))
    assert rows["loss3_classifier"] == ("Linear", (1000,))
    resnet = {r.name: (r.type, r.output_shape) for r in network_stats(fixture("resnet50")).layers}
    assert resnet["res3a_branch2a"] == ("Conv2d", (128, 28, 28))  # v1: stride on the first 1x1
    assert resnet["bn3a_branch2a"] == ("BatchNorm2d", (128, 28, 28))  # BatchNorm + Scale, fused
    assert "scale3a_branch2a" not in resnet
    assert resnet["res5c"] == ("Eltwise", (2048, 7, 7))


def test_caffe_pool_rounding():
    # pooling_layer.cpp: ceil((in + 2p - k) / s) + 1, minus one if the last window starts in the pad
    assert pool_output_size(112, 3, 2, 0) == 56  # floor would give 55
    assert pool_output_size(7, 3, 2, 1) == 4
    assert pool_output_size(6, 2, 2, 1) == 4  # 5 windows by ceil; the 5th starts at 8 >= 6 + 1
    assert pool_output_size(5, 1, 3, 0) == 3  # no pad, no clip (PyTorch's ceil_mode gives 2)
    assert _torch_pool_size(5, 1, 3, 0, True) == 2


def test_make_pool_gives_caffes_size_everywhere():
    mismatches = 0
    for n, k, s in itertools.product(range(1, 13), range(1, 5), range(1, 4)):
        for p, ceil in itertools.product(range(k), (True, False)):
            out = pool_output_size(n, k, s, p, ceil)
            if out < 1:
                continue
            pool = make_pool("MAX", (k, k), (s, s), (p, p, p, p), (n, n), (out, out), ceil)
            assert pool(torch.empty(1, 1, n, n, device="meta")).shape[-2:] == (out, out)
            # PyTorch's own pooling is used exactly where its rounding agrees with Caffe's.
            agrees = p <= k // 2 and _torch_pool_size(n, k, s, p, ceil) == out
            assert isinstance(pool, nn.MaxPool2d) == agrees
            mismatches += not agrees and p <= k // 2
    assert mismatches > 0  # stride > kernel without padding: Caffe keeps a window PyTorch drops


LAYERS = """
name: "every layer"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 13 dim: 11 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 6 kernel_h: 3 kernel_w: 1 pad_h: 1 stride: 2 dilation: 1 } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 6 kernel_size: 3 pad: 2 dilation: 2 group: 3
                            bias_term: false } }
layer { name: "sig" type: "Sigmoid" bottom: "c2" top: "c2" }
layer { name: "leaky" type: "ReLU" bottom: "c2" top: "c2" relu_param { negative_slope: 0.1 } }
layer { name: "tanh" type: "TanH" bottom: "c1" top: "t" }
layer { name: "split" type: "Split" bottom: "t" top: "t1" top: "t2" }
layer { name: "prod" type: "Eltwise" bottom: "t1" bottom: "c2" top: "prod"
        eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "t2" bottom: "prod" top: "max"
        eltwise_param { operation: MAX } }
layer { name: "diff" type: "Eltwise" bottom: "max" bottom: "max" top: "zero"
        eltwise_param { coeff: 1 coeff: -1 } }
layer { name: "bn" type: "BatchNorm" bottom: "max" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scaled" }
layer { name: "cat" type: "Concat" bottom: "scaled" bottom: "zero" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "global" type: "Pooling" bottom: "pool" top: "g"
        pooling_param { pool: MAX global_pooling: true } }
layer { name: "flat" type: "Flatten" bottom: "g" top: "flat" }
layer { name: "drop" type: "Dropout" bottom: "flat" top: "flat" include { phase: TRAIN } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
        inner_product_param { num_output: 4 } }
layer { name: "fc2" type: "InnerProduct" bottom: "pool" top: "fc2"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def test_every_supported_layer():
    net = caffe_import.from_text(LAYERS)
    kinds = {name: type(m).__name__ for name, m in net.named_children()}
    assert kinds == {"c1": "Conv2d", "c2": "Conv2d", "sig": "Sigmoid", "leaky": "LeakyReLU",
                     "tanh": "Tanh", "prod": "Eltwise", "max": "Eltwise", "diff": "Eltwise",
                     "bn": "BatchNorm2d", "scale": "Scale", "cat": "Concat", "pool": "AvgPool2d",
                     "layer_global": "AdaptiveMaxPool2d", "flat": "Flatten", "fc": "Linear",
                     "fc2": "Linear", "prob": "Softmax"}  # no TRAIN-only dropout, no loss;
    # a keyword would break fx's generated code, so "global" is renamed
    assert net.c1.kernel_size == (3, 1) and net.c1.padding == (1, 0) and net.c1.stride == (2, 2)
    assert net.c2.groups == 3 and net.c2.dilation == (2, 2) and net.c2.bias is None
    assert not net.leaky.inplace  # after a Sigmoid, which keeps its output for the backward pass
    assert net.bn.affine is False and net.scale.bias is None  # Scale without bias: not fused
    # the outputs: the loss stands for its scores, and the unread "prob"
    assert net.outputs == ("prob", "fc") and net.output_shapes == ((1, 5), (1, 4))
    assert net.fc2.in_features == 12 * 4 * 4  # cat of 6 + 6 channels, 7x6 pooled to 4x4
    net.train()
    prob, scores = net(torch.randn(2, 3, 13, 11))
    assert prob.shape == (2, 5) and scores.shape == (2, 4)
    (prob.sum() + scores.sum()).backward()  # in-place choices keep autograd valid
    assert torch.fx.symbolic_trace(net) is not None


def test_v1_layers_style():
    net = caffe_import.from_text("""
        input: "data" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28
        layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
                 blobs_lr: 1 convolution_param { num_output: 20 kernel_size: 5 } }
        layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
                 pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
        layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1"
                 inner_product_param { num_output: 10 } }
        layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip1" bottom: "label" }
    """)
    assert [type(m).__name__ for m in net.children()] == ["Conv2d", "MaxPool2d", "Linear"]
    assert net.ip1.in_features == 20 * 12 * 12 and net.outputs == ("ip1",)


def test_registry_builds_imported_nets_and_rebuilds_for_another_input():
    model = create_model(fixture("alexnet"))
    assert model.training is False and model(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)
    with torch.device("meta"):
        big = create_model(fixture("resnet50"), input_shape=(3, 256, 256))
    assert big.fc1000.in_features == 2048 * 2 * 2  # 256 -> 8x8 at res5, 7x7 pool -> 2x2
    assert big(torch.empty(1, 3, 256, 256, device="meta")).shape == (1, 1000)


def test_parser_reads_the_text_format():
    msg = parse("""
        # a comment
        name: 'a\\'b' "c\\n"     shape < dim: [1, 0x10, -3] >; x: 1.5e-2f y: -inf z: MAX,
        flag: true nested { deeper { v: 1 } v: 2 } nested { }
    """)
    assert msg.get("name") == "a'bc\n" and msg.get("shape").getall("dim") == [1, 16, -3]
    assert msg.get("x") == pytest.approx(0.015) and msg.get("y") == float("-inf")
    assert msg.get("z") == "MAX" and msg.get("flag") is True
    first, second = msg.getall("nested")
    assert first.get("deeper").get("v") == 1 and first.get("v") == 2 and not second.fields
    assert first.line == 4


@pytest.mark.parametrize("text, where, what", [
    ("layer { name: 'x'", "1:18", "end of file"),
    ("a: 1\nb: }", "2:4", "expected a value"),
    ("a {\n  b 3\n}", "2:5", "expected ':' or '{'"),
    ("a: 1 @", "1:6", "unexpected character"),
])
def test_parse_errors_name_line_and_column(text, where, what):
    with pytest.raises(PrototxtError) as err:
        parse(text, "net.prototxt")
    assert str(err.value).startswith(f"net.prototxt:{where}: ") and what in str(err.value)


@pytest.mark.parametrize("body, needle", [
    ('layer { name: "up" type: "Deconvolution" bottom: "data" top: "up" }',
     "<t>:7: layer 'up' (Deconvolution): layer type 'Deconvolution' is not supported"),
    ('layer { name: "c" type: "Convolution" bottom: "nope" top: "c"\n'
     '  convolution_param { num_output: 2 kernel_size: 3 } }', "bottom 'nope' is not produced"),
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
     '  convolution_param { num_output: 2 kernel_size: 9 } }', "does not fit the 8x8 input"),
    ('layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
     '  pooling_param { pool: STOCHASTIC kernel_size: 2 } }', "pool STOCHASTIC is not supported"),
])
def test_import_errors_name_the_layer(body, needle):
    text = "input: 'data'\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n\n" + body
    with pytest.raises(UserError, match="layer '") as err:
        caffe_import.from_text(text, "<t>")
    assert needle in str(err.value)


def test_input_must_be_declared():
    with pytest.raises(UserError, match="one input blob"):
        caffe_import.from_text('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')


def test_cli_stats_of_a_prototxt_and_its_errors(tmp_path, capsys):
    assert main(["stats", fixture("conv"), "--format", "json"]) == 0
    assert '"macs": 691200' in capsys.readouterr().out
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer {\n  name: "a" type "ReLU"\n}\n')
    assert main(["stats", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}:3:18:" in err
    unsupported = tmp_path / "lstm.prototxt"
    unsupported.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\n'
                           'input_dim: 8\nlayer { name: "l" type: "LSTM"\n'
                           '  bottom: "data" top: "l" }\n')
    assert main(["stats", str(unsupported)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layer 'l' (LSTM)" in err and ":6:" in err
    assert main(["stats", str(tmp_path / "missing.prototxt")]) == 2
    assert "no such Caffe prototxt file" in capsys.readouterr().err


def test_imported_net_is_rebuilt_for_another_input_size():
    # Caffe reshapes a net to its input: at 255 the last pool gives 7x7x256 -> fc6 12544x4096.
    from pathlib import Path

    from nnscale.netstats import network_stats

    import nnscale.zoo

    fixture = str(Path(nnscale.zoo.__file__).parent / "fixtures" / "alexnet.prototxt")
    at_227 = network_stats(fixture)
    at_255 = network_stats(fixture, (3, 255, 255))
    assert at_255.params_total - at_227.params_total == (7 * 7 - 6 * 6) * 256 * 4096


# Hostile prototxt: each is one line and exit code 2 from `nnscale stats FILE`. Before the checks
# an unreadable file ended in PermissionError, a non-numeric coeff in ValueError/TypeError and deep
# nesting in RecursionError.
ELTWISE = ("input: 'data'\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n"
           'layer { name: "d" type: "Eltwise" bottom: "data" bottom: "data" top: "d"\n'
           "  eltwise_param { %s } }\n")


def stats_error(capsys, path) -> str:
    assert main(["stats", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("coeff, shown", [
    ('coeff: "one" coeff: 1', "'one'"), ("coeff: one coeff: 1", "'one'"),
    ("coeff { x: 1 } coeff: 1", "a message"), ("coeff: inf coeff: 1", "inf"),
    ("coeff: nan coeff: 1", "nan"),
])
def test_non_numeric_coeff(tmp_path, capsys, coeff, shown):
    path = tmp_path / "coeff.prototxt"
    path.write_text(ELTWISE % coeff)
    err = stats_error(capsys, path)
    assert f"layer 'd' (Eltwise): coeff must be a finite number, not {shown}" in err, err


def test_deep_nesting_stops_at_a_limit(tmp_path, capsys):
    from nnscale.zoo.prototxt import MAX_DEPTH

    path = tmp_path / "deep.prototxt"
    path.write_text("a { " * 50_000 + "}" * 50_000)
    err = stats_error(capsys, path)
    assert f"{path}:1:" in err and f"nested deeper than {MAX_DEPTH} levels" in err
    parse("a { " * MAX_DEPTH + "b: 1" + " }" * MAX_DEPTH)  # at the limit: parses


def test_unreadable_files(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        # Root reads any file whatever its mode; a write-only sysfs attribute refuses even root
        # (kernfs: no read method -> EACCES), so this is a real PermissionError. The link gives
        # it the extension that makes `stats` read it as a prototxt.
        assert os.path.isfile("/sys/bus/pci/rescan"), "this test needs Linux sysfs"
        unreadable = tmp_path / "rescan.prototxt"
        unreadable.symlink_to("/sys/bus/pci/rescan")
    else:
        unreadable = tmp_path / "locked.prototxt"
        unreadable.write_text(Path(fixture("conv")).read_text())
        unreadable.chmod(0)
    err = stats_error(capsys, unreadable)
    assert f"cannot read Caffe prototxt {unreadable}: Permission denied" in err, err
    fifo = tmp_path / "pipe.prototxt"
    os.mkfifo(fifo)
    assert "is not a regular file" in stats_error(capsys, fifo)  # and does not block reading it
    folder = tmp_path / "dir.prototxt"
    folder.mkdir()
    assert "is not a regular file" in stats_error(capsys, folder)
    binary = tmp_path / "binary.prototxt"  # not UTF-8: the replaced byte is named with its place
    binary.write_bytes(b'name: "x"\n\xff\xfe layer {}\n')
    assert f"{binary}:2:1: unexpected character" in stats_error(capsys, binary)
