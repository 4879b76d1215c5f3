"""`nnscale predict`: tables, JSON, CSV, measured:RUN and --validate over a real store, bad input."""

import json

import pytest
from synthetic_runs import synthetic_records

from nnscale.cli import main
from nnscale.glue.predict import model_profile
from nnscale.store import open_store

MODEL = "pytorch-mnist-net"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """An SQLite store with a synthetic run of the seed's MNIST net, and a run of one-worker points."""
    path = tmp_path_factory.mktemp("store") / "results.db"
    records = synthetic_records(net=model_profile(MODEL))
    with open_store(str(path)) as db:
        run = db.create_run("synth")
        for m in records:
            db.add_measurement(run, m)
        single = db.create_run("single-only")
        for m in records:
            if m.workload.world_size == 1:
                db.add_measurement(single, m)
    return str(path)


def run(capsys, *args):
    code = main(["predict", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_catalogue_prediction_table(capsys):
    code, out, err = run(capsys, MODEL, "--device", "h100", "--nodes", "1,2,4,...,16",
                         "--inter-link", "ib-ndr", "--dataset-size", "60000", "--epochs", "10")
    assert code == 0, err
    assert "catalogue values, no measurements" in out and "nvlink4 inside, ib-ndr between nodes" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("nodes"))
    assert len(lines) - header - 2 == 5  # 1, 2, 4, 8, 16 nodes
    assert "limited by" in lines[header] and "time to train" in lines[header]


def test_json_and_csv(capsys):
    code, out, _ = run(capsys, MODEL, "--device", "a100", "--nodes", "1,4", "--inter-link", "100gbe",
                       "--format", "json", "--algorithm", "hierarchical", "--fusion", "horovod")
    data = json.loads(out)
    assert code == 0 and [r["gpus"] for r in data["rows"]] == [8, 32]
    assert all(0 < r["efficiency"] <= 1 for r in data["rows"]) and data["inputs"]["algorithm"] == "hierarchical"
    code, out, _ = run(capsys, MODEL, "--device", "a100", "--nodes", "2", "--inter-link", "100gbe",
                       "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("nodes,gpus,global_batch,batch_per_gpu,samples_per_s")


def test_measured_device_calibrates_from_the_run(capsys, store_path):
    code, out, err = run(capsys, MODEL, "--device", "measured:synth", "--store", store_path,
                         "--gpus-per-node", "2", "--nodes", "1,2,4")
    assert code == 0, err
    assert "compute: measured" in out and "fit to 24 points of run synth" in out
    assert "fitted:synth inside, fitted:synth between nodes" in out


def test_measured_device_without_comm_points_falls_back_and_says_so(capsys, store_path):
    code, out, err = run(capsys, MODEL, "--device", "measured:single-only", "--store", store_path,
                         "--gpus-per-node", "1", "--nodes", "1,2", "--inter-link", "10gbe", "--format", "json")
    assert code == 0, err
    assert any("communication: catalogue values" in n and "no usable points" in n
               for n in json.loads(out)["notes"])


def test_validate_a_stored_run(capsys, store_path):
    code, out, err = run(capsys, "--validate", "synth", "--store", store_path)
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("leave-one-out over run synth: max |error|") and "8 configurations" in first
    worst = float(first.split("max |error| ")[1].split(" %")[0])
    assert worst <= 10.0 and "within the 10 % target" in first
    # The all-reduce points are shown too, after the configurations, with their own max and mean.
    head, inputs = out.split("calibration inputs (all-reduce points")
    assert "pytorch-mnist-net" in head and "allreduce" not in head
    assert "a diagnostic, not the target): max |error|" in inputs and "over 16 points" in inputs
    assert inputs.count("allreduce ") == 16


def test_validate_as_json_says_each_rows_role(capsys, store_path):
    code, out, err = run(capsys, "--validate", "synth", "--store", store_path, "--format", "json")
    assert code == 0, err
    roles = [r["role"] for r in json.loads(out)]
    assert roles.count("configuration") == 8 and roles.count("calibration input") == 16


def test_list(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0 and "p100" in out and "ib-ndr" in out and "alpha 14 us" in out


@pytest.mark.parametrize("args, needle", [
    ([MODEL, "--device", "h300"], "unknown device 'h300'; known devices:"),
    ([MODEL, "--device", "h100", "--inter-link", "ib-xdr", "--nodes", "2"], "unknown link 'ib-xdr'; known links:"),
    ([MODEL, "--device", "h100", "--nodes", "0,2"], "node counts must be >= 1"),
    ([MODEL, "--device", "h100", "--nodes=-4"], "node counts must be >= 1"),
    ([MODEL, "--device", "p100", "--nodes", "2"], "give --inter-link"),  # p100: no reference system
    ([MODEL, "--device", "p100", "--precision", "bf16", "--nodes", "1"], "no peak for precision 'bf16'"),
    ([MODEL], "predict needs --device"),
    ([], "predict needs a MODEL"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flag, value", [("--gpus-per-node", "0"), ("--batch-per-gpu", "-4"),
                                         ("--dataset-size", "0"), ("--epochs", "-1"), ("--bucket-mb", "0")])
def test_zero_or_negative_sizes_exit_2(capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["predict", MODEL, "--device", "h100", f"{flag}={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "must be positive" in err and len(err.strip().splitlines()) == 1


def test_bad_catalogue_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("links:\n  x: {alpha_us: 1}\n")
    code, _, err = run(capsys, MODEL, "--device", "h100", "--catalogue", str(bad))
    assert code == 2 and "misses field 'bandwidth_gb_per_s'" in err and len(err.strip().splitlines()) == 1


def test_runs_without_usable_points(capsys, store_path):
    code, _, err = run(capsys, "--validate", "single-only", "--store", store_path)
    assert code == 2 and "leave-one-out needs at least 3" in err
    code, _, err = run(capsys, "--validate", "nope", "--store", store_path)
    assert code == 2 and "no run named 'nope'" in err
    code, _, err = run(capsys, "resnet50", "--device", "measured:synth", "--store", store_path)
    assert code == 2 and "no single-device training point of resnet50" in err


def test_strong_scaling_must_show(capsys):
    # the must-show: per-GPU batch, compute efficiency at it, the loss from each term
    code, out, err = run(capsys, "resnet50", "--device", "h100", "--gpus-per-node", "8", "--nodes", "1,8",
                         "--global-batch", "3200", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    r1, r8 = data["rows"]
    assert (r1["batch_per_gpu"], r8["batch_per_gpu"]) == (400, 50) and r1["global_batch"] == r8["global_batch"] == 3200
    assert 0.9 < r8["compute_efficiency"] < r1["compute_efficiency"] <= 1.0  # the launch floor at 50 images
    losses = [r8[k] for k in ("loss_batch", "loss_exposed", "loss_contention", "loss_sync", "loss_overhead")]
    assert all(x >= 0 for x in losses) and sum(losses) == pytest.approx(100 * (1 - r8["efficiency"]), abs=1e-6)
    assert data["error_band"]["clusters"] == 11 and "leave-one-case-out" in data["error_band"]["text"]
    assert data["inputs"]["global_batch"] == 3200 and "8 x ib-ndr" in " ".join(data["notes"])


def test_plain_horovod_query_gives_85_to_95_percent(capsys):
    code, out, err = run(capsys, "resnet101", "--device", "p100", "--gpus-per-node", "4", "--nodes", "1,128",
                         "--inter-link", "25gbe", "--format", "json")
    assert code == 0, err
    assert 0.85 <= json.loads(out)["rows"][-1]["efficiency"] <= 0.95


def test_time_to_train_with_statistical_efficiency_side_by_side(capsys):
    code, out, err = run(capsys, "resnet50", "--device", "v100", "--gpus-per-node", "8", "--nodes", "1,32",
                         "--batch-per-gpu", "32", "--dataset-size", "1281167", "--epochs", "90", "--format", "json")
    assert code == 0, err
    small, big = json.loads(out)["rows"]  # global batch 256 and 8192
    assert small["epochs_needed"] == pytest.approx(90.0)
    assert 1.0 < big["epochs_needed"] / 90 < 1.04  # Goyal et al.: 90 epochs still reach it at 8k
    assert big["time_to_train_stat_s"] / big["time_to_train_s"] == pytest.approx(big["epochs_needed"] / 90)
    code, out, _ = run(capsys, "resnet50", "--device", "v100", "--nodes", "1,32", "--dataset-size", "1281167",
                       "--noise-scale", "8192", "--format", "json")
    assert json.loads(out)["rows"][-1]["epochs_needed"] > 1.9  # (1 + 8192/8192) / (1 + 256/8192) = 1.94


def test_published_table_states_the_band(capsys):
    code, out, err = run(capsys, "--published")
    assert code == 0, err
    assert out.splitlines()[0].startswith("the model out of the box is within \u00b1")
    assert "ddp-16-resnet101" in out and "leave-one-out" in out and "seed-8-resnet152" in out.splitlines()[0]


@pytest.mark.parametrize("args, needle", [
    (["resnet50", "--device", "h100", "--nodes", "1,8", "--global-batch", "3210"], "must be a multiple of"),
    (["resnet50", "--device", "h100", "--nodes", "1,8", "--global-batch", "32"], "at least as large"),
    (["resnet50", "--device", "h100", "--nodes", "1", "--global-batch", "64", "--batch-per-gpu", "8"], "not both"),
    (["resnet50", "--device", "h100", "--nodes", "1", "--noise-scale", "0"], "--noise-scale must be"),
    (["resnet50", "--device", "h100", "--nodes", "1", "--noise-scale", "nan"], "--noise-scale must be"),
])
def test_strong_scaling_and_noise_scale_bad_input(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_strong_scaling_from_a_run_needs_its_sweep(capsys, store_path):
    # the synthetic run measured one worker at batches 8 and 32: 64 over 2 or 4 workers lies within
    code, out, err = run(capsys, MODEL, "--device", "measured:synth", "--store", store_path, "--gpus-per-node",
                         "2", "--nodes", "1,2", "--global-batch", "64", "--format", "json")
    assert code == 0, err
    assert [r["batch_per_gpu"] for r in json.loads(out)["rows"]] == [32, 16]
    code, out, err = run(capsys, MODEL, "--device", "measured:synth", "--store", store_path, "--gpus-per-node",
                         "2", "--nodes", "1,8", "--global-batch", "64")
    assert code == 2 and "outside" in err and len(err.strip().splitlines()) == 1, err
