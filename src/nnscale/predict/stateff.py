"""Statistical efficiency: how many epochs a target needs at a global batch B.

S. McCandlish, J. Kaplan, D. Amodei et al., "An Empirical Model of Large-Batch Training",
arXiv:1812.06162, 2018, eq. 2.11: with the gradient noise scale B_noise, the optimisation steps S
and training examples E to reach a target trade off as
    S = S_min (1 + B_noise / B),        E = E_min (1 + B / B_noise)
so below B_noise a larger batch costs few extra examples, above it each doubling of the batch buys
ever fewer saved steps. Epochs grow with the batch like E: a training that takes `epochs` at a
reference batch B_ref needs epochs x (1 + B / B_noise) / (1 + B_ref / B_noise) at B.

Shipped calibration, ResNet-50 on ImageNet: P. Goyal et al., "Accurate, Large Minibatch SGD:
Training ImageNet in 1 Hour", arXiv:1706.02677, 2017, Fig. 1 and Table 2: 90 epochs reach the same
top-1 error at a global batch of 8,192 (23.74 +- 0.09 %) as at 256 (23.60 +- 0.12 %), and the error
rises beyond 8k (Fig. 1). B_noise = 300,000 images makes 8,192 need (1 + 8192/3e5) / (1 + 256/3e5)
= 2.6 % more epochs (inside the two runs' spread) and 32k 11 % more: the smallest round value with
the 8k point within a few percent. A bound, not a measurement of the noise scale: override it with
--noise-scale for another network or data set.
"""

from __future__ import annotations

import math

from nnscale.errors import UserError

REFERENCE_BATCH = 256  # Goyal et al.'s reference global batch (90 epochs)
RESNET50_IMAGENET_NOISE = 300_000.0
SHIPPED = {"resnet50": RESNET50_IMAGENET_NOISE, "resnet50-v1": RESNET50_IMAGENET_NOISE}
NOISE_RANGE = (1.0, 1e9)  # samples; outside it the override is a typo, not a noise scale


def check_noise_scale(value: float) -> float:
    lo, hi = NOISE_RANGE
    if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
        raise UserError(f"--noise-scale must be a number of samples in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def noise_scale_for(model: str, override: float | None = None) -> float | None:
    """The gradient noise scale to use: the override, else the shipped calibration, else None."""
    if override is not None:
        return check_noise_scale(override)
    return SHIPPED.get(model)


def epochs_needed(epochs: float, global_batch: int, noise_scale: float,
                  reference_batch: int = REFERENCE_BATCH) -> float:
    """Epochs to the target at `global_batch`, given `epochs` at `reference_batch` (module docstring)."""
    if epochs <= 0 or global_batch < 1 or reference_batch < 1:
        raise UserError("epochs and batches must be positive")
    check_noise_scale(noise_scale)
    return epochs * (1 + global_batch / noise_scale) / (1 + reference_batch / noise_scale)


def steps_needed(min_steps: float, global_batch: int, noise_scale: float) -> float:
    """S = S_min (1 + B_noise / B)."""
    return min_steps * (1 + noise_scale / global_batch)
