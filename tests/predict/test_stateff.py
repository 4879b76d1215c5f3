"""Statistical efficiency (McCandlish et al. 2018) and its shipped ResNet-50 calibration (Goyal et al. 2017)."""

import pytest

from nnscale.errors import UserError
from nnscale.predict import stateff
from nnscale.report.plots_scaling import time_to_train_rows
from nnscale.report.tables import time_to_train_table


def test_examples_and_steps_follow_the_noise_scale():
    # E = E_min (1 + B / B_noise): at B = B_noise twice the minimum; S = S_min (1 + B_noise / B)
    assert stateff.epochs_needed(10, 1000, 1000, reference_batch=1) == pytest.approx(10 * 2 / 1.001)
    assert stateff.steps_needed(100, 1000, 1000) == 200
    assert stateff.epochs_needed(90, 256, 5e4) == pytest.approx(90)  # the reference batch keeps its epochs


def test_resnet50_calibration_matches_goyal():
    noise = stateff.noise_scale_for("resnet50")
    grow_8k = stateff.epochs_needed(90, 8192, noise) / 90
    assert 1.0 < grow_8k < 1.03  # Goyal et al.: 90 epochs reach the same error at 8k as at 256
    assert stateff.epochs_needed(90, 32768, noise) / 90 > 1.1  # and the error rises beyond
    assert stateff.noise_scale_for("vgg16") is None and stateff.noise_scale_for("vgg16", 5000) == 5000


@pytest.mark.parametrize("bad", [0, -5, 0.5, 2e9, float("nan"), float("inf")])
def test_out_of_range_override_is_one_line(bad):
    with pytest.raises(UserError, match=r"--noise-scale must be a number of samples in \[1, 1e\+09\]"):
        stateff.noise_scale_for("resnet50", bad)


def test_report_time_to_train_shows_both_side_by_side():
    preds = [{"model": "resnet50", "batch_size": 32, "nodes": 32, "gpus": 256, "time_to_train_min": 60.0,
              "time_to_train_stat_s": 3690.0},
             {"model": "mnist", "batch_size": 32, "nodes": 1, "gpus": 2, "time_to_train_min": 5.0}]
    table = time_to_train_table(time_to_train_rows([], preds))
    shown = {(r["network"], r["source"]): r for r in table.rows}
    assert shown[("resnet50", "predicted")]["time"] == "60" and shown[("resnet50", "predicted")]["time_stat"] == "62"
    assert shown[("mnist", "predicted")]["time_stat"] == "–"
    assert ("time_stat", "with statistical efficiency [min]") in table.columns
