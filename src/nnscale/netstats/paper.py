"""The seed's network table beside what nnscale computes, with why the numbers differ.

The seed's rows (AlexNet 61M / 724M MACs, Inception v1 7M / 1.43G, ResNet-50 25.5M / 3.9G) are those
of Sze et al., "Efficient processing of deep neural networks: a tutorial and survey", Proc. IEEE 105(12),
2017, Table III, where "# of conv layers" is the depth in convolutions (21 for GoogLeNet, 49 for
ResNet-50) and parameters are weights without biases.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeedRow:
    network: str
    year: int
    conv_layers: int
    fc_layers: int
    params: float
    macs: float


SEED_TABLE = (
    SeedRow("AlexNet", 2012, 5, 3, 61e6, 724e6),
    SeedRow("Inception v1", 2014, 21, 1, 7e6, 1.43e9),
    SeedRow("ResNet-50", 2015, 49, 1, 25.5e6, 3.9e9),
)


@dataclass(frozen=True, slots=True)
class Comparison:
    network: str  # the seed's name
    model: str  # the zoo entry
    note: str  # one line: why this entry's numbers differ from the seed's (or that they agree)


COMPARISONS = (
    Comparison("AlexNet", "alexnet-original",
               "Krizhevsky 2012 as published: 96/256/384/384/256 channels, two groups in conv2/4/5, "
               "227x227 input; reproduces 61M and 724M"),
    Comparison("AlexNet", "alexnet",
               "torchvision follows 'one weird trick' (arXiv:1404.5997): 64/192/384/256/256 channels, "
               "no groups, 224 input -> 714M MACs"),
    Comparison("Inception v1", "inception-v1-original",
               "Szegedy 2014 with real 5x5 branches, no batch norm; the paper's own Table 1 gives "
               "~1.5G mult-adds; the seed's 1.43G cannot be reproduced from the architecture"),
    Comparison("Inception v1", "googlenet",
               "torchvision uses 3x3 where the paper has 5x5 and adds batch norm -> 6.6M params, 1.50G"),
    Comparison("ResNet-50", "resnet50-v1",
               "He 2015 v1: stride 2 on the first 1x1 of a downsampling block -> 3.86G MACs"),
    Comparison("ResNet-50", "resnet50",
               "torchvision's v1.5 puts the stride on the 3x3 -> same params, 4.09G MACs "
               "(+6 %, and higher accuracy)"),
    Comparison("ResNet-152", "resnet152-v1",
               "not in the seed's table; the network of its multi-node experiment (v1 strides)"),
    Comparison("ResNet-152", "resnet152", "torchvision's v1.5 of ResNet-152"),
)


def seed_row(network: str) -> SeedRow | None:
    return next((r for r in SEED_TABLE if r.network == network), None)


def paper_rows() -> list[dict]:
    """One row per zoo entry of COMPARISONS: the seed's values beside the computed ones."""
    from nnscale.netstats.summary import network_stats

    rows = []
    for comp in COMPARISONS:
        stats = network_stats(comp.model)
        seed = seed_row(comp.network)
        rows.append({
            "network": comp.network,
            "model": comp.model,
            "input": "x".join(map(str, stats.input_shape)),
            "seed_conv_layers": seed.conv_layers if seed else None,
            "conv_layers": stats.conv_layers,
            "conv_depth": stats.conv_depth,
            "seed_fc_layers": seed.fc_layers if seed else None,
            "fc_layers": stats.fc_layers,
            "seed_params": seed.params if seed else None,
            "params": stats.params_total,
            "params_weights": stats.params_weights,
            "seed_macs": seed.macs if seed else None,
            "macs": stats.macs,
            "note": comp.note,
        })
    return rows
