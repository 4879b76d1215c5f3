"""PyTorch modules shared by the Caffe and MatConvNet importers, and the net that runs them.

Concat, Eltwise and Scale are Caffe layers PyTorch has no module for; `make_pool` builds a pooling
layer with a given output size (Caffe rounds up, MatConvNet down, both pad in ways PyTorch's
pooling does not always allow); `ImportedNet` runs the layers in order over a dict of named blobs.
"""

from __future__ import annotations

import keyword
import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Concat(nn.Module):
    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, self.dim)


class Eltwise(nn.Module):
    """caffe/src/caffe/layers/eltwise_layer.cpp: SUM (with coefficients), PROD or MAX."""

    def __init__(self, operation: str = "SUM", coeffs: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.operation, self.coeffs = operation, tuple(coeffs)

    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0] * self.coeffs[0] if self.coeffs and self.coeffs[0] != 1 else xs[0]
        for i, x in enumerate(xs[1:], 1):
            if self.operation == "PROD":
                out = out * x
            elif self.operation == "MAX":
                out = torch.maximum(out, x)
            else:
                out = out + (x * self.coeffs[i] if self.coeffs and self.coeffs[i] != 1 else x)
        return out


class Scale(nn.Module):
    """caffe/src/caffe/layers/scale_layer.cpp with axis 1, num_axes 1: a per-channel affine."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        out = x * self.weight.view(shape)
        return out + self.bias.view(shape) if self.bias is not None else out


class PaddedPool(nn.Module):
    """Max or average pooling after explicit padding (left, right, top, bottom), floor rounding.

    Used where PyTorch's pooling cannot give the wanted output size or padding (see `make_pool`).
    Shapes and costs are exact; the average of a clipped border window divides by the padded
    window, where Caffe divides by its part inside `in + pad` (values only, never speed).
    """

    def __init__(self, method: str, kernel: tuple[int, int], stride: tuple[int, int],
                 pad: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.method, self.kernel, self.stride, self.pad = method, kernel, stride, pad

    def forward(self, x: Tensor) -> Tensor:
        if self.method == "MAX":
            return F.max_pool2d(F.pad(x, self.pad, value=-math.inf), self.kernel, self.stride)
        return F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride)


def pool_output_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = True) -> int:
    """Caffe's pooled size (pooling_layer.cpp, Reshape)."""
    out = (math.ceil if ceil else math.floor)((size + 2 * pad - kernel) / stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_pool_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    # aten/src/ATen/native/Pool.h, pooling_output_shape_pad_lr (dilation 1)
    out = (size + 2 * pad - kernel + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def make_pool(method: str, kernel: tuple[int, int], stride: tuple[int, int],
              pad: tuple[int, int, int, int], size: tuple[int, int], out: tuple[int, int],
              ceil: bool) -> nn.Module:
    """A pooling module taking (H, W) = `size` to `out`; `pad` is (top, bottom, left, right).

    PyTorch's own MaxPool2d/AvgPool2d where its rounding (`ceil`) gives `out` and its padding
    rules allow `pad`; otherwise a `PaddedPool` whose explicit padding makes floor rounding give
    `out` (the end padding is cut to what the last window needs).
    """
    sym = (pad[0], pad[2])
    if pad[0] == pad[1] and pad[2] == pad[3] and all(
            p <= k // 2 and _torch_pool_size(n, k, s, p, ceil) == o
            for n, k, s, p, o in zip(size, kernel, stride, sym, out)):
        if method == "MAX":
            return nn.MaxPool2d(kernel, stride, sym, ceil_mode=ceil)
        return nn.AvgPool2d(kernel, stride, sym, ceil_mode=ceil, count_include_pad=True)
    end = [max((o - 1) * s + k - (n + b), 0)
           for n, k, s, b, o in zip(size, kernel, stride, (pad[0], pad[2]), out)]
    return PaddedPool(method, kernel, stride, (pad[2], end[1], pad[0], end[0]))


# ---- the network ------------------------------------------------------------------------------


class ImportedNet(nn.Module):
    """Imported layers run in order over named blobs, as Caffe's Net::Forward does.

    `layers` are (name, module, bottoms, top, flatten); `flatten` flattens the single input from
    axis 1 first (Caffe's InnerProduct). The plan is fixed when the net is built, so torch.fx
    traces the loop into a static graph. `input_shape` and `output_shapes` (with the batch
    dimension) are the shapes the importer inferred.
    """

    def __init__(self, input_blob: str, layers: list[tuple[str, nn.Module, tuple[str, ...], str,
                                                           bool]], outputs: tuple[str, ...],
                 input_shape: tuple[int, ...], output_shapes: tuple[tuple[int, ...], ...]) -> None:
        super().__init__()
        self.input_blob, self.outputs = input_blob, outputs
        self.input_shape, self.output_shapes = input_shape, output_shapes
        self.plan: list[tuple[str, tuple[str, ...], str, bool]] = []
        for name, module, bottoms, top, flatten in layers:
            self.add_module(name, module)
            self.plan.append((name, bottoms, top, flatten))

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        blobs = {self.input_blob: x}
        for name, bottoms, top, flatten in self.plan:
            inputs = [blobs[b] for b in bottoms]
            if flatten:  # InnerProduct flattens from axis 1 (inner_product_layer.cpp)
                inputs = [torch.flatten(inputs[0], 1)]
            blobs[top] = getattr(self, name)(*inputs)
        outs = tuple(blobs[o] for o in self.outputs)
        return outs[0] if len(outs) == 1 else outs


class PaddedConv2d(nn.Conv2d):
    """A convolution with asymmetric zero padding (left, right, top, bottom): MatConvNet's pad."""

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


def sanitise(name: str, used: set[str]) -> str:
    """A unique attribute name for a layer: `conv1/7x7_s2` -> `conv1_7x7_s2`."""
    base = re.sub(r"\W", "_", name).strip("_") or "layer"
    # fx writes `self.<name>(...)` into generated code: no keywords, no clash with attributes.
    if (not base.isidentifier() or keyword.iskeyword(base) or hasattr(ImportedNet, base)
            or base in ("plan", "outputs", "input_blob", "input_shape", "output_shapes")):
        base = f"layer_{base}"
    out, n = base, 2
    while out in used:
        out, n = f"{base}_{n}", n + 1
    used.add(out)
    return out
