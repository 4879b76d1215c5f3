"""The published language-model runs: every case within the issue's targets, leave-one-case-out too."""

import json

import pytest

from nnscale.cli import main
from nnscale.predict import published_lm
from nnscale.predict.catalogue import load_catalogue

CAT = load_catalogue(None)


@pytest.fixture(scope="module")
def rows():
    return {r["key"]: r for r in published_lm.reproduction(CAT)}


def test_each_stack_is_calibrated_on_one_case_only():
    roles = {}
    for c in published_lm.CASES:
        roles.setdefault(c.stack, []).append(c.role)
    assert all(r.count("calibrate") == 1 for r in roles.values())
    effs = published_lm.efficiencies(CAT)
    assert set(effs) == {"torchtitan", "megatron"} and all(0.2 < e < 0.9 for e in effs.values())


def test_tokens_per_second_within_15_percent_calibrated_and_leave_one_out(rows):
    rates = [r for r in rows.values() if r["unit"].startswith("tokens")]
    assert len(rates) == 5
    for r in rates:
        assert abs(r["error"]) <= 0.15, r
        assert abs(r["loo_error"]) <= 0.15, r
    for r in rates:
        if r["role"] == "calibrate":
            assert r["error"] == pytest.approx(0, abs=1e-3)


def test_korthikanti_full_recompute_predicted_from_the_selective_run(rows):
    full = rows["korthikanti-530b-full"]
    assert full["published_mfu"] == 0.421
    assert full["predicted_mfu"] == pytest.approx(0.421, rel=0.15)


def test_weak_scaling_ratio_within_3_points(rows):
    # 0.998 predicted against 0.973: the loss at 128 GPUs is contention, the same global term as the
    # CNN suite's (terms.CONTENTION), over the FSDP traffic that crosses the NICs. Without it the
    # model said 1.004 (+3.1 points).
    ratio = rows["torchtitan-8b-128 / torchtitan-8b-8"]
    assert ratio["published"] == pytest.approx(5605 / 5762)
    assert abs(ratio["error"]) <= 0.03 and abs(ratio["loo_error"]) <= 0.03


def test_cli_tables(capsys):
    assert main(["plan", "--published"]) == 0
    out = capsys.readouterr().out
    assert "torchtitan-70b-256" in out and "korthikanti-530b-full" in out and "leave-one-case-out" in out
    # `predict --published` prints the same table under the CNN cases (its CNN part takes ~40 s on
    # 2 cores: tests/predict/test_cli_predict.py runs it); here the JSON of the LM table alone.
    assert main(["plan", "--published", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in doc} >= {"torchtitan-8b-8", "korthikanti-530b-selective"}
