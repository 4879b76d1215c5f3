"""Every torchvision classification model is counted, and its MACs and parameters are the ones
torchvision publishes with its weights (meta `_ops`, "GFLOPS" that are really GMACs, and
`num_params`; read from the installed torchvision's weight enums, nothing downloaded).

Tolerance: `_ops` is published rounded to 3 decimals of a G, so |MACs/1e9 - _ops| <= 0.0005;
parameters are exact. No model needs more: torchvision computed `_ops` with FlopCounterMode-style
counting of every matmul (attention's bmm included), which is what nnscale's MACs are.

Before the fix the RegNets could not be built on the meta device ("Cannot copy out of meta tensor"),
vit_h_14 was built at 224 while its default weights (and so its input size) are 518, and the
transformers' MACs left out attention's matmuls (vit_b_16 16.849 G against torchvision's 17.564).
Only the forward pass is counted for the whole list (it is what `_ops` measures, and keeps the test
fast); `nnscale stats` runs end to end on the two RegNets the issue names.
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from nnscale.cli import main
from nnscale.netstats.counting import _conv_linear_macs_of, _macs_of, count_forward
from nnscale.netstats.fallback import build_on_meta, count_anywhere
from nnscale.zoo import create_model, model_info

NAMES = torchvision.models.list_models(module=torchvision.models)


def published(name: str) -> tuple[int, float]:
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    return meta["num_params"], meta["_ops"]


def test_the_list_is_torchvisions_whole_classification_list():
    assert len(NAMES) >= 80 and {"vit_b_16", "swin_t", "maxvit_t", "regnet_y_128gf"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_torchvisions_published_metadata(name):
    info = model_info(f"torchvision:{name}")
    model, note = build_on_meta(lambda: create_model(f"torchvision:{name}"))
    assert all(p.device.type == "meta" for p in model.parameters())  # nothing was materialised
    ops, rows, _ = count_forward(model, torch.empty((1, *info.input_shape), device="meta"))
    params, gmacs = published(name)
    macs = _macs_of(ops)
    assert sum(p.numel() for p in model.parameters()) == params
    assert abs(macs / 1e9 - gmacs) <= 0.0005 + 1e-9, (macs, gmacs)
    assert sum(r.macs for r in rows) == macs  # the per-layer table adds up to the total
    if name.startswith("regnet_"):
        assert note is not None and "built on the CPU with its weights moved to meta" in note
    else:
        assert note is None


# conv + linear only, the old figure, kept as its own column (the numbers).
CONV_LINEAR = {"vit_b_16": (16.849, 17.564), "swin_t": (4.350, 4.491), "maxvit_t": (5.381, 5.558),
               "resnet50": (4.089, 4.089)}


@pytest.mark.parametrize("name", sorted(CONV_LINEAR))
def test_conv_linear_macs_are_their_own_figure(name):
    conv_linear, every = CONV_LINEAR[name]
    model, _ = build_on_meta(lambda: create_model(f"torchvision:{name}"))
    ops, _, _ = count_forward(model, torch.empty((1, 3, 224, 224), device="meta"))
    assert round(_macs_of(ops) / 1e9, 3) == every
    assert round(_conv_linear_macs_of(ops) / 1e9, 3) == conv_linear


def test_stats_prints_both_figures(capsys):
    assert main(["stats", "torchvision:vit_b_16", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["macs"] / 1e9, 3) == 17.564 and round(data["macs_conv_linear"] / 1e9, 3) == 16.849
    assert data["forward_flops"] == 2 * data["macs"] and data["notes"] == []


def test_stats_of_the_regnets_says_how_they_were_counted(capsys):
    assert main(["stats", "torchvision:regnet_y_400mf"]) == 0
    out = capsys.readouterr().out
    assert "note: built on the CPU with its weights moved to meta" in out
    assert "Cannot copy out of meta tensor" in out  # the reason, as torch gives it
    assert "MACs per image, conv + linear layers only" in out
    for name in ("regnet_y_400mf", "regnet_x_8gf"):
        assert main(["stats", f"torchvision:{name}", "--format", "json"]) == 0
        data = json.loads(capsys.readouterr().out)
        params, gmacs = published(name)
        assert data["params_total"] == params and round(data["macs"] / 1e9, 3) == gmacs
        assert data["training_flops"] > data["forward_flops"] > 0 and data["conv_depth"] > 0
        assert len(data["notes"]) == 1


class NeedsValues(nn.Module):
    """A forward pass that reads a value (`.item()`), which the meta device cannot give."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.conv(x)
        steps = int(y.abs().sum().item() >= 0)  # always 1, but only a real tensor can say so
        return self.fc(y.mean((2, 3))) * steps


def test_a_forward_pass_that_needs_values_is_counted_on_real_tensors():
    with torch.device("meta"):
        model = NeedsValues()
    counts, note = count_anywhere(model, (3, 8, 8))
    assert note.startswith("counted on real CPU tensors") and "meta" in note
    assert counts.macs == 6 * 6 * 8 * 3 * 9 + 8 * 4  # conv out_hw * c_out * c_in * k^2 + fc
    assert counts.macs_conv_linear == counts.macs and counts.params_total == 8 * 27 + 8 + 36


def test_fallbacks_leave_other_errors_and_no_hooks_behind():
    def broken():
        raise ValueError("not a meta problem")

    with pytest.raises(ValueError, match="not a meta problem"):
        build_on_meta(broken)
    build_on_meta(lambda: create_model("torchvision:regnet_x_400mf"))
    assert nn.Linear(2, 2).weight.device.type == "cpu"  # the registration hooks were removed
