"""Caffe network definitions (`deploy.prototxt`) as PyTorch modules: `nnscale stats net.prototxt`.

Caffe cannot be installed any more, but its network definitions are plain protobuf text, and the
layers nnscale counts map one to one onto PyTorch's. The importer reads the text (`prototxt.py`),
infers every blob's shape the way Caffe's `Reshape` methods do, and builds an `ImportedNet`: one
submodule per Caffe layer, named after it (`conv1/7x7_s2` -> `conv1_7x7_s2`), run in file order
over a dict of blobs. fx traces the loop over the fixed plan, so `conv_depth` works. Weights are
random (speed does not depend on them); `*_filler`s are ignored.

Inputs: the old `input: "data"` with four `input_dim`s or an `input_shape { dim }`, or the newer
`Input` layer. Layers (caffe/src/caffe/layers/*.cpp, parameters from caffe/src/caffe/proto/
caffe.proto): Convolution, Pooling, InnerProduct, ReLU, Sigmoid, TanH, LRN, Dropout, Concat,
Eltwise, BatchNorm, Scale, Softmax, Flatten, Split; loss layers (SoftmaxWithLoss) are left to the
training step, so the net returns the scores, as the zoo's seed nets do. Layers included only in
the TRAIN phase are skipped (the seed builds `caffe.Net(..., caffe.TEST)`). The V1 `layers {
type: CONVOLUTION }` style is read too. A `BatchNorm` directly followed by a `Scale` with a bias
(the ResNet idiom: Caffe's BatchNorm has no affine part) becomes one `nn.BatchNorm2d(affine=True)`.

Pooling sizes follow Caffe, not cuDNN or PyTorch's default: caffe/src/caffe/layers/
pooling_layer.cpp `Reshape` rounds up, `ceil((in + 2p - k) / s) + 1`, then, when there is
padding, drops the last window if it would start in the padding (`(out - 1) * s >= in + p`).
PyTorch's `ceil_mode=True` (aten/src/ATen/native/Pool.h, `pooling_output_shape_pad_lr`) uses the
same formula but applies the clip with or without padding, and allows pad <= k/2 only (Caffe:
pad < k). Where the two agree the importer uses `nn.MaxPool2d/AvgPool2d(ceil_mode=True)`; elsewhere
a `PaddedPool` pads explicitly so that floor rounding gives Caffe's size (`pool_output_size` is
the rule; the tests compare it with PyTorch's over a grid of sizes).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nnscale.errors import UserError
from nnscale.zoo.import_layers import (Concat, Eltwise, ImportedNet, Scale, make_pool,
                                       pool_output_size, sanitise)
from nnscale.zoo.prototxt import Message, parse, parse_file
from nnscale.zoo.registry import ModelInfo

SUPPORTED = ("Input", "Convolution", "Pooling", "InnerProduct", "ReLU", "Sigmoid", "TanH", "LRN",
             "Dropout", "Concat", "Eltwise", "BatchNorm", "Scale", "Softmax", "SoftmaxWithLoss",
             "Flatten", "Split")
_V1_TYPES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct",
             "RELU": "ReLU", "SIGMOID": "Sigmoid", "TANH": "TanH", "LRN": "LRN",
             "DROPOUT": "Dropout", "CONCAT": "Concat", "ELTWISE": "Eltwise", "SOFTMAX": "Softmax",
             "SOFTMAX_LOSS": "SoftmaxWithLoss", "FLATTEN": "Flatten", "SPLIT": "Split"}
# caffe.proto's enums, for files that give them as numbers.
_POOL = {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
_ELTWISE = {0: "PROD", 1: "SUM", 2: "MAX"}
# Producers whose output autograd does not save: a ReLU on their output may work in place.
_INPLACE_SAFE = ("Convolution", "InnerProduct", "BatchNorm", "Scale", "Eltwise", "Concat",
                 "Pooling", "LRN")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class _Layer:
    msg: Message
    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    source: str

    def param(self, field: str) -> Message:
        value = self.msg.get(field)
        return value if isinstance(value, Message) else Message()

    def fail(self, what: str) -> UserError:
        where = f"{self.source}:{self.msg.line}"
        return UserError(f"{where}: layer {self.name!r} ({self.type}): {what}")

    def int(self, p: Message, field: str, default: int | None = None, least: int = 0) -> int:
        value = p.get(field, default)
        if value is None:
            raise self.fail(f"{field} is required")
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise self.fail(f"{field} must be an integer >= {least}, not {value!r}")
        return value

    def float(self, p: Message, field: str, default: float) -> float:
        value = p.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            shown = "a message" if isinstance(value, Message) else repr(value)
            raise self.fail(f"{field} must be a finite number, not {shown}")
        return float(value)

    def flag(self, p: Message, field: str, default: bool) -> bool:
        value = p.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(f"{field} must be true or false, not {value!r}")
        return value

    def hw(self, p: Message, field: str, split: str, default: int | None, least: int = 0
           ) -> tuple[int, int]:
        """kernel/stride/pad: `split_h` + `split_w`, or `field` once (both) or twice (h, w)."""
        if f"{split}_h" in p or f"{split}_w" in p:  # base_conv_layer.cpp: pad_h/_w default 0
            part = 0 if split == "pad" else None
            return (self.int(p, f"{split}_h", part, least=least),
                    self.int(p, f"{split}_w", part, least=least))
        values = p.getall(field) or ([] if default is None else [default])
        if len(values) > 2:
            raise self.fail(f"{field} has {len(values)} values: only 2-D layers can be imported")
        one = [self.int(Message({field: [v]}), field, least=least) for v in values]
        if not one:
            raise self.fail(f"{field} (or {split}_h and {split}_w) is required")
        return one[0], one[-1]

    def spatial(self, shape: Shape) -> Shape:
        if len(shape) != 4:
            raise self.fail(f"needs a 4-D (N, C, H, W) input, {self.bottoms[0]!r} is {list(shape)}")
        return shape


def _convolution(lay: _Layer, s: Shape) -> tuple[nn.Module, Shape]:
    # conv_layer.cpp compute_output_shape; base_conv_layer.cpp LayerSetUp for the parameters.
    p = lay.param("convolution_param")
    n, c, h, w = lay.spatial(s)
    cout = lay.int(p, "num_output", least=1)
    kernel = lay.hw(p, "kernel_size", "kernel", None, least=1)
    stride = lay.hw(p, "stride", "stride", 1, least=1)
    pad = lay.hw(p, "pad", "pad", 0)
    dilation = lay.hw(p, "dilation", "dilation", 1, least=1)
    groups = lay.int(p, "group", 1, least=1)
    if c % groups or cout % groups:
        raise lay.fail(f"group {groups} does not divide {c} input and {cout} output channels")
    out = [(n_ + 2 * p_ - (d * (k - 1) + 1)) // s_ + 1
           for n_, k, s_, p_, d in zip((h, w), kernel, stride, pad, dilation)]
    if min(out) < 1:
        raise lay.fail(f"kernel {kernel[0]}x{kernel[1]} does not fit the {h}x{w} input")
    conv = nn.Conv2d(c, cout, kernel, stride, pad, dilation, groups,
                     bias=lay.flag(p, "bias_term", True))
    return conv, (n, cout, *out)


def _pooling(lay: _Layer, s: Shape) -> tuple[nn.Module, Shape]:
    p = lay.param("pooling_param")
    n, c, h, w = lay.spatial(s)
    method = _POOL.get(p.get("pool"), p.get("pool", "MAX"))
    if method not in ("MAX", "AVE"):
        raise lay.fail(f"pool {method} is not supported (MAX and AVE are)")
    if lay.flag(p, "global_pooling", False):
        pool = nn.AdaptiveMaxPool2d(1) if method == "MAX" else nn.AdaptiveAvgPool2d(1)
        return pool, (n, c, 1, 1)
    kernel = lay.hw(p, "kernel_size", "kernel", None, least=1)
    stride = lay.hw(p, "stride", "stride", 1, least=1)
    pad = lay.hw(p, "pad", "pad", 0)
    if any(p_ >= k for p_, k in zip(pad, kernel)):
        raise lay.fail(f"pad {pad} must be smaller than the kernel {kernel} (as Caffe checks)")
    ceil = p.get("round_mode", "CEIL") in ("CEIL", 0)
    out = tuple(pool_output_size(*a, ceil) for a in zip((h, w), kernel, stride, pad))
    if min(out) < 1:
        raise lay.fail(f"kernel {kernel[0]}x{kernel[1]} does not fit the {h}x{w} input")
    pool = make_pool(method, kernel, stride, (pad[0], pad[0], pad[1], pad[1]), (h, w), out, ceil)
    return pool, (n, c, *out)


def _inner_product(lay: _Layer, s: Shape) -> tuple[nn.Module, Shape]:
    p = lay.param("inner_product_param")
    if p.get("axis", 1) != 1:
        raise lay.fail("only axis 1 is supported (flatten everything but the batch)")
    cout = lay.int(p, "num_output", least=1)
    return nn.Linear(math.prod(s[1:]), cout, bias=lay.flag(p, "bias_term", True)), (s[0], cout)


def _axis(lay: _Layer, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise lay.fail(f"axis {axis} is out of range for a {rank}-D blob")
    return axis % rank


def _concat(lay: _Layer, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    p = lay.param("concat_param")
    axis = _axis(lay, p.get("axis", p.get("concat_dim", 1)), len(shapes[0]))
    rest = {s[:axis] + s[axis + 1:] for s in shapes}
    if len(rest) > 1 or len({len(s) for s in shapes}) > 1:
        raise lay.fail(f"inputs {[list(s) for s in shapes]} differ outside axis {axis}")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return Concat(axis), tuple(out)


def _eltwise(lay: _Layer, shapes: list[Shape]) -> tuple[nn.Module, Shape]:
    p = lay.param("eltwise_param")
    op = _ELTWISE.get(p.get("operation"), p.get("operation", "SUM"))
    coeffs = tuple(lay.float(Message({"coeff": [c]}), "coeff", 1.0) for c in p.getall("coeff"))
    if op not in ("SUM", "PROD", "MAX") or (coeffs and (op != "SUM" or len(coeffs) != len(shapes))):
        raise lay.fail(f"operation {op} with {len(coeffs)} coefficients is not valid")
    if len(set(shapes)) > 1 or len(shapes) < 2:
        raise lay.fail(f"needs two or more inputs of one shape, got {[list(s) for s in shapes]}")
    return Eltwise(op, coeffs), shapes[0]


def _batch_norm(lay: _Layer, s: Shape, affine: bool) -> nn.Module:
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(len(s))
    if cls is None:
        raise lay.fail(f"cannot normalise a {len(s)}-D blob")
    p = lay.param("batch_norm_param")
    # batch_norm_layer.cpp keeps running averages decayed by moving_average_fraction per step.
    momentum = 1.0 - lay.float(p, "moving_average_fraction", 0.999)
    return cls(s[1], eps=lay.float(p, "eps", 1e-5), momentum=momentum, affine=affine)


def _simple(lay: _Layer, s: Shape, inplace: bool) -> tuple[nn.Module, Shape]:
    """Layers whose output has the input's shape, and Flatten."""
    kind = lay.type
    if kind == "ReLU":
        slope = lay.float(lay.param("relu_param"), "negative_slope", 0.0)
        return (nn.LeakyReLU(slope, inplace) if slope else nn.ReLU(inplace)), s
    if kind == "LRN":
        p = lay.param("lrn_param")
        if p.get("norm_region", "ACROSS_CHANNELS") not in ("ACROSS_CHANNELS", 0):
            raise lay.fail("norm_region WITHIN_CHANNEL is not supported (ACROSS_CHANNELS is)")
        # lrn_layer.cpp: scale = k + alpha / n * sum(x^2), as torch.nn.LocalResponseNorm.
        size = lay.int(p, "local_size", 5, least=1)
        return nn.LocalResponseNorm(size, lay.float(p, "alpha", 1.0), lay.float(p, "beta", 0.75),
                                    lay.float(p, "k", 1.0)), s
    if kind == "Dropout":
        return nn.Dropout(lay.float(lay.param("dropout_param"), "dropout_ratio", 0.5)), s
    if kind == "Softmax":
        return nn.Softmax(_axis(lay, lay.param("softmax_param").get("axis", 1), len(s))), s
    if kind == "Scale":
        p = lay.param("scale_param")
        if p.get("axis", 1) != 1 or p.get("num_axes", 1) != 1 or len(lay.bottoms) != 1:
            raise lay.fail("only a per-channel Scale (axis 1, num_axes 1, one bottom) is supported")
        return Scale(s[1], lay.flag(p, "bias_term", False)), s
    if kind == "BatchNorm":
        return _batch_norm(lay, s, affine=False), s
    if kind == "Flatten":
        p = lay.param("flatten_param")
        start, end = _axis(lay, p.get("axis", 1), len(s)), _axis(lay, p.get("end_axis", -1), len(s))
        return nn.Flatten(start, end), s[:start] + (math.prod(s[start:end + 1]),) + s[end + 1:]
    return (nn.Sigmoid() if kind == "Sigmoid" else nn.Tanh()), s


def _build(layers: list[_Layer], blob: str, shape: Shape) -> ImportedNet:
    shapes: dict[str, Shape] = {blob: shape}
    alias: dict[str, str] = {}  # Split tops and loss layers stand for a blob
    producer: dict[str, str] = {blob: "Input"}
    read: set[str] = set()  # blobs read since they were last written
    available: dict[str, None] = {blob: None}  # net.cpp: written and never read again = outputs
    used: set[str] = set()
    built = []
    skip = False
    for i, lay in enumerate(layers):
        if skip or lay.type == "Input":
            skip = False
            continue
        if lay.type not in SUPPORTED:
            raise lay.fail(f"layer type {lay.type!r} is not supported; nnscale imports "
                           f"{', '.join(t for t in SUPPORTED if t != 'Input')}")
        bottoms = tuple(alias.get(b, b) for b in lay.bottoms)
        needed = bottoms[:1] if lay.type == "SoftmaxWithLoss" else bottoms
        missing = [b for b in needed if b not in shapes]
        if not lay.bottoms or missing:
            first = (missing or ["(none)"])[0]
            raise lay.fail(f"bottom {first!r} is not produced by an earlier layer")
        for b in lay.bottoms:
            available.pop(b, None)
        if lay.type in ("Split", "SoftmaxWithLoss"):  # no computation here: the tops are names
            for top in lay.tops or bottoms[:1]:  # a loss without a top stands for its scores
                alias[top] = bottoms[0]
                available[top] = None
            continue
        if len(lay.tops) != 1:
            raise lay.fail(f"needs exactly one top, has {len(lay.tops)}")
        top, ins = lay.tops[0], [shapes[b] for b in needed]
        if lay.type not in ("Concat", "Eltwise") and len(ins) != 1:
            raise lay.fail(f"needs exactly one bottom, has {len(ins)}")
        flatten = False
        if lay.type == "Convolution":
            module, out = _convolution(lay, ins[0])
        elif lay.type == "Pooling":
            module, out = _pooling(lay, ins[0])
        elif lay.type == "InnerProduct":
            module, out = _inner_product(lay, ins[0])
            flatten = len(ins[0]) > 2
        elif lay.type == "Concat":
            module, out = _concat(lay, ins)
        elif lay.type == "Eltwise":
            module, out = _eltwise(lay, ins)
        elif lay.type == "BatchNorm" and _fuses_with_next(lay, layers[i + 1:i + 2]):
            module, out = _batch_norm(lay, ins[0], affine=True), ins[0]
            top, skip = layers[i + 1].tops[0], True
        else:
            inplace = (lay.type == "ReLU" and bottoms[0] == top and top not in read
                       and producer.get(top) in _INPLACE_SAFE)
            module, out = _simple(lay, ins[0], inplace)
        built.append((sanitise(lay.name, used), module, needed, top, flatten))
        read.update(needed)
        read.discard(top)
        alias.pop(top, None)
        shapes[top], producer[top], available[top] = out, lay.type, None
    outputs = tuple(dict.fromkeys(alias.get(b, b) for b in available))
    return ImportedNet(blob, built, outputs, shape, tuple(shapes[o] for o in outputs))


def _fuses_with_next(bn: _Layer, following: list[_Layer]) -> bool:
    """BatchNorm then a Scale with a bias on its top: one nn.BatchNorm2d(affine=True)."""
    if not following or following[0].type != "Scale" or len(bn.tops) != 1:
        return False
    scale = following[0]
    p = scale.param("scale_param")
    return (scale.bottoms == bn.tops and len(scale.tops) == 1 and p.get("bias_term") is True
            and p.get("axis", 1) == 1 and p.get("num_axes", 1) == 1)


def _declared_input(net: Message, layers: list[_Layer], source: str) -> tuple[str, Shape]:
    inputs = [(lay.tops[0], tuple(lay.param("input_param").get("shape", Message()).getall("dim")))
              for lay in layers if lay.type == "Input" and lay.tops]
    shapes, dims = net.getall("input_shape"), net.getall("input_dim")
    for i, blob in enumerate(net.getall("input")):
        found = shapes[i].getall("dim") if i < len(shapes) else dims[4 * i:4 * i + 4]
        inputs.append((blob, tuple(found)))
    if len(inputs) != 1:
        raise UserError(f"{source}: nnscale imports nets with one input blob, this one declares "
                        f"{len(inputs)} (an `input:` with `input_dim`s, or an Input layer)")
    blob, found = inputs[0]
    if len(found) < 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                 for d in found):
        raise UserError(f"{source}: input {blob!r} needs its shape (N, C, H, W), e.g. four "
                        f"input_dim lines 1 3 224 224; found {list(found)}")
    return blob, (1, *found[1:])


def _in_test_phase(msg: Message) -> bool:
    """net.cpp FilterNet for the TEST phase: a layer's `include`/`exclude` rules on `phase`."""
    if any(isinstance(r, Message) and r.get("phase") in ("TEST", 1) for r in msg.getall("exclude")):
        return False
    includes = [r for r in msg.getall("include") if isinstance(r, Message)]
    return not includes or any(r.get("phase", "TEST") in ("TEST", 1) for r in includes)


def convert(net: Message, source: str, input_shape: Shape | None = None) -> ImportedNet:
    """The PyTorch module of a parsed net definition (built on the current default device).

    `input_shape` (C, H, W) replaces the shape the definition declares for its input.
    """
    if "layer" in net and "layers" in net:  # upgrade_proto.cpp refuses the mixture too
        raise UserError(f"{source}: both `layer` and V1 `layers` entries; use one style")
    layers = []
    for msg in net.getall("layer") or net.getall("layers"):
        if isinstance(msg, Message) and _in_test_phase(msg):
            kind = str(msg.get("type", ""))
            layers.append(_Layer(msg, str(msg.get("name", f"line{msg.line}")),
                                 _V1_TYPES.get(kind, kind), tuple(map(str, msg.getall("bottom"))),
                                 tuple(map(str, msg.getall("top"))), source))
    blob, shape = _declared_input(net, layers, source)
    return _build(layers, blob, (1, *input_shape) if input_shape else shape)


@functools.lru_cache(maxsize=16)
def _parse_file(path: str, _mtime_ns: int) -> Message:
    return parse_file(path, "Caffe prototxt")


def _read(path: str) -> Message:
    if not os.path.exists(path):
        raise UserError(f"no such Caffe prototxt file: {path!r}")
    return _parse_file(path, os.stat(path).st_mtime_ns)


def info(path: str) -> ModelInfo:
    """ModelInfo of a prototxt: the input shape it declares, its output's channels as classes."""
    net = _read(path)
    with torch.device("meta"):
        model = convert(net, path)
    out = model.output_shapes[0]
    return ModelInfo(
        name=path, family="imported", input_shape=model.input_shape[1:],
        num_classes=out[1] if len(out) > 1 else 1, source=f"Caffe prototxt {path}", paper="",
        description=f"Caffe net {net.get('name', '')!r}: {len(model.plan)} layers",
    )


def builder(path: str) -> Callable[..., nn.Module]:
    """The constructor `create_model` calls; `input_shape=(C, H, W)` rebuilds for another input."""
    def build(input_shape: Shape | None = None) -> nn.Module:
        return convert(_read(path), path, tuple(input_shape) if input_shape else None)

    return build


def from_text(text: str, source: str = "<prototxt>") -> ImportedNet:
    """Import a net definition given as text (random weights)."""
    return convert(parse(text, source), source)
