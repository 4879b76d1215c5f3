"""Bad input: one line on stderr, exit code 2, and what the store held is still there."""

from __future__ import annotations

import pytest

from nnscale.cli import main
from nnscale.distributed import config
from nnscale.records import Measurement, Workload
from nnscale.store import open_store


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "kept.db"
    with open_store(str(path)) as store:
        run = store.create_run("kept")
        store.add_measurement(run, Measurement(Workload("test-tiny-mlp", "training", 4, (3, 8, 8)),
                                               "ok", (1.0, 1.1), {"samples_per_s": 4000.0}))
    yield str(path)
    with open_store(str(path), create=False) as store:  # nothing stored is lost
        (kept,) = store.measurements("kept")
        assert kept.stats.throughput.samples_per_s == 4000.0


def one_line(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]


BASE = ["scale", "test-tiny-mlp", "--nproc", "1,2"]


@pytest.mark.parametrize("argv, needles", [
    (BASE, ["exactly one of --batch-per-worker"]),
    (BASE + ["--batch-per-worker", "4", "--global-batch", "8"], ["exactly one of"]),
    (BASE + ["--global-batch", "3"], ["--global-batch 3 does not divide", "2"]),
    (BASE + ["--batch-per-worker", "0"], ["--batch-per-worker 0"]),
    (BASE + ["--batch-per-worker", "4", "--nproc", "0,2"], ["--nproc"]),
    (BASE + ["--batch-per-worker", "4", "--nnodes", "2"], ["--rdzv-endpoint"]),
    (BASE + ["--batch-per-worker", "4", "--nnodes", "2", "--rdzv-endpoint", "nohost"],
     ["HOST:PORT"]),
    (BASE + ["--batch-per-worker", "4", "--nnodes", "2", "--node-rank", "2",
             "--rdzv-endpoint", "h:1"], ["--node-rank 2"]),
    (BASE + ["--batch-per-worker", "4", "--precision", "tf32"], ["tf32"]),
    (BASE + ["--batch-per-worker", "4", "--loaded-reference", "--strategy", "fsdp"],
     ["--loaded-reference", "--strategy ddp"]),
    (BASE + ["--batch-per-worker", "4", "--loaded-reference", "--nnodes", "2", "--rdzv-endpoint",
             "h:1"], ["--loaded-reference", "--nnodes 1"]),
    (BASE + ["--batch-per-worker", "4", "--timeout", "0"], ["--timeout"]),
    (["scale", "no-such-model", "--batch-per-worker", "4"], ["no-such-model"]),
    (["allreduce", "--sizes", "8K..1K"], ["--sizes"]),
    (["allreduce", "--bandwidth-cap", "fast"], ["--bandwidth-cap 'fast'"]),
    (["allreduce", "--bandwidth-cap", "200mbit", "--bandwidth-cap-burst", "lots"],
     ["--bandwidth-cap-burst 'lots'", "tc size"]),
    (["allreduce", "--bandwidth-cap", "200mbit", "--bandwidth-cap-burst", "0kbit"],
     ["--bandwidth-cap-burst '0kbit'"]),
    (["allreduce", "--bandwidth-cap-burst", "200kbit"], ["--bandwidth-cap-burst needs --bandwidth-cap"]),
    (BASE + ["--batch-per-worker", "4", "--bandwidth-cap", "1gbit", "--bandwidth-cap-burst", "1000 kbit"],
     ["--bandwidth-cap-burst '1000 kbit'"]),
    (BASE + ["--batch-per-worker", "4", "--bandwidth-cap-burst", "1000kbit"],
     ["--bandwidth-cap-burst needs --bandwidth-cap"]),
    (BASE + ["--batch-per-worker", "4", "--strategy", "zero3"],
     ["--strategy 'zero3'", "expected one of ddp, fsdp"]),
    (BASE + ["--batch-per-worker", "4", "--strategy", "fsdp", "--framework", "tensorflow"],
     ["tensorflow has no FSDP", "--framework torch"]),
    (BASE + ["--batch-per-worker", "4", "--strategy", "fsdp", "--framework", "jax"],
     ["jax has no FSDP"]),
    (BASE + ["--batch-per-worker", "4", "--strategy", "fsdp", "--framework", "onnxruntime"],
     ["onnxruntime has no FSDP"]),
    (["scale", "no-such-model", "--batch-per-worker", "4", "--strategy", "fsdp", "--framework",
      "tensorflow"], ["tensorflow has no FSDP"]),  # the strategy first: no model is looked up
    (BASE + ["--batch-per-worker", "4", "--strategy", "fsdp", "--comm-hook", "fp16"],
     ["--comm-hook: DDP option", "--strategy ddp"]),
    (BASE + ["--batch-per-worker", "4", "--seq-len", "16"], ["--seq-len is for language models"]),
    (BASE + ["--batch-per-worker", "4", "--launches", "0"], ["--launches 0", "integer >= 1"]),
    (BASE + ["--batch-per-worker", "4", "--launches", "-2"], ["--launches -2", "integer >= 1"]),
    # Each launch gets budget / launches: the sweeps' per-process minimum, said with its numbers.
    (BASE + ["--batch-per-worker", "4", "--budget", "1", "--launches", "6"],
     ["--budget 1 s is too small for 6 launches", "minimum is 1.2 s"]),
    (["allreduce", "--launches", "0"], ["--launches 0", "integer >= 1", "per size"]),
    (["allreduce", "--compute-before", "-5"], ["--compute-before -5", "from 0", "to 1000"]),
    (["allreduce", "--budget", "0.5", "--launches", "3"],
     ["--budget 0.5 s is too small for 3 launches per size", "minimum is 0.6 s"]),
])
def test_bad_options(capsys, db, argv, needles):
    one_line(capsys, argv + ["--db", db], *needles)


def test_argparse_choices_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exc:
        main(BASE + ["--batch-per-worker", "4", "--breakdown", "guess"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--breakdown" in err[0]


def test_unreachable_rendezvous_endpoint(capsys, db):
    one_line(capsys, BASE + ["--batch-per-worker", "4", "--nnodes", "2", "--rdzv-endpoint",
                             "nnscale-test.invalid:29400", "--db", db], "cannot resolve")


def test_more_workers_than_gpus_is_refused(capsys, db, monkeypatch):
    monkeypatch.setattr(config, "cuda_devices", lambda: 1)
    one_line(capsys, ["scale", "test-tiny-mlp", "--device", "cuda", "--nproc", "1,2",
                      "--batch-per-worker", "4", "--db", db], "--nproc 2", "1 GPU")


def test_cuda_without_a_gpu_is_refused(capsys, db, monkeypatch):
    monkeypatch.setattr(config, "cuda_devices", lambda: 0)
    one_line(capsys, ["scale", "test-tiny-mlp", "--device", "cuda", "--nproc", "1",
                      "--batch-per-worker", "4", "--db", db], "no CUDA GPU")


def test_more_workers_than_cores_is_a_warning_on_cpu(monkeypatch):
    monkeypatch.setattr(config, "usable_cpus", lambda: [0, 1])
    assert config.check_workers(2, "cpu") == []
    (warning,) = config.check_workers(3, "cpu")
    assert "--nproc 3 is more than this node's 2 usable cores" in warning


def test_bad_store_is_refused_before_anything_runs(capsys, tmp_path):
    bad = tmp_path / "not-a-db"
    bad.write_text("hello")
    one_line(capsys, BASE + ["--batch-per-worker", "4", "--db", str(bad)], "not an SQLite database")
    assert bad.read_text() == "hello"


@pytest.mark.parametrize("command", [BASE + ["--batch-per-worker", "4"], ["allreduce", "--nproc", "2"]])
def test_more_threads_times_workers_than_cores_is_refused(capsys, db, command):
    import os

    cores = len(os.sched_getaffinity(0))  # 2 workers x this many threads cannot each have their own
    one_line(capsys, command + ["--threads-per-worker", str(cores), "--db", db],
             f"--threads-per-worker {cores} x 2 workers = {2 * cores} threads",
             f"{cores} usable cores", f"at most {max(1, cores // 2)} thread(s) per worker")
