"""Counting where the meta device is not enough, and the note that says what was done instead.

Counting runs on the meta device (shapes only, no memory, no compute). Two things can need real
tensor values there:
- the constructor: torchvision's RegNets compute their block widths with tensors and call
  `.tolist()` (torchvision/models/regnet.py, BlockParams.from_init_params), which on meta raises
  "Cannot copy out of meta tensor; no data!". Such a model is built on the CPU with each parameter
  and buffer moved to meta the moment it is registered (torch.nn.modules.module's global
  registration hooks), so the constructor's own arithmetic is real but no weight is ever kept in
  memory, and counting stays on meta;
- the forward pass (`.item()`, data-dependent shapes): then the model is materialised on the CPU
  and counted on a real random image, which computes for real (slower, same counts).
Either way the returned note goes into the output, so nobody mistakes what was counted how.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.module import (register_module_buffer_registration_hook,
                                     register_module_parameter_registration_hook)

from nnscale.netstats.counting import Counts, count

_META_FAILURES = (NotImplementedError, RuntimeError)


def _needs_values(exc: BaseException) -> bool:
    """Whether `exc` is the meta device refusing to give values (not a shape error)."""
    text = str(exc).lower()
    return "meta" in text and ("no data" in text or "copy out" in text or "item()" in text
                               or "meta tensor" in text or "data-dependent" in text)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _weights_on_meta() -> Iterator[None]:
    def parameter(_module, _name, param):
        return None if param is None else nn.Parameter(param.detach().to("meta"), param.requires_grad)

    def buffer(_module, _name, value):
        return None if value is None else value.to("meta")

    hooks = (register_module_parameter_registration_hook(parameter),
             register_module_buffer_registration_hook(buffer))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def build_on_meta(build: Callable[[], nn.Module]) -> tuple[nn.Module, str | None]:
    """(model with meta weights, a note or None): `build()` under the meta device, or, where the
    constructor needs tensor values, on the CPU with every weight moved to meta as it is made."""
    try:
        with torch.device("meta"):
            return build(), None
    except _META_FAILURES as exc:
        if not _needs_values(exc):
            raise
        reason = _reason(exc)
    with _weights_on_meta():
        model = build()
    return model, (f"built on the CPU with its weights moved to meta (its constructor computes "
                   f"with tensor values the meta device does not have: {reason}); counted on meta")


def _materialise(model: nn.Module) -> nn.Module:
    model = model.to_empty(device="cpu")
    with torch.no_grad():  # values do not change the counts; finite ones keep the pass finite
        for t in (*model.parameters(), *model.buffers()):
            t.normal_(0.0, 0.02) if t.is_floating_point() else t.zero_()
    return model


def count_anywhere(model: nn.Module, shape: tuple[int, ...]) -> tuple[Counts, str | None]:
    """(counts, a note or None): counted on meta, or on real CPU tensors where the forward pass
    needs values. Shape errors are not caught here: the caller says the input does not fit."""
    try:
        return count(model, torch.empty((1, *shape), device="meta")), None
    except _META_FAILURES as exc:
        if not _needs_values(exc):
            raise
        reason = _reason(exc)
    model = _materialise(model)
    counts = count(model, torch.randn((1, *shape), generator=torch.Generator().manual_seed(0)))
    return counts, (f"counted on real CPU tensors: the forward pass needs tensor values the meta "
                    f"device does not have ({reason})")
