"""Keras 3 building blocks that reproduce PyTorch's layer semantics exactly, backend-agnostically.

Only `keras.layers` and `keras.ops` are used, so the same code runs under KERAS_BACKEND=tensorflow
and KERAS_BACKEND=jax. Layout is channels-last (NHWC) throughout.

Padding. PyTorch pads symmetrically by an explicit amount `p`; Keras offers "valid" and "same",
and "same" (TensorFlow's SAME) pads `total // 2` before and the rest after, which for a stride-2
layer is often asymmetric (e.g. a 3x3/2 convolution on 56x56: SAME pads 0 before and 1 after,
PyTorch's padding=1 pads 1 and 1: the output size is the same, the windows are shifted by one
pixel). The helpers here use Keras's native "same" only where its windows are exactly PyTorch's,
since a native padded op is faster than a separate pad, and otherwise pad explicitly and run
"valid". Max pooling pads with -inf, because PyTorch's MaxPool2d ignores padded cells (its
padding is "implicit negative infinity", torch.nn.MaxPool2d docs); ceil_mode pools get the extra
trailing padding that makes their output size PyTorch's.

Initialisation follows the torch models' (see `TorchInit`), so activations have the same
magnitudes in every framework; speed can depend on values (denormals on CPU).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def torch_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a PyTorch convolution or pooling layer along one spatial axis.

    The formula of torch.nn.MaxPool2d's docs; with ceil_mode a window that would start in the
    right padding is dropped ("sliding windows that would start in the right padded region are
    ignored").
    """
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def same_is_torch(
    size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False
) -> bool:
    """Whether Keras's padding="same" gives exactly PyTorch's windows along one axis.

    SAME has ceil(size / stride) outputs and pads max((out - 1) * stride + kernel - size, 0) // 2
    cells before; the windows are PyTorch's when both the count and the leading padding agree.
    """
    out_same = -(-size // stride)
    before_same = max((out_same - 1) * stride + kernel - size, 0) // 2
    out_torch = torch_output_size(size, kernel, stride, padding, ceil_mode)
    return out_same == out_torch and before_same == padding


def _spatial(x) -> tuple[int, int]:
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError("the nnscale Keras models need a static spatial input shape (H, W)")
    return int(height), int(width)


class TorchInit(keras.initializers.Initializer):
    """PyTorch's initialisation schemes, drawn with NumPy's global generator.

    NumPy rather than Keras's random initialisers: under JAX those compile their random ops once
    per weight shape (about 0.3 s each on a CPU core, 40 s for googlenet's 57 shapes), while NumPy
    compiles nothing; and the same seed (keras.utils.set_random_seed seeds NumPy too) gives the same
    weights under every backend. Values are drawn in float32 and cast to the variable's dtype.

    kind: "uniform" U(-value, value); "normal" N(0, value); "constant" value;
    "kaiming_normal_fan_out" N(0, 2 / fan_out) (torch.nn.init.kaiming_normal_(mode="fan_out",
    nonlinearity="relu")); "xavier_uniform" U(-b, b), b = sqrt(6 / (fan_in + fan_out))
    (torch.nn.init.xavier_uniform_). Fans of a (kh, kw, in/groups, out) kernel are
    kh * kw * in/groups and kh * kw * out, of a (in, out) dense kernel in and out: PyTorch's fans.
    """

    KINDS = ("uniform", "normal", "constant", "kaiming_normal_fan_out", "xavier_uniform")

    def __init__(self, kind: str, value: float = 0.0):
        if kind not in self.KINDS:
            raise ValueError(f"kind {kind!r} is not one of {self.KINDS}")
        self.kind = kind
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(n) for n in shape)
        receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
        fan_in = receptive * shape[-2] if len(shape) > 1 else shape[0]
        fan_out = receptive * shape[-1]
        if self.kind == "uniform":
            values = np.random.uniform(-self.value, self.value, shape)
        elif self.kind == "normal":
            values = np.random.normal(0.0, self.value, shape)
        elif self.kind == "constant":
            values = np.full(shape, self.value)
        elif self.kind == "kaiming_normal_fan_out":
            values = np.random.normal(0.0, math.sqrt(2.0 / fan_out), shape)
        else:
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            values = np.random.uniform(-bound, bound, shape)
        return ops.convert_to_tensor(values.astype(np.float32), dtype=dtype or "float32")

    def get_config(self):
        return {"kind": self.kind, "value": self.value}


def initializers(kernel: TorchInit, bias: TorchInit | None = None) -> dict:
    """Keras layer arguments for a kernel and (optionally) a bias initialiser."""
    out = {"kernel_initializer": kernel}
    if bias is not None:
        out["bias_initializer"] = bias
    return out


def torch_default_init(fan_in: int) -> dict:
    """PyTorch's default Conv2d/Linear initialisation (torch.nn.Conv2d.reset_parameters):
    kaiming_uniform_(a=sqrt(5)) for the weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    and the same uniform for the bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return initializers(TorchInit("uniform", bound), TorchInit("uniform", bound))


def conv2d(
    x,
    filters: int,
    kernel: int,
    *,
    name: str,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    use_bias: bool = True,
    init: dict | None = None,
):
    """torch.nn.Conv2d(in, filters, kernel, stride, padding, groups=groups, bias=use_bias) on NHWC.

    `init` holds Keras kernel/bias initialisers; the default is PyTorch's (`torch_default_init`).
    """
    cin = int(x.shape[-1])
    if init is None:
        init = torch_default_init(cin // groups * kernel * kernel)
    if not use_bias:
        init = {k: v for k, v in init.items() if k != "bias_initializer"}
    height, width = _spatial(x)
    if padding == 0:
        mode = "valid"
    elif all(same_is_torch(n, kernel, stride, padding) for n in (height, width)):
        mode = "same"
    else:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
        mode = "valid"
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=mode, groups=groups,
                               use_bias=use_bias, name=name, **init)(x)


def dense(x, units: int, *, name: str, init: dict | None = None):
    """torch.nn.Linear(in, units): PyTorch's default initialisation unless `init` is given."""
    if init is None:
        init = torch_default_init(int(x.shape[-1]))
    return keras.layers.Dense(units, name=name, **init)(x)


def batch_norm(x, *, name: str, eps: float = 1e-5):
    """torch.nn.BatchNorm2d(C, eps): PyTorch's momentum 0.1 weights the new batch, Keras's momentum
    weights the running value, so 0.1 there is 0.9 here. gamma 1 and beta 0, as in PyTorch."""
    one, zero = TorchInit("constant", 1.0), TorchInit("constant", 0.0)
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=eps, momentum=0.9, gamma_initializer=one, beta_initializer=zero,
        moving_mean_initializer=zero, moving_variance_initializer=one, name=name)(x)


def relu(x, *, name: str):
    return keras.layers.ReLU(name=name)(x)


class TorchMaxPool2D(keras.layers.Layer):
    """torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode) where Keras's "same" differs.

    Pads with -inf (PyTorch's padded cells never win the max) by `padding` before and by what
    PyTorch's output size needs after (more than `padding` with ceil_mode), then pools "valid".
    """

    def __init__(
        self, pool_size: int, strides: int, padding: int = 0, ceil_mode: bool = False, **kw
    ):
        super().__init__(**kw)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.ceil_mode = ceil_mode

    def _pads(self, size: int) -> tuple[int, int, int]:
        out = torch_output_size(size, self.pool_size, self.strides, self.padding, self.ceil_mode)
        after = max((out - 1) * self.strides + self.pool_size - size - self.padding, 0)
        return self.padding, after, out

    def call(self, x):
        height, width = _spatial(x)
        top, bottom, _ = self._pads(height)
        left, right, _ = self._pads(width)
        if top or bottom or left or right:
            pads = [[0, 0], [top, bottom], [left, right], [0, 0]]
            x = ops.pad(x, pads, constant_values=-math.inf)
        return ops.max_pool(x, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, self._pads(height)[2], self._pads(width)[2], channels)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }


def max_pool2d(
    x, kernel: int, stride: int, *, name: str, padding: int = 0, ceil_mode: bool = False
):
    """torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode) on NHWC, exactly.

    Keras's native MaxPooling2D where its windows are PyTorch's ("valid" for floor mode without
    padding; "same" where `same_is_torch`: e.g. googlenet's ceil_mode 3x3/2 pools on even sizes,
    which need one trailing cell, are SAME's 0-before-1-after), else TorchMaxPool2D.
    """
    height, width = _spatial(x)
    if padding == 0 and all(
        torch_output_size(n, kernel, stride, 0, ceil_mode) == (n - kernel) // stride + 1
        for n in (height, width)
    ):
        return keras.layers.MaxPooling2D(kernel, stride, padding="valid", name=name)(x)
    if all(same_is_torch(n, kernel, stride, padding, ceil_mode) for n in (height, width)):
        return keras.layers.MaxPooling2D(kernel, stride, padding="same", name=name)(x)
    return TorchMaxPool2D(kernel, stride, padding, ceil_mode, name=name)(x)


class LocalResponseNorm(keras.layers.Layer):
    """torch.nn.LocalResponseNorm(size, alpha, beta, k) across the channels of an NHWC tensor.

    PyTorch's formula (torch.nn.LocalResponseNorm docs; torch.nn.functional.local_response_norm):
        b_c = a_c / (k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} a_{c'}^2) ^ beta
    with channels outside [0, C) counting as zero. alpha is divided by the window size n, as in
    Caffe's LRN layer; Krizhevsky et al. 2012, Section 3.3, write the sum without that division.
    Keras has no LRN layer; the window sum here is n shifted slices of the zero-padded squares.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, **kw):
        super().__init__(**kw)
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def call(self, x):
        channels = x.shape[-1]
        squares = ops.pad(ops.square(x), [[0, 0]] * 3 + [[self.size // 2, (self.size - 1) // 2]])
        window = squares[..., 0:channels]
        for i in range(1, self.size):
            window = window + squares[..., i : i + channels]
        return x / ops.power(self.k + (self.alpha / self.size) * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k}
