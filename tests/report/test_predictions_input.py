"""`nnscale report --predictions FILE` with hostile rows: one line naming the row and key, exit
code 2, no report written and the store untouched. Before the check `gpus` 0.5 or `world_size` 0
ended in ZeroDivisionError (efficiency = speedup / int(gpus)) and a list-valued key in TypeError."""

from __future__ import annotations

import json

import pytest

from nnscale.cli import main
from nnscale.report.predictions import normalize


def row(**kw) -> dict:
    return {"nodes": 1, "gpus": 2, "samples_per_s": 2000.0, "speedup": 1.8, **kw}


@pytest.mark.parametrize("rows,needle", [
    ([row(gpus=0.5, efficiency=None)], "row 1: gpus = 0.5 is not a whole number >= 1"),
    ([row(), {"world_size": 0, "speedup": 1.0}], "row 2: world_size = 0 is not a whole number >= 1"),
    ([row(gpus=[1, 2])], "row 1: gpus = [1, 2] is not a whole number >= 1"),
    ([row(speedup=[1.0, 1.9])], "row 1: speedup = [1.0, 1.9] is not a finite number >= 0"),
    ([row(samples_per_s="fast")], "row 1: samples_per_s = 'fast' is not a finite number >= 0"),
    ([row(samples_per_s=-3)], "samples_per_s = -3 is not a finite number >= 0"),
    ([row(time_to_train_s=float("inf"))], "time_to_train_s = inf is not a finite number"),
    ([row(nodes=True)], "nodes = True is not a whole number >= 1"),
    ([row(batch_size=[64])], "batch_size = [64] is not a whole number >= 1"),
    ([row(model=["resnet50"])], "model = ['resnet50'] is not a string"),
    ([row(limited_by={"comm": 1})], "limited_by = {'comm': 1} is not a string"),
    ([{"speedup": 1.0}], "row 1 has no worker count: give gpus, world_size or nodes"),
    ({"inputs": {"model": "resnet50", "batch_per_gpu": [64]}, "rows": [row()]},
     "batch_size = [64] is not a whole number >= 1"),
])
def test_bad_prediction_rows_are_one_line(store_with_runs, tmp_path, capsys, rows, needle):
    preds = tmp_path / "pred.json"
    preds.write_text(json.dumps(rows))
    before = open(store_with_runs, "rb").read()
    out = tmp_path / "rep"
    assert main(["report", "base", "--db", store_with_runs, "-o", str(out), "--no-netstats",
                 "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(preds) in err[0], err
    assert not out.exists()
    assert open(store_with_runs, "rb").read() == before


def test_good_rows_still_draw_and_library_rows_without_workers_are_dropped(store_with_runs,
                                                                            tmp_path):
    preds = tmp_path / "pred.json"
    preds.write_text(json.dumps([row(gpus=1.0, speedup=1.0), row(world_size=4, gpus=None)]))
    out = tmp_path / "rep"
    assert main(["report", "base", "--db", store_with_runs, "-o", str(out), "--no-netstats",
                 "--predictions", str(preds)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [(r["gpus"], r["efficiency"]) for r in data["predictions"]] == [(1, 1.0), (4, 0.45)]
    # build_report called from Python normalises without raising: a zero count is no row.
    assert normalize([row(gpus=0, world_size=0), row(gpus=0.5)]) == []
