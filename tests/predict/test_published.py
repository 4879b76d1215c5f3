"""Published data-parallel scaling, reproduced from the published hardware (docs/prediction.md).

Horovod (Sergeev & Del Balso 2018): 128 servers x 4 Pascal GPUs, 25 Gb/s RoCE: 90 % for Inception V3
and ResNet-101, 68 % for VGG-16 — each within 5 points. The overlap is fitted to Horovod's earlier
32-server results (90 / 90 / 79 %); the 512-GPU results are predicted, not fitted.
"""

import pytest

from nnscale.study.prediction import published_profiles
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.published import CASES, bandwidth_to_match, efficiency, reproduction

CAT = load_catalogue()
pytestmark = pytest.mark.slow  # counts five ImageNet networks (a few seconds)


@pytest.fixture(scope="module")
def profiles():
    return published_profiles()  # parameters and per-layer MACs counted by nnscale.netstats


@pytest.fixture(scope="module")
def table(profiles):
    return reproduction(CASES, profiles, CAT)


def _row(table, key):
    return next(r for r in table[0] if r["key"] == key)


@pytest.mark.parametrize("key, published", [
    ("horovod-512-inception_v3", 0.90), ("horovod-512-resnet101", 0.90), ("horovod-512-vgg16", 0.68),
])
def test_horovod_512_gpus_within_5_points(table, key, published):
    r = _row(table, key)
    assert r["role"] == "validate" and r["published"] == published and r["gpus"] == 512
    assert abs(r["calibrated"] - published) <= 0.05, r


@pytest.mark.parametrize("key", ["horovod-128-inception_v3", "horovod-128-resnet101", "horovod-128-vgg16"])
def test_horovod_128_gpus_calibration_within_5_points(table, key):
    r = _row(table, key)
    assert r["role"] == "calibrate" and abs(r["calibrated"] - r["published"]) <= 0.05, r


def test_the_fitted_overlap_is_physical(table):
    fit = table[1]
    assert fit.free == ("overlap",) and 0.5 < fit.params.overlap < 1.0
    assert len(fit.residuals) == 3


def test_catalogue_only_model_is_optimistic_but_close(table):
    # With ideal overlap and no fitted parameter at all, the model is within ~6 points of Horovod.
    for r in table[0]:
        if r["key"].startswith("horovod"):
            assert r["catalogue_only"] >= r["published"] - 0.01
            assert r["catalogue_only"] - r["published"] <= 0.09


def test_vgg16_is_bandwidth_bound_and_the_convnets_are_not(table):
    rows = {r["key"]: r for r in table[0]}
    assert rows["horovod-512-vgg16"]["calibrated"] < rows["horovod-512-resnet101"]["calibrated"] - 0.15


def test_goyal_reported_with_the_rate_that_would_match(table, profiles):
    r = _row(table, "goyal-256-resnet50")
    assert r["baseline_gpus"] == 8 and r["gpus"] == 256
    assert 0.85 < r["calibrated"] < 1.0  # published ~90 %; docs/prediction.md states the gap
    case = next(c for c in CASES if c.key == "goyal-256-resnet50")
    rate = bandwidth_to_match(case, profiles[case.model], CAT, table[1].params)
    assert rate is not None and 1e9 < rate < 6.25e9  # an effective 8-50 Gb/s: below the 50 GbE line rate


def test_seed_77_percent_is_not_a_ring_allreduce_effect(profiles):
    # 4 -> 8 nodes: a fully bandwidth-bound ring grows only by (2*7/8)/(2*3/4) = 1.17x, so no network
    # rate can bring a ring all-reduce down to 77 %: the seed's loss lies elsewhere (docs/prediction.md).
    case = next(c for c in CASES if c.key.startswith("seed"))
    assert case.published == pytest.approx(1077 / 696 / 2)
    assert bandwidth_to_match(case, profiles[case.model], CAT) is None
    assert efficiency(case, profiles[case.model], CAT) > 0.95  # on the assumed K40 + FDR nodes
