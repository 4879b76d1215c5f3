"""`nnscale plan`: the ranking, the reasons, the output formats and bad input (one line, exit 2)."""

import json
import time

import pytest

from nnscale.cli import main
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.layout import Cluster, Training
from nnscale.predict.memory import shape_by_name
from nnscale.predict.plan import enumerate_layouts, plan, why_it_loses

CAT = load_catalogue(None)
H100 = Cluster(CAT.device("h100"), CAT.link("nvlink4"), CAT.link("ib-ndr"), 8, 8)


def run(capsys, *args):
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_enumerated_layout_is_valid():
    shape = shape_by_name("llama3-70b")
    seen = list(enumerate_layouts(shape, 256, 8, 512))
    assert seen
    for layout, b in seen:
        assert layout.gpus == 256 and layout.tp <= 8 and shape.num_kv_heads % layout.tp == 0
        assert shape.num_layers % (layout.pp * layout.v) == 0 and (512 // layout.dp) % b == 0
    assert {lay.tp for lay, _ in seen} == {1, 2, 4, 8} and 1 in {lay.pp for lay, _ in seen}


def test_ranking_puts_the_fastest_fitting_layout_first_and_says_why_others_lose():
    shape = shape_by_name("llama3-70b")
    cands = plan(shape, H100, 256, Training(8192, 512, efficiency=0.37))
    fitting = [c for c in cands if c.terms is not None]
    assert fitting and cands[0] is fitting[0]
    rates = [c.terms.tokens_per_s for c in fitting]
    assert rates == sorted(rates, reverse=True)
    assert all(c.terms is None for c in cands[len(fitting):])  # the ones that do not fit come last
    assert all(c.memory.total <= c.memory.capacity for c in fitting)
    assert why_it_loses(cands[0], cands[0]) == "best"
    assert why_it_loses(cands[-1], cands[0]).startswith("does not fit")
    # 70B's states alone (16 B x 70.6e9 = 1.1 TB) cannot sit unsharded on one 80 GB GPU.
    assert not any(c.layout.fsdp == 1 and c.layout.tp * c.layout.pp == 1 for c in fitting)


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_issue_query_prints_a_ranked_table_quickly(capsys):
    start = time.perf_counter()
    code, out, err = run(capsys, "llama3-70b", "--device", "h100", "--gpus", "256", "--seq-len", "8192",
                         "--global-batch", "512")
    elapsed = time.perf_counter() - start
    assert code == 0, err
    assert elapsed < 5.0
    lines = out.splitlines()
    assert "error band" in lines[1] and "leave-one-case-out" in lines[1]
    assert lines[2].startswith("largest micro-batch that fits the best layout")
    assert lines[5].split()[0] == "1" and "best" in lines[5]
    assert "lose to:" in out and "does not fit" in out


def test_json_and_csv(capsys):
    code, out, _ = run(capsys, "llama3-8b", "--gpus", "16", "--seq-len", "4096", "--global-batch", "32",
                       "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["layouts"][0]["rank"] == 1 and doc["layouts"][0]["fits"] is True
    assert doc["layouts"][0]["tokens_per_s"] >= doc["layouts"][1].get("tokens_per_s", 0)
    code, out, _ = run(capsys, "llama3-8b", "--gpus", "16", "--seq-len", "4096", "--format", "csv",
                       "--tp", "2")
    assert code == 0
    header, first = out.splitlines()[:2]
    assert header.startswith("rank,layout") and ",2," in first


def test_fixed_layout_is_honoured(capsys):
    code, out, _ = run(capsys, "llama3-70b", "--gpus", "256", "--seq-len", "8192", "--global-batch", "512",
                       "--tp", "8", "--pp", "1", "--dp", "32", "--format", "json")
    assert code == 0
    assert {(r["tp"], r["pp"], r["dp"]) for r in json.loads(out)["layouts"]} == {(8, 1, 32)}


@pytest.mark.parametrize("args, words", [
    (["llama3-70b", "--gpus", "256", "--tp", "8", "--pp", "2", "--dp", "8"], "not the 256 GPUs"),
    (["tiny-lm", "--gpus", "8", "--tp", "4"], "key/value heads"),
    (["llama3-70b", "--gpus", "256", "--gpus-per-node", "16", "--tp", "16"], "key/value heads"),
    (["llama3-8b", "--gpus", "64", "--pp", "64"], "32 layers"),
    (["llama3-8b", "--gpus", "8", "--pp", "3"], "32 layers"),
    (["llama9-1t", "--gpus", "8"], "unknown language model"),
    (["llama3-8b", "--gpus", "8", "--device", "tpu9"], "unknown device"),
    (["llama3-8b", "--gpus", "8", "--seq-len", "200000"], "maximum"),
    (["llama3-8b", "--gpus", "12"], "whole number of nodes"),
    (["llama3-8b"], "--gpus"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, words):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_layout_model_imports_no_torch():
    # lm_shapes lives in the zoo, whose registry imports torch: the prediction layer must not pull
    # it in through the package (tests/test_layers.py sees only direct imports).
    import subprocess
    import sys

    code = ("import sys, nnscale.predict.plan, nnscale.predict.published_lm; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
