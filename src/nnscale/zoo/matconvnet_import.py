"""MatConvNet simplenn networks (`net.mat`) as PyTorch modules: `nnscale stats net.mat`.

MatConvNet (Vedaldi and Lenc, "MatConvNet: convolutional neural networks for MATLAB", ACM MM
2015) needs MATLAB, but a saved network is a MAT-file that scipy reads. A simplenn net (run by
matlab/simplenn/vl_simplenn.m) is a struct whose `layers` field is a cell array of structs, one
per layer, run in order; the seed's LeNet is one. The file may hold the struct as a variable `net`
(`save f.mat net`) or its fields as variables (`save f.mat -struct net`, how the published models
are stored). DagNN nets (`vars`, `params`, layers with a `block`) are not simplenn: an error.

Layer types and their fields (vl_simplenn.m; shapes from the doc comments of vl_nnconv.m and
vl_nnpool.m): `conv` (filters H x W x C/groups x K in `filters`, or `weights{1}` in later
versions, biases in `biases`/`weights{2}`; `stride` [sy sx], `pad` [top bottom left right],
`dilate`; groups = input depth / filter depth), `pool` (`pool` [h w], `stride`, `pad`, `method`
'max' or 'avg'), `relu` (`leak`), `lrn` or the older `normalize` (`param` [N kappa alpha beta],
y = x / (kappa + alpha * sum x^2)^beta: PyTorch's alpha is divided by N, so it gets alpha * N),
`bnorm`, `dropout` (`rate`), `softmax`, and `softmaxloss` — the loss, left to the training step
as in the zoo's matconvnet-lenet, so the net returns the scores. Weights are not needed for speed:
only the filters' shapes are read, and the module gets random weights. Sizes round down
(vl_nnconv, vl_nnpool): out = floor((in + pad_before + pad_after - k) / stride) + 1.

The input size: `meta.inputSize` ([H W C], set by the examples' cnn_*_init.m), or
`meta.normalization.imageSize` (the published models), or `normalization.imageSize` (older files),
when the file has one; otherwise the channels are the first convolution's filter
depth and H x W the smallest input for which the net's last spatial layer gives 1 x 1 — the
classifier's size for nets that end in convolutions acting as fully connected layers, as LeNet:
28 x 28 x 1. `--input-size` counts at another size.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from nnscale.errors import UserError
from nnscale.zoo.import_layers import ImportedNet, PaddedConv2d, make_pool, sanitise
from nnscale.zoo.registry import ModelInfo

SUPPORTED = ("conv", "pool", "relu", "lrn", "normalize", "bnorm", "dropout", "softmax",
             "softmaxloss")
_LOSSES = ("softmaxloss",)
_MAX_INT = 1 << 20  # sizes, strides and pads beyond a million pixels are no image network's
Spec = dict[str, Any]


def _one(x: Any) -> Any:
    """scipy wraps every MATLAB value in a 2-D array; unwrap 1x1 cells and structs."""
    while isinstance(x, np.ndarray) and x.dtype == object and x.size == 1:
        x = x.flat[0]
    return x


def _str(x: Any) -> str:
    x = _one(x)
    if isinstance(x, np.ndarray):
        return "".join(str(v) for v in x.flat) if x.dtype.kind == "U" else ""
    return x if isinstance(x, str) else ""


def _numbers(x: Any, what: str, where: str) -> np.ndarray:
    """A MATLAB numeric value as a flat float array; UserError for text, structs or cells."""
    x = _one(x)
    arr = np.asarray(x if x is not None else [])
    if arr.dtype.kind not in "biuf":  # a char array ('2'), a cell or a struct: not a number
        raise UserError(f"{where}: `{what}` must be numeric, not {_shown(x)}")
    return arr.astype(float).ravel()


def _shown(x: Any) -> str:
    text = repr(_str(x)) if _str(x) else repr(np.asarray(x).tolist())
    return text if len(text) <= 40 else text[:37] + "..."


def _ints(x: Any, n: int, what: str, where: str, minimum: int = 0) -> tuple[int, ...]:
    """A MATLAB scalar or vector as `n` integers >= `minimum` (a scalar applies to all of them).

    Strides, pool sizes and dilations must be >= 1 (a stride of 0 divides by zero in the output
    size); pads >= 0. Inf and NaN are refused before int() would overflow."""
    values = _numbers(x, what, where)
    if values.size == 1:
        values = np.repeat(values, n)
    if n == 4 and values.size == 2:  # pad [py px] -> [top bottom left right]
        values = np.repeat(values, 2)
    if (values.size != n or not np.all(np.isfinite(values)) or not np.all(values == np.round(values))
            or np.any(values < minimum) or np.any(values > _MAX_INT)):
        kind = "non-negative" if minimum == 0 else f">= {minimum}"
        raise UserError(f"{where}: `{what}` must be 1 or {n} {kind} integers (at most {_MAX_INT}), "
                        f"not {values.tolist()}")
    return tuple(int(v) for v in values)


def _float(x: Any, default: float, what: str, where: str, low: float, high: float) -> float:
    values = _numbers(default if x is None else x, what, where)
    value = float(values[0]) if values.size else default
    if not (math.isfinite(value) and low <= value <= high):
        raise UserError(f"{where}: `{what}` must be a number from {low:g} to {high:g}, not {value}")
    return value


def _fields(s: Any) -> dict[str, Any]:
    s = _one(s)
    names = getattr(s, "_fieldnames", None)
    if names is None:
        return {}
    return {name: getattr(s, name) for name in names}


def _layer_spec(i: int, raw: Any, path: str) -> Spec:
    f = _fields(raw)
    kind = _str(f.get("type"))
    where = f"{path}: layer {i + 1}"
    name = _str(f.get("name"))
    if name:
        where += f" ({name!r})"
    if not f or not kind:
        raise UserError(f"{where} is not a simplenn layer (a struct with a `type`)")
    if "block" in f:
        raise UserError(f"{path}: a DagNN network; nnscale imports simplenn networks only")
    if kind not in SUPPORTED:
        raise UserError(f"{where}: layer type {kind!r} is not supported; nnscale imports "
                        f"{', '.join(SUPPORTED)}")
    spec: Spec = {"type": kind, "name": name, "where": where}
    if kind == "conv":
        weights = _one(f["weights"]) if "weights" in f else None
        cell = weights if isinstance(weights, np.ndarray) and weights.dtype == object else None
        filters = np.asarray(_one(cell.flat[0]) if cell is not None else f.get("filters", []))
        biases = np.asarray(_one(cell.flat[1]) if cell is not None and cell.size > 1
                            else f.get("biases", []))
        if filters.ndim < 2 or filters.ndim > 4 or filters.size == 0:
            raise UserError(f"{where}: conv `filters` must be an H x W x C x K array, "
                            f"found shape {list(filters.shape)}")
        # MATLAB drops trailing singleton dimensions: 3x3x1x1 filters are saved as 3x3.
        spec["filters"] = tuple(filters.shape) + (1,) * (4 - filters.ndim)
        spec["bias"] = biases.size > 0
        spec["dilate"] = _ints(f.get("dilate", 1), 2, "dilate", where, minimum=1)
    if kind in ("conv", "pool"):
        spec["stride"] = _ints(f.get("stride", 1), 2, "stride", where, minimum=1)
        spec["pad"] = _ints(f.get("pad", 0), 4, "pad", where)
    if kind == "pool":
        spec["pool"] = _ints(f.get("pool"), 2, "pool", where, minimum=1)
        spec["method"] = _str(f.get("method")) or "max"
        if spec["method"] not in ("max", "avg"):
            raise UserError(f"{where}: pool method {spec['method']!r} is not 'max' or 'avg'")
    if kind in ("lrn", "normalize"):
        param = _numbers(f.get("param", [5, 1, 1e-4, 0.75]), "param", where)
        if param.size != 4 or not np.all(np.isfinite(param)) or not 1 <= param[0] <= _MAX_INT:
            raise UserError(f"{where}: `param` must be [N kappa alpha beta], finite, N >= 1; "
                            f"not {param.tolist()}")
        spec["param"] = tuple(float(v) for v in param)
    if kind == "relu":
        spec["leak"] = _float(f.get("leak"), 0.0, "leak", where, -1e6, 1e6)
    if kind == "dropout":
        spec["rate"] = _float(f.get("rate"), 0.5, "rate", where, 0.0, 1.0)
    return spec


@functools.lru_cache(maxsize=16)
def _read_file(path: str, _mtime_ns: int) -> tuple[tuple[Spec, ...], tuple[int, ...] | None]:
    import scipy.io

    try:
        data = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False,
                                variable_names=["net", "layers", "meta", "normalization",
                                                "vars", "params"])
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a file it cannot read
        raise UserError(f"{path}: not a MATLAB .mat file scipy can read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    net = _fields(data["net"]) if "net" in data else data
    if "vars" in net and "params" in net:
        raise UserError(f"{path}: a DagNN network; nnscale imports simplenn networks only")
    if "layers" not in net:
        raise UserError(f"{path}: not a MatConvNet simplenn network: no `layers` (a variable, or "
                        "a field of a struct `net`)")
    layers = net["layers"]
    if not isinstance(layers, np.ndarray) or layers.size == 0:
        raise UserError(f"{path}: `layers` must be a non-empty cell array of layer structs")
    specs = tuple(_layer_spec(i, raw, path) for i, raw in enumerate(layers.ravel(order="F")))
    meta = _fields(net.get("meta"))
    declared = None
    for size in (meta.get("inputSize"), _fields(meta.get("normalization")).get("imageSize"),
                 _fields(net.get("normalization")).get("imageSize")):
        hwc = _numbers(size, "inputSize", f"{path}: meta")
        if hwc.size >= 2 and not (np.all(np.isfinite(hwc[:3])) and np.all(hwc[:3] >= 1)
                                  and np.all(hwc[:3] <= _MAX_INT)):
            raise UserError(f"{path}: the input size [H W C] must be positive integers up to "
                            f"{_MAX_INT}, not {hwc.tolist()}")
        if declared is None and hwc.size >= 2:
            declared = (int(hwc[2]) if hwc.size > 2 else 1, int(hwc[0]), int(hwc[1]))
    return specs, declared


def _read(path: str) -> tuple[tuple[Spec, ...], tuple[int, ...] | None]:
    if not os.path.isfile(path):
        raise UserError(f"no such MatConvNet .mat file: {path!r}")
    return _read_file(path, os.stat(path).st_mtime_ns)


def _kernel(spec: Spec) -> tuple[int, int]:
    if spec["type"] == "conv":
        (kh, kw), (dh, dw) = spec["filters"][:2], spec["dilate"]
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1
    return spec["pool"]


def infer_input_shape(specs: tuple[Spec, ...], path: str) -> tuple[int, int, int]:
    """First conv's filter depth x the smallest H x W the last spatial layer takes to 1 x 1."""
    convs = [s for s in specs if s["type"] == "conv"]
    if not convs:
        raise UserError(f"{path}: no conv layer to infer the input from; give the net a "
                        "meta.inputSize = [H W C]")
    size = [1, 1]
    for spec in reversed([s for s in specs if s["type"] in ("conv", "pool")]):
        t, b, left, r = spec["pad"]
        for d, (k, stride, before_after) in enumerate(zip(_kernel(spec), spec["stride"],
                                                          ((t, b), (left, r)))):
            size[d] = max((size[d] - 1) * stride + k - sum(before_after), 1)
    return convs[0]["filters"][2], size[0], size[1]


def _module(spec: Spec, shape: tuple[int, int, int]) -> tuple[nn.Module, tuple[int, int, int]]:
    c, h, w = shape
    kind, where = spec["type"], spec["where"]
    if kind not in ("conv", "pool"):
        if kind == "relu":
            return (nn.LeakyReLU(spec["leak"]) if spec["leak"] else nn.ReLU()), shape
        if kind in ("lrn", "normalize"):
            n, kappa, alpha, beta = spec["param"]
            return nn.LocalResponseNorm(int(n), alpha * n, beta, kappa), shape
        if kind == "bnorm":
            return nn.BatchNorm2d(c), shape
        if kind == "dropout":
            return nn.Dropout(spec["rate"]), shape
        return nn.Softmax(1), shape
    t, b, left, r = spec["pad"]
    (kh, kw), (sh, sw) = _kernel(spec), spec["stride"]
    out = ((h + t + b - kh) // sh + 1, (w + left + r - kw) // sw + 1)
    if min(out) < 1:
        raise UserError(f"{where}: the {kh}x{kw} {kind} does not fit its {h}x{w} input")
    if kind == "pool":
        method = "MAX" if spec["method"] == "max" else "AVE"
        return make_pool(method, (kh, kw), (sh, sw), spec["pad"], (h, w), out, False), (c, *out)
    fh, fw, depth, cout = spec["filters"]
    if c % depth or cout % (c // depth):
        raise UserError(f"{where}: filters of depth {depth} do not fit a {c}-channel input")
    args = dict(kernel_size=(fh, fw), stride=(sh, sw), dilation=spec["dilate"],
                groups=c // depth, bias=spec["bias"])
    if t == b and left == r:
        return nn.Conv2d(c, cout, padding=(t, left), **args), (cout, *out)
    return PaddedConv2d(c, cout, pad=(left, r, t, b), **args), (cout, *out)


def convert(specs: tuple[Spec, ...], input_shape: tuple[int, ...]) -> ImportedNet:
    """The PyTorch module of a simplenn layer list for one (C, H, W) input."""
    shape = tuple(input_shape)
    used: set[str] = set()
    layers, blob, counts = [], "input", {"conv": 0}
    for spec in specs:
        if spec["type"] in _LOSSES:
            continue
        module, shape = _module(spec, shape)
        # Unnamed layers are numbered like the zoo's LeNet: conv1, pool1, conv2, ... relu3, conv4.
        counts["conv"] += spec["type"] == "conv"
        name = sanitise(spec["name"] or f"{spec['type']}{max(counts['conv'], 1)}", used)
        layers.append((name, module, (blob,), name, False))
        blob = name
    return ImportedNet("input", layers, (blob,), (1, *input_shape), ((1, *shape),))


def _input_shape(path: str) -> tuple[int, ...]:
    specs, declared = _read(path)
    return declared or infer_input_shape(specs, path)


def info(path: str) -> ModelInfo:
    """ModelInfo of a simplenn .mat: the declared or inferred input, the output's channels."""
    specs, _ = _read(path)
    shape = _input_shape(path)
    with torch.device("meta"):
        model = convert(specs, shape)
    return ModelInfo(
        name=path, family="imported", input_shape=shape, num_classes=model.output_shapes[0][1],
        source=f"MatConvNet simplenn {path}", paper="",
        description=f"MatConvNet simplenn net: {len(model.plan)} layers",
    )


def builder(path: str) -> Callable[..., nn.Module]:
    """The constructor `create_model` calls; `input_shape=(C, H, W)` rebuilds for another input."""
    def build(input_shape: tuple[int, ...] | None = None) -> nn.Module:
        specs, _ = _read(path)
        return convert(specs, tuple(input_shape) if input_shape else _input_shape(path))

    return build
