"""Published data-parallel scaling, reproduced out of the box from the published hardware alone
(docs/prediction.md): Horovod 128 and 512 GPUs, Goyal et al. 256 GPUs, the PyTorch DDP benchmark
8 and 16 GPUs, each with the global defaults of terms.py; calibration cases also leave-one-case-out.
"""

import pytest

from nnscale.predict import terms as T
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.published import (
    CASES,
    bandwidth_to_match,
    efficiency,
    error_band,
    fit_contention,
    framework_cost,
    reproduction,
    shipped_profiles,
)

CAT = load_catalogue()
PROFILES = shipped_profiles()


@pytest.fixture(scope="module")
def rows():
    return {r["key"]: r for r in reproduction(CASES, PROFILES, CAT)}


@pytest.mark.parametrize("key, published", [
    ("horovod-128-inception_v3", 0.90), ("horovod-128-resnet101", 0.90), ("horovod-128-vgg16", 0.79),
    ("horovod-512-inception_v3", 0.90), ("horovod-512-resnet101", 0.90), ("horovod-512-vgg16", 0.68),
    ("ddp-8-resnet50", 307 / 329), ("ddp-16-resnet50", 306 / 329),
    ("ddp-8-resnet101", 179 / 197), ("ddp-16-resnet101", 178 / 197),
])
def test_every_case_within_5_points_out_of_the_box_and_left_out(rows, key, published):
    r = rows[key]
    assert r["published"] == pytest.approx(published)
    assert abs(r["predicted"] - published) <= 0.05, r
    # leave-one-case-out where it set a default: ddp-8-resnet101 reads +5.0 with the framework cost
    # from ResNet-50's one-GPU rows alone (28 instead of 38 us per layer)
    assert abs(r["held_out_error_points"]) <= 5.1, r


def test_goyal_is_at_the_edge_of_the_band(rows):
    # 90 % published; the model gives 95.3 %: 0.3 points outside the target. docs/prediction.md
    # names the missing term (Gloo over TCP on Ethernet, where the catalogue's link efficiency is NCCL's).
    r = rows["goyal-256-resnet50"]
    assert r["baseline_gpus"] == 8 and r["gpus"] == 256 and r["role"] == "report"
    assert 0.88 < r["predicted"] < 0.96


def test_calibration_cases_are_labelled_and_reported_leave_one_out(rows):
    calib = {k for k, r in rows.items() if r["role"] == "calibrate"}
    assert calib == {"horovod-128-inception_v3", "horovod-128-resnet101", "horovod-128-vgg16",
                     "ddp-8-resnet50", "ddp-16-resnet50", "ddp-8-resnet101", "ddp-16-resnet101"}
    for k, r in rows.items():
        assert (r["leave_one_out"] is not None) == (k in calib)
        assert r["inputs"] and r["source"]


def test_the_global_defaults_are_what_the_suite_gives():
    # the framework cost: (3 + 9) ms over ResNet-50's and ResNet-101's layers with parameters
    assert PROFILES["resnet50"].gradient_layers == 107 and PROFILES["resnet101"].gradient_layers == 209
    assert framework_cost(PROFILES) == pytest.approx(T.FRAMEWORK_S_PER_LAYER, rel=0.01)
    # the contention: least squares over the calibration cases
    assert fit_contention(CASES, PROFILES, CAT) == pytest.approx(T.CONTENTION, abs=0.01)


def test_error_band_from_the_suite(rows):
    band = error_band(list(rows.values()))
    assert band.clusters == 11 and band.left_out == ("seed-8-resnet152",)
    assert band.points == pytest.approx(max(abs(r["held_out_error_points"]) for r in rows.values()
                                            if r["role"] != "report-assumed"))
    assert 4.0 < band.points < 6.0
    assert band.sentence().startswith(f"within \u00b1{band.points:.1f} points on 11 published clusters")


def test_without_the_terms_the_model_is_optimistic(rows):
    # the plain timeline (no contention, jitter or framework cost) overshoots the convnets by > 5
    for key in ("horovod-128-inception_v3", "horovod-128-resnet101", "goyal-256-resnet50"):
        case = next(c for c in CASES if c.key == key)
        plain = efficiency(case, PROFILES[case.model], CAT, terms=T.NONE)
        assert plain - case.published > 0.05 and plain > rows[key]["predicted"]


def test_vgg16_is_bandwidth_bound_and_the_convnets_are_not(rows):
    assert rows["horovod-512-vgg16"]["predicted"] < rows["horovod-512-resnet101"]["predicted"] - 0.1


def test_seed_77_percent_is_not_a_ring_allreduce_effect():
    # 4 -> 8 nodes: a fully bandwidth-bound ring grows only by (2*7/8)/(2*3/4) = 1.17x, so no network
    # rate can bring a ring all-reduce down to 77 %: the seed's loss lies elsewhere (docs/prediction.md).
    case = next(c for c in CASES if c.key.startswith("seed"))
    assert case.published == pytest.approx(1077 / 696 / 2) and case.role == "report-assumed"
    assert bandwidth_to_match(case, PROFILES[case.model], CAT) is None
    assert efficiency(case, PROFILES[case.model], CAT) > 0.95  # on the assumed K40 + FDR nodes


@pytest.mark.slow
def test_shipped_profiles_are_what_netstats_counts():
    from nnscale.glue.predict import published_profiles

    counted = published_profiles()
    assert set(counted) == set(PROFILES)
    for name, p in counted.items():
        s = PROFILES[name]
        assert (s.params, s.forward_flops, s.training_flops) == (p.params, p.forward_flops, p.training_flops)
        assert s.layers == p.layers


def test_the_report_states_the_same_band():
    from nnscale.report.tables import predictions_table

    note = predictions_table([], []).note
    assert error_band().sentence() in note and "published clusters, leave-one-case-out" in note
